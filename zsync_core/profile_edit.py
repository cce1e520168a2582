"""Write changed synchronization options back into a profile, keeping everything else.

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
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

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
    try:
        text = path.read_text(encoding="utf-8")
        status = path.stat()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the profile to save options: {error}") from error
    try:
        document = tomlkit.parse(text)
        sync = document.get("sync")
        if sync is None:
            document["sync"] = sync = tomlkit.table()
        if not isinstance(sync, dict):
            raise ConfigError(
                f"{path}: 'sync' is not a table, so options cannot be saved into it. "
                "Make it a [sync] table, or use the options for this run only."
            )
        for key, value in changes.items():
            sync[key] = _plain(value)
        new_text = tomlkit.dumps(document)
    except TOMLKitError as error:
        raise ConfigError(f"{path}: not valid TOML, so options cannot be saved: {error}") from error
    config = _verify(new_text, path, changes)
    _replace(path, new_text, status)
    return config


def _verify(text: str, path: Path, changes: Mapping[str, Any]) -> Config:
    try:
        config = parse_config(tomllib.loads(text), path)
    except (tomllib.TOMLDecodeError, ConfigError) as error:
        raise ConfigError(
            f"{path}: saving the options would make the profile invalid ({error}); it was not changed."
        ) from error
    saved = config.sync.model_dump(mode="json")
    wrong = [key for key, value in changes.items() if saved.get(key) != _plain(value)]
    if wrong:
        raise ConfigError(
            f"{path}: could not save {', '.join(wrong)} without rewriting the file by hand; "
            "it was not changed. Edit the [sync] table yourself, or use the options for this run only."
        )
    return config


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _replace(path: Path, text: str, status: os.stat_result) -> None:
    """Write ``text`` to a new file beside ``path``, give it ``path``'s owner, group and mode,
    then rename it over ``path`` (a reader sees the old file or the new one, never half)."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            if (status.st_uid, status.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(temporary, status.st_uid, status.st_gid)
            os.chmod(temporary, status.st_mode & 0o7777)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except PermissionError as error:
        raise ConfigError(
            f"{path}: cannot save the options without changing the profile's owner or its "
            f"directory ({error}); the profile was not changed. Save as the profile's owner "
            "(or as root), or edit the [sync] table by hand."
        ) from error
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot save the options ({error}); the profile was not changed. "
            "Check that this user may write the profile's directory."
        ) from error
