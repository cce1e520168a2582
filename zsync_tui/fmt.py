"""How times, rates and values look on screen (one place, so screenshots can pin them).

Everything shown that came from outside (a name, an address, a DN, a server's error text)
goes through :func:`plain` or :func:`block` here: control characters and bidi overrides
become visible escapes (see ``zsync_core.output``), so a hostile display name cannot drive
the admin's terminal. Screens put such text in ``rich.text.Text`` (never in markup), so a
name like ``[bold red]x`` or ``[/]`` is shown as written.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.text import Text

from zsync_core import wording
from zsync_core.output import inert, inert_json


def clock(timestamp: float) -> str:
    """A wall-clock time, e.g. ``14:03:27`` (today) or ``2026-11-23 14:03``."""
    if time.strftime("%Y-%m-%d", time.localtime(timestamp)) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", time.localtime(timestamp))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def rate(per_second: float) -> str:
    return f"{per_second:.1f}/s"


def plain(text: object) -> str:
    """One line of outside text, inert: line breaks and controls shown as escapes."""
    return inert(str(text))


def block(text: object) -> str:
    """Outside text of several lines, inert: line breaks and tabs kept, controls escaped."""
    return inert(str(text), lines=True)


def styled(*parts: str | tuple[str, str]) -> Text:
    """A line of fixed words and outside text, never read as markup: each part is a string
    or ``(string, style)``, made inert (line breaks kept)."""
    text = Text()
    for part in parts:
        words, style = (part, "") if isinstance(part, str) else part
        text.append(block(words), style=style)
    return text


def value(field_value: Any) -> str:
    """A field value in a diff (:func:`zsync_core.wording.field_value`), inert."""
    return plain(wording.field_value(field_value))


def pretty_json(data: Any) -> str:
    """Exact JSON (a request, Zivver's answer), inert: JSON escapes the C0 controls, and
    :func:`inert_json` the rest."""
    return inert_json(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


def duration(seconds: float) -> str:
    """A time left, e.g. ``40 s``, ``3 min``, ``1 h 05 min``."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02} min"
