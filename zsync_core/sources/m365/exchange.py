"""Exchange Online's shared, room and equipment mailboxes, and each shared one's permissions.

Read through the REST admin API's ``InvokeCommand`` (as Microsoft's ExchangeOnlineManagement
module does): ``Get-Mailbox`` once, then ``Get-MailboxPermission`` for each shared mailbox,
``exchange_concurrency`` at a time. What they become is :func:`.map.map_tenant`'s business.
"""

from __future__ import annotations

from typing import Any

from ...errors import SourceError
from ...model import StepEvent
from ..m365_config import Microsoft365SourceConfig
from .graph import Reader
from .http import side_by_side
from .map import NOT_PEOPLE, SHARED
from .signin import EXCHANGE

EXCHANGE_PAGE = 1000
"""Exchange's largest page (``Prefer: odata.maxpagesize``)."""


def invoke_url(config: Microsoft365SourceConfig) -> str:
    """Where ``InvokeCommand`` is posted for the source's tenant."""
    return f"{config.exchange_url}/adminapi/beta/{config.tenant_id}/InvokeCommand"


def cmdlet(name: str, **parameters: Any) -> dict[str, Any]:
    """A cmdlet as ``InvokeCommand``'s body."""
    return {"CmdletInput": {"CmdletName": name, "Parameters": parameters}}


async def mailboxes(
    reader: Reader,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Exchange's shared, room and equipment mailboxes, and each shared one's permissions
    (by the mailbox's ``ExternalDirectoryObjectId``)."""
    http, emit = reader.http, reader.emit
    step = f"{reader.name}: read shared mailboxes"
    emit(StepEvent(step, step, "running"))
    url = invoke_url(reader.config)
    prefer = {"Prefer": f"odata.maxpagesize={EXCHANGE_PAGE}"}
    found: list[dict[str, Any]] = []
    permissions: dict[str, list[dict[str, Any]]] = {}
    try:
        async for page in http.pages(
            "read mailboxes (Get-Mailbox)",
            url,
            scope=EXCHANGE,
            headers=prefer,
            body=cmdlet(
                "Get-Mailbox",
                RecipientTypeDetails=sorted(NOT_PEOPLE - {"SchedulingMailbox"}),
                ResultSize="Unlimited",
            ),
        ):
            found += page.get("value", ())
            emit(StepEvent(step, step, "running", len(found)))
        shared = [m for m in found if m.get("RecipientTypeDetails") == SHARED]

        async def permissions_of(mailbox: dict[str, Any]) -> None:
            identity = mailbox.get("PrimarySmtpAddress") or mailbox.get("ExternalDirectoryObjectId")
            entries: list[dict[str, Any]] = []
            async for page in http.pages(
                f"read the permissions of {identity} (Get-MailboxPermission)",
                url,
                scope=EXCHANGE,
                headers=prefer,
                body=cmdlet("Get-MailboxPermission", Identity=identity),
            ):
                entries += page.get("value", ())
            permissions[str(mailbox.get("ExternalDirectoryObjectId"))] = entries
            emit(StepEvent(step, step, "running", len(permissions), len(shared), "permissions"))

        await side_by_side(*(permissions_of(m) for m in shared))
    except SourceError as error:
        emit(StepEvent(step, step, "failed", detail=str(error)))
        raise
    emit(StepEvent(step, step, "done", len(shared), len(shared)))
    return found, permissions
