"""What zsync shows and writes out: text from outside made inert, files kept to their group.

Names, addresses, DNs and error texts come from directories and servers zsync does not
control. Printed raw, an ESC starts a terminal sequence (OSC 52 fills the admin's clipboard,
OSC 0/2 sets the window title, CSI moves the cursor or recolours what follows) and a
right-to-left override makes one text read as another. Each front end passes what it shows
or logs through :func:`inert` at its output (a screen, the stderr printer, the log, the
event store, a notification), not at every place such text is made, so a new producer
cannot forget it.

The files a run writes (the JSON report, the log, the monitoring textfile) name accounts and
what went wrong with them: :func:`open_for_admin` creates them readable by the owner's group
only (0640), and narrows an existing file that is wider.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Literal, TextIO

ADMIN_FILE_MODE = 0o640
"""Report, log and textfile: the owner writes, its group (e.g. node_exporter's) reads."""

# the bidi marks, embeddings, overrides and isolates, and the Unicode line and paragraph
# separators; then C0 and C1 controls (ESC, NUL, CR, BEL ...) and DEL
_BIDI = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
# and a lone surrogate (half of a UTF-16 pair, which a JSON answer can hold): no encoding
# can write it, so printed raw it ends the program
_LONE = "\ud800-\udfff"
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_LONE}]")
_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}{_LONE}]")  # keeps tab and newline
_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI}{_LONE}]")  # JSON escapes the C0 controls itself


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def inert(text: str, *, lines: bool = False) -> str:
    """``text`` safe to show on a terminal or write to a log, and read as what it is.

    Every control character (C0 and C1, ESC, NUL, DEL) and every bidi control (U+061C,
    U+200E/F, U+202A-U+202E, U+2066-U+2069) becomes a visible escape such as ``\\x1b`` or
    ``\\u202e``; so do line breaks, unless ``lines`` keeps them (a block of text: a JSON
    body, an error of several lines, where a tab is kept too).
    """
    return (_BLOCK if lines else _ONE_LINE).sub(_visible, text)


def inert_json(serialized: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with what JSON itself leaves raw
    (DEL, C1 controls, bidi controls, line separators) written as ``\\u`` escapes of four hex digits: the
    same JSON to a parser, inert on a terminal (``cat report.json``). Those characters can
    only stand inside JSON strings, where the escape means the same character."""
    return _IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", serialized)


def open_for_admin(path: Path | str, mode: Literal["w", "a"] = "w") -> TextIO:
    """``path`` opened for writing text (``w`` replaces, ``a`` appends), created 0640 (less
    with a stricter umask); an existing regular file wider than 0640 is narrowed to it.

    Raises:
        OSError: the file cannot be opened.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    descriptor = os.open(path, flags, ADMIN_FILE_MODE)
    try:
        narrow(descriptor)
        return os.fdopen(descriptor, mode, encoding="utf-8")
    except BaseException:
        os.close(descriptor)
        raise


def narrow(descriptor: int) -> None:
    """Take from an open regular file any permission beyond 0640 (a device such as
    /dev/stdout is left alone; so is a file this user may write but does not own)."""
    status = os.fstat(descriptor)
    current = stat.S_IMODE(status.st_mode)
    if stat.S_ISREG(status.st_mode) and current & ~ADMIN_FILE_MODE:
        try:
            os.fchmod(descriptor, current & ADMIN_FILE_MODE)
        except PermissionError:
            pass  # another user's file: its owner decides its mode


def first_control(text: str) -> str | None:
    """The first control, line break, tab or bidi control in ``text``, made visible
    (``\\n``, ``\\x1b``, ``\\u202e``), or None: none of them belongs in a value sent to Zivver."""
    found = _ONE_LINE.search(text)
    return None if found is None else _visible(found)


def without_controls(text: str) -> str:
    """``text`` with each run of controls, line breaks and bidi controls made one space."""
    return " ".join(_ONE_LINE.sub(" ", text).split())
