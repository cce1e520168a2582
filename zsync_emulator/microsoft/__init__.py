"""Microsoft 365 as an app-only client meets it: Entra's token endpoint, Graph v1.0 and the
Exchange Online REST admin API, on one loopback server.

Built from Microsoft's documented shapes (../shared/docs/microsoft365.md). It is a witness,
not a friend: where the documentation is silent it takes the stricter behaviour, marked
*(silent)* in the module that serves it:

- :mod:`.tenant`: the tenant (users, groups, apps, mailboxes), its change log and its knobs
  (latency, throttling, faults);
- :mod:`.service`: what every request meets (the gate, the bearer token, Graph's errors);
- :mod:`.signin`: Entra's OpenID configuration and token endpoint;
- :mod:`.graph`: users, their delta and the groups' delta; :mod:`.delta` builds a round,
  :mod:`.filters` reads ``$filter``, :mod:`.pages` cuts answers into pages;
- :mod:`.exchange`: ``InvokeCommand``, mailboxes and their permissions.

Each handler is a module-level function of the app's :class:`~.service.Served` (the tenant,
the key its tokens are signed with) and the request; :func:`create_app` routes to them.

    tenant = Tenant()
    tenant.register_app(client_id, secret="s3cret")
    tenant.add_user("ann@example.org")
    app = create_app(tenant)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import exchange, graph, signin
from .service import Served
from .tenant import AppRegistration, Tenant, seed_tenant

__all__ = ["AppRegistration", "Tenant", "create_app", "seed_tenant"]

Handler = Callable[[Served, Request], Awaitable[Response]]
"""A module-level handler: the app's :class:`~.service.Served` and the request."""


def create_app(tenant: Tenant) -> Starlette:
    """The ASGI app serving ``tenant``: sign-in, Graph and Exchange on one server."""
    served = Served(tenant)

    def route(path: str, handler: Handler, methods: list[str] | None = None) -> Route:
        return Route(path, partial(handler, served), methods=methods)

    return Starlette(
        routes=[
            route("/{tenant}/v2.0/.well-known/openid-configuration", signin.openid_configuration),
            route("/{tenant}/oauth2/v2.0/token", signin.token, ["POST"]),
            route("/v1.0/users/delta", graph.delta),
            route("/v1.0/groups/delta", graph.delta),
            route("/v1.0/users", graph.users),
            route("/v1.0/organization", graph.organization),
            route("/adminapi/beta/{tenant}/InvokeCommand", exchange.invoke_command, ["POST"]),
            route("/adminapi/beta/{tenant}/Mailbox", exchange.mailbox_list),
            route(
                "/adminapi/beta/{tenant}/Mailbox('{identity}')/MailboxPermission",
                exchange.mailbox_permission,
            ),
        ]
    )
