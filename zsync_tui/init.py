"""``zsync init``: a first-run walk that writes a new profile — Zivver, one source, the sync
options, then the profile to write — each step a form made from the model that checks the
file (the profile area's forms), each connection testable before anything is written.

An LDAP source can read the directory's root DSE: it proposes the preset (Active Directory
or OpenLDAP) and the base DN. Secrets pasted are written to 0640 files beside the profile,
never into it. An existing profile is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Select, Static

from zsync_core.config import Config, SyncConfig, TargetConfig, default_config_path, parse_config
from zsync_core.connections import check_source, check_target
from zsync_core.errors import ZsyncError
from zsync_core.outcome import ExitCode
from zsync_core.output import inert
from zsync_core.profile_edit import ProfileDocument, write_secret
from zsync_core.registry import source_types
from zsync_core.sources.ldap_discover import Discovery, discover

from . import fmt
from .widgets.model_form import ModelForm

TRYING = "ZSYNC_INIT_{}"
"""The environment variable a pasted secret is tried through before it is written."""


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


class Step(Screen[None]):
    """One step of the walk: a heading, a form, what the last test or check said."""

    CSS = """
    Step { background: $background; }
    #heading { padding: 1 1 0 1; height: auto; }
    #form { margin: 0 1; }
    #said { height: auto; max-height: 8; margin: 0 1; padding: 0 1; border: round $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next"),
        Binding("escape", "back", "Back"),
        Binding("ctrl+q", "app.quit", "Quit (nothing written)"),
    ]
    HEADING = ""

    def __init__(self, walk: InitApp) -> None:
        super().__init__()
        self.walk = walk

    def compose(self) -> ComposeResult:
        yield Static(self.HEADING, id="heading")
        yield from self.body()
        yield Static(id="said")
        yield Footer()

    def body(self) -> Iterable[Any]:
        return ()

    def on_mount(self) -> None:
        self.query_one("#said", Static).display = False
        self.call_after_refresh(self.focus_next)  # typing goes to the first field

    def say(self, text: str, ok: bool = True) -> None:
        said = self.query_one("#said", Static)
        said.update(Text(fmt.block(text), style="" if ok else "bold red"))
        said.display = True

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()


class TargetStep(Step):
    HEADING = (
        "[b]zsync init — 1 of 4: Zivver.[/b] The SCIM URL and the API key (Zivver WebApp → "
        "Organization settings → API keys). Ctrl+T tests them, Ctrl+N goes on."
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+t", "test", "Test")]

    def body(self) -> Iterable[Any]:
        yield ModelForm(
            TargetConfig,
            self.walk.target,
            first=("url", "api_key_env", "api_key_file"),
            id="form",
        )

    def gather(self) -> dict[str, Any] | None:
        form = self.query_one(ModelForm)
        values, pasted = form.values(), form.pasted()
        if "api_key" in pasted:
            values.pop("api_key_env", None)
            values["api_key_file"] = "zivver-api-key"
        if not (values.get("api_key_env") or values.get("api_key_file")):
            self.say(
                "Give the API key: paste it (it is written to a 0640 file beside the "
                "profile), or name the environment variable or the file that holds it.",
                ok=False,
            )
            return None
        wrong = problems(TargetConfig, values)
        if wrong:
            self.say(wrong, ok=False)
            return None
        self.walk.target, self.walk.secrets["target"] = values, pasted
        return values

    @work(exclusive=True, exit_on_error=False)
    async def action_test(self) -> None:
        values = self.gather()
        if values is None:
            return
        self.say("Testing Zivver…")
        results = await check_target(self.walk.trial_config(target_only=True))
        self.say("\n".join(r.message for r in results), ok=all(r.ok for r in results))

    def action_next(self) -> None:
        if self.gather() is not None:
            self.app.push_screen(SourceStep(self.walk))


class SourceStep(Step):
    HEADING = (
        "[b]zsync init — 2 of 4: a source.[/b] Choose its type, fill it in; an LDAP source "
        "can read the directory (Ctrl+R) to propose the preset and the base DN. Ctrl+T "
        "tests it. More sources can be added later in the profile."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "discover", "Read the directory"),
        Binding("ctrl+t", "test", "Test"),
    ]

    def body(self) -> Iterable[Any]:
        types = source_types()
        yield Select(
            [(f"{tag}", tag) for tag in types],
            value=self.walk.source.get("type", "ldap"),
            allow_blank=False,
            id="type",
        )
        yield Vertical(id="form")

    def on_mount(self) -> None:
        super().on_mount()
        self.shown: str | None = None
        self._show(str(self.query_one("#type", Select).value))

    @on(Select.Changed, "#type")
    def _type(self, event: Select.Changed) -> None:
        self._show(str(event.value))

    def _show(self, tag: str) -> None:
        if tag == self.shown:
            return  # the Select says so at its mount too
        self.shown = tag
        holder = self.query_one("#form", Vertical)
        holder.remove_children()
        model = source_types()[tag].config
        values = self.walk.source if self.walk.source.get("type") == tag else {"name": tag}
        holder.mount(ModelForm(model, values, skip=("type",), first=("name",)))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "discover":
            return self.query_one("#type", Select).value == "ldap"
        return True

    def gather(self) -> dict[str, Any] | None:
        tag = str(self.query_one("#type", Select).value)
        form = self.query_one(ModelForm)
        values = {"type": tag, **form.values()}
        pasted = form.pasted()
        for key in pasted:
            values.pop(f"{key}_env", None)
            values[f"{key}_file"] = f"{slug(values.get('name', tag))}-{key.replace('_', '-')}"
        wrong = problems(source_types()[tag].config, values)
        if wrong:
            self.say(wrong, ok=False)
            return None
        self.walk.source, self.walk.secrets["source"] = values, pasted
        return values

    def action_discover(self) -> None:
        form = self.query_one(ModelForm)
        values = {k: v for k, v in form.values().items() if k not in ("name", "base_dn")}
        pasted = form.pasted().get("password")
        if pasted:  # named as it will be once written
            values.pop("password_env", None)
            values["password_file"] = "password"
        password = pasted or self.walk.secret_of(values, "password")
        self.say(f"Reading the root DSE of {values.get('url', '?')}…")
        self._discover(values, password)

    @work(exclusive=True, exit_on_error=False, thread=True)
    def _discover(self, values: dict[str, Any], password: str | None) -> None:
        try:
            found = discover(values, password, self.walk.path)
        except (ZsyncError, ValidationError) as error:
            self.app.call_from_thread(self.say, str(error), False)
            return
        self.app.call_from_thread(self._discovered, found)

    def _discovered(self, found: Discovery) -> None:
        form = self.query_one(ModelForm)
        form.set_value("directory", found.directory)
        first = found.base_dns[0] if found.base_dns else "?"
        if found.base_dns:
            form.set_value("base_dn", first)
        others = ", ".join(found.base_dns[1:4])
        self.say(
            f"{found.vendor}: preset {found.directory}, base DN {first}"
            + (f" (also: {others})" if others else "")
            + ". Narrow base_dn to the OU of the accounts to sync if it is larger."
        )

    @work(exclusive=True, exit_on_error=False)
    async def action_test(self) -> None:
        values = self.gather()
        if values is None:
            return
        self.say(f"Reading {values.get('name')}…")
        try:
            config = self.walk.trial_config()
        except ZsyncError as error:
            self.say(str(error), ok=False)
            return
        results = await check_source(config, values["name"])
        self.say(
            "\n".join(f"{r.what}: {r.message}" if not r.ok else r.message for r in results),
            ok=all(r.ok for r in results),
        )

    def action_next(self) -> None:
        if self.gather() is not None:
            self.app.push_screen(SyncStep(self.walk))


class SyncStep(Step):
    HEADING = (
        "[b]zsync init — 3 of 4: syncing.[/b] Set domains to the addresses zsync may touch; "
        "existing_sso_keys says where the SsoAccountKeys of accounts another tool made came "
        "from. Every other option keeps its safe default (see the README)."
    )

    def body(self) -> Iterable[Any]:
        yield ModelForm(
            SyncConfig,
            self.walk.sync,
            first=("domains", "existing_sso_keys", "sync_phone_numbers"),
            id="form",
        )

    def action_next(self) -> None:
        values = self.query_one(ModelForm).values()
        wrong = problems(SyncConfig, values)
        if wrong:
            self.say(wrong, ok=False)
            return
        self.walk.sync = values
        try:
            self.walk.document()
        except ZsyncError as error:
            self.say(str(error), ok=False)
            return
        self.app.push_screen(WriteStep(self.walk))


class WriteStep(Step):
    HEADING = "[b]zsync init — 4 of 4: write the profile.[/b] Ctrl+S writes it as shown."
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "write", "Write the profile")]

    def body(self) -> Iterable[Any]:
        document = self.walk.document()
        secrets = [f"{name} (0640)" for name in self.walk.secret_files()]
        yield Static(Text(f"{self.walk.path}:"), classes="key")
        yield Static(Text(document.text), id="form")
        if secrets:
            yield Static(Text("Secret files beside it: " + ", ".join(secrets), style="italic"))

    def action_next(self) -> None:
        self.action_write()

    def action_write(self) -> None:
        try:
            written = self.walk.write()
        except ZsyncError as error:
            self.say(str(error), ok=False)
            return
        self.app.exit(message=written)


class InitApp(App[int]):
    """The walk; ``run()`` returns the exit code, and what was written is said on exit."""

    TITLE = "zsync init"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path.absolute()
        self.target: dict[str, Any] = {}
        self.source: dict[str, Any] = {}
        self.sync: dict[str, Any] = {}
        self.secrets: dict[str, dict[str, str]] = {"target": {}, "source": {}}
        self.written: str | None = None

    def on_mount(self) -> None:
        self.push_screen(TargetStep(self))

    def secret_of(self, values: dict[str, Any], key: str) -> str | None:
        """A secret named by ``<key>_env`` or ``<key>_file`` in ``values``, read now."""
        if values.get(f"{key}_env"):
            return os.environ.get(values[f"{key}_env"])
        if values.get(f"{key}_file"):
            try:
                return (self.path.parent / values[f"{key}_file"]).read_text().strip()
            except OSError:
                return None
        return None

    def trial_config(self, target_only: bool = False) -> Config:
        """The profile so far, with pasted secrets tried through environment variables."""
        target = dict(self.target)
        if self.secrets["target"].get("api_key"):
            os.environ[TRYING.format("API_KEY")] = self.secrets["target"]["api_key"]
            target.pop("api_key_file", None)
            target["api_key_env"] = TRYING.format("API_KEY")
        source = dict(self.source) if not target_only else {"name": "-", "type": "csv", "path": "-"}
        for key, value in self.secrets["source"].items():
            name = TRYING.format(key.upper())
            os.environ[name] = value
            source.pop(f"{key}_file", None)
            source[f"{key}_env"] = name
        return parse_config({"target": target, "sources": [source], "sync": self.sync}, self.path)

    def secret_files(self) -> list[str]:
        files = []
        if self.secrets["target"].get("api_key"):
            files.append(self.target["api_key_file"])
        files += [self.source[f"{key}_file"] for key in self.secrets["source"]]
        return files

    def document(self) -> ProfileDocument:
        """The profile as it will be written, checked."""
        document = ProfileDocument.new(self.path)
        document.set("target", self.target)
        document.add_source(self.source)
        document.set("sync", self.sync)
        document.check()
        return document

    def write(self) -> str:
        """Write the secrets, then the profile; what was written, in a sentence."""
        document = self.document()
        for key, value in self.secrets["target"].items():
            write_secret(self.path, self.target[f"{key}_file"], value)
        for key, value in self.secrets["source"].items():
            write_secret(self.path, self.source[f"{key}_file"], value)
        document.save()
        files = ", ".join(self.secret_files())
        return (
            f"Profile written: {self.path}"
            + (f" (secrets in {files}, beside it)" if files else "")
            + f". Next: zsync check --config {self.path}, then zsync --config {self.path}."
        )


def command(
    argv: list[str], parser_class: type[argparse.ArgumentParser], no_terminal: int | None
) -> int:
    """``zsync init [--config PATH]``; ``no_terminal``: the exit code when there is no
    terminal to walk in (None: there is one)."""
    parser = parser_class(
        prog="zsync init",
        description="Write a new profile, step by step: Zivver (tested), a source (an LDAP "
        "directory's preset and base DN read from it; tested), the sync options. Secrets "
        "pasted go to 0640 files beside the profile. An existing profile is never overwritten.",
        epilog="Exit code: 0 when the profile was written, 3 when it was not.",
    )
    parser.add_argument("--config", metavar="PATH", help="where to write it (default ./zsync.toml)")
    args = parser.parse_args(argv)
    path = Path(args.config) if args.config else default_config_path()
    if path.is_dir():
        print(
            f"zsync init: {inert(str(path))} is a directory; give the profile's file, e.g. "
            f"--config {inert(str(path / 'zsync.toml'))}. Nothing was changed.",
            file=sys.stderr,
        )
        return ExitCode.CANNOT_RUN
    if path.exists() or path.is_symlink():
        print(
            f"zsync init: {inert(str(path))} already exists, and zsync init never overwrites a "
            f"profile. Edit it in the TUI (zsync --config {inert(str(path))}), or give another "
            "path with --config. Nothing was changed.",
            file=sys.stderr,
        )
        return ExitCode.CANNOT_RUN
    if no_terminal is not None:
        return no_terminal
    app = InitApp(path)
    app.run()
    if path.exists():
        return ExitCode.OK
    print("zsync init: no profile was written.", file=sys.stderr)
    return ExitCode.CANNOT_RUN
