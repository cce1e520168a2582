"""``zsync init``: a first-run walk that writes a new profile over the profile area's own
screens (:mod:`zsync_tui.screens.profile`) — Zivver, a source, the sync options, then the
profile to write, where more sources, notifications and the rest can be added — each form
made from the model that checks the file, each connection testable before anything is
written.

An LDAP source can read the directory's root DSE: it proposes the preset (Active Directory
or OpenLDAP) and the base DN. Secrets pasted are tried from private files, then written to
0640 files beside the profile, never into it. An existing profile is never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from zsync_core.config import Config, default_config_path
from zsync_core.outcome import ExitCode
from zsync_core.output import inert
from zsync_core.profile_edit import ProfileDocument
from zsync_core.registry import source_types

from .screens.profile import Draft, Edited, FormScreen, ProfileScreen, TypeScreen

STEPS = {
    "target": (
        "zsync init — 1 of 4: Zivver. The SCIM URL and the API key (Zivver WebApp → "
        "Organization settings → API keys). Ctrl+T tests them, Ctrl+S goes on."
    ),
    "type": "[b]zsync init — 2 of 4: a source.[/b] Its type (Enter):",
    "source": (
        "zsync init — 2 of 4: a source. The required keys come first. Ctrl+T tests it, "
        "Ctrl+S goes on; more sources can be added at the end (an LDAP directory: Ctrl+R "
        "reads it to propose the preset and the base DN)."
    ),
    "sync": (
        "zsync init — 3 of 4: syncing. Set domains to the addresses zsync may touch; "
        "existing_sso_keys says where the SsoAccountKeys of accounts another tool made came "
        "from. Every other option keeps its safe default (see the README). Ctrl+S goes on."
    ),
}


class InitApp(App[int]):
    """The walk: the profile area's forms one after the other (Zivver, a source, syncing),
    then its list of the profile to write, where anything can be changed or added."""

    TITLE = "zsync init"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit (nothing written)", priority=True)
    ]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path.absolute()
        self.draft = Draft(ProfileDocument.new(self.path))

    def on_mount(self) -> None:
        self.profile = ProfileScreen(self.draft, walk=True)
        self.push_screen(self.profile, self._written)
        self._form("target", "target", source=False, require_key=True)

    def _form(self, what: str, step: str, *, source: bool, **given: Any) -> None:
        form = FormScreen(self.draft, what, source=source, heading=STEPS[step], walk=True, **given)
        self.push_screen(form, lambda edited: self._kept(what, source, edited))

    def _kept(self, what: str, source: bool, edited: Edited | None) -> None:
        self.profile.edited(what, source, edited)
        if edited is None or edited.leave:
            return  # the walk ends: the profile to write shows what is there
        if what == "target":
            self.push_screen(TypeScreen(list(source_types()), STEPS["type"]), self._typed)
        elif source:
            self._form("sync", "sync", source=False)

    def _typed(self, tag: str | None) -> None:
        if tag is None:
            return
        values = {"type": tag, "name": {"ldap": "Directory"}.get(tag, tag)}
        self._form(str(values["name"]), "source", source=True, values=values)

    def _written(self, config: Config | None) -> None:
        if config is None:
            self.exit()
            return
        files = ", ".join(sorted(self.draft.secrets))
        self.exit(
            message=f"Profile written: {self.path}"
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
