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
from .model import Action, Change, ChangeEvent, Kind
from .outcome import ChangeState
from .store import Store
from .zivver import requests
from .zivver.client import RequestResult, ZivverClient
from .zivver.requests import Ids


@dataclass(slots=True)
class ApplyResult:
    succeeded: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    cancelled: int = 0
    stopped: str | None = None
    """Why the run stopped early (the journal could not be written), if it did."""
    unrecorded: list[Change] = field(default_factory=list)
    """Changes Zivver answered whose outcome the store could not record (the journal still
    says "sending", or the account mapping lacks the account), when the store failed."""
    never_sent: int = 0
    """Changes never sent because the run stopped first."""

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
        user_ids: dict[str, str],
        group_ids: Iterable[str],
        emit: Callable[[ChangeEvent], None],
    ) -> None:
        """``user_ids``: Zivver's users by address; ``group_ids``: the ids of its functional
        accounts (a delegate or member is one of these); both grow with what is created."""
        self.client = client
        self.store = store
        self.run_id = run_id
        self.user_ids = dict(user_ids)
        self.group_ids = set(group_ids)
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
        done = {c.id for c in result.succeeded} | {c.id for c, _ in result.failed}
        rest = [c for c in changes if c.id not in done]
        if result.stopped is None:
            try:
                for change in rest:
                    self.store.journal(self.run_id, change, ChangeState.CANCELLED)
            except StoreError as error:  # they were not sent either way
                result.stopped = str(error)
            else:
                result.cancelled = len(rest)
        if result.stopped is not None:
            result.never_sent = len(rest)
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
            self.store.journal(self.run_id, change, ChangeState.SENDING)
        except StoreError as error:  # never send a change that is not journaled
            result.stopped = str(error)
            stop.set()
            return
        try:
            outcome = await self._send(change)
        except Exception as error:  # a bug must not lose the journal: record and go on
            outcome = RequestResult(
                False, None, {}, None, 1, f"Internal error while sending: {error!r}"
            )
        unrecorded = False
        if outcome.ok:
            result.succeeded.append(change)
            state = ChangeState.SUCCEEDED
            try:
                self._remember(change, outcome)
            except StoreError as error:  # Zivver has the change; the mapping does not
                result.stopped = result.stopped or str(error)
                stop.set()
                unrecorded = True
        else:
            result.failed.append((change, outcome.error or "failed"))
            state = ChangeState.FAILED
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
            result.stopped = result.stopped or str(error)
            stop.set()
            unrecorded = True
        if unrecorded:
            result.unrecorded.append(change)
        self.emit(
            ChangeEvent(change, outcome.ok, outcome.error, result.done, total, len(result.failed))
        )

    # --- one change --------------------------------------------------------------------------------

    async def _send(self, change: Change) -> RequestResult:
        """Send the requests that carry out ``change`` (built by ``requests.build``), in order."""
        try:
            built = requests.build(change, change.current, Ids(self.user_ids, self.group_ids))
        except requests.NotSendable as error:
            return RequestResult(
                False, None, {"method": "(none)", "url": None, "body": None}, None, 0, str(error)
            )
        outcome: RequestResult | None = None
        for request in built.requests:
            before_retry = None
            if change.action is Action.CREATE_USER:
                before_retry = self._lookup("Users", "userName", change.email)
            elif change.action is Action.CREATE_FUNCTIONAL:
                before_retry = self._lookup("Groups", "externalId", change.email)
            outcome = await self.client.send(request, before_retry=before_retry)
            if not outcome.ok:
                return outcome
        assert outcome is not None
        if built.notes and outcome.response is not None:
            outcome.response["note"] = "; ".join(built.notes)
        return outcome

    def _lookup(self, kind: str, attribute: str, value: str) -> Callable[[], Any]:
        async def look() -> RequestResult | None:
            found = await self.client.find(kind, attribute, value)
            if found is None:
                return None
            return RequestResult(
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

    def _remember(self, change: Change, outcome: RequestResult) -> None:
        action = change.action
        if action in (Action.DELETE_USER, Action.DELETE_FUNCTIONAL):
            if change.source_id:
                self.store.forget_account(change.source_id)
            return
        zivver_id = change.zivver_id
        if action in (Action.CREATE_USER, Action.CREATE_FUNCTIONAL):
            body = outcome.body if isinstance(outcome.body, dict) else {}
            zivver_id = str(body.get("id") or "") or None
        if zivver_id and action.kind is Kind.PERSONAL:
            self.user_ids[change.email] = zivver_id  # created or renamed: delegations find it
        elif zivver_id:
            self.group_ids.add(zivver_id)
        if zivver_id and change.source_id:
            kind = Kind.PERSONAL if action.kind is Kind.PERSONAL else Kind.FUNCTIONAL
            # the key Zivver has now, when this change sent it (or created the user without one)
            sent_key = (
                change.sso_key
                if action is Action.CREATE_USER or change.fields & requests.USER_BLOCK_FIELDS
                else None
            )
            self.store.remember_account(
                change.source_id, kind.value, zivver_id, change.email, change.source, sent_key
            )


def _addresses(change: Change) -> set[str]:
    """The addresses a change claims or frees (its own, old and new, and aliases)."""
    found = {change.email, *change.desired.aliases}
    if change.current is not None:
        found.add(change.current.email)
        found.update(change.current.aliases)
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
