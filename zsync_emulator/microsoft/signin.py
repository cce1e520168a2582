"""Entra's side of the Microsoft 365 emulator: the tenant's OpenID configuration and its
token endpoint (``/{tenant}/…``).

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: what MSAL reads first; an unknown
  tenant answers 400 ``AADSTS90002``.
- ``POST /{tenant}/oauth2/v2.0/token``, client credentials only, one resource per token
  (``scope=<resource>/.default``). A certificate's ``client_assertion`` is verified against
  the certificates registered for the app (RS256 with ``x5t``, PS256 with ``x5t#S256``), its
  audience must be the token endpoint and it must not have expired. Errors are Entra's:
  ``AADSTS700016`` unknown app (400 ``unauthorized_client``), ``AADSTS7000215`` wrong secret,
  ``AADSTS7000222`` expired secret, ``AADSTS700027`` unknown key or bad signature (401
  ``invalid_client``), ``AADSTS1002012`` a scope that is not ``<resource>/.default`` (400).
- A token carries the application permissions the app was granted admin consent for
  (``roles``); it lasts ``token_lifetime`` seconds (3599).
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .service import RESOURCES, Served
from .tenant import AppRegistration, Tenant


async def openid_configuration(served: Served, request: Request) -> Response:
    """``GET /{tenant}/v2.0/.well-known/openid-configuration``: what MSAL reads first."""
    tenant = served.tenant
    name = request.path_params["tenant"]
    tenant.requests["GET /{tenant}/v2.0/.well-known/openid-configuration"] += 1
    if not known_tenant(tenant, name):
        return entra_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud.",
        )
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "token_endpoint": f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{tenant.tenant_id}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant.tenant_id}/oauth2/v2.0/devicecode",
            "issuer": f"https://login.microsoftonline.com/{tenant.tenant_id}/v2.0",
            "jwks_uri": f"{base}/{tenant.tenant_id}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "tenant_region_scope": "EU",
        }
    )


async def token(served: Served, request: Request) -> Response:
    """``POST /{tenant}/oauth2/v2.0/token``: client credentials, one resource per token."""
    tenant = served.tenant
    tenant.requests["POST /{tenant}/oauth2/v2.0/token"] += 1
    name = request.path_params["tenant"]
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    if not known_tenant(tenant, name):
        return entra_error(400, "invalid_request", 90002, f"Tenant '{name}' not found.")
    if form.get("grant_type") != "client_credentials":
        return entra_error(
            400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )
    client_id = str(form.get("client_id", ""))
    app = tenant.apps.get(client_id)
    if app is None:
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.domain}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant.",
        )
    scope = str(form.get("scope", "")).split()
    resource = scope[0].removesuffix("/.default") if len(scope) == 1 else ""
    if resource not in RESOURCES or not scope[0].endswith("/.default"):
        return entra_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {' '.join(scope)} is not valid. Client credential "
            "flows must have a scope value with /.default suffixed to the resource identifier.",
        )
    endpoint = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    if "client_secret" in form:
        expires = app.secrets.get(str(form["client_secret"]))
        if expires is None:
            return entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        if expires < time.time():
            return entra_error(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client_id}' are expired. Visit the "
                "Azure portal to create new keys for your app.",
            )
    elif "client_assertion" in form:
        problem = verify_assertion(str(form["client_assertion"]), app, endpoint)
        if problem:
            return entra_error(401, "invalid_client", 700027, problem)
    else:
        return entra_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    now = int(time.time())
    claims = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
        "tid": tenant.tenant_id,
        "appid": client_id,
        "roles": sorted(app.roles),
        "iat": now,
        "nbf": now,
        "exp": now + tenant.token_lifetime,
    }
    access = jwt.encode(claims, served.signing_key, algorithm="HS256")
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": tenant.token_lifetime,
            "ext_expires_in": tenant.token_lifetime,
            "access_token": access,
        }
    )


def known_tenant(tenant: Tenant, name: str) -> bool:
    """Whether ``name`` (a GUID, a domain, ``organizations``) is the tenant."""
    return name in (tenant.tenant_id, f"{tenant.domain}", "organizations") or name.endswith(
        ".onmicrosoft.com"
    )


def entra_error(status: int, error: str, code: int, text: str) -> JSONResponse:
    """An error as Entra's token endpoint answers one (``AADSTS<code>: …`` and its codes)."""
    trace = str(uuid.uuid4())
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: "
            f"{uuid.uuid4()} Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
        },
        status_code=status,
    )


def verify_assertion(assertion: str, app: AppRegistration, endpoint: str) -> str | None:
    """Why a client assertion is refused (None: it is good)."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return "The client assertion is not a JWT."
    for pem in app.certificates:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        sha1 = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA1())).decode().rstrip("=")
        sha256 = (
            base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).decode().rstrip("=")
        )
        sent1, sent256 = _b64url(header.get("x5t")), _b64url(header.get("x5t#S256"))
        if sent1 not in (None, sha1) or sent256 not in (None, sha256):
            continue
        if not (header.get("x5t") or header.get("x5t#S256")):
            continue
        try:
            jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=endpoint,
                issuer=app.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return "The client assertion has expired."
        except jwt.InvalidAudienceError:
            return f"The client assertion's audience is not the token endpoint {endpoint}."
        except jwt.PyJWTError as error:
            return f"Client assertion contains an invalid signature. [Reason - {error}]"
        return None
    thumbprint = header.get("x5t#S256") or header.get("x5t") or "(none)"
    return (
        f"The certificate with identifier used to sign the client assertion is not registered on "
        f"application. [Reason - The key was not found., Thumbprint of key used by client: "
        f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
        f"to see configured keys for app Id '{app.client_id}'.]"
    )


def _b64url(value: Any) -> str | None:
    """A thumbprint as base64url without padding (MSAL sends standard base64 with it)."""
    if not isinstance(value, str):
        return None
    return value.rstrip("=").replace("+", "-").replace("/", "_")
