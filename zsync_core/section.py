"""What every part of a profile shares: the base of its sections, the base of a source
type's model (:class:`SourceSection`), and the checks the models run on URLs and secrets.

A source type's model lives beside its source (``zsync_core/sources/*_config.py``, or a
plug-in's package) and imports only this module, so the profile's validation never loads a
directory client.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class GuardedAction(StrEnum):
    """The five actions that need an explicit confirmation (product.md)."""

    SUSPEND_USERS = "suspend-users"
    SUSPEND_FUNCTIONAL = "suspend-functional"
    DELETE_USERS = "delete-users"
    DELETE_FUNCTIONAL = "delete-functional"
    UPDATE_SSO_KEYS = "update-sso-keys"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SourceSection(Section):
    """What every ``[[sources]]`` entry has; each source type's model adds its own keys and
    narrows ``type`` to its tag (see :mod:`zsync_core.registry`)."""

    type: str
    name: str = Field(min_length=1)
    """Shown in every message about this source."""
    description: str = ""
    """Free text for the admins (who set it up, what it holds): shown by ``zsync check`` and
    in the TUI's load step."""
    phone_region: str | None = None
    """The region (ISO 3166 alpha-2, e.g. ``"NL"``) a mobile number without a ``+`` is read
    in; without it such a number is unusable. Numbers are sent in E.164 (``+316…``)."""
    ou_mapping: Literal["attribute", "domain", "custom", "dn"] = "attribute"
    """Where an account's division (Zivver's organizational unit) comes from: ``attribute``
    its attribute or column (``division``); ``domain`` its address's domain; ``custom`` the
    fixed ``ou_identifier``; ``dn`` the longest of ``ou_map``'s DN suffixes its entry is
    under (LDAP). ``/`` is "no division"."""
    ou_identifier: str | None = None
    """The division of every account of this source, with ``ou_mapping = "custom"``."""
    ou_map: dict[str, str] = {}
    """With ``ou_mapping = "dn"``: DN suffix → division, e.g.
    ``"OU=Finance,DC=example,DC=org" = "finance"``; compared as DNs (case and spaces after
    commas do not matter), the longest suffix wins, an entry under none gets no division."""

    has_dns: ClassVar[bool] = False
    """Whether its entries have distinguished names (what ``ou_mapping = "dn"`` needs)."""

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import phonenumbers  # loaded only for a profile that reads phone numbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{value!r} is not a region phone numbers are known for: use the two-letter "
                'ISO 3166 code, e.g. "NL", "BE", "DE", "GB"'
            )
        return region

    @model_validator(mode="after")
    def _ou(self) -> SourceSection:
        mapping = self.ou_mapping
        for division in [self.ou_identifier or "", *self.ou_map.values()]:
            if not division.isprintable():
                raise ValueError(
                    f"the division {division!r} holds a control character; nothing sent to "
                    "Zivver may"
                )
        if mapping == "custom" and not (self.ou_identifier or "").strip():
            raise ValueError('ou_mapping = "custom" needs ou_identifier (the division to use)')
        if self.ou_identifier is not None and mapping != "custom":
            raise ValueError('ou_identifier is used only with ou_mapping = "custom"')
        if mapping == "dn":
            if not self.has_dns:
                raise ValueError(
                    f'ou_mapping = "dn" needs entries with distinguished names (an LDAP '
                    f'source); a {self.type} source can use "attribute", "domain" or "custom"'
                )
            if not self.ou_map:
                raise ValueError(
                    'ou_mapping = "dn" needs [sources.ou_map]: DN suffixes and their '
                    'divisions, e.g. "OU=Finance,DC=example,DC=org" = "finance"'
                )
        elif self.ou_map:
            raise ValueError('ou_map is used only with ou_mapping = "dn"')
        for suffix, division in self.ou_map.items():
            if not dn_key(suffix):
                raise ValueError(
                    f"ou_map: {suffix!r} is not a DN like 'OU=Finance,DC=example,DC=org'"
                )
            if not division.strip():
                raise ValueError(f'ou_map: {suffix!r} maps to an empty division (use "/" for none)')
        return self

    def secrets(self) -> list[tuple[str | None, Path | None, str]]:
        """Its secrets: (``*_env``, ``*_file``, the key's name after ``sources.<name>.``)."""
        return []

    def private_files(self) -> list[tuple[str, Path]]:
        """Files besides its secrets that hold a secret (a private key): (key, path)."""
        return []


LOOPBACK = {"127.0.0.1", "::1", "localhost"}
"""The hosts that are this machine: what is sent to them never crosses a network."""


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is one of :data:`LOOPBACK`."""
    return urlsplit(url).hostname in LOOPBACK


def tls_unless_loopback(url: str, what: str) -> str:
    """``url`` unchanged, unless it is plain ``http://`` to another host: ``what`` it carries
    would cross the network readable by anyone on the way."""
    if urlsplit(url).scheme == "http" and not is_loopback(url):
        raise ValueError(
            f"{url!r} is plain http, so {what} would travel unencrypted: only a loopback "
            "address (127.0.0.1, ::1, localhost) may be served without TLS; use https://"
        )
    return url


def check_url(value: str, schemes: tuple[str, ...], example: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise ValueError(f"{value!r} is not a {'/'.join(schemes)} URL like {example!r}")
    try:
        _ = parts.port  # raises for a port out of range
    except ValueError as error:
        raise ValueError(f"{value!r} has an invalid port: {error}") from None
    return value.strip().rstrip("/")


def dn_key(dn: str) -> tuple[str, ...]:
    """A DN as compared: its RDNs, each in lower case with the spaces around ``,`` and ``=``
    gone; empty for something that is no DN. (A comma escaped with ``\\`` stays in its RDN.)"""
    parts: list[str] = []
    current = ""
    escaped = False
    for char in dn:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    rdns = []
    for part in parts:
        attribute, equals, value = part.partition("=")
        if not equals or not attribute.strip() or not value.strip():
            return ()
        rdns.append(f"{attribute.strip().lower()}={value.strip().lower()}")
    return tuple(rdns)


def check_secret_keys(env: str | None, file: Path | None, what: str) -> None:
    if env and file:
        raise ValueError(f"set only one of {what}_env and {what}_file")
