"""Signing in to Microsoft 365 app-only, and asking Graph and Exchange Online over httpx.

MSAL (Microsoft's own library) does the client-credentials flow: it reads the tenant's
OpenID configuration, signs the client assertion with the certificate (PS256, with the
certificate's SHA-256 thumbprint and chain) or sends the secret, and caches each token until
shortly before it expires. It talks through :class:`MsalHttp`, an httpx client with the
source's CA, so the three endpoints share one TLS setup. MSAL only speaks ``https://``; an
``http://`` endpoint is allowed on loopback only (the config checks that), and for it
MsalHttp maps the ``https://`` URLs MSAL builds back to ``http://`` (and the other way in the
OpenID configuration it reads), so the emulator can be served without TLS.

:class:`MicrosoftHttp` sends Graph's and Exchange's requests: it waits ``Retry-After`` on
429/503, backs off on other 5xx and dropped connections, renews an expired token once, and
turns Microsoft's error answers into a :class:`SourceError` that says what to fix.

An answer is never trusted to say where to go next: a link in it (``@odata.nextLink``,
``@odata.deltaLink``, MSAL's token endpoint) is followed only within the configured origins
(scheme, host and port), so the bearer token or the client secret never leaves them. A request
is bounded first byte to last (``timeout_seconds``: httpx's own timeout is per read, which a
server sending a byte now and then never reaches) and in size (:data:`MAX_PAGE_BYTES`), and a
chain of pages that comes back to a link it followed is a read that cannot end. Each of these
ends the read as incomplete: nothing is changed and nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
from msal.exceptions import MsalServiceError

from ..config import LOOPBACK, Config, Microsoft365SourceConfig, credential_path, read_secret
from ..errors import ConfigError, SourceError
from ..http import backoff, certificate_problem, retry_after

GRAPH = "graph"
EXCHANGE = "exchange"
"""The two services a source signs in to (one token each)."""
PUBLIC = {GRAPH: "https://graph.microsoft.com", EXCHANGE: "https://outlook.office365.com"}
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
    """Service → the app-only scope to ask for: the endpoint's own resource (a national
    cloud's ``https://graph.microsoft.us/.default``); an endpoint on loopback (the tests'
    emulator) stands for the public cloud."""
    found = {}
    for service, endpoint in ((GRAPH, source.graph_url), (EXCHANGE, source.exchange_url)):
        parts = urlsplit(endpoint)
        origin = PUBLIC[service] if parts.hostname in LOOPBACK else f"https://{parts.netloc}"
        found[service] = f"{origin}/.default"
    return found


BACKOFF = 1.0
"""Seconds before the first retry of a 5xx or a dropped connection (then doubling)."""
MAX_RETRY_AFTER = 300.0
"""A Retry-After longer than this is an outage, not throttling: the read fails."""
MAX_PAGE_BYTES = 64 * 2**20
"""The most one answer may hold once decoded (64 MiB). A real page is far smaller: 999 users
with the selected properties are about 1 MB (the bench's 100,000 users are 30 MB in 100
pages), a page of 999 groups with their ``members@delta`` or of 1000 mailbox permissions a few
MB. Anything near this is no page Graph or Exchange sends, and reading on would only eat the
server's memory."""

PERMISSIONS_HELP = (
    "In the Entra admin center, App registrations → {app} → API permissions: add Microsoft "
    "Graph → Application permissions → User.Read.All and GroupMember.Read.All, then "
    "'Grant admin consent' (README: 'Microsoft 365: the app registration')."
)
EXCHANGE_PERMISSION_HELP = (
    "Add Office 365 Exchange Online → Application permissions → Exchange.ManageAsApp to the "
    "app registration {app} and grant admin consent (README: 'Microsoft 365: the app "
    "registration'), or set shared_mailboxes = false."
)
EXCHANGE_ROLE_HELP = (
    "Assign an Exchange role to the app {app}: Entra admin center → Roles and admins → "
    "Exchange Recipient Administrator → Add assignments → the app (or a custom Exchange role "
    "group with View-Only Recipients), then wait up to an hour; or set shared_mailboxes = false."
)


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


@dataclass(frozen=True, slots=True)
class Certificate:
    private_key: str
    """PEM, unencrypted (decrypted here when it had a password)."""
    certificate: str
    """PEM of the certificate (sent as ``x5c`` so Entra can match it)."""
    thumbprint: str
    """SHA-1, upper-case hex: what the Entra admin center shows for the uploaded certificate."""
    expires: float


def load_certificate(path: Path, password: str | None, where: str) -> Certificate:
    """A PEM (key and certificate) or PFX file, checked and made into PEM text.

    Raises:
        ConfigError: naming the file and what is wrong with it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
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
    return Certificate(
        private_key,
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert.fingerprint(hashes.SHA1()).hex().upper(),
        cert.not_valid_after_utc.timestamp(),
    )


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
        found = load_certificate(credential_path(source.certificate_file) or path, password, where)
        return {"private_key": found.private_key, "public_certificate": found.certificate}
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
        parts = urlsplit(authority_url)
        self.plain = parts.netloc if parts.scheme == "http" else None
        """The loopback host:port served over plain http, if any."""
        self.authority_url = authority_url
        self.origin = origin(authority_url)
        self.name = name

    def _wire(self, url: str) -> str:
        if self.plain and url.startswith(f"https://{self.plain}/"):
            url = "http://" + url[len("https://") :]
        if origin(url) != self.origin:
            raise SourceError(
                f"Source {self.name!r}: the sign-in service's answer sends zsync to "
                f"{origin(url) or url[:80]!r}, outside authority_url's origin {self.origin}; "
                "zsync did not go there and sent it no credential, and nothing was changed. "
                "Check authority_url and tenant_id, and any proxy that may rewrite the answers."
            )
        return url

    def _answer(self, response: httpx.Response) -> _Answer:
        text = response.text
        if self.plain:
            text = text.replace(f"http://{self.plain}/", f"https://{self.plain}/")
        return _Answer(response, text)

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
            parts = urlsplit(self.source.authority_url)
            authority = f"https://{parts.netloc}{parts.path}/{self.source.tenant_id}"
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


# --- Graph and Exchange ----------------------------------------------------------------------


class MicrosoftHttp:
    """Paged reads from Graph and Exchange with retries, tokens and explained errors."""

    def __init__(self, source: Microsoft365SourceConfig, sign_in: SignIn) -> None:
        self.source = source
        self.sign_in = sign_in
        self.client = httpx.AsyncClient(
            verify=sign_in.context,
            timeout=source.timeout_seconds,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self.requests = 0
        self.origins = {GRAPH: origin(source.graph_url), EXCHANGE: origin(source.exchange_url)}
        """Service → the only origin its requests (and so its token) may go to."""
        self._gates = {
            GRAPH: asyncio.Semaphore(source.graph_concurrency),
            EXCHANGE: asyncio.Semaphore(source.exchange_concurrency),
        }
        """At most this many requests on their way per service: more would be throttled."""

    async def aclose(self) -> None:
        await self.client.aclose()

    async def pages(
        self,
        what: str,
        url: str,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        keep: list[bytes] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each page of a paged read, following ``@odata.nextLink`` as is to the end;
        ``keep`` gets each page's body as it came (what the mirror stores).

        Raises:
            SourceError: a page could not be read (after the retries), a link leaves the
                service's origin, or the chain comes back to a link it followed: the read
                is incomplete.
        """
        followed = {str(httpx.URL(url, params=params))}
        read = 0

        def next_page(link: object) -> str:
            """The link to the next page, if it may be followed."""
            link = self.follow(what, "@odata.nextLink", link, scope)
            if link in followed:
                raise SourceError(
                    f"Source {self.source.name!r}: {what}: page {read} of {_host(url)} links "
                    f"back to a page already read ({_short(link)}): the pages go round in a "
                    "loop and would never end. The read is incomplete, so nothing was changed "
                    "and nothing was stored; run again later, and if it repeats, report it to "
                    "Microsoft with the time of the run."
                )
            followed.add(link)
            return link

        async def fetch(at: str, first: bool) -> bytes:
            return await self._fetch(
                what, at, scope=scope, params=params if first else None, headers=headers, body=body
            )

        # the next page is asked for as soon as its link is found in this one's last bytes,
        # before this one is decoded: decoding 999 users overlaps the next round trip
        pending: asyncio.Future[bytes] | None = asyncio.ensure_future(fetch(url, True))
        try:
            while pending is not None:
                content = await pending
                pending = None
                read += 1
                ahead = _next_link(content)
                if ahead is not None:
                    pending = asyncio.ensure_future(fetch(next_page(ahead), False))
                    await asyncio.sleep(0)  # let it send before this page is decoded
                page = self._decode(what, url, content)
                following = page.get("@odata.nextLink")
                if following != ahead:  # not where it was looked for: follow what was decoded
                    if pending is not None:
                        pending.cancel()
                    pending = None
                    if following is not None:
                        pending = asyncio.ensure_future(fetch(next_page(following), False))
                if keep is not None:
                    keep.append(content)
                yield page
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def request(
        self,
        what: str,
        url: str,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request's JSON answer (retried as :meth:`_fetch` says)."""
        content = await self._fetch(
            what, url, scope=scope, params=params, headers=headers, body=body
        )
        return self._decode(what, url, content)

    def follow(self, what: str, name: str, link: object, scope: str) -> str:
        """``link`` (an answer's ``name``, e.g. ``@odata.deltaLink``) if zsync may follow it
        with the token of ``scope``: an absolute URL at that service's configured origin.

        Raises:
            SourceError: anything else; the read is incomplete (the link is neither followed
                nor kept, so no token reaches another host and no stored link leads there).
        """
        expected = self.origins[scope]
        found = origin(link) if isinstance(link, str) else None
        if found is not None and found == expected:
            assert isinstance(link, str)
            return link
        key = "graph_url" if scope == GRAPH else "exchange_url"
        shown = found or (f"{link[:80]!r}" if isinstance(link, str) else type(link).__name__)
        raise SourceError(
            f"Source {self.source.name!r}: {what}: the answer's {name} leads to {shown}, "
            f"outside the configured origin {expected} ({key}). zsync did not follow it and "
            "sent it no token; the read is incomplete, so nothing was changed and nothing was "
            f"stored. Check {key} (the cloud the tenant lives in) and whether a proxy between "
            "this server and Microsoft rewrites the answers, then run again."
        )

    def _decode(self, what: str, url: str, content: bytes) -> dict[str, Any]:
        try:
            page = json.loads(content)
        except ValueError:
            page = None
        if not isinstance(page, dict):
            raise SourceError(
                f"Source {self.source.name!r}: {what}: {_host(url)} answered 200 with "
                "something that is not a JSON object; nothing was changed."
            )
        return page

    async def _fetch(
        self,
        what: str,
        url: str,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> bytes:
        """One request's body, with retries (429/503 after ``Retry-After``, other 5xx and
        dropped connections with back-off), a renewed token when Graph says it expired, and
        every refusal explained."""
        self.follow(what, "URL", url, scope)  # never a token outside the service's origin
        renewed = renew = False
        attempt = 0
        limit = self.source.timeout_seconds
        while True:
            self.requests += 1
            try:
                async with self._gates[scope]:
                    # the token is taken once a slot is free: a wait must not outlive it
                    token = await self.sign_in.token(scope, renew=renew)
                    renew = False
                    send = {
                        "Authorization": f"Bearer {token}",
                        "Accept": "application/json",
                        **(headers or {}),
                    }
                    async with asyncio.timeout(limit):  # first byte to last
                        response, content = await self._exchange(what, url, params, send, body)
            except TimeoutError:
                if attempt >= self.source.max_retries:
                    raise SourceError(
                        f"Source {self.source.name!r}: {what}: {_host(url)} did not send its "
                        f"whole answer within timeout_seconds = {limit:g} s (first byte to "
                        f"last), {attempt + 1} attempts. The read is incomplete, so nothing was "
                        "changed; check the network and any proxy, or raise timeout_seconds if "
                        "the service is only slow."
                    ) from None
                await asyncio.sleep(backoff(BACKOFF, attempt))
                attempt += 1
                continue
            except httpx.TransportError as dropped:
                if certificate_problem(dropped):
                    raise SourceError(
                        f"Source {self.source.name!r}: {what}: the TLS certificate of "
                        f"{_host(url)} could not be verified ({dropped}). Behind a "
                        "TLS-inspecting proxy, set ca_file to its CA bundle; nothing was changed."
                    ) from None
                if attempt >= self.source.max_retries:
                    raise SourceError(
                        f"Source {self.source.name!r}: {what}: no answer from {_host(url)} after "
                        f"{attempt + 1} attempts ({dropped!r}). Check the network, any proxy and "
                        "ca_file; nothing was changed."
                    ) from None
                await asyncio.sleep(backoff(BACKOFF, attempt))
                attempt += 1
                continue
            status = response.status_code
            if status == 200:
                return content
            error = _error_of(response, content)
            if status == 410:
                raise DeltaExpired(
                    f"Source {self.source.name!r}: {what}: the delta link has expired "
                    f"({error.code or status}); everything is read again."
                )
            if status == 401 and "expired" in error.message.lower() and not renewed:
                renewed = renew = True
                continue
            if status in (429, 503) or status >= 500:
                wait = retry_after(response)
                if attempt >= self.source.max_retries or (wait or 0) > MAX_RETRY_AFTER:
                    raise SourceError(
                        f"Source {self.source.name!r}: {what}: {_host(url)} answered {status} "
                        f"{error.code or ''} {error.message!r} after {attempt + 1} attempts; the read "
                        "is incomplete, so nothing was changed. Run again later."
                    )
                await asyncio.sleep(wait if wait is not None else backoff(BACKOFF, attempt))
                attempt += 1
                continue
            refusal = BadRequest if status == 400 else SourceError
            raise refusal(self.explain(what, url, status, error))

    async def _exchange(
        self,
        what: str,
        url: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        body: dict[str, Any] | None,
    ) -> tuple[httpx.Response, bytes]:
        """One request and its whole body (at most :data:`MAX_PAGE_BYTES`, decoded)."""
        method = "GET" if body is None else "POST"
        async with self.client.stream(
            method, url, params=params, headers=headers, json=body
        ) as response:
            declared = response.headers.get("Content-Length", "")
            too_big = declared.isdigit() and int(declared) > MAX_PAGE_BYTES
            chunks: list[bytes] = []
            size = 0
            if not too_big:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_PAGE_BYTES:
                        too_big = True
                        break
                    chunks.append(chunk)
            if too_big:
                raise SourceError(
                    f"Source {self.source.name!r}: {what}: {_host(url)} sent an answer of more "
                    f"than {MAX_PAGE_BYTES // 2**20} MiB, far more than any page of Graph or "
                    "Exchange holds; it was not read. The read is incomplete, so nothing was "
                    "changed; check whether a proxy between this server and Microsoft alters "
                    "the answers, then run again."
                )
            return response, b"".join(chunks)

    def explain(self, what: str, url: str, status: int, error: _Error) -> str:
        app = self.source.client_id
        head = f"Source {self.source.name!r}: {what}: {_host(url)} answered {status}"
        said = f"{error.code}: {error.message}" if error.code else error.message
        exchange = "/adminapi/" in url
        if exchange and status == 401:
            return f"{head} ({said}). {EXCHANGE_PERMISSION_HELP.format(app=app)}"
        if exchange and status == 403:
            return f"{head} ({said}). {EXCHANGE_ROLE_HELP.format(app=app)}"
        if status == 403 or error.code == "Authorization_RequestDenied":
            return (
                f"{head} ({said}): the app lacks a permission. {PERMISSIONS_HELP.format(app=app)}"
            )
        if status == 401:
            return f"{head} ({said}). Check tenant_id, and that graph_url is the cloud the app lives in."
        if status == 400 and "filter" in error.message.lower() and self.source.user_filter:
            return f"{head} ({said}). Check user_filter."
        return f"{head} ({said}). Nothing was changed."


class DeltaExpired(SourceError):
    """Graph no longer knows a delta link (410): the source reads everything instead."""


class BadRequest(SourceError):
    """The service refused the request as such (400): asking again will not help."""


@dataclass(frozen=True, slots=True)
class _Error:
    code: str
    message: str


def _error_of(response: httpx.Response, content: bytes) -> _Error:
    """Graph's ``{"error": {"code", "message"}}``, or the text Exchange or a proxy sent."""
    try:
        data = json.loads(content)
    except ValueError:
        text = content.decode(response.charset_encoding or "utf-8", errors="replace")
        return _Error("", text.strip()[:300] or response.reason_phrase)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return _Error(str(error.get("code") or ""), str(error.get("message") or "").strip())
    return _Error("", json.dumps(data)[:300])


_NEXT_LINK = re.compile(rb'"@odata\.nextLink"\s*:\s*("(?:[^"\\]|\\.)*")')


def _next_link(content: bytes) -> str | None:
    """The ``@odata.nextLink`` of a page, found in its last bytes (where Graph and Exchange
    put it) without decoding the page; None when not there."""
    found = _NEXT_LINK.search(content, max(0, len(content) - 4096))
    if found is None:
        return None
    link = json.loads(found.group(1))
    return link if isinstance(link, str) else None


def _short(url: str) -> str:
    """A link as a message shows it: its origin and path (its query is a long opaque token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
