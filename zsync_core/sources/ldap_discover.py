"""What a directory says of itself, read from its root DSE: Active Directory or OpenLDAP,
and its naming contexts (the base DN to propose). For ``zsync init`` and the TUI's source
form: connected and bound exactly as the source will be (TLS, CA, timeouts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3

from ..config import Config
from ..errors import SourceError
from .ldap import LdapSource
from .ldap_config import LdapSourceConfig

AD_CAPABILITY = "1.2.840.113556.1.4.800"
"""LDAP_CAP_ACTIVE_DIRECTORY_OID: in supportedCapabilities of every Active Directory (and
Samba AD) domain controller."""


@dataclass(frozen=True, slots=True)
class Discovery:
    directory: str
    """The preset to use: ``active-directory`` or ``openldap``."""
    base_dns: list[str]
    """Its naming contexts, the default one (Active Directory's domain) first."""
    vendor: str


def discover(values: dict[str, Any], password: str | None, profile: Path) -> Discovery:
    """Connect and bind as the source in ``values`` (a ``[[sources]]`` table without its
    ``base_dn``) and read the root DSE.

    Raises:
        SourceError: the directory cannot be reached, bound or read (named, with what to do).
    """
    section = LdapSourceConfig.model_validate(
        {"name": "directory", "type": "ldap", "base_dn": "dc=unknown", **values}
    )
    where = Config.model_construct(path=profile)
    connection = LdapSource(section, where)._connect(lambda event: None, password)
    try:
        found = connection.search(
            "",
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=[
                "defaultNamingContext",
                "namingContexts",
                "supportedCapabilities",
                "vendorName",
                "vendorVersion",
            ],
        )
        entries = connection.response or []
    finally:
        connection.unbind()
    if not found or not entries:
        raise SourceError(
            f"{section.url} answered, but its root DSE could not be read "
            f"({(connection.result or {}).get('description', 'no entry')}). Give base_dn and "
            "directory by hand."
        )
    entry = entries[0]
    # the source's fast parser gives lower-cased names and raw values
    raw = entry.get("raw_attributes") or entry.get("attributes") or {}
    attributes = {str(name).lower(): value for name, value in raw.items()}

    def values_of(name: str) -> list[str]:
        value = attributes.get(name.lower()) or []
        listed = value if isinstance(value, list | tuple) else [value]
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in listed]

    capabilities = values_of("supportedCapabilities")
    default = values_of("defaultNamingContext")
    contexts = [c for c in values_of("namingContexts") if c]
    active_directory = AD_CAPABILITY in capabilities
    ordered = default + [c for c in contexts if c not in default and "cn=" not in c.lower()[:3]]
    vendor = " ".join(values_of("vendorName") + values_of("vendorVersion")) or (
        "Active Directory" if active_directory else "unknown"
    )
    return Discovery(
        "active-directory" if active_directory else "openldap", ordered or contexts, vendor
    )
