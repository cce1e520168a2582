"""One error hierarchy. Every message names what is wrong, where, and what to do."""

from __future__ import annotations


class ZsyncError(Exception):
    """Base of every error an admin may see. ``str(error)`` is the full explanation."""


class ConfigError(ZsyncError):
    """The profile (TOML) is invalid: wrong key, wrong type, missing secret."""


class SourceError(ZsyncError):
    """A source could not be read completely (connect, bind, search, parse)."""


class TargetError(ZsyncError):
    """Zivver could not be reached, refused us, or answered something unusable."""


class StoreError(ZsyncError):
    """The local state directory or its database cannot be used."""


class LockedError(StoreError):
    """Another zsync run holds the state directory's lock."""
