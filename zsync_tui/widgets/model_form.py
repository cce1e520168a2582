"""A form for one table of the profile, made from its model (the same pydantic model that
checks the file): a line per key with its docstring as the hint, the current values filled
in. Every registered source type gets one, plug-ins included.

A table inside the table whose keys the model knows (an LDAP source's ``attributes``,
``[notify.email]``) is a group of lines under its name, left out of the profile when every
line is empty. A table of free keys (``ou_map``: DN suffix → division) is a text box of
``KEY = VALUE`` lines. A secret (a ``<key>_env`` / ``<key>_file`` pair) gets a third, hidden
field to paste it: the screen writes it to a file beside the profile, never into it.
"""

from __future__ import annotations

import csv
import json
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Select, Static, TextArea

from zsync_core.output import inert

from .. import fmt
from .tick import Tick

SCALARS = (str, int, float, Path)
PAIR = " = "
"""Between a key and its value in a text box of free keys (a DN holds "=" but not " = ")."""


def _kind(annotation: Any) -> tuple[str, Any]:
    """The kind of a field's type: ("bool" | "choice" | "text" | "list" | "model" |
    "mapping" | "other", the choices or the model)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if annotation is bool:
        return "bool", ()
    if origin is typing.Literal:
        return "choice", typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "choice", tuple(member.value for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if origin is dict and args == [str, str]:
        return "mapping", ()
    if origin is list and args and all(a in SCALARS or _kind(a)[0] == "choice" for a in args):
        return "list", ()
    if annotation in SCALARS or (
        origin in (typing.Union, types.UnionType) and all(a in SCALARS for a in args)
    ):
        return "text", ()
    return "other", ()


@dataclass(frozen=True, slots=True)
class Key:
    """One line of the form: its path of TOML keys (``("attributes", "mail")``)."""

    path: tuple[str, ...]
    field: FieldInfo
    kind: str
    choices: tuple[Any, ...] = ()

    @property
    def id(self) -> str:
        return "f-" + "__".join(self.path)

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _toml_key(name: str, field: FieldInfo) -> str:
    return field.alias or name


class ModelForm(VerticalScroll):
    """The keys of ``model`` (but ``skip``), filled from ``values`` (as the file has them)."""

    DEFAULT_CSS = """
    ModelForm { height: 1fr; }
    ModelForm .key { margin: 1 0 0 0; height: auto; }
    ModelForm .table { margin: 1 0 0 0; height: auto; text-style: bold; color: $accent; }
    ModelForm .hint { color: $text-muted; height: auto; }
    ModelForm Input { width: 100%; height: 1; border: none; padding: 0 1; background: $boost; }
    ModelForm Input:focus { border: none; border-left: outer $accent; background: $accent 30%; }
    ModelForm TextArea { height: auto; min-height: 3; max-height: 10; border: none; background: $boost; }
    ModelForm TextArea:focus { border: none; border-left: outer $accent; background: $accent 30%; }
    ModelForm Select { width: 100%; }
    """

    def __init__(
        self,
        model: type[BaseModel],
        values: Mapping[str, Any],
        *,
        skip: Iterable[str] = (),
        first: Iterable[str] = (),
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.model = model
        self.initial = dict(values)
        self.tables: dict[tuple[str, ...], type[BaseModel]] = {}
        """Tables inside, by path, in the order shown."""
        self.keys: list[Key] = []
        self.shown: dict[str, str] = {}
        """The text each box was filled with (by id): a box left as it was gives the file's
        value untouched (its type, an empty string, a tab)."""
        self.others: list[str] = []
        """Keys a form cannot hold, named at its end to be set in the file."""
        self._gather(model, (), set(skip), list(first))
        paths = {key.path for key in self.keys}
        self.secrets = [
            key.path[:-1] + (key.path[-1][: -len("_env")],)
            for key in self.keys
            if key.path[-1].endswith("_env")
            and key.path[:-1] + (key.path[-1][: -len("_env")] + "_file",) in paths
        ]
        """The paths of the secrets (``("api_key",)``, ``("email", "password")``)."""

    def _gather(
        self, model: type[BaseModel], prefix: tuple[str, ...], skip: set[str], first: list[str]
    ) -> None:
        fields = {
            _toml_key(name, field): field
            for name, field in model.model_fields.items()
            if name not in skip
        }
        required = [n for n, f in fields.items() if f.is_required() and n not in first]
        order = [n for n in first if n in fields] + required
        order += [n for n in fields if n not in order]
        inner: list[tuple[str, type[BaseModel]]] = []
        for name in order:
            kind, choices = _kind(fields[name].annotation)
            if kind == "model":
                inner.append((name, choices))
            elif kind == "other":
                self.others.append(".".join((*prefix, name)))
            else:
                self.keys.append(Key((*prefix, name), fields[name], kind, tuple(choices)))
        for name, table in inner:  # after the plain keys, as TOML writes them
            self.tables[(*prefix, name)] = table
            self._gather(table, (*prefix, name), set(), [])

    def _initial(self, path: tuple[str, ...]) -> Any:
        value: Any = self.initial
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def compose(self) -> ComposeResult:
        shown: set[tuple[str, ...]] = set()
        for key in self.keys:
            table = key.path[:-1]
            if table and table not in shown:
                shown.add(table)
                yield from self._heading(table)
            yield from self._line(key)
        if self.others:
            yield Static(
                Text(
                    f"Set in the profile file if you need them: {', '.join(self.others)}.",
                    style="italic",
                ),
                classes="key",
            )

    def _heading(self, table: tuple[str, ...]) -> ComposeResult:
        model = self.tables[table]
        yield Static(Text(f"[{'.'.join(table)}]"), classes="table")
        doc = " ".join((model.__doc__ or "").replace("``", "").split())
        yield Static(
            Text(fmt.plain(doc + " Leave every line empty to leave it out.").strip()),
            classes="hint",
        )

    def _line(self, key: Key) -> ComposeResult:
        field = key.field
        yield Static(Text(key.path[-1], style="bold"), classes="key")
        hint = _hint(field)
        if key.kind == "mapping":
            hint = (hint + f" One per line: KEY{PAIR}VALUE.").strip()
        if hint:
            yield Static(Text(fmt.plain(hint)), classes="hint")
        value = self._initial(key.path)
        if key.kind == "bool":
            default = field.default if isinstance(field.default, bool) else False
            yield Tick(key.name, value if isinstance(value, bool) else default, id=key.id)
        elif key.kind == "choice":
            choices = key.choices
            chosen = value if value in choices else field.default
            yield Select(
                [(str(c), c) for c in choices],
                value=chosen if chosen in choices else Select.NULL,
                allow_blank=not field.is_required(),
                id=key.id,
            )
        elif key.kind == "mapping":
            self.shown[key.id] = shown = _mapping_text(value if isinstance(value, dict) else {})
            yield TextArea(shown, id=key.id, soft_wrap=False, show_line_numbers=False)
        else:
            self.shown[key.id] = shown = _text(value)
            yield Input(shown, placeholder=_placeholder(field), id=key.id)
        stem = key.path[:-1] + (key.path[-1][: -len("_file")],)
        if key.path[-1].endswith("_file") and stem in self.secrets:
            name = ".".join(stem)
            yield Static(Text(f"…or paste the {name} here", style="bold"), classes="key")
            yield Static(
                "It is written to a file beside the profile (mode 0640) and the profile "
                f"names it in {name}_file; it is never written into the profile.",
                classes="hint",
            )
            yield Input(password=True, placeholder="(hidden)", id="secret-" + "__".join(stem))

    # --- what was typed ---------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The keys as typed, for the profile, tables inside as dicts: an empty line is
        left out (its default), and so is a table inside whose lines are all empty.

        Raises:
            ValueError: a line of a text box of free keys is not ``KEY = VALUE``.
        """
        found: dict[str, Any] = {}
        for key in self.keys:
            value = self._value(key)
            if value is None:
                continue
            table = found
            for part in key.path[:-1]:
                table = table.setdefault(part, {})
            table[key.path[-1]] = value
        return found

    def _value(self, key: Key) -> Any:
        widget = self.query_one(f"#{key.id}")
        if key.kind in ("bool", "choice"):  # a default the file does not name stays unnamed
            value = widget.value if isinstance(widget, Tick | Select) else None
            if value is Select.NULL:
                return None
            default = key.field.default
            default = default.value if isinstance(default, Enum) else default
            keep = value != default or self._initial(key.path) is not None
            return value if keep else None
        assert isinstance(widget, TextArea | Input)
        text = widget.text if isinstance(widget, TextArea) else widget.value
        if text == self.shown.get(key.id):  # untouched: the file's value as it is (type, "")
            return self._initial(key.path)
        if key.kind == "mapping":
            return _pairs(key.name, text) or None
        text = text.strip()
        if not text:
            return None
        if key.kind == "list":
            items = next(csv.reader([text], skipinitialspace=True))
            return [part.strip() for part in items if part.strip()]
        return _typed(text, key.field.annotation)

    def held(self) -> dict[str, Any]:
        """The keys this form holds, for :func:`zsync_core.profile_edit.form_edit`: key ->
        None, or the held keys of a table inside."""
        held: dict[str, Any] = {}
        for key in self.keys:
            table = held
            for part in key.path[:-1]:
                table = table.setdefault(part, {})
            table[key.path[-1]] = None
        for path in self.tables:  # a table with no line of its own is held too
            table = held
            for part in path:
                table = table.setdefault(part, {})
        return held

    def pasted(self) -> dict[tuple[str, ...], str]:
        """Secrets pasted: the secret's path (``("api_key",)``) -> the secret."""
        found = {}
        for path in self.secrets:
            widgets = self.query("#secret-" + "__".join(path))
            if widgets and isinstance(widgets.first(), Input):
                value = widgets.first(Input).value.strip()
                if value:
                    found[path] = value
        return found

    def set_value(self, name: str, value: Any) -> None:
        """Fill a key from outside (a discovery, a proposal); ``name`` dotted for a key of
        a table inside."""
        widget = self.query_one("#f-" + name.replace(".", "__"))
        if isinstance(widget, Input):
            widget.value = str(value)
        elif isinstance(widget, Select):
            widget.value = value
        elif isinstance(widget, Tick):
            widget.value = bool(value)


def _text(value: Any) -> str:
    """A value as its box shows it: a list as comma-separated items (quoted as CSV when one
    holds a comma), control characters escaped (a value never reaches the terminal raw)."""
    if value is None:
        return ""
    if isinstance(value, list):
        items = [str(v) for v in value]
        return inert(", ".join(_csv_item(item) for item in items))
    return inert(str(value))


def _csv_item(item: str) -> str:
    if "," in item or '"' in item or item != item.strip():
        return '"' + item.replace('"', '""') + '"'
    return item


def _mapping_text(pairs: dict[str, Any]) -> str:
    """``KEY = VALUE`` lines; a pair that holds `` = ``, a quote, or space at an end is
    written as TOML writes it (quoted), and read back so."""
    lines = []
    for key, value in pairs.items():
        key, value = str(key), str(value)
        plain = all(
            PAIR not in part and part == part.strip() and not set(part) & {'"', "'"} and part
            for part in (key, value)
        )
        lines.append(
            f"{key}{PAIR}{value}" if plain else f"{json.dumps(key)}{PAIR}{json.dumps(value)}"
        )
    return inert("\n".join(lines), lines=True)


def _pairs(name: str, text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:  # "KEY" = "VALUE", as TOML (and the box, for a pair that needs quotes) writes it
            parsed = tomllib.loads(line)
        except tomllib.TOMLDecodeError:
            parsed = {}
        if len(parsed) == 1 and all(isinstance(v, str) for v in parsed.values()):
            ((key, value),) = parsed.items()
        else:
            key, said, value = line.partition(PAIR)
            key, value = key.strip(), value.strip()
            if not said or not key or not value:
                raise ValueError(
                    f"{name}, line {number}: {line.strip()!r} is not KEY{PAIR}VALUE (a space on "
                    'each side of the =; quote both as "KEY" = "VALUE" when either holds " = ").'
                )
        if key in pairs:
            raise ValueError(f"{name}, line {number}: {key!r} is given twice.")
        pairs[key] = value
    return pairs


def _typed(text: str, annotation: Any) -> Any:
    """``text`` as a number when the key is one (else as typed: the model names a mistake)."""
    args = {a for a in typing.get_args(annotation) if a is not type(None)} or {annotation}
    for number in (int, float):
        if number in args:
            try:
                return number(text)
            except ValueError:
                return text
    return text


def _hint(field: FieldInfo) -> str:
    """The key's docstring, one paragraph, its reStructuredText quotes taken off."""
    return " ".join((field.description or "").replace("``", "").split())


def _placeholder(field: FieldInfo) -> str:
    default = field.default
    if default is PydanticUndefined:
        return "(required)"
    if default in (None, "", [], {}):
        return "(not set)"
    return f"default: {default.value if isinstance(default, Enum) else default}"
