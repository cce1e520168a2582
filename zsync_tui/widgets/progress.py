"""The live progress line at the bottom of every screen: task, done/total, failures, rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Static

from .. import fmt

BAR_WIDTH = 20


@dataclass(slots=True)
class Progress:
    """What the app is doing now; the App owns one and bumps ``App.progress_tick``."""

    task: str = "Ready. Press s to start loading."
    done: int = 0
    total: int | None = None
    failed: int = 0
    running: bool = False
    unit: str = ""
    started: float = field(default_factory=time.monotonic)

    def begin(self, task: str, total: int | None = None, unit: str = "") -> None:
        self.task, self.done, self.total, self.failed, self.unit = task, 0, total, 0, unit
        self.running, self.started = True, time.monotonic()

    def end(self, task: str) -> None:
        self.task, self.running = task, False

    def text(self) -> Text:
        line = Text()
        line.append("● " if self.running else "  ", style="bold")
        line.append(self.task)
        if self.total:
            filled = min(BAR_WIDTH, self.done * BAR_WIDTH // self.total)
            line.append("  ")
            line.append("█" * filled, style="bold")
            line.append("░" * (BAR_WIDTH - filled), style="dim")
            line.append(f" {self.done}/{self.total}")
        elif self.done:
            line.append(f"  {self.done}")
        if self.failed:
            line.append(f" · {self.failed} failed", style="bold red")
        elapsed = time.monotonic() - self.started
        if self.running and self.done and elapsed > 0.5:
            line.append(f" · {fmt.rate(self.done / elapsed)}{self.unit}")
        return line


class ProgressFooter(Static):
    """Mirrors the App's :class:`Progress`; redrawn whenever the App says it moved."""

    DEFAULT_CSS = """
    ProgressFooter { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "progress_tick", self._redraw, init=True)

    def _redraw(self, _tick: int) -> None:
        progress: Progress = self.app.progress  # type: ignore[attr-defined]
        self.update(progress.text())
