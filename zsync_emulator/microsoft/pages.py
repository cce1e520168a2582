"""Paged answers: skip tokens that carry a read's state, pages cut from a kept answer.

Lists page with ``@odata.nextLink`` (an absolute URL, followed as is) and delta rounds end in
``@odata.deltaLink``. A page holds ``Prefer: odata.maxpagesize`` (delta, Exchange) or ``$top``
(lists) items, at most 999 (Exchange: 1000), **100 when neither is sent** *(silent: Graph's
own default varies)*. An answer's items are kept under a key its links carry; the oldest of
more than ``KEPT_ROUNDS`` (``KEPT_LISTS`` lists of users) are forgotten, and their links
answer 400, as an expired skip token. ``fail_page`` answers 500 to the nth page of a read.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .service import GRAPH, graph_error
from .tenant import Tenant, to_json

MAX_PAGE = 999
DEFAULT_PAGE = 100


def page_of(
    tenant: Tenant,
    items: list[dict[str, Any]],
    offset: int,
    size: int,
    link: Callable[[int], str],
    extra: dict[str, Any],
    done: dict[str, Any],
) -> JSONResponse:
    """The page of ``items`` at ``offset``, encoded with ``extra`` before its ``value``; it
    ends in its nextLink, or ``done`` on the last page."""
    page_number = offset // max(size, 1) + 1
    if tenant.fail_page is not None and page_number == tenant.fail_page:
        return graph_error(500, "UnknownError", "An internal server error occurred.")
    chunk = items[offset : offset + size]
    body: dict[str, Any] = {**extra, "value": chunk}
    if offset + size < len(items):
        body["@odata.nextLink"] = link(offset + size)
    else:
        body.update(done)
    return JSONResponse(body)


def joined_page(
    tenant: Tenant,
    items: list[bytes],
    state: dict[str, Any],
    link: Callable[[int], str],
    context: str,
    done: dict[str, Any],
) -> Response:
    """The page of ``items`` (each one's JSON) at ``state``'s offset and size: joined, not
    encoded again. It ends in its nextLink, or ``done`` on the last page."""
    offset, size = state["o"], state["n"]
    if tenant.fail_page is not None and offset // max(size, 1) + 1 == tenant.fail_page:
        return graph_error(500, "UnknownError", "An internal server error occurred.")
    more = {"@odata.nextLink": link(offset + size)} if offset + size < len(items) else done
    head = to_json({"@odata.context": f"{GRAPH}/v1.0/$metadata#{context}"})[:-1]
    tail = b"".join(b',"' + k.encode() + b'":' + to_json(v) for k, v in more.items())
    value = b",".join(items[offset : offset + size])
    body = b"".join((head, b',"value":[', value, b"]", tail, b"}"))
    return Response(body, media_type="application/json")


def continued(params: Any, kept: dict[str, list[Any]]) -> tuple[dict[str, Any], list[Any] | None]:
    """A next page's state (from its skip token) and its answer's items (None when the
    answer is forgotten, or the token is not one)."""
    state = decode(params["$skiptoken"])
    return state, kept.get(state.get("r", ""))


def page_size(request: Request, limit: int = MAX_PAGE, default: int = DEFAULT_PAGE) -> int:
    """The items a page of this request holds."""
    prefer = request.headers.get("prefer", "")
    found = re.search(r"odata\.maxpagesize=(\d+)", prefer)
    top = request.query_params.get("$top")
    size = int(found.group(1)) if found else int(top) if top and top.isdigit() else default
    return max(1, min(size, limit))


def link(path: str, state: dict[str, Any]) -> Callable[[int], str]:
    """The nextLink of a paged read for the page starting at an offset."""
    return lambda offset: f"{path}?$skiptoken=" + encode({**state, "o": offset})


def encode(state: dict[str, Any]) -> str:
    """A read's state as a skip or delta token."""
    return quote(
        base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()
    )


def decode(token: str) -> dict[str, Any]:
    """A skip or delta token's state ({} for anything else)."""
    try:
        return dict(json.loads(base64.urlsafe_b64decode(unquote(token).encode())))
    except (ValueError, TypeError):
        return {}


def base(request: Request) -> str:
    """Where this server is, as its links name it."""
    return str(request.base_url).rstrip("/")
