"""Exchange Online's side of the Microsoft 365 emulator (``/adminapi/beta/{tenant}``).

- ``POST …/InvokeCommand`` with ``{"CmdletInput": {"CmdletName", "Parameters"}}``:
  ``Get-Mailbox`` (``RecipientTypeDetails``, ``ResultSize``, ``Identity``) and
  ``Get-MailboxPermission`` (``Identity``); results in ``value``, more through
  ``@odata.nextLink`` (POST the same body to it), ``Prefer: odata.maxpagesize`` (default 100,
  at most 1000). ``GET …/Mailbox`` and ``…/Mailbox('<base64 identity>')/MailboxPermission
  ?isEncoded=true``, as Cloud Sync reads them.
- Without ``Exchange.ManageAsApp`` in the token: 401; with it but without an Exchange role
  assigned to the app: 403 naming the role *(silent: the exact texts are unknown)*. An
  unknown cmdlet or identity: 400 with Exchange's error text *(silent)*.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .pages import base, continued, link, page_of, page_size
from .service import EXCHANGE, Served, admitted, bearer, graph_error
from .tenant import MANAGE_AS_APP, Tenant


def exchange_claims(served: Served, request: Request) -> dict[str, Any] | JSONResponse:
    """The Exchange token's claims, or why Exchange refuses the request (401, 403)."""
    tenant = served.tenant
    claims = bearer(served, request, EXCHANGE)
    if isinstance(claims, JSONResponse):
        return claims
    if request.path_params["tenant"] not in (tenant.tenant_id, tenant.domain):
        return graph_error(401, "Unauthorized", "The tenant in the URL is not the token's.")
    if MANAGE_AS_APP not in claims["roles"]:
        return graph_error(
            401,
            "Unauthorized",
            "The application does not have the Exchange.ManageAsApp permission (consent).",
        )
    app = tenant.apps.get(claims["appid"])
    if app is None or not app.exchange_role:
        return graph_error(
            403,
            "Forbidden",
            "The role assigned to the application isn't supported in this scenario: no "
            "Exchange role (e.g. Exchange Recipient Administrator) is assigned to the app.",
        )
    return claims


def mailbox_by(tenant: Tenant, identity: str) -> dict[str, Any] | None:
    """The mailbox an identity names (its id, address, name, GUID or UPN)."""
    wanted = identity.lower()
    for mailbox in tenant.mailboxes.values():
        if wanted in (
            mailbox["ExternalDirectoryObjectId"].lower(),
            mailbox["PrimarySmtpAddress"].lower(),
            mailbox["Identity"].lower(),
            mailbox["Guid"].lower(),
            mailbox["UserPrincipalName"].lower(),
        ):
            return mailbox
    return None


def exchange_error(status: int, text: str) -> JSONResponse:
    """An error as Exchange answers one *(silent: the exact shape is unknown)*."""
    return JSONResponse(
        {
            "error": {
                "code": "BadRequest",
                "message": text,
                "details": [{"code": "Error", "message": text}],
            }
        },
        status_code=status,
    )


def cmdlet_result(
    tenant: Tenant, name: str, parameters: dict[str, Any]
) -> list[dict[str, Any]] | JSONResponse:
    """What a cmdlet returns, or Exchange's 400."""
    if name == "Get-Mailbox":
        identity = parameters.get("Identity")
        if identity:
            found = mailbox_by(tenant, str(identity))
            if found is None:
                return exchange_error(
                    400,
                    f"|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '{identity}' couldn't be found.",
                )
            return [found]
        kinds = parameters.get("RecipientTypeDetails")
        wanted = {kinds} if isinstance(kinds, str) else set(kinds or [])
        wanted = {k.strip() for item in wanted for k in item.split(",")}
        with tenant.lock:
            return [
                m
                for m in tenant.mailboxes.values()
                if not wanted or m["RecipientTypeDetails"] in wanted
            ]
    if name == "Get-MailboxPermission":
        identity = str(parameters.get("Identity", ""))
        found = mailbox_by(tenant, identity)
        if found is None:
            return exchange_error(
                400,
                f"|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '{identity}' couldn't be found.",
            )
        return list(tenant.permissions.get(found["ExternalDirectoryObjectId"], []))
    return exchange_error(
        400, f"The term '{name}' is not recognized as a cmdlet available to this application."
    )


async def invoke_command(served: Served, request: Request) -> Response:
    """``POST …/InvokeCommand``: a cmdlet's first page, or (the same body) its next."""
    tenant = served.tenant
    refused = await admitted(tenant, "exchange", "POST /adminapi/beta/{tenant}/InvokeCommand")
    if refused:
        return refused
    claims = exchange_claims(served, request)
    if isinstance(claims, JSONResponse):
        return claims
    try:
        body = json.loads(await request.body())
        cmdlet = body["CmdletInput"]
        name, parameters = cmdlet["CmdletName"], cmdlet.get("Parameters", {})
    except (ValueError, KeyError, TypeError):
        return exchange_error(400, "The request body is not a CmdletInput.")
    path = f"{base(request)}{request.url.path}"
    if "$skiptoken" in request.query_params:
        state, known = continued(request.query_params, tenant.rounds)
        if known is None:
            return exchange_error(400, "The page link is no longer valid.")
        items = known
    else:
        result = cmdlet_result(tenant, name, parameters)
        if isinstance(result, JSONResponse):
            return result
        items = result
        state = {"r": tenant.start_round(items), "o": 0, "n": page_size(request, 1000)}
    return page_of(
        tenant,
        items,
        state["o"],
        state["n"],
        link(path, state),
        {
            "@odata.context": f"{EXCHANGE}/adminapi/beta/{tenant.tenant_id}/$metadata#Collection(Exchange.GenericHashTable)"
        },
        {},
    )


async def mailbox_list(served: Served, request: Request) -> Response:
    """``GET …/Mailbox``: every mailbox, as Cloud Sync reads them."""
    tenant = served.tenant
    refused = await admitted(tenant, "exchange", "GET /adminapi/beta/{tenant}/Mailbox")
    if refused:
        return refused
    claims = exchange_claims(served, request)
    if isinstance(claims, JSONResponse):
        return claims
    with tenant.lock:
        items = list(tenant.mailboxes.values())
    return JSONResponse({"value": items})


async def mailbox_permission(served: Served, request: Request) -> Response:
    """``GET …/Mailbox('<base64 identity>')/MailboxPermission?isEncoded=true``."""
    tenant = served.tenant
    refused = await admitted(
        tenant, "exchange", "GET /adminapi/beta/{tenant}/Mailbox/MailboxPermission"
    )
    if refused:
        return refused
    claims = exchange_claims(served, request)
    if isinstance(claims, JSONResponse):
        return claims
    identity = request.path_params["identity"]
    if request.query_params.get("isEncoded") == "true":
        identity = base64.b64decode(unquote(identity)).decode("utf-8")
    result = cmdlet_result(tenant, "Get-MailboxPermission", {"Identity": identity})
    if isinstance(result, JSONResponse):
        return result
    return JSONResponse({"value": result})
