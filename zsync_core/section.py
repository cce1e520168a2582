"""What every part of a profile shares: the base of its sections, the base of a source
type's model (:class:`SourceSection`), and the checks the models run on URLs and secrets.

A source type's model lives beside its source (``zsync_core/sources/*_config.py``, or a
plug-in's package) and imports only this module, so the profile's validation never loads a
directory client.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field


class GuardedAction(StrEnum):
    """The five actions that need an explicit confirmation (product.md)."""

    SUSPEND_USERS = "suspend-users"
    SUSPEND_FUNCTIONAL = "suspend-functional"
    DELETE_USERS = "delete-users"
    DELETE_FUNCTIONAL = "delete-functional"
    UPDATE_SSO_KEYS = "update-sso-keys"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSection(Section):
    """What every ``[[sources]]`` entry has; each source type's model adds its own keys and
    narrows ``type`` to its tag (see :mod:`zsync_core.registry`)."""

    type: str
    name: str = Field(min_length=1)
    """Shown in every message about this source."""

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


def check_secret_keys(env: str | None, file: Path | None, what: str) -> None:
    if env and file:
        raise ValueError(f"set only one of {what}_env and {what}_file")
