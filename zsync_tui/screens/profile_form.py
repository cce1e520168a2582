"""One table of the profile in a form (the profile area's and ``zsync init``'s): the draft
being edited (:class:`Draft`: the document, the secrets pasted, what changed) and the form
made from the table's model (:class:`FormScreen`). In a form Ctrl+T tests it as it is typed
(pasted secrets included, tried from private files) and, for an LDAP source, Ctrl+R reads
the directory's root DSE; Ctrl+S keeps it (checked with its model).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Footer, Input, Select, Static, TextArea

from zsync_core.check import CheckResult
from zsync_core.config import (
    Config,
    MonitoringConfig,
    NotifyConfig,
    StoreConfig,
    SyncConfig,
    TargetConfig,
)
from zsync_core.connections import check_notifications, check_source, check_target
from zsync_core.errors import ConfigError, ZsyncError
from zsync_core.profile_edit import ProfileDocument, form_edit, write_secret
from zsync_core.registry import source_types
from zsync_core.sources.ldap_discover import Discovery, discover

from .. import fmt
from ..widgets.model_form import ModelForm

SECTIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "target": ("Zivver", TargetConfig),
    "sync": ("Syncing", SyncConfig),
    "notify": ("Notify", NotifyConfig),
    "store": ("History", StoreConfig),
    "monitoring": ("Monitoring", MonitoringConfig),
}
"""The profile's tables other than the sources: what (the TOML table) -> shown as, model."""

TESTS: dict[str, Callable[[Config], Awaitable[list[CheckResult]]]] = {
    "target": check_target,
    "notify": check_notifications,
}


def problems(model: type[BaseModel], values: dict[str, Any]) -> str | None:
    """What is wrong with ``values`` for ``model``, in lines, or None."""
    try:
        model.model_validate(values)
    except ValidationError as error:
        return "\n".join(
            f"{'.'.join(map(str, e['loc'])) or 'this form'}: {e['msg']}" for e in error.errors()
        )
    return None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "source"


@dataclass(slots=True)
class Draft:
    """A profile being edited: the document, the secrets pasted (written at the save), what
    changed (tested at the save)."""

    document: ProfileDocument
    secrets: dict[str, str] = field(default_factory=dict)
    """File name beside the profile -> the secret pasted for it."""
    changed: set[str] = field(default_factory=set)
    """"target", "sync", … or a source's name."""

    @property
    def path(self) -> Path:
        return self.document.path

    @property
    def new(self) -> bool:
        return self.document.status is None

    def values(self, what: str, source: bool) -> dict[str, Any]:
        if source:
            return self.document.source(what)
        return self.document.table(what)

    def edit(self, what: str, source: bool, edited: Edited, into: ProfileDocument) -> None:
        """Apply a form's result to ``into`` (this draft's document, or a copy to try)."""
        old = self.values(what, source) if what in self._names(into, source) else {}
        edit = form_edit(old, edited.values, edited.held)
        if not source:
            into.set(what, edit)
        elif what in into.source_names():
            into.update_source(what, edit)
        else:
            into.add_source(edited.values)

    def keep(self, what: str, source: bool, edited: Edited) -> str:
        """Apply a form's result to the draft; returns the line's new name.

        Raises:
            ConfigError: a source would take another's name.
        """
        name = str(edited.values.get("name", what))
        if source and name != what and name in self.document.source_names():
            raise ConfigError(
                f"A source named {name!r} is there already; each source needs a name of its "
                "own (it names the source in every message)."
            )
        self.edit(what, source, edited, self.document)
        self.secrets.update(edited.files)
        name = name if source else what
        if source and name != what:
            self.changed.discard(what)
        self.changed.add(name)
        return name

    @staticmethod
    def _names(document: ProfileDocument, source: bool) -> list[str]:
        return document.source_names() if source else list(SECTIONS)

    def secret_of(self, values: dict[str, Any], key: str, pasted: str | None) -> str | None:
        """A secret: pasted, or named by ``<key>_env`` / ``<key>_file`` (read now)."""
        if pasted:
            return pasted
        if values.get(f"{key}_file") in self.secrets:
            return self.secrets[values[f"{key}_file"]]
        if values.get(f"{key}_env"):
            return os.environ.get(values[f"{key}_env"])
        if values.get(f"{key}_file"):
            try:
                return (self.path.parent / values[f"{key}_file"]).read_text().strip()
            except OSError:
                return None
        return None

    def secret_file(self, base: str, named: object) -> str:
        """The file beside the profile a pasted secret goes to: ``base``, unless another file
        (another profile's secret) or another pasted secret has that name; ``named``: the
        file the key names now, which is replaced."""
        if named is not None and self.named().count(str(named)) > 1:
            named = None  # another key names that file too: it keeps its secret
        name, number = base, 2
        while name != named and (name in self.secrets or (self.path.parent / name).exists()):
            name, number = f"{base}-{number}", number + 1
        return name

    def named(self) -> list[str]:
        """Every file a ``*_file`` key of the profile names, as written (once per key)."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    if key.endswith("_file") and isinstance(item, str):
                        found.append(item)
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(tomllib.loads(self.document.text))
        return found

    def write_secrets(self) -> None:
        """Write the pasted secrets the profile still names (one pasted, then replaced by an
        environment variable or its source removed, is dropped)."""
        named = set(self.named())
        for name, secret in self.secrets.items():
            if name in named:
                write_secret(self.path, name, secret, replace=not self.new)


@dataclass(slots=True)
class Edited:
    """What a form gave back."""

    values: dict[str, Any]
    held: dict[str, Any]
    """The keys the form held (one it did not show stays as the file has it)."""
    files: dict[str, str] = field(default_factory=dict)
    """Secret files the values name -> the secret pasted for each."""
    leave: bool = False
    """Kept on the way out of ``zsync init``'s walk (Escape): the walk ends there."""


class FormScreen(ModalScreen[Edited | None]):
    """One table of the profile in a form: Ctrl+S keeps it (checked with its model), Ctrl+T
    tests it as typed, Ctrl+R reads an LDAP directory's root DSE."""

    CSS = """
    FormScreen { align: center middle; }
    #dialog { width: 96%; height: 94%; border: thick $accent; background: $surface; padding: 0 1; }
    #heading { height: auto; padding: 0 0 1 0; }
    #said { height: auto; max-height: 8; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Keep"),
        Binding("ctrl+s", "next", "Next"),
        Binding("ctrl+t", "test", "Test"),
        Binding("ctrl+r", "discover", "Read the directory"),
        Binding("escape", "cancel", "Cancel"),
        Binding("escape", "leave", "To the list"),
        Binding("ctrl+q", "quit_walk", "Quit"),
    ]

    def __init__(
        self,
        draft: Draft,
        what: str,
        *,
        source: bool = False,
        heading: str | None = None,
        values: dict[str, Any] | None = None,
        require_key: bool = False,
        walk: bool = False,
    ) -> None:
        super().__init__()
        self.draft, self.what, self.source = draft, what, source
        self.values = values if values is not None else draft.values(what, source)
        if source:
            self.tag = str(self.values.get("type"))
            self.model: type[BaseModel] = source_types()[self.tag].config
        else:
            self.tag = ""
            self.model = SECTIONS[what][1]
        self.heading = heading or (f"Source {what}" if source else SECTIONS[what][0])
        self.require_key = require_key
        """Zivver's form will not be kept without an API key (``zsync init``)."""
        self.walk = walk
        """A step of ``zsync init``'s walk: Ctrl+S goes on (Next)."""
        self.touched = False
        """Something was typed (Escape then asks before it drops it)."""
        self.warned = False
        """Escape said what it would drop: a second one does."""
        self.failed: bool | None = None
        """The last test failed (True): Ctrl+S says so once before it keeps the form."""
        self.said = ""
        """What the form said last (a check's errors, a test's outcome)."""
        self.settled = False
        """Mounted and laid out: a widget's Changed from now on is typing."""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(fmt.plain(self.heading), style="bold"), id="heading")
            # ou_map maps DNs: only for a type whose entries have them (LDAP)
            dns = getattr(self.model, "has_dns", True)
            yield ModelForm(
                self.model,
                self.values,
                skip=("type",) if dns else ("type", "ou_map"),
                first=("name", "url", "domains", "existing_sso_keys"),
            )
            yield Static(id="said")
            yield Footer()

    def on_mount(self) -> None:
        self.query_one("#said", Static).display = False
        self.call_after_refresh(self.focus_next)  # typing goes to the first field
        self.call_after_refresh(self._settled)

    def _settled(self) -> None:
        self.settled = True  # a widget's Changed at its mount is no typing

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(TextArea.Changed)
    def _typed(self) -> None:
        if self.settled:
            self.touched, self.warned = True, False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "test":
            return self.source or self.what in TESTS
        if action == "discover":
            return self.tag == "ldap"
        if action in ("apply", "next", "cancel", "leave", "quit_walk"):
            return (action in ("next", "leave", "quit_walk")) == self.walk
        return True

    def say(self, text: str, ok: bool = True) -> None:
        self.said = text
        said = self.query_one("#said", Static)
        said.update(Text(fmt.block(text), style="" if ok else "bold red"))
        said.display = True

    def gathered(self) -> Edited | None:
        """The form as typed, checked with its model (what is wrong said, and None)."""
        form = self.query_one(ModelForm)
        try:
            values = form.values()
        except ValueError as error:
            self.say(str(error), ok=False)
            return None
        if self.source:
            values = {"type": self.tag, **values}
        files = {}
        for path, secret in form.pasted().items():
            table, named = values, form.initial
            for part in path[:-1]:
                table = table.setdefault(part, {})
                named = named.get(part) or {}
            stem = slug(str(values.get("name", self.what))) if self.source else self.what
            if self.what == "target":
                stem = "zivver"
            base = "-".join([stem, *path]).replace("_", "-")
            name = self.draft.secret_file(base, named.get(f"{path[-1]}_file"))
            table.pop(f"{path[-1]}_env", None)
            table[f"{path[-1]}_file"] = name
            files[name] = secret
        if self.require_key and not (values.get("api_key_env") or values.get("api_key_file")):
            self.say(
                "Give the API key: paste it (it is written to a 0640 file beside the "
                "profile), or name the environment variable or the file that holds it.",
                ok=False,
            )
            return None
        wrong = problems(self.model, values)
        renamed = values.get("name")
        if not wrong and self.source and renamed != self.what:
            if renamed in self.draft.document.source_names():
                wrong = f"name: a source named {renamed!r} is there already; give this one its own."
        if wrong:
            self.say(wrong, ok=False)
            return None
        return Edited(values, form.held(), files)

    def action_apply(self) -> None:
        if self.failed and not self.warned:
            self.warned = True
            self.say(
                f"{self.said}\nThe test failed. Fix it and test again (Ctrl+T), or press "
                "Ctrl+S again to keep it as it is.",
                ok=False,
            )
            return
        edited = self.gathered()
        if edited is not None:
            self.dismiss(edited)

    def action_next(self) -> None:
        self.action_apply()

    def action_cancel(self) -> None:
        if self.touched and not self.warned:
            self.warned = True
            self.say("Escape again drops what you typed here; Ctrl+S keeps it.", ok=False)
            return
        self.dismiss(None)

    def action_quit_walk(self) -> None:
        self.app.exit()

    def action_leave(self) -> None:
        """Leave the walk for the list of the profile to write, keeping what was typed (or,
        when it is not valid, after a second Escape, without it)."""
        if not self.touched:
            self.dismiss(None)
            return
        if self.warned:
            self.dismiss(None)
            return
        edited = self.gathered()
        if edited is None:
            self.warned = True
            self.say(f"{self.said}\nNot kept: Escape again leaves without it.", ok=False)
            return
        edited.leave = True
        self.dismiss(edited)

    @work(exclusive=True, exit_on_error=False)
    async def action_test(self) -> None:
        edited = self.gathered()
        if edited is None:
            return
        trial = self.draft.document.copy()
        name = str(edited.values.get("name", self.what)) if self.source else self.what
        try:
            self.draft.edit(self.what, self.source, edited, trial)
            if not trial.source_names():  # Zivver tested before any source (zsync init)
                trial.add_source({"name": "(none yet)", "type": "csv", "path": "-"})
            with trial.trial({**self.draft.secrets, **edited.files}) as config:
                self.say(f"Testing {fmt.plain(name)}…")
                if self.source:
                    results = await check_source(config, name)
                else:
                    results = await TESTS[self.what](config)
        except ZsyncError as error:
            self.say(f"{error}\n(The rest of the profile must be valid to test this.)", ok=False)
            return
        except Exception as error:  # noqa: BLE001 - a bug: said, never a test that hangs
            # its type only: an error's text may quote what it failed on (a key, a password)
            said = f"The test stopped on an unexpected error ({type(error).__name__}): a bug; report it."
            self.say(said, ok=False)
            return
        self.failed = not all(r.ok for r in results)
        self.warned = False
        self.say(
            "\n".join(r.message if r.ok else f"{r.what}: {r.message}" for r in results),
            ok=not self.failed,
        )

    def action_discover(self) -> None:
        form = self.query_one(ModelForm)
        try:
            typed = form.values()
        except ValueError as error:
            self.say(str(error), ok=False)
            return
        values = {k: v for k, v in typed.items() if k not in ("name", "base_dn")}
        pasted = form.pasted().get(("password",))
        password = self.draft.secret_of(values, "password", pasted)
        if pasted:  # the model wants the secret named: as it will be once written
            values.pop("password_env", None)
            values["password_file"] = "password"
        self.say(f"Reading the root DSE of {fmt.plain(str(values.get('url', '?')))}…")
        self._discover(values, password)

    @work(exclusive=True, exit_on_error=False, thread=True)
    def _discover(self, values: dict[str, Any], password: str | None) -> None:
        try:
            found = discover(values, password, self.draft.path)
        except (ZsyncError, ValidationError) as error:
            self.app.call_from_thread(self.say, str(error), False)
            return
        self.app.call_from_thread(self._discovered, found)

    def _discovered(self, found: Discovery) -> None:
        form = self.query_one(ModelForm)
        form.set_value("directory", found.directory)
        # what the directory says of itself is outside text: shown inert (a control
        # character in a DN is no DN to use anyway)
        first = fmt.plain(found.base_dns[0]) if found.base_dns else "?"
        if found.base_dns:
            form.set_value("base_dn", first)
        others = fmt.plain(", ".join(found.base_dns[1:4]))
        self.say(
            f"{found.vendor}: preset {found.directory}, base DN {first}"
            + (f" (also: {others})" if others else "")
            + ". Narrow base_dn to the OU of the accounts to sync if it is larger."
        )
