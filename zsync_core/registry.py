"""Which source types there are, and what each can do: the one place that knows them.

A source type is one module that defines its config model (its ``type`` tag and keys) and a
:class:`SourceType` naming the class that reads it and what else it offers: zsync's own are
listed in :func:`_built_in`, and a package of its own adds one as an entry point of the group
``zsync.sources``. Nothing here imports a source package: the profile's validation needs
the models before any source is read. The profile's ``[[sources]]`` are validated against the registered models, and
``make_source``, ``zsync check`` and the secrets look a source's type up here; none of them
lists the types.

The reading class is named, not imported: a directory client (ldap3, msal) is loaded only
when a source of its type is read.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .section import SourceSection

GROUP = "zsync.sources"


@dataclass(frozen=True, slots=True)
class SourceType:
    """One kind of source: ``type = "<tag>"`` in a profile."""

    tag: str
    config: type[SourceSection]
    """Its config model (a :class:`~zsync_core.section.SourceSection` whose ``type`` is the tag)."""
    reader: str
    """``"module:Class"``: built as ``Class(source_config, config)`` (and ``store=…,
    full_read=…`` when it ``keeps_state``); its ``load(emit)`` reads the source."""
    keeps_state: bool = False
    """It keeps what it read between runs in the store (delta reads)."""
    probe: str | None = None
    """``"module:function"``: ``await function(source_config, config)`` tries each
    permission the source needs one by one, for ``zsync check``."""

    def load(self, what: str) -> Any:
        """The object ``"module:name"`` names."""
        module, _, name = what.partition(":")
        return getattr(importlib.import_module(module), name)


@cache
def source_types() -> dict[str, SourceType]:
    """Every registered source type by its tag.

    An entry point that cannot be loaded, is no :class:`SourceType` or claims a tag that is
    taken is left out and named in :data:`BROKEN`.
    """
    found = {kind.tag: kind for kind in _built_in()}
    for point in entry_points(group=GROUP):
        try:
            kind = point.load()
        except Exception as error:  # noqa: BLE001 - a broken package breaks only its own type
            BROKEN[point.name] = f"{point.value} could not be loaded ({error!r})"
            continue
        if not isinstance(kind, SourceType):
            BROKEN[point.name] = f"{point.value} is no SourceType"
        elif kind.tag in found and found[kind.tag] != kind:
            BROKEN[point.name] = f"{point.value} claims type = {kind.tag!r}, which is taken"
        else:
            found[kind.tag] = kind
    return found


BROKEN: dict[str, str] = {}
"""Entry points of :data:`GROUP` that were left out, and why: a profile that names one is
told so; every other type works."""


def _built_in() -> tuple[SourceType, ...]:
    """The source types zsync brings: each module ``zsync_core/sources/*_config.py`` holds
    one type's model and its :class:`SourceType` as ``SOURCE_TYPE``."""
    found = []
    for module in BUILT_IN:
        found.append(importlib.import_module(f"zsync_core.sources.{module}").SOURCE_TYPE)
    return tuple(found)


BUILT_IN = ("ldap_config", "csv_config", "excel_config", "m365_config")
"""zsync's own source types, in the order ``zsync check`` and the docs list them."""


def source_type(tag: str) -> SourceType:
    """The registered type ``tag``. Raises KeyError when there is none."""
    return source_types()[tag]
