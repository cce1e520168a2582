"""How times, rates and values look on screen (one place, so screenshots can pin them)."""

from __future__ import annotations

import json
import time
from typing import Any


def clock(timestamp: float) -> str:
    """A wall-clock time, e.g. ``14:03:27`` (today) or ``2026-11-23 14:03``."""
    if time.strftime("%Y-%m-%d", time.localtime(timestamp)) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", time.localtime(timestamp))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def rate(per_second: float) -> str:
    return f"{per_second:.1f}/s"


def value(field_value: Any) -> str:
    """A field value in a diff: lists as sorted comma-separated text, nothing as a dash."""
    if field_value is None or field_value == "" or field_value == []:
        return "—"
    if isinstance(field_value, bool):
        return "yes" if field_value else "no"
    if isinstance(field_value, list | tuple | set | frozenset):
        return ", ".join(sorted(str(v) for v in field_value))
    return str(field_value)


def pretty_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
