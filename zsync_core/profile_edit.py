"""Write changed synchronization options back into a profile, keeping everything else.

A TOML writer would drop the admin's comments and layout, so this edits lines: a key that
is already in ``[sync]`` gets its value replaced (its trailing comment kept); a missing key
is added at the end of ``[sync]``; a missing ``[sync]`` table is appended. The result is
parsed again and compared with what was asked before it replaces the file (atomically).
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import tomli_w

from .config import Config, SyncConfig, parse_config
from .errors import ConfigError

_TABLE = re.compile(r"^\s*\[(\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def changed_options(before: SyncConfig, after: SyncConfig) -> dict[str, Any]:
    """The options whose values differ, as TOML-ready values."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return {key: value for key, value in new.items() if old.get(key) != value}


def save_sync_options(path: Path, changes: Mapping[str, Any]) -> Config:
    """Set ``[sync]`` keys in the profile at ``path``; returns the profile as now saved.

    Raises:
        ConfigError: the profile cannot be read, written, or edited without losing anything
            (for example ``sync`` written as an inline table); the file is then unchanged.
    """
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode & 0o7777
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the profile to save options: {error}") from error
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start, end = _sync_table(lines, path, text)
    for key, value in changes.items():
        rendered = f"{key} = {_value(value)}"
        found = _find_key(lines, start, end, key)
        if found is None:
            insert_at = end
            while insert_at > start and not lines[insert_at - 1].strip():
                insert_at -= 1
            lines.insert(insert_at, rendered + "\n")
            end += 1
            continue
        first, last = found
        comment = _comment(lines[last]) if first == last else ""
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines[first : last + 1] = [f"{indent}{rendered}{comment}\n"]
        end -= last - first
    new_text = "".join(lines)
    config = _verify(new_text, path, changes)
    _replace(path, new_text, mode)
    return config


def _sync_table(lines: list[str], path: Path, text: str) -> tuple[int, int]:
    """The [start, end) line range of the ``[sync]`` table's body, appending one if missing."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML, so options cannot be saved: {error}") from error
    start = None
    for index, line in enumerate(lines):
        match = _TABLE.match(line)
        if not match:
            continue
        if start is not None:
            return start, index
        if not match.group(1) and match.group(2) == "sync":
            start = index + 1
    if start is not None:
        return start, len(lines)
    if "sync" in data:
        raise ConfigError(
            f"{path}: 'sync' is not written as a [sync] table, so zsync cannot add options to it "
            "without rewriting your file. Move the options under a [sync] header, or use the "
            "options for this run only."
        )
    if lines and lines[-1].strip():
        lines.append("\n")
    lines.append("[sync]\n")
    return len(lines), len(lines)


def _find_key(lines: list[str], start: int, end: int, key: str) -> tuple[int, int] | None:
    pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")
    for index in range(start, end):
        if pattern.match(lines[index]):
            depth, last = _brackets(lines[index]), index
            while depth > 0 and last + 1 < end:
                last += 1
                depth += _brackets(lines[last])
            return index, last
    return None


def _code(line: str) -> tuple[str, int]:
    """The line without its comment, and where the comment starts (len(line) when none)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:index], index
    return line, len(line)


def _brackets(line: str) -> int:
    code, _ = _code(line)
    return code.count("[") - code.count("]")


def _comment(line: str) -> str:
    code, at = _code(line.rstrip("\n"))
    comment = line.rstrip("\n")[at:]
    if not comment:
        return ""
    gap = len(code) - len(code.rstrip())
    return " " * max(gap, 2) + comment


def _value(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, list):
        value = [v.value if isinstance(v, Enum) else v for v in value]
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


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


def _replace(path: Path, text: str, mode: int) -> None:
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot save the options ({error}); the profile was not changed. "
            "Check that this user may write the profile's directory."
        ) from error
