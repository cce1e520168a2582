"""A form for one table of the profile, made from its model (the same pydantic model that
checks the file): a line per key with its docstring as the hint, the current values filled
in. Every registered source type gets one, plug-ins included.

Keys a form cannot hold (a table inside the table: ``attributes``, ``ou_map``) are named at
its end, to be set in the file. A secret (a ``<key>_env`` / ``<key>_file`` pair) gets a
third, hidden field to paste it: the screen writes it to a file beside the profile, never
into the profile.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Select, Static

from .. import fmt
from .tick import Tick

SCALARS = (str, int, float, Path)


def _kind(annotation: Any) -> tuple[str, tuple[Any, ...]]:
    """("bool" | "choice" | "text" | "list" | "table", the choices) of a field's type."""
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
    if origin is list and args and all(a in SCALARS or _kind(a)[0] == "choice" for a in args):
        return "list", ()
    if annotation in SCALARS or (
        origin in (typing.Union, types.UnionType) and all(a in SCALARS for a in args)
    ):
        return "text", ()
    return "table", ()


class ModelForm(VerticalScroll):
    """The keys of ``model`` (but ``skip``), filled from ``values``."""

    DEFAULT_CSS = """
    ModelForm { height: 1fr; }
    ModelForm .key { margin: 1 0 0 0; height: auto; }
    ModelForm .hint { color: $text-muted; height: auto; }
    ModelForm Input { width: 100%; height: 1; border: none; padding: 0 1; background: $boost; }
    ModelForm Input:focus { border: none; background: $accent 30%; }
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
        skipped = set(skip)
        fields = {n: f for n, f in model.model_fields.items() if n not in skipped}
        order = [n for n in first if n in fields] + [n for n in fields if n not in first]
        self.fields = {name: fields[name] for name in order}
        self.kinds = {name: _kind(f.annotation) for name, f in self.fields.items()}
        self.secrets = [
            key[: -len("_env")]
            for key in self.fields
            if key.endswith("_env") and f"{key[: -len('_env')]}_file" in self.fields
        ]

    def compose(self) -> ComposeResult:
        in_file = []
        for name, field in self.fields.items():
            kind, choices = self.kinds[name]
            if kind == "table":
                in_file.append(name)
                continue
            yield Static(Text(name, style="bold"), classes="key")
            hint = _hint(field)
            if hint:
                yield Static(Text(fmt.plain(hint)), classes="hint")
            value = self.initial.get(name, None)
            if kind == "bool":
                default = field.default if isinstance(field.default, bool) else False
                yield Tick(name, value if isinstance(value, bool) else default, id=f"f-{name}")
            elif kind == "choice":
                options = [(str(c), c) for c in choices]
                chosen = value if value in choices else field.default
                yield Select(
                    options,
                    value=chosen if chosen in choices else Select.NULL,
                    allow_blank=not field.is_required(),
                    id=f"f-{name}",
                )
            else:
                shown = ", ".join(map(str, value)) if isinstance(value, list) else value
                yield Input(
                    "" if shown is None else str(shown),
                    placeholder=_placeholder(field),
                    id=f"f-{name}",
                )
            if name.endswith("_file") and name[: -len("_file")] in self.secrets:
                key = name[: -len("_file")]
                yield Static(Text(f"…or paste the {key} here", style="bold"), classes="key")
                yield Static(
                    "It is written to a file beside the profile (mode 0640) and the profile "
                    f"names it in {key}_file; it is never written into the profile.",
                    classes="hint",
                )
                yield Input(password=True, placeholder="(hidden)", id=f"secret-{key}")
        if in_file:
            yield Static(
                Text(
                    f"Set in the profile file if you need them: {', '.join(in_file)}.",
                    style="italic",
                ),
                classes="key",
            )

    def values(self) -> dict[str, Any]:
        """The keys as typed, for the profile (an empty field is left out: its default)."""
        found: dict[str, Any] = {}
        for name in self.fields:
            kind, _choices = self.kinds[name]
            if kind == "table":
                continue
            if kind == "bool":
                value: Any = self.query_one(f"#f-{name}", Tick).value
                if value != self.fields[name].default or name in self.initial:
                    found[name] = value
                continue
            if kind == "choice":
                chosen = self.query_one(f"#f-{name}", Select).value
                if chosen is not Select.NULL and chosen is not None:
                    found[name] = chosen
                continue
            text = self.query_one(f"#f-{name}", Input).value.strip()
            if not text:
                continue
            if kind == "list":
                found[name] = [part.strip() for part in text.split(",") if part.strip()]
            else:
                found[name] = _typed(text, self.fields[name].annotation)
        return found

    def pasted(self) -> dict[str, str]:
        """Secrets pasted: key (``api_key``, ``password``…) -> the secret."""
        found = {}
        for key in self.secrets:
            widgets = self.query(f"#secret-{key}")
            if widgets and isinstance(widgets.first(), Input):
                value = widgets.first(Input).value.strip()
                if value:
                    found[key] = value
        return found

    def set_value(self, name: str, value: Any) -> None:
        """Fill a key from outside (a discovery, a proposal)."""
        widget = self.query_one(f"#f-{name}")
        if isinstance(widget, Input):
            widget.value = str(value)
        elif isinstance(widget, Select):
            widget.value = value
        elif isinstance(widget, Tick):
            widget.value = bool(value)


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
