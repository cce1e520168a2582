"""The ``microsoft365`` source type: Entra ID and Exchange Online, its profile keys and its
entry in the registry (the reader, :mod:`zsync_core.sources.m365`, and MSAL are loaded only
to read)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ..registry import SourceType
from ..section import SourceSection, check_secret_keys, check_url


class Microsoft365SourceConfig(SourceSection):
    """Entra ID users and groups through Microsoft Graph, and Exchange Online shared mailboxes
    with their FullAccess delegates, read app-only (client credentials) through MSAL."""

    type: Literal["microsoft365"]
    tenant_id: str = Field(min_length=1)
    """The directory (tenant) id, a GUID, or its ``…onmicrosoft.com`` name."""
    client_id: str = Field(min_length=1)
    """The application (client) id of the app registration."""
    certificate_file: Path | None = None
    """PEM with the private key and the certificate (recommended), or a PFX (``.pfx``/``.p12``)."""
    certificate_password_env: str | None = None
    certificate_password_file: Path | None = None
    """The password of an encrypted PEM key or of the PFX, if it has one."""
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    """A client secret instead of a certificate (it expires; a certificate is safer)."""
    users: bool = True
    """Read member users with a mailbox as personal accounts (guests are never read)."""
    scope_group: str | None = None
    """Only users who are (transitive) members of this group: its object id or its address."""
    user_filter: str | None = None
    """A Graph ``$filter`` for users, e.g. ``"department eq 'Care'"``. Graph's delta query
    cannot filter, so with it users are read whole at every run (groups still by delta)."""
    groups: bool = True
    """Read mail-enabled groups as functional accounts; their transitive members are delegates."""
    microsoft365_groups: bool = True
    """Include Microsoft 365 groups (Teams, ``groupTypes`` Unified), not only distribution
    lists and mail-enabled security groups."""
    shared_mailboxes: bool = False
    """Read Exchange Online shared mailboxes with their FullAccess delegates as functional
    accounts (needs Exchange.ManageAsApp and an Exchange role)."""
    sso_key: Literal["entra-object-id", "on-premises-guid"] = "entra-object-id"
    """SsoAccountKey sent for new users: the Entra object id (Entra ID as IdP, ``user.objectid``),
    or the on-premises objectGUID decoded from ``onPremisesImmutableId`` (AD FS, hybrid)."""
    full_read_days: float = Field(default=7, gt=0, le=7)
    """A full read at least this often; runs in between read only what changed (delta).
    Graph's delta links for directory objects last seven days."""
    authority_url: str = "https://login.microsoftonline.com"
    """Where to sign in (national clouds: e.g. ``https://login.microsoftonline.us``)."""
    graph_url: str = "https://graph.microsoft.com"
    exchange_url: str = "https://outlook.office365.com"
    ca_file: Path | None = None
    """An extra CA (PEM) trusted for all three endpoints (a TLS-inspecting proxy, tests)."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=20)
    """Retries of one request after a 429/503 (waiting ``Retry-After``), a 5xx or a dropped connection."""
    graph_concurrency: int = Field(default=4, ge=1, le=16)
    """Graph requests on their way at once (a full read lists users in parallel ranges)."""
    exchange_concurrency: int = Field(default=4, ge=1, le=16)
    """Exchange requests (mailbox permissions) on their way at once."""

    @field_validator("authority_url", "graph_url", "exchange_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if urlsplit(value.strip()).scheme.lower() == "http":
            raise ValueError(
                f"{value!r} is plain http: Microsoft 365 is served over https only, and the app's "
                "credentials and the directory data must not travel unencrypted; use https://"
            )
        return check_url(value, ("https",), "https://graph.microsoft.com")

    def secrets(self) -> list[tuple[str | None, Path | None, str]]:
        return [
            (self.client_secret_env, self.client_secret_file, "client_secret"),
            (self.certificate_password_env, self.certificate_password_file, "certificate_password"),
        ]

    def private_files(self) -> list[tuple[str, Path]]:
        return [("certificate_file", self.certificate_file)] if self.certificate_file else []

    @model_validator(mode="after")
    def _credentials(self) -> Microsoft365SourceConfig:
        check_secret_keys(self.client_secret_env, self.client_secret_file, "client_secret")
        check_secret_keys(
            self.certificate_password_env, self.certificate_password_file, "certificate_password"
        )
        secret = self.client_secret_env or self.client_secret_file
        if bool(self.certificate_file) == bool(secret):
            raise ValueError(
                "set exactly one credential: certificate_file (recommended), or client_secret_env "
                "or client_secret_file"
            )
        if self.scope_group and self.user_filter:
            raise ValueError("set scope_group or user_filter, not both")
        if not (self.users or self.groups or self.shared_mailboxes):
            raise ValueError("users, groups and shared_mailboxes are all off: nothing to read")
        return self


SOURCE_TYPE = SourceType(
    "microsoft365",
    Microsoft365SourceConfig,
    "zsync_core.sources.m365:Microsoft365Source",
    keeps_state=True,
    probe="zsync_core.sources.m365:probe",
)
