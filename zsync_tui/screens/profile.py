"""The profile, beside the four steps (P): Zivver, the sources in their order (precedence)
and the sync options. Enter edits a line in a form made from its model (the one that checks
the file), a adds a source of any registered type, c duplicates one, x removes one, Ctrl+Up
and Ctrl+Down move one; Ctrl+S checks the whole profile, tests the connections that
changed, and saves it in place (comments kept). Secrets pasted go to 0640 files beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static

from zsync_core.check import CheckResult
from zsync_core.config import Config, SyncConfig, TargetConfig
from zsync_core.connections import check_source, check_target
from zsync_core.errors import ZsyncError
from zsync_core.profile_edit import ProfileDocument, write_secret
from zsync_core.registry import source_types

from .. import fmt
from ..widgets.model_form import ModelForm
from ..widgets.table import Column, VirtualTable


@dataclass(slots=True)
class Edited:
    """What a form gave back: the keys, and the secrets pasted (key -> secret)."""

    values: dict[str, Any]
    pasted: dict[str, str]
    managed: frozenset[str] = frozenset()
    """The keys the form held (a key it did not show is left as the file has it)."""


class FormScreen(ModalScreen[Edited | None]):
    """One table of the profile in a form; Ctrl+S applies it (checked with its model)."""

    CSS = """
    FormScreen { align: center middle; }
    #dialog { width: 96%; height: 94%; border: thick $accent; background: $surface; padding: 0 1; }
    #heading { height: auto; padding: 0 0 1 0; }
    #said { height: auto; max-height: 6; color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self, heading: str, model: type[BaseModel], values: dict[str, Any], skip: tuple[str, ...]
    ) -> None:
        super().__init__()
        self.heading = heading
        self.model = model
        self.values = values
        self.skip = skip

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(fmt.plain(self.heading), style="bold"), id="heading")
            yield ModelForm(self.model, self.values, skip=self.skip, first=("name", "url"))
            yield Static(id="said")
            yield Footer()

    def action_apply(self) -> None:
        form = self.query_one(ModelForm)
        values = {**{k: v for k, v in self.values.items() if k in self.skip}, **form.values()}
        pasted = form.pasted()
        for key in pasted:  # the file it will be written to, so the model sees a secret named
            values.pop(f"{key}_env", None)
            values.setdefault(f"{key}_file", f"{key}-pasted")
        from ..init import problems

        wrong = problems(self.model, values)
        if wrong:
            self.query_one("#said", Static).update(Text(fmt.block(wrong)))
            return
        held = frozenset(n for n, (kind, _c) in form.kinds.items() if kind != "table")
        self.dismiss(Edited(values, pasted, held))

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(slots=True)
class Line:
    what: str
    """"target", "sync", or "source"."""
    name: str = ""
    said: str = ""


class ProfileScreen(ModalScreen[Config | None]):
    """The profile's lines; returns the profile as saved (None: nothing saved)."""

    CSS = """
    ProfileScreen { align: center middle; }
    #dialog { width: 96%; height: 94%; border: thick $accent; background: $surface; padding: 0 1; }
    #title { height: auto; padding: 0 0 1 0; }
    #lines { height: 1fr; }
    #said { height: auto; max-height: 10; padding: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add source"),
        Binding("c", "duplicate", "Duplicate"),
        Binding("x", "remove", "Remove"),
        Binding("ctrl+up", "move(-1)", "Up"),
        Binding("ctrl+down", "move(1)", "Down"),
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.document = ProfileDocument.load(path)
        self.secrets: dict[str, str] = {}
        """File name -> secret pasted, written at the save."""
        self.changed: set[str] = set()
        """What changed: "target", "sync", or a source's name."""
        self.dirty = False
        self.untested_ok = False
        """The admin saw a failed test and pressed Ctrl+S again: save anyway."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Text.assemble(
                    ("Profile ", "bold"),
                    fmt.plain(str(self.path)),
                    " — Enter edits a line; the sources' order is their precedence. Ctrl+S "
                    "checks, tests what changed and saves (comments kept).",
                ),
                id="title",
            )
            yield VirtualTable(
                [Column("", 8), Column("", share=2), Column("", share=3)],
                lambda line: (
                    {"target": "Zivver", "sync": "Syncing"}.get(line.what, "Source"),
                    line.name,
                    line.said,
                ),
                lambda line: "warning" if line.name in self.changed else None,
                id="lines",
            )
            yield Static(id="said")
            yield Footer()

    def on_mount(self) -> None:
        self._refill()
        self.query_one(VirtualTable).focus()

    def _table(self, section: str) -> dict[str, Any]:
        table = self.document.document.get(section)
        return dict(table.unwrap()) if table is not None and hasattr(table, "unwrap") else {}

    def _source(self, name: str) -> dict[str, Any]:
        sources = self.document.document.get("sources") or []
        for table in sources:
            if table.get("name") == name:
                return dict(table.unwrap())
        return {}

    def _refill(self, keep: str | None = None) -> None:
        target = self._table("target")
        lines = [Line("target", str(target.get("url", TargetConfig().url)))]
        for name in self.document.source_names():
            source = self._source(name)
            said = f"{source.get('type', '?')}"
            if source.get("description"):
                said += f" — {source['description']}"
            lines.append(Line("source", name, said))
        sync = self._table("sync")
        lines.append(Line("sync", "options", ", ".join(f"{k} = {v}" for k, v in sync.items())))
        table: VirtualTable[Line] = self.query_one(VirtualTable)
        current = next((line for line in lines if keep is not None and line.name == keep), None)
        table.set_rows(lines, keep=current)
        if current is not None:
            table.cursor = lines.index(current)

    def _say(self, text: str, ok: bool = True) -> None:
        self.query_one("#said", Static).update(
            Text(fmt.block(text), style="" if ok else "bold red")
        )

    # --- editing -----------------------------------------------------------------------

    @on(VirtualTable.Selected)
    def _edit(self, event: VirtualTable.Selected) -> None:
        line: Line = event.row
        if line.what == "target":
            form = FormScreen("Zivver", TargetConfig, self._table("target"), ())
            self.app.push_screen(form, lambda edited: self._edited("target", edited))
        elif line.what == "sync":
            form = FormScreen("Syncing", SyncConfig, self._table("sync"), ())
            self.app.push_screen(form, lambda edited: self._edited("sync", edited))
        else:
            values = self._source(line.name)
            model = source_types()[str(values.get("type"))].config
            form = FormScreen(f"Source {line.name}", model, values, ("type",))
            self.app.push_screen(form, lambda edited: self._edited(line.name, edited))

    def _edited(self, what: str, edited: Edited | None) -> None:
        if edited is None:
            return
        values = edited.values
        files = {}
        for key, secret in edited.pasted.items():
            stem = (
                "zivver"
                if what == "target"
                else "".join(
                    c if c.isalnum() else "-" for c in str(values.get("name", what)).lower()
                )
            )
            name = f"{stem}-{key.replace('_', '-')}"
            values[f"{key}_file"] = name
            files[name] = secret
        try:
            old = self._table(what) if what in ("target", "sync") else self._source(what)
            # a key the form held and was emptied goes; one it did not show stays as it is
            removed = {k: None for k in old if k in edited.managed and k not in values}
            if what in ("target", "sync"):
                self.document.set(what, {**removed, **values})
            else:
                self.document.update_source(what, {**removed, **values})
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        self.secrets.update(files)
        self.changed.add(str(values.get("name", what)) if what not in ("target", "sync") else what)
        self.dirty, self.untested_ok = True, False
        self._refill(keep=str(values.get("name", what)))
        self._say("Changed; Ctrl+S saves.")

    def action_add(self) -> None:
        types = list(source_types())
        self.app.push_screen(TypeScreen(types), self._typed)

    def _typed(self, tag: str | None) -> None:
        if tag is None:
            return
        names = set(self.document.source_names())
        name = next(n for n in (f"{tag} {i}" if i else tag for i in range(99)) if n not in names)
        model = source_types()[tag].config
        form = FormScreen(f"New {tag} source", model, {"type": tag, "name": name}, ("type",))

        def added(edited: Edited | None) -> None:
            if edited is None:
                return
            self.document.add_source(edited.values)
            self._edited(str(edited.values["name"]), edited)

        self.app.push_screen(form, added)

    def _current_source(self) -> Line | None:
        line = self.query_one(VirtualTable).current
        if line is None or line.what != "source":
            self._say("Choose a source first (the lines between Zivver and Syncing).", ok=False)
            return None
        return line

    def action_duplicate(self) -> None:
        line = self._current_source()
        if line is None:
            return
        names = set(self.document.source_names())
        candidates = [f"{line.name} copy"] + [f"{line.name} copy {i}" for i in range(2, 99)]
        copy = next(n for n in candidates if n not in names)
        self.document.duplicate_source(line.name, copy)
        self.changed.add(copy)
        self.dirty = True
        self._refill(keep=copy)
        self._say(f"{copy}: a copy of {line.name}; Enter edits it, Ctrl+S saves.")

    def action_remove(self) -> None:
        line = self._current_source()
        if line is None:
            return
        if len(self.document.source_names()) == 1:
            self._say("A profile needs at least one source; add another first.", ok=False)
            return
        self.document.remove_source(line.name)
        self.changed.discard(line.name)
        self.dirty = True
        self._refill()
        self._say(f"{line.name} removed; Ctrl+S saves (Escape closes without saving).")

    def action_move(self, step: int) -> None:
        line = self._current_source()
        if line is None:
            return
        names = self.document.source_names()
        self.document.move_source(line.name, names.index(line.name) + step)
        self.dirty = True
        self._refill(keep=line.name)

    # --- saving ------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False)
    async def action_save(self) -> None:
        if not self.dirty:
            self._say("Nothing changed.")
            return
        try:
            config = self.document.check()
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        if not self.untested_ok:
            failed = await self._test(config)
            if failed:
                self.untested_ok = True
                self._say(
                    "\n".join(failed)
                    + "\nNot saved. Fix it, or press Ctrl+S again to save anyway.",
                    ok=False,
                )
                return
        try:
            for name, secret in self.secrets.items():
                write_secret(self.path, name, secret, replace=True)
            saved = self.document.save()
        except ZsyncError as error:
            self._say(str(error), ok=False)
            return
        self.dismiss(saved)

    async def _test(self, config: Config) -> list[str]:
        """The tests of what changed (pasted secrets tried before they are written)."""
        tests: list[Callable[[], Awaitable[list[CheckResult]]]] = []
        if self.secrets:  # the profile names files not written yet: test them after (t)
            return []
        if "target" in self.changed:
            tests.append(lambda: check_target(config))
        names = {source.name for source in config.sources}
        tests += [
            (lambda name=name: check_source(config, name))  # type: ignore[misc]
            for name in self.changed
            if name in names
        ]
        failed = []
        for test in tests:
            self._say("Testing what changed…")
            failed += [f"{r.what}: {r.message}" for r in await test() if not r.ok]
        return failed

    def action_close(self) -> None:
        if self.dirty:
            self.dirty = False
            self._say("Not saved: Escape again closes and drops the changes; Ctrl+S saves.")
            return
        self.dismiss(None)


class TypeScreen(ModalScreen[str | None]):
    """Which type the new source is (every registered one, plug-ins included)."""

    CSS = """
    TypeScreen { align: center middle; }
    #dialog { width: 60; height: auto; max-height: 20; border: thick $accent; background: $surface; padding: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, types: list[str]) -> None:
        super().__init__()
        self.types = types

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("[b]Add a source[/b] of type (Enter):")
            yield OptionList(*self.types)
            yield Footer()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.types[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)
