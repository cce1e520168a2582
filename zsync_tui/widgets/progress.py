"""The live progress line at the bottom of every screen: task, done/total, failures, rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from rich.text import Text
from textual.widgets import Static

from .. import fmt

BAR_WIDTH = 20


@dataclass(frozen=True, slots=True)
class Progress:
    """What the app is doing now: a value, set as a whole on the App's ``progress`` reactive
    (``app.progress = replace(app.progress, done=5)``), which redraws every progress line."""

    task: str = "Ready. Press s to start loading."
    done: int = 0
    total: int | None = None
    failed: int = 0
    running: bool = False
    unit: str = ""
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def begin(cls, task: str, total: int | None = None, unit: str = "") -> Progress:
        return cls(task, 0, total, 0, True, unit)

    def end(self, task: str) -> Progress:
        return replace(self, task=task, running=False)

    def text(self) -> Text:
        line = Text()
        line.append("● " if self.running else "  ", style="bold")
        line.append(fmt.plain(self.task))
        if self.total:
            line.append(f" {self.done:,}/{self.total:,}")
        elif self.done:
            line.append(f"  {self.done:,}")
        if self.failed:
            line.append(f" · {self.failed} failed", style="bold red")
        elapsed = time.monotonic() - self.started
        if self.running and self.done and elapsed > 0.5:
            rate = self.done / elapsed
            line.append(f" · {fmt.rate(rate)}{self.unit}")
            if self.total and self.total > self.done:
                line.append(f" · {fmt.duration((self.total - self.done) / rate)} left")
        if self.total:  # last: on a narrow terminal the bar is what is cut
            filled = min(BAR_WIDTH, self.done * BAR_WIDTH // self.total)
            line.append("  ")
            line.append("█" * filled, style="bold")
            line.append("░" * (BAR_WIDTH - filled), style="dim")
        return line


class ProgressFooter(Static):
    """Shows the App's ``progress`` reactive; redrawn whenever it is set."""

    DEFAULT_CSS = """
    ProgressFooter { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "progress", self._redraw, init=True)

    def _redraw(self, progress: Progress) -> None:
        self.update(progress.text())
