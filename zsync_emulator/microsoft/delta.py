"""Delta rounds: what a tenant's change log says changed since a round's version.

A round lists every object (initial) or what changed since its token: a changed object with
``id`` and only the changed selected properties, a deleted one as ``{"id", "@removed":
{"reason": "deleted"}}``; a group's ``members@delta`` lists members added (``@odata.type``,
``id``) and removed (``@removed``). A group's members come at most ``members_per_item``
(500) per item: the same group appears again on a later page with the rest *(silent: Graph
documents that it may split, not where)*.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tenant import Tenant


def round_objects(
    tenant: Tenant, kind: str, select: set[str], since: int | None
) -> list[dict[str, Any]]:
    """A delta round's objects (called with the lock held)."""
    objects = tenant.users if kind == "user" else tenant.groups
    items: list[dict[str, Any]] = []
    if since is None:
        ids: Any = objects
    else:
        tail = tenant.touched[bisect.bisect_right(tenant.touched, (since, "~", "~")) :]
        ids = dict.fromkeys(i for _, k, i in tail if k == kind and i in objects)
    for object_id in ids:
        obj = objects[object_id]
        if since is None:
            item = {k: v for k, v in obj.items() if k in select or k == "id"}
        else:
            changed = tenant.changed_at.get((kind, object_id), {})
            names = [k for k, v in changed.items() if v > since and (k in select)]
            if not names:
                item = None
            else:
                item = {"id": object_id, **{k: obj.get(k) for k in names}}
        if kind == "group" and "members" in select:
            members = members_delta(tenant, object_id, since)
            if members:
                item = item or {"id": object_id}
                chunk = tenant.members_per_item
                for start in range(0, len(members), chunk):
                    items.append({**item, "members@delta": members[start : start + chunk]})
                continue
        if item is not None:
            items.append(item)
    if since is not None:
        for (removed_kind, object_id), at in tenant.removed_at.items():
            if removed_kind == kind and at > since:
                items.append({"id": object_id, "@removed": {"reason": "deleted"}})
    return items


def members_delta(tenant: Tenant, group_id: str, since: int | None) -> list[dict[str, Any]]:
    """A group's ``members@delta``: every member (initial), or those added or removed since."""
    current = tenant.members.get(group_id, [])
    if since is None:
        return [member_ref(tenant, m) for m in current]
    touched = {m for at, m in tenant.member_log.get(group_id, ()) if at > since}
    present = set(current)
    return [
        member_ref(tenant, m)
        if m in present
        else {**member_ref(tenant, m), "@removed": {"reason": "deleted"}}
        for m in sorted(touched)
    ]


def member_ref(tenant: Tenant, member_id: str) -> dict[str, Any]:
    """A member as ``members@delta`` names it."""
    kind = "group" if member_id in tenant.groups else "user"
    return {"@odata.type": f"#microsoft.graph.{kind}", "id": member_id}
