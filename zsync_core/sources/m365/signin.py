"""Signing in to Microsoft 365 app-only: MSAL, the credential, and where a token may go.

MSAL (Microsoft's own library) does the client-credentials flow: it reads the tenant's
OpenID configuration, signs the client assertion with the certificate (PS256, with the
certificate's SHA-256 thumbprint and chain) or sends the secret, and caches each token until
shortly before it expires. It talks through :class:`MsalHttp`, an httpx client with the
source's CA, so the three endpoints share one TLS setup; all three are ``https://`` (the
config refuses anything else).

MSAL's token endpoint is an answer's word like any link: MsalHttp goes nowhere outside
``authority_url``'s origin (:func:`origin`), so the client secret or assertion never leaves it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
from msal.exceptions import MsalServiceError

from ...config import Config, credential_path, read_secret
from ...errors import ConfigError, SourceError
from ..m365_config import Microsoft365SourceConfig

GRAPH = "graph"
EXCHANGE = "exchange"
"""The two services a source signs in to (one token each)."""
PUBLIC = {GRAPH: "https://graph.microsoft.com", EXCHANGE: "https://outlook.office365.com"}
CLOUD_DOMAINS = (
    "microsoft.com",
    "microsoft.us",
    "office365.com",
    "office365.us",
    "office.com",
    "chinacloudapi.cn",
    "outlook.cn",
    "apps.mil",
)
"""Where Microsoft's clouds (public, US Government, 21Vianet) serve Graph and Exchange."""
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str | None:
    """``scheme://host:port`` of an absolute http(s) URL (the host in lower case, the port
    always written), None for anything else: what two URLs must share for a token sent to one
    to be safe at the other."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is no number
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host.lower()}:{port}"


def scopes(source: Microsoft365SourceConfig) -> dict[str, str]:
    """Service → the app-only scope to ask for: a Microsoft cloud's endpoint is its own
    resource (a national cloud's ``https://graph.microsoft.us/.default``); any other host is
    a reverse proxy or private endpoint in front of the public cloud (and the emulator one
    like it), whose resource is the public cloud's."""
    found = {}
    for service, endpoint in ((GRAPH, source.graph_url), (EXCHANGE, source.exchange_url)):
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        cloud = any(host == d or host.endswith(f".{d}") for d in CLOUD_DOMAINS)
        found[service] = f"{f'https://{parts.netloc}' if cloud else PUBLIC[service]}/.default"
    return found


def _ssl_context(source: Microsoft365SourceConfig, config: Config) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if source.ca_file:
        path = config.resolve(source.ca_file)
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"{config.path}: sources ({source.name}).ca_file {path} is not a readable PEM "
                f"CA bundle ({error}). Fix the path or remove the key."
            ) from None
    return context


# --- credentials ----------------------------------------------------------------------------


def load_certificate(path: Path, password: str | None, where: str) -> dict[str, str]:
    """A PEM (key and certificate) or PFX file, checked and made into what MSAL signs with:
    the private key as unencrypted PEM and the certificate as PEM (MSAL sends it as ``x5c``
    with its SHA-256 thumbprint, so Entra can match it).

    msal (≥ 1.29) could read a PFX itself (``private_key_pfx_path``), but only once the app is
    built, with errors of its own: read here, a file that cannot be used is named with what
    is wrong with it before anything is sent.

    Raises:
        ConfigError: naming the file and what is wrong with it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"{where}: certificate_file {path} cannot be read ({error.strerror}). Check the "
            "path and that this user may read it."
        ) from None
    secret = password.encode() if password else None
    try:
        if path.suffix.lower() in (".pfx", ".p12") or not data.lstrip().startswith(b"-----"):
            key, cert, _chain = pkcs12.load_key_and_certificates(data, secret)
        else:
            key = serialization.load_pem_private_key(data, secret)
            cert = x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError) as error:
        hint = (
            "it needs certificate_password_env or certificate_password_file"
            if "encrypted" in str(error).lower() or "password" in str(error).lower()
            else "it must hold the private key and the certificate, PEM or PFX"
        )
        raise ConfigError(
            f"{where}: certificate_file {path} cannot be used: {error}; {hint}."
        ) from None
    if key is None or cert is None:
        raise ConfigError(
            f"{where}: certificate_file {path} has no {'private key' if key is None else 'certificate'}; "
            "it must hold both (PEM: the key and the certificate one after the other)."
        )
    private_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    certificate = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {"private_key": private_key, "public_certificate": certificate}


def client_credential(source: Microsoft365SourceConfig, config: Config) -> str | dict[str, str]:
    """What MSAL signs in with: the certificate (as MSAL's dict) or the client secret."""
    where = f"{config.path}: sources ({source.name})"
    if source.certificate_file:
        password = read_secret(
            source.certificate_password_env,
            source.certificate_password_file,
            f"sources ({source.name}).certificate_password",
            config,
        )
        path = config.resolve(source.certificate_file)
        return load_certificate(credential_path(source.certificate_file) or path, password, where)
    secret = read_secret(
        source.client_secret_env,
        source.client_secret_file,
        f"sources ({source.name}).client_secret",
        config,
    )
    assert secret is not None  # the config requires a credential
    return secret


# --- MSAL over httpx ------------------------------------------------------------------------


class _Answer:
    """An httpx response as MSAL reads one (``status_code``, ``text``, ``headers``)."""

    def __init__(self, response: httpx.Response, text: str) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.text = text
        self._response = response

    def raise_for_status(self) -> None:
        self._response.raise_for_status()


class MsalHttp:
    """MSAL's ``http_client``: httpx with the source's TLS, form values sent as text, and
    nothing sent outside the authority's origin (MSAL posts the client secret or assertion to
    the token endpoint the tenant's OpenID configuration names: an answer that names another
    host must not receive it)."""

    def __init__(
        self, authority_url: str, context: ssl.SSLContext, timeout: float, name: str = ""
    ) -> None:
        self.client = httpx.Client(verify=context, timeout=timeout)
        self.authority_url = authority_url
        self.origin = origin(authority_url)
        self.name = name

    def _wire(self, url: str) -> str:
        if origin(url) != self.origin:
            raise SourceError(
                f"Source {self.name!r}: the sign-in service's answer sends zsync to "
                f"{origin(url) or url[:80]!r}, outside authority_url's origin {self.origin}; "
                "zsync did not go there and sent it no credential, and nothing was changed. "
                "Check authority_url and tenant_id, and any proxy that may rewrite the answers."
            )
        return url

    def _answer(self, response: httpx.Response) -> _Answer:
        return _Answer(response, response.text)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> _Answer:
        if isinstance(data, dict):  # MSAL passes the client assertion as bytes
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        response = self.client.post(self._wire(url), params=params, data=data, headers=headers)
        return self._answer(response)

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> _Answer:
        return self._answer(self.client.get(self._wire(url), params=params, headers=headers))

    def close(self) -> None:
        self.client.close()


class SignIn:
    """App-only tokens for Graph and Exchange, cached and renewed by MSAL."""

    def __init__(self, source: Microsoft365SourceConfig, config: Config) -> None:
        self.source = source
        self.config = config
        self.context = _ssl_context(source, config)
        self._credential = client_credential(source, config)
        self._http = MsalHttp(
            source.authority_url, self.context, source.timeout_seconds, source.name
        )
        self._app: Any = None
        self._lock = asyncio.Lock()
        self._scopes = scopes(source)
        self._tokens: dict[str, tuple[str, float]] = {}
        """Service → (token, when to ask MSAL again): a minute before it expires."""

    def _msal(self) -> Any:
        if self._app is None:
            authority = f"{self.source.authority_url.rstrip('/')}/{self.source.tenant_id}"
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.source.client_id,
                    client_credential=self._credential,
                    authority=authority,
                    http_client=self._http,
                    # the authority is the profile's own choice: no call to Microsoft's
                    # instance discovery (national clouds and the emulator are not in it)
                    instance_discovery=False,
                )
            except ValueError as error:  # the tenant's OpenID configuration is not there
                raise SourceError(
                    f"Source {self.source.name!r}: tenant {self.source.tenant_id!r} is not known "
                    f"at {self.source.authority_url} ({_first_line(error)}). Check tenant_id "
                    "(Entra admin center → Overview → Tenant ID) and authority_url."
                ) from None
            except httpx.HTTPError as error:
                raise SourceError(
                    f"Source {self.source.name!r}: cannot reach {self.source.authority_url} to sign "
                    f"in ({error}). Check the network, any proxy and ca_file."
                ) from None
        return self._app

    def _acquire(self, service: str, renew: bool) -> str:
        scope = self._scopes[service]
        app = self._msal()
        if renew:
            app.remove_tokens_for_client()
        try:
            result = app.acquire_token_for_client(scopes=[scope])
        except MsalServiceError as error:  # a 5xx from the token endpoint
            raise SourceError(
                f"Source {self.source.name!r}: the sign-in service at {self.source.authority_url} "
                f"failed ({error}); nothing was changed. Run again later."
            ) from None
        except httpx.HTTPError as error:
            raise SourceError(
                f"Source {self.source.name!r}: cannot reach {self.source.authority_url} to sign "
                f"in ({error}). Check the network, any proxy and ca_file."
            ) from None
        token = result.get("access_token")
        if token:
            lifetime = float(result.get("expires_in") or 300)
            self._tokens[service] = (str(token), time.monotonic() + max(lifetime - 60, 0))
            return str(token)
        raise SourceError(explain_sign_in(self.source, result, scope))

    async def token(self, service: str, renew: bool = False) -> str:
        """A token for ``service`` (:data:`GRAPH`, :data:`EXCHANGE`); ``renew``: a new one
        (the service said the last one expired)."""
        cached = self._tokens.get(service)
        if cached and not renew and cached[1] > time.monotonic():
            return cached[0]
        async with self._lock:
            cached = self._tokens.get(service)
            if cached and not renew and cached[1] > time.monotonic():
                return cached[0]
            return await asyncio.to_thread(self._acquire, service, renew)

    def close(self) -> None:
        self._http.close()


def explain_sign_in(source: Microsoft365SourceConfig, result: dict[str, Any], scope: str) -> str:
    """Entra's refusal of a token request, as what to fix."""
    codes = result.get("error_codes") or []
    description = _first_line(result.get("error_description") or result.get("error") or "no answer")
    name, app = source.name, source.client_id
    head = f"Source {name!r}: Entra ID refused to sign in the app {app}"
    if 7000215 in codes:
        return (
            f"{head}: the client secret is wrong ({description}). Put the secret's Value (not "
            "its Secret ID) from Certificates & secrets in client_secret_env/client_secret_file."
        )
    if 7000222 in codes:
        return (
            f"{head}: the client secret has expired ({description}). Create a new one under "
            "Certificates & secrets, update the secret file, and consider a certificate instead."
        )
    if 700027 in codes:
        return (
            f"{head}: Entra refused the certificate ({description}). Upload the certificate "
            "of certificate_file under Certificates & secrets → Certificates (the thumbprint "
            "shown there must match), and check the server's clock."
        )
    if 700016 in codes:
        return (
            f"{head}: no such application in tenant {source.tenant_id} ({description}). Check "
            "client_id (App registrations → Application (client) ID) and tenant_id."
        )
    if 90002 in codes:
        return (
            f"{head}: tenant {source.tenant_id!r} was not found ({description}). Check tenant_id."
        )
    if 1002012 in codes or 70011 in codes:
        return (
            f"{head}: the scope {scope} was refused ({description}). Check graph_url/exchange_url."
        )
    return f"{head}: {description}."


def _first_line(value: object) -> str:
    text = str(value).strip()
    # Entra appends trace ids and timestamps that only make the message longer
    for marker in (" Trace ID:", "\r\n", "\n"):
        text = text.split(marker)[0]
    return text.strip()
