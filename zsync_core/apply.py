"""Apply a plan to Zivver: users before functional accounts, paced, one event per change.

A failed change is a result, not a crash: it is journaled with Zivver's answer and an
explanation, and the run goes on. Every change is journaled before it is sent and after.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreError
from .model import Action, Change, ChangeEvent, Kind, ZivverAccount
from .store import Store
from .zivver import scim
from .zivver.client import Outcome, ZivverClient


@dataclass(slots=True)
class ApplyResult:
    succeeded: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    cancelled: int = 0
    stopped: str | None = None
    """Why the run stopped early (the journal could not be written), if it did."""

    @property
    def done(self) -> int:
        return len(self.succeeded) + len(self.failed)


class Applier:
    """Sends the changes of one run; knows the organization as it was read."""

    def __init__(
        self,
        client: ZivverClient,
        store: Store,
        run_id: int,
        accounts: Iterable[ZivverAccount],
        user_ids: dict[str, str],
        emit: Callable[[ChangeEvent], None],
    ) -> None:
        self.client = client
        self.store = store
        self.run_id = run_id
        self.by_id = {account.zivver_id: account for account in accounts}
        self.user_ids = dict(user_ids)
        self.emit = emit

    async def run(
        self,
        changes: list[Change],
        cancel: asyncio.Event | None = None,
        concurrency: int = 1,
    ) -> ApplyResult:
        """Send ``changes``: users first, then functional accounts (their members need user ids).

        Up to ``concurrency`` requests are on their way at once (the pacer still keeps to
        Zivver's rate limit). Changes that touch a common address go one after the other, in
        plan order, so that a moved alias or a freed address never races.
        """
        result = ApplyResult()
        total = len(changes)
        stop = asyncio.Event()
        users = [c for c in changes if c.action.kind is Kind.PERSONAL]
        functional = [c for c in changes if c.action.kind is not Kind.PERSONAL]
        if cancel is None:
            cancel = asyncio.Event()
        for phase in (users, functional):
            lanes = deque(_lanes(phase))
            workers = (
                self._work(lanes, result, total, stop, cancel) for _ in range(max(1, concurrency))
            )
            await asyncio.gather(*workers)
            if stop.is_set() or cancel.is_set():
                break
        if result.stopped is None:
            done = {c.id for c in result.succeeded} | {c.id for c, _ in result.failed}
            rest = [c for c in changes if c.id not in done]
            for change in rest:
                self.store.journal(self.run_id, change, "cancelled")
            result.cancelled = len(rest)
        return result

    async def _work(
        self,
        lanes: deque[list[Change]],
        result: ApplyResult,
        total: int,
        stop: asyncio.Event,
        cancel: asyncio.Event,
    ) -> None:
        while lanes and not stop.is_set():
            for change in lanes.popleft():
                if stop.is_set() or cancel.is_set():
                    return
                await self._one(change, result, total, stop)

    async def _one(
        self, change: Change, result: ApplyResult, total: int, stop: asyncio.Event
    ) -> None:
        try:
            self.store.journal(self.run_id, change, "sending")
        except StoreError as error:  # never send a change that is not journaled
            result.stopped = str(error)
            stop.set()
            return
        try:
            outcome = await self._send(change)
        except Exception as error:  # a bug must not lose the journal: record and go on
            outcome = Outcome(False, None, {}, None, 1, f"Internal error while sending: {error!r}")
        if outcome.ok:
            self._remember(change, outcome)
            result.succeeded.append(change)
            state = "succeeded"
        else:
            result.failed.append((change, outcome.error or "failed"))
            state = "failed"
        try:
            self.store.journal(
                self.run_id,
                change,
                state,
                error=outcome.error,
                request=outcome.request,
                response=outcome.response,
                http_status=outcome.status,
                attempts=outcome.attempts,
            )
        except StoreError as error:
            result.stopped = str(error)
            stop.set()
            return
        self.emit(
            ChangeEvent(change, outcome.ok, outcome.error, result.done, total, len(result.failed))
        )

    # --- one change --------------------------------------------------------------------------------

    async def _send(self, change: Change) -> Outcome:
        action = change.action
        if action is Action.CREATE_USER:
            after = change.after
            body = scim.user_body(
                after["email"],
                after.get("display_name") or after["email"],
                True,
                after.get("aliases", []),
                after.get("delegates", []),
                after.get("division"),
                change.sso_key,
            )
            return await self.client.send(
                "POST",
                "/Users",
                body,
                before_retry=self._lookup("Users", "userName", after["email"]),
            )
        if action is Action.CREATE_FUNCTIONAL:
            after = change.after
            members, missing = self._member_ids(after.get("delegates", []))
            body = scim.group_body(
                after["email"],
                after.get("display_name") or after["email"],
                after.get("aliases", []),
                members,
            )
            outcome = await self.client.send(
                "POST",
                "/Groups",
                body,
                before_retry=self._lookup("Groups", "externalId", after["email"]),
            )
            return _note_missing(outcome, missing)
        assert change.zivver_id is not None
        current = self.by_id[change.zivver_id]
        if action in (Action.DELETE_USER, Action.DELETE_FUNCTIONAL):
            path = "/Users/" if action is Action.DELETE_USER else "/Groups/"
            return await self.client.send("DELETE", path + change.zivver_id)
        if current.kind is Kind.PERSONAL:
            state = _merged(current, change.after)
            body = scim.user_body(
                state["email"],
                state["display_name"],
                state["active"],
                state["aliases"],
                state["delegates"],
                state["division"],
                change.sso_key,
            )
            return await self.client.send("PUT", f"/Users/{change.zivver_id}", body)
        return await self._update_group(change, current)

    async def _update_group(self, change: Change, current: ZivverAccount) -> Outcome:
        path = f"/Groups/{change.zivver_id}"
        state = _merged(current, change.after)
        members, missing = self._member_ids(state["delegates"])
        if missing:
            # sending a shorter list would take access away from people who should keep it
            return Outcome(
                False,
                None,
                {"method": "PUT/PATCH", "url": path, "body": None},
                None,
                0,
                f"Not sent: delegate(s) {', '.join(missing)} have no Zivver account yet (their own "
                "change failed or was held), so the delegates are left as they are. The next run retries.",
            )
        others = set(change.after) - {"delegates"}
        if not members and current.delegates:
            # Zivver ignores an empty members list in a PUT: clearing needs a PATCH
            if others:
                outcome = await self.client.send(
                    "PUT",
                    path,
                    scim.group_body(state["email"], state["display_name"], state["aliases"], []),
                )
                if not outcome.ok:
                    return outcome
            return await self.client.send("PATCH", path, scim.clear_members_body())
        if not others:
            return await self.client.send("PATCH", path, scim.replace_members_body(members))
        body = scim.group_body(state["email"], state["display_name"], state["aliases"], members)
        return await self.client.send("PUT", path, body)

    def _member_ids(self, delegates: list[str]) -> tuple[list[str], list[str]]:
        ids: list[str] = []
        missing: list[str] = []
        for address in delegates:
            user_id = self.user_ids.get(address)
            if user_id:
                ids.append(user_id)
            else:
                missing.append(address)
        return sorted(ids), missing

    def _lookup(self, kind: str, attribute: str, value: str) -> Callable[[], Any]:
        async def look() -> Outcome | None:
            found = await self.client.find(kind, attribute, value)
            if found is None:
                return None
            return Outcome(
                True,
                200,
                {},
                {
                    "status": 200,
                    "body": found,
                    "note": "found after a lost answer; not created twice",
                },
                1,
                body=found,
            )

        return look

    def _remember(self, change: Change, outcome: Outcome) -> None:
        action = change.action
        if action in (Action.DELETE_USER, Action.DELETE_FUNCTIONAL):
            if change.source_id:
                self.store.forget_account(change.source_id)
            return
        zivver_id = change.zivver_id
        if action in (Action.CREATE_USER, Action.CREATE_FUNCTIONAL):
            zivver_id = str((outcome.body or {}).get("id") or "") or None
        if zivver_id and action.kind is Kind.PERSONAL:
            self.user_ids[change.email] = zivver_id  # created or renamed: delegations find it
        if zivver_id and change.source_id:
            kind = Kind.PERSONAL if action.kind is Kind.PERSONAL else Kind.FUNCTIONAL
            self.store.remember_account(
                change.source_id, kind.value, zivver_id, change.email, change.source, change.sso_key
            )


def _addresses(change: Change) -> set[str]:
    found = {change.email}
    for fields in (change.before, change.after):
        for key in ("email", "aliases"):
            value = fields.get(key)
            if isinstance(value, str):
                found.add(value)
            elif isinstance(value, list | tuple | set | frozenset):
                found.update(str(v) for v in value)
    return found


def _lanes(changes: list[Change]) -> list[list[Change]]:
    """Changes grouped so that two changes touching one address share a lane (plan order kept)."""
    parent = list(range(len(changes)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    owner: dict[str, int] = {}
    for index, change in enumerate(changes):
        for address in _addresses(change):
            other = owner.setdefault(address, index)
            if other != index:
                parent[root(index)] = root(other)
    lanes: dict[int, list[Change]] = {}
    for index, change in enumerate(changes):
        lanes.setdefault(root(index), []).append(change)
    return list(lanes.values())


def _merged(current: ZivverAccount, after: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {
        "email": current.email,
        "display_name": current.display_name,
        "active": current.active,
        "aliases": sorted(current.aliases),
        "delegates": sorted(current.delegates),
        "division": current.division,
    }
    state.update({key: value for key, value in after.items() if key in state})
    return state


def _note_missing(outcome: Outcome, missing: list[str]) -> Outcome:
    if missing and outcome.ok and outcome.response is not None:
        outcome.response["note"] = (
            f"delegates without a Zivver user were left out: {', '.join(missing)}"
        )
    return outcome
