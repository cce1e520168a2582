"""``$filter`` on ``/users`` as Graph takes it, and the ranges of ``mail`` its index answers.

``eq``, ``in``, ``startswith``, and ``ge``/``le`` on the properties Graph's table allows by
default (``mail``, names, ``department``, ``jobTitle``; ``userPrincipalName`` only ``le``),
joined by ``and``; string comparisons ignore case. ``ne``, ``not`` and ``endsWith`` are
advanced queries and need ``ConsistencyLevel: eventual`` and ``$count=true``, else 400
``Request_UnsupportedQuery``.
"""

from __future__ import annotations

import re
from typing import Any

_STRING = r"'(?:[^']|'')*'"
_CLAUSE = re.compile(
    rf"^\s*(?:(?P<fn>startswith|endswith)\((?P<fprop>\w+),\s*(?P<fval>{_STRING})\)"
    rf"|(?P<prop>\w+)\s+(?P<op>eq|ne|ge|le)\s+(?:(?P<sval>{_STRING})|(?P<bval>true|false|null))"
    rf"|(?P<iprop>\w+)\s+in\s+\((?P<ivals>\s*{_STRING}(?:\s*,\s*{_STRING})*)\s*\))\s*$",
    re.I,
)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.I)
"""``and`` outside string literals."""
RANGE_DEFAULT = {
    "mail": "gl",
    "givenName": "gl",
    "surname": "gl",
    "department": "gl",
    "jobTitle": "gl",
    "userPrincipalName": "l",
}
"""Properties whose ``ge``/``le`` work without advanced query parameters (Graph's table of
filters on directory objects: ``userPrincipalName`` takes ``le`` only); the others answer 400."""


_SPAN = re.compile(rf"^mail\s+(ge|le)\s+({_STRING})$", re.I)


def mail_span(text: str | None) -> tuple[str | None, str | None] | None:
    """``(low, high)`` when ``text`` is only ``mail ge``/``mail le`` clauses (the index
    answers it), else None."""
    if not text:
        return None
    low = high = None
    for clause in _AND.split(text.strip()):
        found = _SPAN.match(clause.strip())
        if not found:
            return None
        value = _literal(found[2]).lower()
        if found[1].lower() == "ge":
            low = value if low is None else max(low, value)
        else:
            high = value if high is None else min(high, value)
    return low, high


def _literal(text: str) -> str:
    return text[1:-1].replace("''", "'")


def user_filter(text: str | None, advanced: bool, ranges: bool = True) -> Any:
    """A predicate for ``$filter`` on users, or the error text Graph gives."""
    if not text:
        return lambda user: True
    tests: list[Any] = []
    for clause in _AND.split(text.strip()):
        found = _CLAUSE.match(clause)
        if not found:
            return f"Invalid filter clause: {clause!r}"
        fn, op = (found["fn"] or "").lower(), (found["op"] or "").lower()
        if (fn == "endswith" or op == "ne") and not advanced:
            return (
                "Unsupported or invalid query filter clause specified for property of resource "
                "'User'. Advanced queries (ne, not, endsWith) need the header ConsistencyLevel: "
                "eventual and $count=true."
            )
        if op in ("ge", "le") and (not ranges or op[0] not in RANGE_DEFAULT.get(found["prop"], "")):
            return (
                f"Unsupported or invalid query filter clause specified for property "
                f"'{found['prop']}' of resource 'User'."
            )
        if fn:
            prop, value = found["fprop"], _literal(found["fval"]).lower()
            tests.append(
                lambda u, p=prop, v=value, f=fn: (
                    isinstance(u.get(p), str)
                    and (
                        u[p].lower().startswith(v)
                        if f == "startswith"
                        else u[p].lower().endswith(v)
                    )
                )
            )
        elif found["iprop"]:
            prop = found["iprop"]
            values = {_literal(v).lower() for v in re.findall(_STRING, found["ivals"])}
            tests.append(lambda u, p=prop, v=values: str(u.get(p)).lower() in v)
        elif op == "ge":
            prop, bound = found["prop"], _literal(found["sval"] or "''").lower()
            tests.append(lambda u, p=prop, b=bound: (v := u.get(p)) is not None and v.lower() >= b)
        elif op == "le":
            prop, bound = found["prop"], _literal(found["sval"] or "''").lower()
            tests.append(lambda u, p=prop, b=bound: (v := u.get(p)) is not None and v.lower() <= b)
        else:
            prop = found["prop"]
            raw = found["bval"]
            expected = (
                {"true": True, "false": False, "null": None}[raw.lower()]
                if raw
                else _literal(found["sval"])
            )
            tests.append(
                lambda u, p=prop, v=expected, o=op: (
                    (
                        (str(u.get(p)).lower() == str(v).lower())
                        if isinstance(v, str)
                        else u.get(p) == v
                    )
                    == (o == "eq")
                )
            )
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:  # a range of addresses: 100,000 users a request
        first, second = tests
        return lambda user: first(user) and second(user)
    return lambda user: all(test(user) for test in tests)
