"""The TOML profile as pydantic models.

Every field's docstring is written for the admin; ``config.example.toml`` documents the
same keys. Errors name the file, the dotted key, a did-you-mean, and what to do.
Secrets are never written in the profile itself: only ``*_env`` (an environment
variable's name) or ``*_file`` (a file holding the secret).
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import shlex
import stat
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

DEFAULT_CONFIG_NAME = "zsync.toml"


class GuardedAction(StrEnum):
    """The five actions that need an explicit confirmation (product.md)."""

    SUSPEND_USERS = "suspend-users"
    SUSPEND_FUNCTIONAL = "suspend-functional"
    DELETE_USERS = "delete-users"
    DELETE_FUNCTIONAL = "delete-functional"
    UPDATE_SSO_KEYS = "update-sso-keys"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(_Section):
    url: str = "https://app.zivver.com/api/scim/v2"
    """Base URL of Zivver's SCIM API (or of the emulator)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key."""
    api_key_file: Path | None = None
    """File that holds the API key (first line; surrounding whitespace is ignored)."""
    verify_tls: bool = True
    """Verify Zivver's TLS certificate. Switch off only for a test server."""
    ca_file: Path | None = None
    """Extra CA bundle to trust for the target (PEM)."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """How long to wait for one HTTP request before retrying it."""
    rate_limit_requests: int = Field(default=50, ge=1)
    """At most this many requests are sent per ``rate_limit_window_seconds``."""
    rate_limit_window_seconds: float = Field(default=10.0, gt=0)
    """The window of Zivver's rate limit."""
    max_retries: int = Field(default=5, ge=0, le=20)
    """Retries of one request after a 429, a 5xx, a time-out or a dropped connection."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Requests on their way at once while applying (the rate limit still holds)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = _check_url(value, ("http", "https"), "https://app.zivver.com/api/scim/v2")
        return _tls_unless_loopback(value, "the API key")

    @model_validator(mode="after")
    def _one_secret(self) -> TargetConfig:
        _check_secret_keys(self.api_key_env, self.api_key_file, "api_key")
        return self


class LdapAttributes(_Section):
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


class SourceSection(_Section):
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


class LdapSourceConfig(SourceSection):
    type: Literal["ldap"]
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
        return _check_url(value, ("ldap", "ldaps"), "ldaps://dc1.example.org:636")

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
        _check_secret_keys(self.password_env, self.password_file, "password")
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


class CsvSourceConfig(SourceSection):
    type: Literal["csv"]
    path: Path
    """CSV file; relative paths are relative to the profile. Columns are in the README."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"{value!r} is no encoding Python knows (e.g. utf-8, utf-8-sig, cp1252, latin-1)"
            ) from None
        return value


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
        return _check_url(value, ("https",), "https://graph.microsoft.com")

    def secrets(self) -> list[tuple[str | None, Path | None, str]]:
        return [
            (self.client_secret_env, self.client_secret_file, "client_secret"),
            (self.certificate_password_env, self.certificate_password_file, "certificate_password"),
        ]

    def private_files(self) -> list[tuple[str, Path]]:
        return [("certificate_file", self.certificate_file)] if self.certificate_file else []

    @model_validator(mode="after")
    def _credentials(self) -> Microsoft365SourceConfig:
        _check_secret_keys(self.client_secret_env, self.client_secret_file, "client_secret")
        _check_secret_keys(
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


LOOPBACK = {"127.0.0.1", "::1", "localhost"}
"""The hosts that are this machine: what is sent to them never crosses a network."""


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is one of :data:`LOOPBACK`."""
    return urlsplit(url).hostname in LOOPBACK


def _tls_unless_loopback(url: str, what: str) -> str:
    """``url`` unchanged, unless it is plain ``http://`` to another host: ``what`` it carries
    would cross the network readable by anyone on the way."""
    if urlsplit(url).scheme == "http" and not is_loopback(url):
        raise ValueError(
            f"{url!r} is plain http, so {what} would travel unencrypted: only a loopback "
            "address (127.0.0.1, ::1, localhost) may be served without TLS; use https://"
        )
    return url


if TYPE_CHECKING:
    SourceConfig = SourceSection
    """A ``[[sources]]`` entry: one of the registered types' models (built at the end of
    this module from :mod:`zsync_core.registry`)."""


class SyncConfig(_Section):
    create_users: bool = True
    """Create new users in Zivver for active directory users."""
    suspend_users: bool = True
    """Suspend users missing or disabled in the sources."""
    update_users: bool = True
    """Update name, address (rename), aliases and delegates of existing users."""
    reactivate_users: bool = True
    """Re-enable suspended users who are active again in the sources."""
    delete_users: bool = False
    """Delete users missing from the sources (irreversible; needs confirmation)."""
    update_sso_keys: bool = False
    """Send the SsoAccountKey of existing users again (needs confirmation; can break SSO)."""
    existing_sso_keys: Literal["unknown", "from-source", "none"] = "unknown"
    """Where the SsoAccountKeys of accounts zsync did not create came from. Zivver never returns
    a key, and a write of a user's aliases or delegates erases a key it does not carry, so zsync
    must know it. ``"unknown"``: hold those writes (everything else still applies).
    ``"from-source"``: the keys are the sources' ``sso_key`` values (as Zivver's Synctool sets
    them by default). ``"none"``: this organization uses no SSO keys."""
    create_functional_accounts: bool = True
    update_functional_accounts: bool = True
    """Update name, aliases and delegates of functional accounts."""
    suspend_functional_accounts: bool = True
    """Remove all delegates of functional accounts missing or disabled in the sources."""
    delete_functional_accounts: bool = False
    """Delete functional accounts missing from the sources (irreversible; needs confirmation)."""
    sync_aliases: bool = True
    sync_delegations: bool = True
    domains: list[str] = []
    """Domain filter: only addresses in these (claimed) domains are ever touched. Empty = all."""
    suspend_threshold_percent: float = Field(default=5.0, ge=0, le=100)
    """Suspending more than this share of an account kind needs confirmation."""
    shrink_guard_percent: float = Field(default=50.0, ge=0, le=100)
    """A source that shrank by more than this share since the last good run plans no removals."""
    confirm: list[GuardedAction] = []
    """Guarded actions confirmed in advance for unattended runs (like ``--confirm``)."""

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        cleaned = [domain.strip().lower().lstrip("@") for domain in value]
        for domain in cleaned:
            if not domain or "." not in domain or "@" in domain or " " in domain:
                raise ValueError(f"{domain!r} is not a domain name like 'example.org'")
        return cleaned


class StoreConfig(_Section):
    """How long the local store keeps the run history. The account mapping is never pruned,
    nor the newest run whose read was good (the shrink guard compares with it)."""

    keep_runs: int = Field(default=2000, ge=1)
    """At most this many runs are kept (the newest)."""
    keep_days: float = Field(default=400, gt=0)
    """Runs older than this are dropped, with their changes and events."""


class EmailConfig(_Section):
    """A mail after a headless run, over SMTP (STARTTLS unless ``starttls = false``)."""

    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    """Upgrade the connection with STARTTLS before logging in (port 587). Off only for a relay
    on the same host."""
    ca_file: Path | None = None
    """CA bundle (PEM) for the SMTP server's certificate, when it is not a public one."""
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=30, gt=0)


class WebhookConfig(_Section):
    """A POST after a headless run. The URL is a secret (Slack and Teams URLs carry their
    token), so it is named by ``url_env`` or ``url_file``."""

    url_env: str | None = None
    url_file: Path | None = None
    format: Literal["json", "slack", "teams"] = "json"
    """``json``: zsync's own document; ``slack``/``teams``: a message those accept."""
    timeout_seconds: float = Field(default=30, gt=0)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if bool(self.url_env) == bool(self.url_file):
            raise ValueError("set exactly one of url_env and url_file")
        return self


class NotifyConfig(_Section):
    """Who hears of a headless run, and when."""

    when: Literal["problems", "always"] = "problems"
    """``problems``: after a run with failed or held changes, or that could not run;
    ``always``: after every run, successful ones too."""
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None


class MonitoringConfig(_Section):
    textfile: Path | None = None
    """A Prometheus textfile-collector file (``*.prom``) written after every headless run."""


class Config(_Section):
    target: TargetConfig
    sources: list[SourceConfig] = Field(min_length=1)
    sync: SyncConfig = SyncConfig()
    store: StoreConfig = StoreConfig()
    notify: NotifyConfig = NotifyConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    state_dir: Path | None = None
    """Where the local store (account mapping, run history) lives. Default: ``<profile dir>/zsync-state``."""

    path: Path = Path(DEFAULT_CONFIG_NAME)
    """The profile file this was read from (set by :func:`load_config`, not a TOML key)."""

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}; give each a unique name")
            seen.add(source.name)
        return self

    @property
    def state_path(self) -> Path:
        """``state_dir``; else systemd's ``$STATE_DIRECTORY`` (``StateDirectory=``); else a
        folder ``zsync-state`` beside the profile. Set ``state_dir`` when the TUI and the
        daily run share a profile, so that both use one store."""
        base = self.path.parent
        if self.state_dir:
            return _relative_to(base, self.state_dir)
        systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return Path(systemd) if systemd else base / "zsync-state"

    def resolve(self, path: Path) -> Path:
        """A path from the profile, relative to the profile's folder."""
        return _relative_to(self.path.parent, path)


def _relative_to(base: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _check_url(value: str, schemes: tuple[str, ...], example: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise ValueError(f"{value!r} is not a {'/'.join(schemes)} URL like {example!r}")
    try:
        _ = parts.port  # raises for a port out of range
    except ValueError as error:
        raise ValueError(f"{value!r} has an invalid port: {error}") from None
    return value.strip().rstrip("/")


def _check_secret_keys(env: str | None, file: Path | None, what: str) -> None:
    if env and file:
        raise ValueError(f"set only one of {what}_env and {what}_file")


# --- loading ---------------------------------------------------------------------------


def default_config_path() -> Path:
    return Path(os.environ.get("ZSYNC_CONFIG", DEFAULT_CONFIG_NAME))


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a profile.

    Raises:
        ConfigError: naming the file, the key and what to do.
    """
    path = Path(path) if path else default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such profile. Copy config.example.toml to {path} and edit it, "
            "or pass --config PATH."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the profile: {error}") from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate parsed TOML; ``path`` is where it came from (for messages and relative paths)."""
    if "path" in data:
        raise ConfigError(f"{path}: 'path' is not a profile key; remove it.")
    try:
        return Config.model_validate({**data, "path": path})
    except ValidationError as error:
        raise ConfigError(_explain_validation(error, data, path)) from None


def _explain_validation(error: ValidationError, data: dict[str, Any], path: Path) -> str:
    lines = [f"{path}: the profile is not valid:"]
    for item in error.errors():
        loc = [part for part in item["loc"] if part not in _source_tags()]
        key = _dotted(loc, data)
        kind = item["type"]
        if kind == "extra_forbidden":
            hint = _did_you_mean(loc, data)
            lines.append(f"  - {key}: unknown key.{hint}")
        elif kind == "missing":
            lines.append(f"  - {key}: required key is missing.")
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            tags = [f'"{tag}"' for tag in _source_tags()]
            lines.append(f"  - {key}.type: must be {', '.join(tags[:-1])} or {tags[-1]}.")
            from .registry import BROKEN

            lines += [
                f"    (the source type package {name!r} was left out: {why})"
                for name, why in BROKEN.items()
            ]
        else:
            message = item["msg"].removeprefix("Value error, ")
            got = item.get("input")
            shown = (
                ""
                if isinstance(got, dict | list) or kind.startswith("value_error")
                else f" (got {got!r})"
            )
            lines.append(f"  - {key}: {message}{shown}.")
    lines.append("Fix these keys (config.example.toml documents every key) and run again.")
    return "\n".join(lines)


def _dotted(loc: list[Any], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                name = node[part].get("name")
                label = f"[{part}]" + (f" ({name})" if name else "")
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    return "".join(parts) or "(top level)"


def _has(node: dict[str, Any] | list[Any], part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and part < len(node)


_MODELS_BY_SECTION: dict[str, type[BaseModel]] = {
    "target": TargetConfig,
    "sync": SyncConfig,
    "store": StoreConfig,
    "notify": NotifyConfig,
    "email": EmailConfig,
    "webhook": WebhookConfig,
    "monitoring": MonitoringConfig,
    "attributes": LdapAttributes,
}


def _did_you_mean(loc: list[Any], data: dict[str, Any]) -> str:
    unknown = str(loc[-1])
    model: type[BaseModel] = Config
    if len(loc) > 1:
        parent = loc[-2]
        if isinstance(parent, int):
            source = data.get("sources", [{}])[parent] if loc[0] == "sources" else {}
            from .registry import source_types

            kind = source_types().get(str(source.get("type", "")))
            model = kind.config if kind is not None else SourceSection
        else:
            model = _MODELS_BY_SECTION.get(str(parent), Config)
    known = [name for name in model.model_fields if not (model is Config and name == "path")]
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else f" Known keys here: {', '.join(known)}."


# --- secrets -----------------------------------------------------------------------------


def read_secret(env: str | None, file: Path | None, key: str, config: Config) -> str | None:
    """The secret named by ``<key>_env`` or ``<key>_file``; None when neither is set.

    Raises:
        ConfigError: the variable is unset or empty, or the file is unreadable or empty.
    """
    if env:
        value = os.environ.get(env, "").strip()
        if not value and looks_like_a_secret(env):
            # never echoed: it goes to stderr, the report and the webhook
            raise ConfigError(
                f"{config.path}: the value of {key}_env is not an environment variable's name "
                "(it looks like a key itself: put the key in the environment or a file, never "
                f"in the profile). Set {key}_env to the variable's name (e.g. "
                f"{_example_name(key)}) or use {key}_file, and replace that key: it has been "
                "written in the profile."
            )
        if not value:
            raise ConfigError(
                f"{config.path}: {key}_env names the environment variable {env}, which is not "
                f"set or empty. Export {env}=... (or use {key}_file) and run again."
            )
        return value
    if file:
        resolved = credential_path(file) or config.resolve(file)
        try:
            value = resolved.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"{config.path}: {key}_file {resolved} cannot be read ({error.strerror}). "
                "Check the path and that this user may read it."
            ) from None
        if not value:
            raise ConfigError(
                f"{config.path}: {key}_file {resolved} is empty; put the secret in it."
            )
        return value.splitlines()[0].strip()
    return None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def looks_like_a_secret(name: str) -> bool:
    """True when a ``*_env`` value is no environment variable's name but, most likely, the
    secret pasted in its place: not a name's shape (``A-Z a-z 0-9 _``, at most 64), or a
    part between underscores that is long, or mixes letters and digits as generated keys do
    (``zv_live_4f8a9c2b1e3d``; ``M365_SECRET``, ``ZsyncLdapPassword`` are names)."""
    if not _ENV_NAME.fullmatch(name):
        return True
    for part in name.split("_"):
        digits = sum(char.isdigit() for char in part)
        if len(part) >= 32 or (len(part) >= 12 and digits >= 3 and len(part) - digits >= 3):
            return True
        if len(part) >= 16 and digits and not part.isupper() and not part.islower():
            return True  # base64 or base62, e.g. a token's header eyJhbGciOiJIUzI1NiJ9
    return False


def _example_name(key: str) -> str:
    """A variable's name for a message, from the key (``sources (AD).password`` gives
    ``ZSYNC_PASSWORD``)."""
    last = key.rsplit(".", 1)[-1]
    return "ZIVVER_API_KEY" if last == "api_key" else f"ZSYNC_{last.upper()}"


def credential_path(file: Path) -> Path | None:
    """Under systemd with ``LoadCredential=NAME:PATH``, the secret ``file`` named NAME is read
    from ``$CREDENTIALS_DIRECTORY`` (systemd read it as root for this run only); the same
    profile still reads ``file`` itself where there is no such credential (the TUI, cron)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    candidate = Path(directory) / file.name
    return candidate if candidate.is_file() else None


def api_key(config: Config) -> str:
    key = read_secret(
        config.target.api_key_env, config.target.api_key_file, "target.api_key", config
    )
    if not key:
        raise ConfigError(
            f"{config.path}: target has no API key: set target.api_key_env or target.api_key_file."
        )
    return key


def check_secrets(config: Config) -> None:
    """Read every secret the profile names, so a missing one stops the run before it starts.

    Raises:
        ConfigError: naming the key and the variable or file.
    """
    api_key(config)
    for env, file, key in _secrets(config):
        read_secret(env, file, key, config)


def _secrets(config: Config) -> list[tuple[str | None, Path | None, str]]:
    """Every secret the profile can name: (``*_env``, ``*_file``, the key for messages)."""
    found = [(config.target.api_key_env, config.target.api_key_file, "target.api_key")]
    for source in config.sources:
        where = f"sources ({source.name})"
        found += [(env, file, f"{where}.{key}") for env, file, key in source.secrets()]
    # a notification that cannot be sent must not go unnoticed until the day it matters
    email, webhook = config.notify.email, config.notify.webhook
    if email is not None:
        found.append((email.password_env, email.password_file, "notify.email.password"))
    if webhook is not None:
        found.append((webhook.url_env, webhook.url_file, "notify.webhook.url"))
    return found


def exposed_secret_files(config: Config) -> list[str]:
    """A warning for each secret file of the profile that every user of this machine may
    read (mode ``o+r``), with the ``chmod`` that fixes it. The file checked is the one zsync
    reads: under systemd, the credential (which systemd keeps private) when there is one.
    A file that cannot be read is not named here: reading it says what is wrong."""
    files = [(f"{key}_file", file) for _env, file, key in _secrets(config) if file]
    for source in config.sources:
        files += [(f"sources ({source.name}).{key}", file) for key, file in source.private_files()]
    warnings: list[str] = []
    for key, file in files:
        path = (credential_path(file) or config.resolve(file)).absolute()  # for a chmod anywhere
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & stat.S_IROTH:
            shown = shlex.quote(str(path))
            warnings.append(
                f"{config.path}: {key} {path} can be read by every user of this machine (mode "
                f"{stat.S_IMODE(mode):04o}). Run chmod 640 {shown} (or chmod o-r {shown}) so "
                "that only its owner and group can."
            )
    return warnings


# --- the source types -----------------------------------------------------------------------


def _source_tags() -> tuple[str, ...]:
    from .registry import source_types

    return tuple(source_types())


def _sources_union() -> Any:
    """The models of every registered source type, told apart by ``type``."""
    from .registry import source_types

    models = tuple(kind.config for kind in source_types().values())
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - built at run time


if not TYPE_CHECKING:
    SourceConfig = _sources_union()
    Config.model_rebuild()
