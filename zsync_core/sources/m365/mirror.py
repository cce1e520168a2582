"""What a Microsoft 365 source keeps between runs: the directory as the pages Graph sent.

The mirror is kept in the store's space for this source (:meth:`SourceSpace.blobs`), next to
the delta links (its :meth:`SourceSpace.data`): the pages of the last full read,
then those of each delta read since, as they came. Replayed in order (:meth:`Mirror.replay`)
they give the directory as it is, so a daily run maps the whole directory while Graph sends
it only a few pages. Beside the users' pages, their ids, one a line (:data:`USER_IDS`,
replaced at every read): what a full read by ranges checks itself against.

A read is all or nothing: the pages and the new links are written in one transaction after
every page has arrived and the accounts are counted, and not at all when the read has far
fewer accounts than the last good run (:meth:`Mirror.shrunk`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .graph import Directory

if TYPE_CHECKING:
    from ...config import Config
    from ...store import Store

USER_IDS = "user ids"
"""The mirror's kind of page that holds the ids of its users, one a line (replaced at every
read: what :func:`.ranges.verify` compares a full read with)."""
_ID = re.compile(rb'"id"\s*:\s*"([^"\\]+)"')
"""An object's id in a page's bytes (ids hold no quote nor backslash)."""


@dataclass(frozen=True, slots=True)
class DeltaState:
    """Where a source's last complete read left its delta links."""

    settings: str
    """What the links were made for (the properties read, the filters): other settings need
    a full read."""
    links: dict[str, str]
    """Kind ("user", "group") → the delta link to continue from."""
    full_read_at: float
    hints: dict[str, Any] = field(default_factory=dict)
    """What the source learnt for its next read (how to split a full read)."""


@dataclass(frozen=True, slots=True)
class MirrorUpdate:
    """What one complete read adds to a source's mirror, written with its new links at once.

    A mirror is a log of the pages the source was sent, as they came: the pages of the last
    full read, then those of each delta read since. Replayed in order they give the directory
    as it is; storing them costs no encoding, and a daily run adds only its few pages."""

    state: DeltaState
    pages: dict[str, list[bytes]]
    """Kind → the pages of this read, in the order they are to be replayed."""
    replace: frozenset[str] = frozenset()
    """Kinds read whole: their old pages go first."""


class Mirror:
    """A source's mirror and delta links in the store."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name

    def state(self) -> DeltaState | None:
        """Where the last complete read left the links (None: nothing read yet, or what was
        kept is not of this shape: the source then reads everything)."""
        data = self.store.space.data(self.name)
        try:
            state = DeltaState(**data) if data is not None else None
        except TypeError:
            return None
        if state is None or not isinstance(state.links, dict):
            return None
        return state

    async def replay(self, users: Directory, groups: Directory) -> None:
        """Every page kept since the last full read, taken in again in order. In a thread: at
        100,000 users that is over half a second of decoding, which on the event loop would
        hold the TUI's keys and the reading of Zivver (the store itself is read here, in the
        loop's thread, which its connection belongs to).

        Raises:
            ValueError, TypeError, AttributeError: the store's copy is damaged.
        """
        for directory in (users, groups):
            pages = self.store.space.blobs(self.name, directory.kind)
            await asyncio.to_thread(_take_all, directory, pages)

    def user_ids(self) -> set[str]:
        """The ids of the mirror's users: kept beside its pages (50 ms at 100,000 users); for
        a mirror written before they were, a scan of its pages' bytes (0.2 s), which names
        removed users too (a look-up at most)."""
        kept = self.store.space.blobs(self.name, USER_IDS)
        if kept:
            return set(kept[0].decode(errors="replace").split("\n")) - {""}
        return {
            found.decode()
            for body in self.store.space.blobs(self.name, "user")
            for found in _ID.findall(body)
        }

    def update(
        self,
        *,
        settings: str,
        pages: dict[str, list[bytes]],
        links: dict[str, str],
        full: bool,
        state: DeltaState | None,
        bounds: list[str],
        users: Directory,
    ) -> MirrorUpdate:
        """What this read adds to the mirror: its pages (a full read's replace the old), the
        users' ids, the new links, when the last full read was and the next one's bounds."""
        pages, replace = dict(pages), {"user", "group"} if full else set()
        if "user" in pages:  # the users are mirrored: their ids beside them
            pages[USER_IDS], replace = ["\n".join(users.objects).encode()], replace | {USER_IDS}
        return MirrorUpdate(
            DeltaState(
                settings,
                links,
                time.time() if full or state is None else state.full_read_at,
                {"user_bounds": bounds},
            ),
            pages,
            frozenset(replace),
        )

    async def save(self, update: MirrorUpdate) -> None:
        """The read's pages and links, in one transaction. In a thread (SQLite lets go of the
        GIL while it writes): 100,000 users are 30 MB of pages."""
        from ...space import SourceSave

        save = SourceSave(asdict(update.state), update.pages, update.replace)
        await asyncio.to_thread(self.store.space.save, self.name, save)

    def shrunk(
        self,
        profile: Config,
        accounts: int,
        replayed: tuple[int, int] | None,
        users: Directory,
        groups: Directory,
    ) -> str | None:
        """Why this read must not move the mirror and the links: it has far fewer accounts
        than the last good run, the very rule by which the session refuses the read
        (``sync.shrink_guard_percent``). Kept as they were, the next run asks Graph for the
        same changes again: a change Graph sent by mistake is not built into the mirror for
        good, and a real drop is seen again until the admin accepts it. None: keep the read.

        ``replayed``: the users and groups the mirror held before this read's changes (a
        delta read)."""
        before = self.store.last_good_counts().get(self.name)
        share = profile.sync.shrink_guard_percent
        if not before or (before - accounts) * 100 <= share * before:
            return None
        drop = (before - accounts) * 100 / before
        changes = ""
        if replayed is not None:
            gone_users = replayed[0] - len(users.objects)
            gone_groups = replayed[1] - len(groups.objects)
            changes = (
                f" The changes Graph sent since the last run take {max(gone_users, 0)} users "
                f"with a mailbox and {max(gone_groups, 0)} groups out of the directory."
            )
        return (
            f"Source {self.name!r}: this read has {accounts} accounts against {before} at the "
            f"last good run, {drop:.0f} % fewer (sync.shrink_guard_percent = {share:g}).{changes} "
            "The local mirror and the delta links were left as they were: the next run asks "
            "Graph for the same changes again, and nothing is changed until you decide. Check "
            "the directory (Entra admin center → Users and Groups: were these accounts "
            "deleted, did they lose their mailbox or licence?). If they were not, this read is "
            "wrong: run again later, or with --full-read to read the whole directory anew. If "
            "the drop is intended, run once with sync.shrink_guard_percent raised above "
            f"{drop:.0f} (in the profile, or for this run in the TUI's options), then set it "
            "back."
        )


def _take_all(directory: Directory, pages: list[bytes]) -> None:
    """A kind's pages of the mirror taken in, in order (what :meth:`Mirror.replay` runs in
    its thread)."""
    for body in pages:
        directory.take_page(json.loads(body))
