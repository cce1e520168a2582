"""Edit a profile in place, keeping everything else: the TUI's options and profile area,
and ``zsync init``.

tomlkit edits the document in place: the admin's comments, layout and key order stay (a
value that is replaced keeps its trailing comment; a missing key is added at the end of
``[sync]``; a missing ``[sync]`` table is appended). The result is parsed again and compared
with what was asked before it replaces the file, atomically, with the file's owner, group
and mode (root saving the service user's profile leaves it the service user's).
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, InlineTable

from .config import Config, SyncConfig, parse_config
from .errors import ConfigError


def changed_options(before: SyncConfig, after: SyncConfig) -> dict[str, Any]:
    """The options whose values differ, as TOML-ready values."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return {key: value for key, value in new.items() if old.get(key) != value}


def save_sync_options(path: Path, changes: Mapping[str, Any]) -> Config:
    """Set ``[sync]`` keys in the profile at ``path``; returns the profile as now saved.

    Raises:
        ConfigError: the profile cannot be read, parsed, written, or edited into a valid
            profile with exactly these values; the file is then unchanged.
    """
    document = ProfileDocument.load(path)
    document.set("sync", changes)
    return document.save(expect={"sync": changes})


class ProfileDocument:
    """A profile being edited in place (tomlkit): sections set, sources added, changed,
    removed, duplicated and reordered; then checked with the same models as the file and
    saved atomically with its owner, group and mode. Comments and layout stay; reordering
    sources moves each table, and a comment written above a source stays where it was (it
    belongs, in TOML, to the table before it).
    """

    def __init__(self, path: Path, text: str, status: os.stat_result | None) -> None:
        self.path = path
        self.status = status
        """The file's owner, group and mode (None: a new profile)."""
        try:
            self.document = tomlkit.parse(text)
        except TOMLKitError as error:
            raise ConfigError(f"{path}: not valid TOML, so it cannot be edited: {error}") from error

    @classmethod
    def load(cls, path: Path) -> ProfileDocument:
        """The profile at ``path``, to edit.

        Raises:
            ConfigError: it cannot be read or is not TOML.
        """
        try:
            return cls(path, path.read_text(encoding="utf-8"), path.stat())
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the profile to edit it: {error}") from error

    @classmethod
    def new(cls, path: Path) -> ProfileDocument:
        """An empty profile to be written at ``path`` (``zsync init``).

        Raises:
            ConfigError: a file is already there (a profile is never overwritten).
        """
        if path.exists() or path.is_symlink():
            raise ConfigError(
                f"{path} already exists, and zsync init never overwrites a profile. Edit it in "
                f"the TUI (zsync --config {path}), or choose another path with --config."
            )
        return cls(path, "", None)

    def copy(self) -> ProfileDocument:
        """An independent copy (a form tries its edit on one before it is kept)."""
        copy = ProfileDocument(self.path, "", self.status)
        copy.document = tomlkit.parse(self.text)
        return copy

    # --- sections ------------------------------------------------------------------------

    def table(self, section: str) -> dict[str, Any]:
        """A top-level table's keys as plain values ({} when it is missing)."""
        table = self.document.get(section)
        return dict(table.unwrap()) if isinstance(table, dict) and hasattr(table, "unwrap") else {}

    def source(self, name: str) -> dict[str, Any]:
        """The source ``name``'s keys as plain values."""
        return dict(self._sources()[self._index(name)].unwrap())

    def set(self, section: str, values: Mapping[str, Any]) -> None:
        """Set keys of a top-level table (``target``, ``sync``, ``notify``…), adding the
        table at the end when it is missing; a value of None removes the key."""
        table = self.document.get(section)
        if table is None:
            self.document[section] = table = tomlkit.table()
        if not isinstance(table, dict):
            raise ConfigError(
                f"{self.path}: {section!r} is not a table, so it cannot be edited. Make it a "
                f"[{section}] table."
            )
        _set(table, values)

    # --- sources -------------------------------------------------------------------------

    def source_names(self) -> list[str]:
        return [str(table.get("name", "")) for table in self._sources()]

    def add_source(self, values: Mapping[str, Any]) -> None:
        """Append a ``[[sources]]`` table (its ``name`` and ``type`` among ``values``)."""
        sources = self.document.get("sources")
        if sources is None:
            self.document.append("sources", tomlkit.aot())
            sources = self._sources()
        table = tomlkit.inline_table() if isinstance(sources, Array) else tomlkit.table()
        _set(table, values)
        self._sources().append(table)

    def update_source(self, name: str, values: Mapping[str, Any]) -> None:
        """Set keys of the source ``name`` (None removes a key)."""
        _set(self._sources()[self._index(name)], values)

    def remove_source(self, name: str) -> None:
        del self._sources()[self._index(name)]

    def duplicate_source(self, name: str, new_name: str) -> None:
        """A copy of the source ``name`` called ``new_name``, right after it."""
        sources = self._sources()
        index = self._index(name)
        copy = tomlkit.inline_table() if isinstance(sources, Array) else tomlkit.table()
        for key, value in sources[index].items():
            copy[key] = value.unwrap() if hasattr(value, "unwrap") else value
        copy["name"] = new_name
        sources.insert(index + 1, copy)

    def move_source(self, name: str, position: int) -> None:
        """Move the source ``name`` to ``position`` (0 first): the order is precedence."""
        sources = self._sources()
        index = self._index(name)
        table = sources[index]
        del sources[index]
        sources.insert(max(0, min(position, len(sources))), table)

    def _sources(self) -> Any:
        sources = self.document.get("sources")
        if sources is None:
            return []
        if not isinstance(sources, AoT | Array):
            raise ConfigError(
                f"{self.path}: 'sources' is not a list of [[sources]] tables, so sources cannot "
                "be edited here. Write each source as a [[sources]] table."
            )
        return sources

    def _index(self, name: str) -> int:
        names = self.source_names()
        if name not in names:
            raise ConfigError(
                f"{self.path}: there is no source named {name!r} (its sources: "
                f"{', '.join(repr(n) for n in names) or 'none'})."
            )
        return names.index(name)

    # --- saving --------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return tomlkit.dumps(self.document)

    def check(self) -> Config:
        """The profile as it would be saved, checked with the same models as the file.

        Raises:
            ConfigError: it would not be a valid profile (what and where, as for the file).
        """
        try:
            return parse_config(tomllib.loads(self.text), self.path)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{self.path}: the edit would not be valid TOML: {error}") from error

    def save(self, expect: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
        """Check the profile, then write it (a new one 0640, an old one keeps its owner,
        group and mode); ``expect``: section -> keys whose saved values must be these.

        Raises:
            ConfigError: invalid, or cannot be written; the file is then unchanged.
        """
        text = self.text
        if self.status is None and (self.path.exists() or self.path.is_symlink()):
            raise ConfigError(
                f"{self.path} appeared while the new profile was being written, and a profile "
                "is never overwritten; it was not changed. Choose another path with --config."
            )
        try:
            config = self.check()
        except ConfigError as error:
            raise ConfigError(
                f"{self.path}: saving would make the profile invalid ({error}); it was not changed."
            ) from error
        for section, values in (expect or {}).items():
            saved = getattr(config, section).model_dump(mode="json")
            wrong = [key for key, value in values.items() if saved.get(key) != _plain(value)]
            if wrong:
                raise ConfigError(
                    f"{self.path}: could not save {', '.join(wrong)} without rewriting the file "
                    f"by hand; it was not changed. Edit the [{section}] table yourself."
                )
        _replace(self.path, text, self.status)
        return config

    @contextmanager
    def trial(self, pending: Mapping[str, str]) -> Iterator[Config]:
        """The profile as it would be saved, with secrets not written yet (file name beside
        the profile -> secret) read from private files that exist only inside the ``with``:
        a pasted secret is tested before it is written anywhere near the profile.

        Raises:
            ConfigError: it would not be a valid profile.
        """
        data = tomllib.loads(self.text)
        with tempfile.TemporaryDirectory(prefix="zsync-trial-") as private:
            os.chmod(private, 0o700)
            files = {}
            for number, (name, secret) in enumerate(sorted(pending.items())):
                files[name] = Path(private) / f"secret-{number}"
                files[name].write_text(secret.strip() + "\n", encoding="utf-8")
            yield parse_config(_pointed(data, files), self.path)


def _pointed(value: Any, files: Mapping[str, Path]) -> Any:
    """``value`` with each ``*_file`` key naming a file of ``files`` pointed at its path."""
    if isinstance(value, dict):
        return {
            key: str(files[item])
            if key.endswith("_file") and isinstance(item, str) and item in files
            else _pointed(item, files)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_pointed(item, files) for item in value]
    return value


def form_edit(
    old: Mapping[str, Any], new: Mapping[str, Any], held: Mapping[str, Any]
) -> dict[str, Any]:
    """The edit that makes a table's keys ``held`` by a form what the form gave (``new``),
    from what the file has (``old``): a held key left empty is removed (None), one the
    form did not hold stays as it is. ``held``: key -> None (a value, a table replaced
    whole) or the held keys of a table inside (edited key by key; removed when it is left
    with nothing)."""
    edit: dict[str, Any] = {}
    for key, inner in held.items():
        before, after = old.get(key), new.get(key)
        if isinstance(inner, Mapping):
            table = form_edit(before if isinstance(before, Mapping) else {}, after or {}, inner)
            kept = (
                [k for k in (before or {}) if k not in inner] if isinstance(before, Mapping) else []
            )
            if after:
                edit[key] = table
            elif before is not None:
                edit[key] = table if kept else None
        elif isinstance(after, Mapping) and isinstance(before, Mapping):
            edit[key] = {**{k: None for k in before if k not in after}, **after}
        elif after is not None:
            edit[key] = after
        elif before is not None:
            edit[key] = None
    return edit


def _set(table: Any, values: Mapping[str, Any]) -> None:
    """Set ``values`` in ``table``: None removes a key; a mapping edits the table inside
    key by key (made an inline table inside an inline one), so its comments stay."""
    for key, value in values.items():
        if value is None:
            table.pop(key, None)
        elif isinstance(value, Mapping):
            inner = table.get(key)
            if not isinstance(inner, dict):
                table[key] = (
                    tomlkit.inline_table() if isinstance(table, InlineTable) else tomlkit.table()
                )
                inner = table[key]
            _set(inner, value)
            if not inner:
                table.pop(key, None)
        else:
            table[key] = _plain(value)


def write_secret(profile: Path, name: str, value: str, *, replace: bool = False) -> Path:
    """Write a secret to the file ``name`` beside the profile (mode 0640, owned as the
    profile is when it exists), for a ``*_file`` key: secrets are never written into the
    profile itself. Returns its path.

    Raises:
        ConfigError: it cannot be written, or (unless ``replace``) a file is already there.
    """
    path = profile.parent / name
    if not replace and (path.exists() or path.is_symlink()):
        raise ConfigError(
            f"{path} already exists; it is not overwritten (it may be another profile's "
            "secret). Move it away, or name the secret by its environment variable instead."
        )
    status = profile.stat() if profile.exists() else None
    # no wider than the profile: a 0600 profile's secrets are 0600 too
    mode = 0o640 & status.st_mode if status is not None else 0o640
    _replace(path, value.strip() + "\n", status, mode=mode)
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _replace(path: Path, text: str, status: os.stat_result | None, mode: int | None = None) -> None:
    """Write ``text`` to a new file beside ``path``, give it ``status``'s owner and group and
    ``mode`` (default ``status``'s; 0640 for a new file), then rename it over ``path`` (a
    reader sees the old file or the new one, never half). A symbolic link is followed: the
    file it points to is replaced, the link stays."""
    path = Path(os.path.realpath(path))
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            if status is not None and (status.st_uid, status.st_gid) != (
                os.geteuid(),
                os.getegid(),
            ):
                os.chown(temporary, status.st_uid, status.st_gid)
            if mode is None:
                mode = status.st_mode & 0o7777 if status is not None else 0o640
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except PermissionError as error:
        raise ConfigError(
            f"{path}: cannot be saved without changing its owner or its directory ({error}); "
            "it was not changed. Save as the profile's owner (or as root), or edit the "
            "profile by hand."
        ) from error
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot be saved ({error}); it was not changed. "
            "Check that this user may write the profile's directory."
        ) from error
