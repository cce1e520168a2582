"""A full read of the users: ranges of addresses listed side by side, cut where the last
read's addresses fell.

Graph's users delta query is one chain of pages (100,000 users: 101 round trips one after
the other). A full read lists the users instead, in ranges of ``mail`` read side by side
(``graph_concurrency`` requests at once), and follows the users' delta link last for
whatever changed meanwhile. Each range is ``mail le a``, ``mail ge a and mail le b``, …,
``mail ge z``: together they hold every address, whatever its letters (a user on a boundary
is in two and taken once). The ranges are cut where the last read's addresses fell, so that
each is a few whole pages (:func:`next_bounds`); a first read, which has no last read, cuts
them by a fixed alphabet (:data:`FIRST_BOUNDS`): addresses crowded under one start (student
numbers) are then one long chain, once per deployment. After the read, every user the mirror
had that no range listed is looked up by id (:func:`verify`): a split read can lose no one
the last read had.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterable

from ...errors import SourceError
from ...model import Notice, StepEvent
from ..m365_config import Microsoft365SourceConfig
from .graph import PAGE, USER_SELECT, Directory, Reader, by_id, chain, quote
from .http import BadRequest, side_by_side
from .map import Options
from .signin import GRAPH

FIRST_BOUNDS = ("c", "f", "j", "l", "n", "r", "t")
"""Where a first full read splits the users by mail (later ones split where the last read's
addresses fall)."""

Span = tuple[str | None, str | None]
"""A range of addresses: ``mail ge`` its low end and ``mail le`` its high end (None: open)."""


async def all_users(
    reader: Reader,
    users: Directory,
    pages: list[bytes],
    learned: list[str],
    mirrored: Callable[[], set[str]],
    options: Options,
) -> tuple[str, set[str], list[str] | None]:
    """Every user with a mail, in ranges of addresses read side by side (cut at ``learned``,
    the last read's bounds, or on a first read by :data:`FIRST_BOUNDS`); returns the delta
    link to follow from now on, the ids of the users the mirror had (``mirrored()``: the
    store still holds the last read's, as it is written after this one) and where the next
    full read splits them, both found while the last request is on its way (the split from
    the users read by then: it only has to fall near whole pages).

    The link is asked for first (``$deltatoken=latest``: changes are tracked from the moment
    the ranges start) and followed once the ranges are in: whatever changed while they were
    read (a user whose new address moved it into a range already read) comes with it."""
    http, emit, config = reader.http, reader.emit, reader.config
    url = reader.users_url
    select = ",".join(USER_SELECT)
    step = f"{reader.name}: read users"
    emit(StepEvent(step, step, "running"))
    try:
        try:
            start = await http.request(
                "read users (start tracking changes)",
                f"{url}/delta",
                scope=GRAPH,
                params={"$select": select, "$deltatoken": "latest"},
            )
        except BadRequest as refused:
            # a Graph that cannot track from now: the users' delta query, one page after
            # the other, as before ranges
            reader.notices.append(Notice("warning", f"{refused} Read through delta instead."))
            emit(StepEvent(step, step, "done", 0, 0))
            whole = await chain(reader, "user", None, users, pages)
            return whole, mirrored(), None
        link = start.get("@odata.deltaLink")
        if not isinstance(link, str):
            raise SourceError(
                f"Source {reader.name!r}: read users: Graph answered $deltatoken=latest "
                "without an @odata.deltaLink; nothing was changed."
            )
        link = http.follow("read users", "@odata.deltaLink", link, GRAPH)
        kept: list[list[bytes]] = []
        """Each span's pages, in the order the spans were started."""

        async def read_range(span: Span) -> None:
            params = {"$select": select, "$top": str(PAGE)}
            filter_ = where(span)
            if filter_:
                params["$filter"] = filter_
            keep: list[bytes] = []
            kept.append(keep)
            async for page in http.pages("read users", url, scope=GRAPH, params=params, keep=keep):
                users.take_page(page)
                await users.work_out(page, options)
                # users on a boundary count once
                emit(StepEvent(step, step, "running", len(users.objects)))

        try:
            await side_by_side(*(read_range(span) for span in spans(learned or FIRST_BOUNDS)))
        except BadRequest as refused:
            # a Graph that will not list users by ranges of mail: one list of them all
            reader.notices.append(
                Notice("warning", f"{refused} Listed the users in one range instead.")
            )
            kept.clear()
            await read_range((None, None))
    except SourceError as error:
        emit(StepEvent(step, step, "failed", detail=str(error)))
        raise
    for keep in kept:
        pages += keep
    seen = len(users.objects)
    emit(StepEvent(step, step, "done", seen, seen))
    catch_up = asyncio.ensure_future(
        chain(reader, "user", link, users, pages, label="changes while the users were read")
    )
    await asyncio.sleep(0)  # its request goes out first
    try:
        before = mirrored()
        await asyncio.sleep(0)  # two short holds of the event loop rather than one long
        bounds = next_bounds(users, config)
    except BaseException:
        catch_up.cancel()
        await asyncio.gather(catch_up, return_exceptions=True)
        raise
    return await catch_up, before, bounds


async def verify(reader: Reader, users: Directory, pages: list[bytes], before: set[str]) -> None:
    """After a full read by ranges: every user the mirror had that no range listed is looked
    up by id. Most are gone (deleted, or without a mail now); one that is still there with a
    mail was lost by the split (Graph's address filters did not hold what they should): it
    is taken in, and the admin is told. A split read can so lose no one the last read had."""
    missing = sorted(before - users.objects.keys())
    if not missing:
        return
    lost = [u for u in await by_id(reader, "look up users", missing) if u.get("mail")]
    if not lost:
        return
    page = {"value": lost}
    pages.append(json.dumps(page, separators=(",", ":")).encode())
    users.take_page(page)
    reader.notices.append(
        Notice(
            "warning",
            f"Source {reader.name!r}: {len(lost)} users with a mailbox were in no range of the "
            "full read by address (Graph's address filters did not hold them); they were read "
            "one by one and are synced. Please report this with Graph's region "
            f"({reader.config.graph_url}).",
        )
    )


def next_bounds(users: Directory, config: Microsoft365SourceConfig) -> list[str]:
    """Where the next full read splits the users (by mail) so that each range is a few whole
    pages: ``2 × graph_concurrency`` ranges at most, none for a single page."""
    if config.user_filter is not None:
        return []
    mails = sorted(str(u["mail"]).lower() for u in users.objects.values())
    pages = math.ceil(len(mails) / PAGE)
    if pages <= 1:
        return []
    ranges = min(pages, 2 * config.graph_concurrency)
    # a little room below whole pages (the directory grows before the next full read),
    # never more ranges than asked for
    size = max(math.ceil(len(mails) / ranges), int(math.ceil(pages / ranges) * PAGE * 0.97))
    return [mails[i] for i in range(size, len(mails), size)]


def spans(bounds: Iterable[str], low: str | None = None, high: str | None = None) -> list[Span]:
    """``low`` to ``high`` cut at ``bounds``: together the spans hold every address in it,
    whatever its letters (each address is ``le`` or ``ge`` any boundary; one on a boundary is
    in two). No bounds: the span itself."""
    inside = sorted({b.lower() for b in bounds if within(b.lower(), low, high)})
    points = [low, *inside, high]
    return list(zip(points, points[1:], strict=False))


def within(value: str, low: str | None, high: str | None) -> bool:
    """Whether ``value`` (lower-case) lies strictly between the ends, which Graph compares
    ignoring case."""
    return (low is None or value > low.lower()) and (high is None or value < high.lower())


def where(span: Span) -> str | None:
    """A span as Graph's ``$filter`` (None: every user)."""
    low, high = span
    clauses = [f"mail ge '{quote(low)}'"] if low is not None else []
    clauses += [f"mail le '{quote(high)}'"] if high is not None else []
    return " and ".join(clauses) or None
