"""The profile, beside the four steps (P), and ``zsync init``'s walk over the same screens:
Zivver, the sources in their order (precedence), syncing, notifications, the history kept
and monitoring. Enter edits a line in a form made from its model (:mod:`.profile_form`); a
adds a source of any registered type, c duplicates one, x removes one (or a notification
table), Ctrl+Up and Ctrl+Down move one. Ctrl+S checks the whole profile, tests what changed
and saves it in place (comments kept). Secrets pasted are tried from private files, then
written to 0640 files beside the profile at the save; never into it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static

from zsync_core.check import CheckResult
from zsync_core.config import Config
from zsync_core.connections import check_source
from zsync_core.errors import ZsyncError
from zsync_core.profile_edit import ProfileDocument
from zsync_core.registry import source_types

from .. import fmt
from ..widgets.table import Column, EditTable, VirtualTable
from .profile_form import SECTIONS, TESTS, Draft, Edited, FormScreen

__all__ = ["SECTIONS", "Draft", "Edited", "FormScreen", "ProfileScreen", "TypeScreen"]


@dataclass(slots=True)
class Line:
    what: str
    """A table of :data:`SECTIONS`, or a source's name."""
    source: bool = False
    said: str = ""


class ProfileScreen(ModalScreen[Config | None]):
    """The profile's lines; returns the profile as saved (None: nothing saved). ``walk``:
    ``zsync init``'s last step (the profile to write)."""

    CSS = """
    ProfileScreen { align: center middle; }
    #dialog { width: 96%; height: 94%; border: thick $accent; background: $surface; padding: 0 1; }
    #title { height: auto; padding: 0 0 1 0; }
    #lines { height: 1fr; }
    #file { height: 2fr; display: none; border: round $accent; }
    #said { height: auto; max-height: 10; padding: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [  # short: the footer fits 80 columns
        Binding("a", "add", "Add"),
        Binding("c", "duplicate", "Copy"),
        Binding("x", "remove", "Remove"),
        Binding("ctrl+up", "move(-1)", "Move", key_display="^↑↓"),
        Binding("ctrl+down", "move(1)", "Move down", show=False),
        Binding("v", "view", "File"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+s", "write", "Write"),
        Binding("escape", "close", "Close"),
        Binding("escape", "leave", "Quit"),
    ]

    def __init__(self, draft: Draft, *, walk: bool = False) -> None:
        super().__init__()
        self.draft = draft
        self.walk = walk
        self.dirty = walk
        self.untested_ok = False
        """The admin saw a failed test and pressed Ctrl+S again: save anyway."""

    @property
    def document(self) -> ProfileDocument:
        return self.draft.document

    def compose(self) -> ComposeResult:
        if self.walk:
            title = Text.assemble(
                ("zsync init: the profile to write, ", "bold"),
                fmt.plain(str(self.draft.path)),
                " — Enter edits a line, a adds another source (the order is their "
                "precedence), v shows the file. Ctrl+S tests it and writes it.",
            )
        else:
            title = Text.assemble(
                ("Profile ", "bold"),
                fmt.plain(str(self.draft.path)),
                " — Enter edits a line; the sources' order is their precedence. Ctrl+S "
                "checks, tests what changed and saves (comments kept).",
            )
        with Vertical(id="dialog"):
            yield Static(title, id="title")
            yield EditTable(
                [Column("", 10), Column("", share=2), Column("", share=3)],
                lambda line: (
                    "Source" if line.source else SECTIONS[line.what][0],
                    line.what if line.source else "",
                    line.said,
                ),
                lambda line: "warning" if line.what in self.draft.changed else None,
                id="lines",
            )
            with VerticalScroll(id="file"):
                yield Static(id="text")
            yield Static(id="said")
            yield Footer()

    def on_mount(self) -> None:
        self._refill()
        self.query_one(VirtualTable).focus()

    def _refill(self, keep: str | None = None) -> None:
        url = self.document.table("target").get("url")
        lines = [Line("target", said=str(url) if url else "(not set yet)")]
        for name in self.document.source_names():
            source = self.document.source(name)
            said = f"{source.get('type', '?')}"
            if source.get("description"):
                said += f" — {source['description']}"
            lines.append(Line(name, True, said))
        for what in ("sync", "notify", "store", "monitoring"):
            lines.append(Line(what, said=_summary(self.document.table(what))))
        table: VirtualTable[Line] = self.query_one(VirtualTable)
        current = next((line for line in lines if keep is not None and line.what == keep), None)
        table.set_rows(lines, keep=current)
        if current is not None:
            table.cursor = lines.index(current)
        if self.query_one("#file").display:
            text = self.document.text or "(empty: nothing is set yet)"
            self.query_one("#text", Static).update(Text(text))

    def _say(self, text: str, ok: bool = True) -> None:
        self.query_one("#said", Static).update(
            Text(fmt.block(text), style="" if ok else "bold red")
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("save", "write", "close", "leave"):
            return (action in ("write", "leave")) == self.walk
        return True

    # --- editing -----------------------------------------------------------------------

    @on(VirtualTable.Selected)
    def _edit(self, event: VirtualTable.Selected) -> None:
        line: Line = event.row
        try:
            form = FormScreen(self.draft, line.what, source=line.source)
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        self.app.push_screen(form, lambda edited: self.edited(line.what, line.source, edited))

    def edited(self, what: str, source: bool, edited: Edited | None) -> None:
        """Keep a form's result in the draft."""
        if edited is None:
            return
        try:
            name = self.draft.keep(what, source, edited)
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        self.dirty, self.untested_ok = True, False
        self._refill(keep=name)
        self._say("Changed; Ctrl+S saves." if not self.walk else "Ctrl+S writes the profile.")

    def action_add(self) -> None:
        self.app.push_screen(TypeScreen(list(source_types())), self.add_of)

    def add_of(self, tag: str | None, heading: str | None = None) -> None:
        """A form for a new source of type ``tag``; then ``edited``."""
        if tag is None:
            return
        names = set(self.document.source_names())
        name = next(n for n in (f"{tag} {i}" if i else tag for i in range(99)) if n not in names)
        form = FormScreen(
            self.draft,
            name,
            source=True,
            heading=heading or f"New {tag} source",
            values={"type": tag, "name": name},
        )
        self.app.push_screen(form, lambda edited: self.edited(name, True, edited))

    def _current_source(self) -> Line | None:
        line = self.query_one(VirtualTable).current
        if line is None or not line.source:
            self._say("Choose a source first (the lines between Zivver and Syncing).", ok=False)
            return None
        return line

    def action_duplicate(self) -> None:
        line = self._current_source()
        if line is None:
            return
        names = set(self.document.source_names())
        candidates = [f"{line.what} copy"] + [f"{line.what} copy {i}" for i in range(2, 99)]
        copy = next(n for n in candidates if n not in names)
        self.document.duplicate_source(line.what, copy)
        self.draft.changed.add(copy)
        self.dirty = True
        self._refill(keep=copy)
        self._say(f"{copy}: a copy of {line.what}; Enter edits it, Ctrl+S saves.")

    def action_remove(self) -> None:
        line = self.query_one(VirtualTable).current
        if line is not None and line.what == "notify":
            self.document.set("notify", {"email": None, "webhook": None})
            self.draft.changed.add("notify")
            self.dirty = True
            self._refill(keep="notify")
            self._say("The mail and the webhook are removed; Ctrl+S saves.")
            return
        line = self._current_source()
        if line is None:
            return
        if len(self.document.source_names()) == 1:
            self._say("A profile needs at least one source; add another first.", ok=False)
            return
        self.document.remove_source(line.what)
        self.draft.changed.discard(line.what)
        self.dirty = True
        self._refill()
        self._say(f"{line.what} removed; Ctrl+S saves (Escape closes without saving).")

    def action_move(self, step: int) -> None:
        line = self._current_source()
        if line is None:
            return
        names = self.document.source_names()
        self.document.move_source(line.what, names.index(line.what) + step)
        self.dirty = True
        self._refill(keep=line.what)

    def action_view(self) -> None:
        file = self.query_one("#file")
        file.display = not file.display
        self._refill()

    # --- saving ------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False)
    async def action_save(self) -> None:
        if not self.dirty:
            self._say("Nothing changed.")
            return
        try:
            with self.document.trial(self.draft.secrets) as config:
                failed = [] if self.untested_ok else await self._test(config)
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        if failed:
            self.untested_ok = True
            self._say(
                "\n".join(failed) + "\nNot saved. Fix it, or press Ctrl+S again to save anyway.",
                ok=False,
            )
            return
        try:
            self.draft.write_secrets()
            saved = self.document.save()
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        self.dismiss(saved)

    async def _test(self, config: Config) -> list[str]:
        """The tests of what changed, pasted secrets included (not written yet)."""
        names = {source.name for source in config.sources}
        tests: list[Callable[[], Awaitable[list[CheckResult]]]] = [
            (lambda test=TESTS[what]: test(config))  # type: ignore[misc]
            for what in TESTS
            if what in self.draft.changed and (what != "notify" or _notifies(config))
        ]
        tests += [
            (lambda name=name: check_source(config, name))  # type: ignore[misc]
            for name in sorted(self.draft.changed & names)
        ]
        failed = []
        for test in tests:
            self._say("Testing what changed…")
            failed += [f"{r.what}: {r.message}" for r in await test() if not r.ok]
        return failed

    def action_write(self) -> None:
        self.action_save()

    def action_leave(self) -> None:
        self.action_close()

    def action_close(self) -> None:
        if self.dirty:
            self.dirty = False
            self._say(
                "Not saved: Escape again "
                + ("quits; nothing is written" if self.walk else "closes and drops the changes")
                + "; Ctrl+S saves."
            )
            return
        self.dismiss(None)


def _notifies(config: Config) -> bool:
    return config.notify.email is not None or config.notify.webhook is not None


def _summary(table: dict[str, Any]) -> str:
    parts = []
    for key, value in table.items():
        if isinstance(value, dict):
            parts.append(f"[{key}]")
        else:
            parts.append(f"{key} = {value}")
    return ", ".join(parts) or "(defaults)"


class TypeScreen(ModalScreen[str | None]):
    """Which type the new source is (every registered one, plug-ins included)."""

    CSS = """
    TypeScreen { align: center middle; }
    #dialog { width: 64; height: auto; max-height: 20; border: thick $accent; background: $surface; padding: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, types: list[str], heading: str = "[b]Add a source[/b] of type (Enter):"
    ) -> None:
        super().__init__()
        self.types = types
        self.heading = heading

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.heading)
            yield OptionList(*self.types)
            yield Footer()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.types[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
