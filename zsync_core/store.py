"""The local store: account mapping, every run with its plan, every change and event.

One SQLite database in the state directory (private: 0700 / 0600). Each change is
journaled before it is sent ("sending") and after ("succeeded" / "failed"), so a run
that was killed shows up as interrupted and the next run converges.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from .database import copy_in_memory, free_space, migrate, transaction, tune
from .errors import LockedError, StoreError
from .merge import MappingEntry
from .model import Action, Change, Match, Plan
from .outcome import (
    ChangeOutcome,
    ChangeState,
    MappingRecord,
    RunRecord,
    RunStatus,
    TimelineEntry,
)
from .output import inert
from .section import GuardedAction
from .space import SourceSpace

_GOOD_STATUSES = ", ".join(f"'{s.value}'" for s in RunStatus if s.read_was_good)


@dataclass(frozen=True, slots=True)
class StateCheck:
    """What ``zsync check`` found of a state directory, without writing anything."""

    ok: bool
    message: str
    mapping: dict[str, MappingEntry]


F = TypeVar("F", bound=Callable[..., Any])


def _damaged_is_an_error(method: F) -> F:
    """A read of the store that SQLite cannot do (a damaged file) is a StoreError that says
    what to do, never a traceback."""

    @functools.wraps(method)
    def read(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"Local store {self.directory / 'zsync.sqlite3'}: cannot be read ({error}). "
                "Restore it from a backup (or move it away: the next run starts a new one and "
                "matches Zivver's accounts by address again); nothing was changed."
            ) from error

    return cast(F, read)


class Store:
    """The SQLite store. Open with :meth:`open`; one writer at a time (see :meth:`lock`)."""

    @staticmethod
    def check(directory: Path) -> StateCheck:
        """Whether a run could use ``directory``, and its account mapping, read only: nothing
        is created or written (the database is opened read-only, its lock is not taken)."""
        path = directory / "zsync.sqlite3"
        if not path.exists():
            existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
            if existing is None or not os.access(existing, os.W_OK | os.X_OK):
                return StateCheck(
                    False,
                    f"{existing or directory} is not writable by this user, so the first run "
                    f"could not create its store there. Create {directory} for the service user "
                    "(install -d -m 0700 -o zsync -g zsync ...), or set state_dir.",
                    {},
                )
            if existing == directory:
                return StateCheck(True, "empty, writable: the first run creates the store", {})
            return StateCheck(True, "not created yet: the first run creates it", {})
        if not os.access(directory, os.W_OK | os.X_OK) or not os.access(path, os.R_OK | os.W_OK):
            return StateCheck(
                False,
                f"{path} is not readable and writable by this user. Run as the service user, or "
                "fix the owner (the state directory is the service user's, 0700).",
                {},
            )
        try:
            store = Store.open_read_only(directory)
            assert store is not None  # the file exists
            try:
                mapping = store.mapping()
                runs = store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            finally:
                store.close()
        except (StoreError, sqlite3.Error) as error:
            return StateCheck(
                False, f"{path} cannot be read ({error}). Restore it from a backup.", {}
            )
        return StateCheck(
            True, f"usable: {len(mapping):,} accounts mapped, {runs:,} runs in the history", mapping
        )

    def __init__(self, directory: Path, connection: sqlite3.Connection) -> None:
        self.directory = directory
        self.db = connection
        self._lock_file: int | None = None
        self.space = SourceSpace(directory, connection)
        """What each source keeps between runs."""

    @classmethod
    def open(cls, directory: Path) -> Store:
        """Open (creating, private) the state directory and its database.

        Raises:
            StoreError: the directory cannot be created or written, or the database is unusable.
        """
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = directory / "zsync.sqlite3"
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            tune(db)
            migrate(db, path)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(
                f"State directory {directory}: cannot be used ({error}{free_space(directory)}). Check that "
                "it is writable by this user and that the disk is not full, or set state_dir in the profile."
            ) from error
        return cls(directory, db)

    @classmethod
    def open_read_only(cls, directory: Path) -> Store | None:
        """The store as it is, for looking (``zsync status``, ``zsync history``): nothing is
        created or written, no lock is taken. None when there is no store yet.

        Raises:
            StoreError: the store exists but cannot be read.
        """
        path = directory / "zsync.sqlite3"
        if not path.exists():
            return None
        try:
            wal = path.with_name(path.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                # a run that was killed (or is going) left commits in the write-ahead log,
                # which an immutable look would not see: a private copy of both is read
                db = copy_in_memory(path, wal)
            else:
                # immutable: no lock and no -shm/-wal files created (a read-only WAL
                # connection would create them)
                db = sqlite3.connect(
                    f"{path.absolute().as_uri()}?mode=ro&immutable=1",
                    uri=True,
                    check_same_thread=False,
                )
            db.execute("SELECT 1 FROM runs LIMIT 1")
        except (sqlite3.Error, OSError) as error:
            raise StoreError(
                f"Local store {path}: cannot be read ({error}). Run as the service user (the "
                "state directory is its own, 0700), or restore the store from a backup."
            ) from error
        return cls(directory, db)

    @classmethod
    def scratch(cls, directory: Path, *, copy: bool = True) -> Store:
        """An in-memory copy of the store in ``directory`` (an empty store when there is
        none, or ``copy`` is false), for ``zsync check``: a whole session runs on it, with the
        real mapping and baseline, and nothing it writes is kept.

        Raises:
            StoreError: the store exists but cannot be read.
        """
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        real = cls.open_read_only(directory) if copy else None
        if real is not None:
            try:
                real.db.backup(db)
            except sqlite3.Error as error:
                raise StoreError(
                    f"Local store {directory / 'zsync.sqlite3'}: cannot be read ({error})."
                ) from error
            finally:
                real.close()
        migrate(db, directory / "zsync.sqlite3", keep_copy=False)
        return cls(directory, db)

    def lock_holder(self) -> int | None:
        """The process holding the run lock (a run is going), or None.

        Looks without touching the lock (even a shared lock for a moment could make a run
        starting then refuse to start): the lock file names the last holder, which holds it
        still if that process is alive and is a zsync.
        """
        try:
            pid = int((self.directory / "zsync.lock").read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"zsync" in command and pid != os.getpid() else None

    def close(self) -> None:
        self.unlock()
        self.space.close()
        self.db.close()

    def prune(self, keep_runs: int, keep_days: float) -> int:
        """Drop the runs (with their changes and events) beyond the newest ``keep_runs`` or
        older than ``keep_days``; returns how many. Never the account mapping, a run still
        going, nor the newest run whose read was good (the shrink guard's baseline)."""
        cutoff = time.time() - keep_days * 86400
        going = (RunStatus.RUNNING.value, RunStatus.APPLYING.value)
        with transaction(self.db, self.directory) as db:
            doomed = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM runs WHERE status NOT IN (?, ?) AND (started_at < ? OR id NOT IN "
                    "(SELECT id FROM runs ORDER BY id DESC LIMIT ?))",
                    (*going, cutoff, keep_runs),
                )
            ]
            baseline = db.execute(
                "SELECT id FROM runs WHERE source_counts IS NOT NULL "
                f"AND status IN ({_GOOD_STATUSES}) ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if baseline is not None and baseline[0] in doomed:
                doomed.remove(baseline[0])
            for table, column in (("changes", "run_id"), ("events", "run_id"), ("runs", "id")):
                db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(i,) for i in doomed])
            db.execute("DELETE FROM events WHERE run_id IS NULL AND at < ?", (cutoff,))
        return len(doomed)

    # --- the run lock ---------------------------------------------------------------------

    def lock(self) -> None:
        """Take the state directory's lock, so two runs never race.

        Raises:
            LockedError: another zsync run holds it.
        """
        path = self.directory / "zsync.lock"
        handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            holder = path.read_text(errors="replace").strip() or "unknown"
            raise LockedError(
                f"Another zsync run is using {self.directory} (process {holder}). "
                "Wait for it to finish; if no zsync is running, the lock frees itself."
            ) from None
        os.ftruncate(handle, 0)
        os.write(handle, str(os.getpid()).encode())
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    # --- account mapping --------------------------------------------------------------------

    @_damaged_is_an_error
    def mapping(self) -> dict[str, MappingEntry]:
        rows = self.db.execute("SELECT source_id, zivver_id, sso_key_sent FROM mapping")
        entry = MappingEntry._make
        return {row[0]: entry(row[1:]) for row in rows}

    def mapping_records(
        self, email: str, zivver_ids: Iterable[str] = (), source_ids: Iterable[str] = ()
    ) -> list[MappingRecord]:
        """What the mapping holds of the account with ``email``, one of ``zivver_ids`` or
        one of the source entries ``source_ids``."""
        ids = [i for i in zivver_ids if i]
        entries = [i for i in source_ids if i]
        where = " OR ".join(
            ["email = ?"] + ["zivver_id = ?"] * len(ids) + ["source_id = ?"] * len(entries)
        )
        cursor = self.db.execute(
            "SELECT source_id, kind, zivver_id, email, source, sso_key_sent, updated_at FROM "
            f"mapping WHERE {where} ORDER BY updated_at",
            (email, *ids, *entries),
        )
        return [MappingRecord(*row) for row in cursor]

    def remember_matches(self, matches: Iterable[Match]) -> None:
        now = time.time()
        with transaction(self.db, self.directory) as db:
            db.executemany(
                "INSERT INTO mapping (source_id, kind, zivver_id, email, source, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source_id) DO UPDATE SET "
                "zivver_id = excluded.zivver_id, email = excluded.email, source = excluded.source, "
                "kind = excluded.kind, updated_at = excluded.updated_at "
                "WHERE mapping.zivver_id != excluded.zivver_id OR mapping.email != excluded.email",
                [(m.source_id, m.kind.value, m.zivver_id, m.email, m.source, now) for m in matches],
            )

    def remember_account(
        self,
        source_id: str,
        kind: str,
        zivver_id: str,
        email: str,
        source: str | None,
        sso_key: str | None,
    ) -> None:
        with transaction(self.db, self.directory) as db:
            db.execute(
                "INSERT INTO mapping (source_id, kind, zivver_id, email, source, sso_key_sent, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source_id) DO UPDATE SET "
                "zivver_id = excluded.zivver_id, email = excluded.email, "
                "sso_key_sent = COALESCE(excluded.sso_key_sent, mapping.sso_key_sent), "
                "updated_at = excluded.updated_at",
                (source_id, kind, zivver_id, email, source, sso_key, time.time()),
            )

    def forget_account(self, source_id: str) -> None:
        with transaction(self.db, self.directory) as db:
            db.execute("DELETE FROM mapping WHERE source_id = ?", (source_id,))

    # --- runs -----------------------------------------------------------------------------

    def start_run(self, mode: str, dry_run: bool) -> int:
        with transaction(self.db, self.directory) as db:
            db.execute(
                "UPDATE runs SET status = ? WHERE status IN (?, ?)",
                (RunStatus.INTERRUPTED, RunStatus.RUNNING, RunStatus.APPLYING),
            )
            cursor = db.execute(
                "INSERT INTO runs (started_at, mode, dry_run, status) VALUES (?, ?, ?, ?)",
                (time.time(), mode, int(dry_run), RunStatus.RUNNING),
            )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: RunStatus, summary: dict[str, Any]) -> None:
        with transaction(self.db, self.directory) as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, time.time(), json.dumps(summary), run_id),
            )

    def set_run_status(self, run_id: int, status: RunStatus) -> None:
        with transaction(self.db, self.directory) as db:
            db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    def record_source_counts(self, run_id: int, counts: dict[str, int]) -> None:
        with transaction(self.db, self.directory) as db:
            db.execute(
                "UPDATE runs SET source_counts = ? WHERE id = ?", (json.dumps(counts), run_id)
            )

    @_damaged_is_an_error
    def last_good_counts(self) -> dict[str, int]:
        """Source sizes of the last run whose read was complete and healthy."""
        row = self.db.execute(
            "SELECT source_counts FROM runs WHERE source_counts IS NOT NULL "
            f"AND status IN ({_GOOD_STATUSES}) ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return json.loads(row[0]) if row else {}

    @_damaged_is_an_error
    def runs(self, limit: int = 50) -> list[RunRecord]:
        """The latest runs, newest first."""
        rows = self.db.execute(f"{_RUNS} ORDER BY id DESC LIMIT ?", (limit,))
        return [_run(r) for r in rows]

    @_damaged_is_an_error
    def run(self, run_id: int) -> RunRecord | None:
        row = self.db.execute(f"{_RUNS} WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    # --- changes (the journal) ------------------------------------------------------------

    def record_plan(self, run_id: int, plan: Plan, states: dict[int, ChangeState]) -> None:
        now = time.time()
        with transaction(self.db, self.directory) as db:
            db.executemany(
                "INSERT OR REPLACE INTO changes (run_id, change_id, action, email, zivver_id, source_id, "
                "source, before, after, guard, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        c.id,
                        c.action.value,
                        c.email,
                        c.zivver_id,
                        c.source_id,
                        c.source,
                        json.dumps(c.before),
                        json.dumps(c.after),
                        c.guard.value if c.guard else None,
                        states.get(c.id, ChangeState.PLANNED),
                        now,
                    )
                    for c in plan.changes
                ],
            )

    def journal(
        self,
        run_id: int,
        change: Change,
        state: ChangeState,
        *,
        error: str | None = None,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        http_status: int | None = None,
        attempts: int = 0,
    ) -> None:
        with transaction(self.db, self.directory) as db:
            db.execute(
                "UPDATE changes SET state = ?, error = ?, request = COALESCE(?, request), "
                "response = COALESCE(?, response), http_status = COALESCE(?, http_status), "
                "attempts = MAX(attempts, ?), updated_at = ? WHERE run_id = ? AND change_id = ?",
                (
                    state,
                    error,
                    json.dumps(request) if request is not None else None,
                    json.dumps(response) if response is not None else None,
                    http_status,
                    attempts,
                    time.time(),
                    run_id,
                    change.id,
                ),
            )

    @_damaged_is_an_error
    def changes(self, run_id: int) -> list[ChangeOutcome]:
        """Every change of a run as journaled, in plan order."""
        cursor = self.db.execute(
            f"SELECT {_CHANGE} FROM changes WHERE run_id = ? ORDER BY change_id", (run_id,)
        )
        return [_change(row) for row in cursor]

    def timeline(
        self, emails: Iterable[str], zivver_ids: Iterable[str] = (), source_ids: Iterable[str] = ()
    ) -> list[TimelineEntry]:
        """Every journaled change to the account with one of ``emails`` (its addresses
        before and after a rename), ``zivver_ids`` or source entries ``source_ids`` (a
        create keeps no Zivver id), oldest first, each with its run."""
        addresses = list(dict.fromkeys(emails))
        ids = [i for i in zivver_ids if i]
        entries = [i for i in source_ids if i]
        where = " OR ".join(
            ["c.email = ?"] * len(addresses)
            + ["c.zivver_id = ?"] * len(ids)
            + ["c.source_id = ?"] * len(entries)
        )
        cursor = self.db.execute(
            f"SELECT c.run_id, c.updated_at, r.mode, r.dry_run, {_CHANGE.replace('change_id', 'c.change_id')} "
            f"FROM changes c JOIN runs r ON r.id = c.run_id WHERE {where} "
            "ORDER BY c.run_id, c.change_id",
            (*addresses, *ids, *entries),
        )
        return [
            TimelineEntry(row[0], row[1] or 0.0, row[2], bool(row[3]), _change(row[4:]))
            for row in cursor
        ]

    # --- events ---------------------------------------------------------------------------

    def add_event(self, run_id: int | None, level: str, message: str) -> None:
        """Keep an event for Recent events; it is stored inert (see ``output.inert``), as
        every reader shows it to a person."""
        with transaction(self.db, self.directory) as db:
            db.execute(
                "INSERT INTO events (run_id, at, level, message) VALUES (?, ?, ?, ?)",
                (run_id, time.time(), level, inert(message, lines=True)),
            )

    @_damaged_is_an_error
    def events(self, run_id: int | None = None) -> list[tuple[float, str, str]]:
        """The events, oldest first, inert (also those an earlier version stored raw)."""
        if run_id is None:
            rows = self.db.execute("SELECT at, level, message FROM events ORDER BY rowid")
        else:
            rows = self.db.execute(
                "SELECT at, level, message FROM events WHERE run_id = ? ORDER BY rowid", (run_id,)
            )
        return [(at, inert(level), inert(message, lines=True)) for at, level, message in rows]


_RUNS = (  # the runs table's columns, in RunRecord's order
    "SELECT id, started_at, finished_at, mode, dry_run, status, summary, source_counts FROM runs"
)


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        bool(row[4]),
        RunStatus(row[5]),
        json.loads(row[6] or "{}"),
        json.loads(row[7] or "{}"),
    )


_CHANGE = (
    "change_id, action, email, zivver_id, source_id, source, before, after, guard, state, "
    "error, request, response, http_status, attempts"
)
"""The changes table's columns, in ChangeOutcome's order."""


def _change(r: tuple[Any, ...]) -> ChangeOutcome:
    return ChangeOutcome(
        r[0],
        Action(r[1]),
        r[2],
        r[3],
        r[4],
        r[5],
        json.loads(r[6]),
        json.loads(r[7]),
        GuardedAction(r[8]) if r[8] else None,
        ChangeState(r[9]),
        r[10],
        json.loads(r[11]) if r[11] else None,
        json.loads(r[12]) if r[12] else None,
        r[13],
        r[14],
    )
