"""What every request to the Microsoft 365 emulator meets: the app serving the tenant, the
gate (counting, concurrency, latency, queued throttling), the bearer token, Graph's errors.

- A token carries the application permissions the app was granted admin consent for
  (``roles``). A bad or expired token: 401 ``InvalidAuthenticationToken``.
- More than ``max_concurrent`` requests at once per app and service: 429 with
  ``Retry-After: 1``; a queued ``throttle`` entry: 429/503 with its ``Retry-After``.
- Errors are Graph's ``{"error": {"code", "message", "innerError": {…}}}``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .tenant import Tenant

GRAPH = "https://graph.microsoft.com"
EXCHANGE = "https://outlook.office365.com"
RESOURCES = (GRAPH, EXCHANGE)
"""The resources a token may be asked for (its audience)."""


@dataclass
class Served:
    """One app serving a tenant: the tenant, the key the app signs its tokens with, and the
    tokens it has checked."""

    tenant: Tenant
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    checked: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(token, resource) → its claims, once its signature and audience were checked (a
    token's lifetime is checked at every use)."""


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error as Graph answers one: ``{"error": {"code", "message", "innerError"}}``."""
    return JSONResponse(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        },
        status_code=status,
        headers=headers,
    )


async def admitted(tenant: Tenant, service: str, key: str) -> Response | None:
    """Counts the request and answers a concurrency overflow or a queued throttle. A
    request is on its way from its arrival to its answer (the added latency included;
    what follows it here never waits)."""
    tenant.requests[key] += 1
    tenant.active[service] += 1
    try:
        if tenant.active[service] > tenant.max_concurrent:
            tenant.overflows[service] += 1
            return graph_error(
                429,
                "TooManyRequests",
                "Too many requests are in progress for this application.",
                {"Retry-After": "1"},
            )
        if tenant.latency:
            await asyncio.sleep(tenant.latency)
        if tenant.throttle:
            status, retry_after = tenant.throttle.popleft()
            code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            return graph_error(
                status,
                code,
                "Too many requests" if status == 429 else "The service is temporarily unavailable.",
                {"Retry-After": str(retry_after)},
            )
        return None
    finally:
        tenant.active[service] -= 1


def bearer(served: Served, request: Request, resource: str) -> dict[str, Any] | JSONResponse:
    """The claims of the request's bearer token for ``resource``, or the 401 Graph answers."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
    known = served.checked.get((header[7:], resource))
    if known is not None and known["exp"] > time.time():
        return known
    try:
        claims = jwt.decode(header[7:], served.signing_key, algorithms=["HS256"], audience=resource)
    except jwt.ExpiredSignatureError:
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        )
    except jwt.InvalidAudienceError:
        return graph_error(401, "InvalidAuthenticationToken", "Invalid audience.")
    except jwt.PyJWTError:
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        )
    if claims.get("tid") != served.tenant.tenant_id:
        return graph_error(401, "InvalidAuthenticationToken", "The token is for another tenant.")
    if len(served.checked) > 1000:
        served.checked.clear()
    served.checked[(header[7:], resource)] = claims
    return claims
