"""The ``ldap`` source type: Active Directory or OpenLDAP, its profile keys and its entry in
the registry (the reader, :mod:`zsync_core.sources.ldap`, is loaded only to read)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ..registry import SourceType
from ..section import Section, SourceSection, check_secret_keys, check_url, is_loopback


class LdapAttributes(Section):
    """Which directory attribute feeds which account field (presets fill the defaults)."""

    id: str | None = None
    """Immutable id used for account mapping (AD ``objectGUID``, OpenLDAP ``entryUUID``)."""
    mail: str | None = None
    display_name: str | None = None
    aliases: str | None = None
    """Multi-valued; AD ``proxyAddresses`` (only ``smtp:`` entries are used) or e.g. ``mailAlternateAddress``."""
    delegates: str | None = None
    """Multi-valued DN attribute naming the accounts that get delegated access."""
    members: str | None = None
    """Group membership attribute (DNs); members of a functional group become its delegates."""
    disabled: str | None = None
    """AD: ``userAccountControl`` (bit 2). OpenLDAP: an attribute whose value TRUE/1/yes means disabled."""
    sso_key: str | None = None
    """Attribute sent to Zivver as SsoAccountKey (AD: ``objectGUID``)."""
    recipient_type: str | None = None
    """AD: ``msExchRecipientTypeDetails``; value 4 marks a shared mailbox (a functional account)."""
    division: str | None = None
    """Attribute holding the Zivver division / organizational unit, if any."""
    phone: str | None = None
    """Attribute holding the user's mobile number (both presets: ``mobile``)."""


class LdapSourceConfig(SourceSection):
    type: Literal["ldap"]
    has_dns: ClassVar[bool] = True
    url: str
    """``ldaps://host:636`` or ``ldap://host:389`` (add ``start_tls = true``)."""
    bind_dn: str | None = None
    """Service account to bind as (DN or ``user@domain``); empty for an anonymous bind."""
    password_env: str | None = None
    password_file: Path | None = None
    base_dn: str = Field(min_length=1)
    """Everything below this DN is read; entries outside it are never synced."""
    directory: Literal["active-directory", "openldap"] = "active-directory"
    """Preset of filters and attributes."""
    sso_key: Literal["on-premises-guid", "entra-object-id"] | None = None
    """Active Directory only: the SsoAccountKey preset. ``on-premises-guid`` (the preset's
    default): the objectGUID, for AD FS. ``entra-object-id``: on a hybrid directory whose IdP is
    Entra ID, the Entra object id that Entra Connect writes back to
    ``msDS-ExternalDirectoryObjectId`` (its ``User_`` prefix removed). ``attributes.sso_key``
    overrides either."""
    start_tls: bool = False
    """Upgrade an ``ldap://`` connection with StartTLS before binding."""
    allow_cleartext: bool = False
    """Allow ``ldap://`` without ``start_tls`` to a host other than this machine: the bind
    password and every entry read cross the network unencrypted, and every run warns. Off by
    default; use ``ldaps://`` or ``start_tls = true`` instead wherever the directory offers it."""
    verify_tls: bool = True
    """Verify the directory's TLS certificate (on by default)."""
    ca_file: Path | None = None
    """CA bundle (PEM) that signed the directory's certificate."""
    tls_server_name: str | None = None
    """Name expected in the certificate when it differs from the URL's host."""
    page_size: int = Field(default=1000, ge=1, le=100000)
    """Paged search size; Active Directory caps pages at 1000."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    user_filter: str | None = None
    """LDAP filter for personal accounts (preset default if empty)."""
    group_filter: str | None = None
    """LDAP filter for functional accounts from groups (preset default; ``""`` turns groups off)."""
    attributes: LdapAttributes = LdapAttributes()

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        return check_url(value, ("ldap", "ldaps"), "ldaps://dc1.example.org:636")

    @field_validator("user_filter", "group_filter")
    @classmethod
    def _balanced(cls, value: str | None) -> str | None:
        if value:
            depth = 0
            for char in value:
                depth += {"(": 1, ")": -1}.get(char, 0)
                if depth < 0:
                    break
            if depth != 0 or not value.startswith("("):
                raise ValueError(
                    f"{value!r} is not a valid LDAP filter: it must start with '(' and its "
                    "parentheses must balance, e.g. '(&(objectClass=user)(mail=*))'"
                )
        return value

    @model_validator(mode="after")
    def _secret(self) -> LdapSourceConfig:
        check_secret_keys(self.password_env, self.password_file, "password")
        if self.bind_dn and not (self.password_env or self.password_file):
            raise ValueError(
                "bind_dn is set but no password: add password_env (an environment variable's "
                "name) or password_file"
            )
        if self.sso_key and self.directory != "active-directory":
            raise ValueError(
                'sso_key presets are for directory = "active-directory"; for OpenLDAP set '
                "attributes.sso_key to the attribute to send"
            )
        if self.start_tls and self.url.lower().startswith("ldaps:"):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is already encrypted")
        if self.cleartext and not self.allow_cleartext:
            raise ValueError(
                f"url {self.url!r} is ldap:// without start_tls to another host, so the bind "
                "password and the directory data would travel unencrypted. Use ldaps:// (port "
                "636) or add start_tls = true; only on a network you trust entirely, "
                "allow_cleartext = true accepts it (and every run warns)"
            )
        return self

    def secrets(self) -> list[tuple[str | None, Path | None, str]]:
        return [(self.password_env, self.password_file, "password")]

    @property
    def cleartext(self) -> bool:
        """True when this source is read unencrypted across a network: ``ldap://`` without
        ``start_tls`` to a host other than this machine."""
        return (
            urlsplit(self.url).scheme == "ldap" and not self.start_tls and not is_loopback(self.url)
        )


SOURCE_TYPE = SourceType("ldap", LdapSourceConfig, "zsync_core.sources.ldap:LdapSource")
