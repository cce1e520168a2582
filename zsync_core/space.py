"""What each source keeps between runs, in the store's database: a JSON state and blobs by
kind, each source on its own. The store knows nothing of what they mean (Microsoft 365's
mirror: sources/m365/mirror.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .database import transaction, tune
from .errors import StoreError


@dataclass(frozen=True, slots=True)
class SourceSave:
    """What a source keeps after one complete read, written at once (see
    :meth:`SourceSpace.save`): its own state, and blobs by kind in the order they came."""

    data: dict[str, Any]
    """The source's own state as JSON data (a delta source: its links, when it last read
    everything); it replaces what was kept."""
    blobs: dict[str, list[bytes]]
    """Kind → blobs to add after those kept (a delta source: the pages of this read)."""
    replace: frozenset[str] = frozenset()
    """Kinds whose kept blobs go first (read whole)."""


class SourceSpace:
    """The sources' space in the store (``store.space``), on the store's connection for
    reading and a connection of its own for each save."""

    def __init__(self, directory: Path, db: sqlite3.Connection) -> None:
        self.directory = directory
        self.db = db
        self._checkpoint: threading.Thread | None = None
        """Moving a saved mirror from the write-ahead log into the database, after the save
        (:meth:`save`); :meth:`close` waits for it."""

    def data(self, source: str) -> dict[str, Any] | None:
        """What ``source`` kept at its last complete read (None: nothing yet).

        Raises:
            StoreError: what was kept cannot be read.
        """
        row = self.db.execute(
            "SELECT data FROM source_state WHERE source = ?", (source,)
        ).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except ValueError as error:
            raise StoreError(
                f"Local store {self.directory / 'zsync.sqlite3'}: what source {source!r} kept "
                f"cannot be read ({error}); run with --full-read to read it anew."
            ) from error
        return data if isinstance(data, dict) else None

    def blobs(self, source: str, kind: str) -> list[bytes]:
        """The blobs of ``kind`` that ``source`` kept, in the order they came."""
        rows = self.db.execute(
            "SELECT body FROM source_blobs WHERE source = ? AND kind = ? ORDER BY seq",
            (source, kind),
        )
        return [bytes(row[0]) for row in rows]

    def save(self, source: str, save: SourceSave) -> None:
        """A source's state and blobs after a complete read, in one transaction: a read that
        failed half-way never gets here, so nothing it kept moves on.

        On a connection of its own, so that it may run in a thread while the caller goes on
        (nothing else the store writes meanwhile joins its transaction)."""
        try:
            own = self._own_connection()
            # the blobs (30 MB at 100,000 Microsoft 365 users) stay in the write-ahead log at
            # the commit: a thread of its own moves them into the database while the run goes on
            own.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as error:
            raise StoreError(
                f"Local store {self.directory / 'zsync.sqlite3'}: cannot be opened to write "
                f"({error}). Check permissions."
            ) from error
        try:
            self._save(own, source, save)
        finally:
            own.close()
        if self._checkpoint is not None:
            self._checkpoint.join()
        self._checkpoint = threading.Thread(target=self._move_log, name="zsync-checkpoint")
        self._checkpoint.start()

    def _own_connection(self) -> sqlite3.Connection:
        return tune(sqlite3.connect(self.directory / "zsync.sqlite3", isolation_level=None))

    def _move_log(self) -> None:
        """A checkpoint that waits for nobody (PASSIVE); one that cannot run now is left to
        the next commit or to closing, as SQLite does by itself."""
        try:
            own = self._own_connection()
            try:
                own.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                own.close()
        except sqlite3.Error:
            pass

    def _save(self, own: sqlite3.Connection, source: str, save: SourceSave) -> None:
        with transaction(own, self.directory) as db:
            for kind in save.replace:
                db.execute("DELETE FROM source_blobs WHERE source = ? AND kind = ?", (source, kind))
            for kind, blobs in save.blobs.items():
                last = db.execute(
                    "SELECT MAX(seq) FROM source_blobs WHERE source = ? AND kind = ?",
                    (source, kind),
                ).fetchone()[0]
                start = 0 if last is None else last + 1
                db.executemany(
                    "INSERT INTO source_blobs (source, kind, seq, body) VALUES (?, ?, ?, ?)",
                    [(source, kind, start + n, blob) for n, blob in enumerate(blobs)],
                )
            db.execute(
                "INSERT OR REPLACE INTO source_state (source, data, updated_at) VALUES (?, ?, ?)",
                (source, json.dumps(save.data), time.time()),
            )

    def close(self) -> None:
        """Wait for the checkpoint a save started."""
        if self._checkpoint is not None:
            self._checkpoint.join()
