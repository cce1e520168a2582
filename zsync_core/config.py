"""The TOML profile as pydantic models.

Every field's docstring is written for the admin; ``config.example.toml`` documents the
same keys. Errors name the file, the dotted key, a did-you-mean, and what to do.
Secrets are never written in the profile itself: only ``*_env`` (an environment
variable's name) or ``*_file`` (a file holding the secret).
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .section import (
    GuardedAction,
    Section,
    SourceSection,
    check_secret_keys,
    check_url,
    tls_unless_loopback,
)

DEFAULT_CONFIG_NAME = "zsync.toml"


class TargetConfig(Section):
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
        value = check_url(value, ("http", "https"), "https://app.zivver.com/api/scim/v2")
        return tls_unless_loopback(value, "the API key")

    @model_validator(mode="after")
    def _one_secret(self) -> TargetConfig:
        check_secret_keys(self.api_key_env, self.api_key_file, "api_key")
        return self


if TYPE_CHECKING:
    SourceConfig = SourceSection
    """A ``[[sources]]`` entry: one of the registered types' models (built at the end of
    this module from :mod:`zsync_core.registry`)."""


class SyncConfig(Section):
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
    sync_phone_numbers: bool = False
    """Write each user's mobile number from the sources, at creation and when it changes (a
    source without one leaves Zivver's as it is). Off by default: in an organization that
    another tool built, people often entered their numbers themselves."""
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


class StoreConfig(Section):
    """How long the local store keeps the run history. The account mapping is never pruned,
    nor the newest run whose read was good (the shrink guard compares with it)."""

    keep_runs: int = Field(default=2000, ge=1)
    """At most this many runs are kept (the newest)."""
    keep_days: float = Field(default=400, gt=0)
    """Runs older than this are dropped, with their changes and events."""


class EmailConfig(Section):
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


class WebhookConfig(Section):
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


class NotifyConfig(Section):
    """Who hears of a headless run, and when."""

    when: Literal["problems", "always"] = "problems"
    """``problems``: after a run with failed or held changes, or that could not run;
    ``always``: after every run, successful ones too."""
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None


class MonitoringConfig(Section):
    textfile: Path | None = None
    """A Prometheus textfile-collector file (``*.prom``) written after every headless run."""


class Config(Section):
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


def _did_you_mean(loc: list[Any], data: dict[str, Any]) -> str:
    unknown = str(loc[-1])
    model = _model_at(loc[:-1], data)
    known = [name for name in model.model_fields if not (model is Config and name == "path")]
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else f" Known keys here: {', '.join(known)}."


def _model_at(path: list[Any], data: dict[str, Any]) -> type[BaseModel]:
    """The model of the section at ``path`` (a validation error's location): walked down from
    :class:`Config` through each key's model, a ``[[sources]]`` entry by its ``type``."""
    from .registry import source_types

    model: type[BaseModel] = Config
    at = 0
    while at < len(path):
        part = path[at]
        if model is Config and part == "sources" and at + 1 < len(path):
            entries = data.get("sources")
            index = path[at + 1]
            entry = (
                entries[index]
                if isinstance(entries, list) and isinstance(index, int) and index < len(entries)
                else {}
            )
            kind = (
                source_types().get(str(entry.get("type", ""))) if isinstance(entry, dict) else None
            )
            model = kind.config if kind is not None else SourceSection
            at += 2
            continue
        field = model.model_fields.get(str(part))
        options = get_args(field.annotation) or (field.annotation,) if field else ()
        inner = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        if not inner:
            return model
        model = inner[0]
        at += 1
    return model


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
    odd = next((c for c in key if not (c.isascii() and c.isprintable())), None)
    if odd is not None:  # it goes in an HTTP header; never named with the key around it
        where = "target.api_key_env" if config.target.api_key_env else "target.api_key_file"
        raise ConfigError(
            f"{config.path}: the API key that {where} names holds the character "
            f"U+{ord(odd):04X} at position {key.index(odd) + 1}, which no API key has (a "
            "copy-paste artefact such as a zero-width space?). Copy the key again from the "
            "Zivver WebApp."
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
