"""The store's SQLite file: its schema and migrations, how a connection is tuned, and one
transaction with an error an admin can act on."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StoreError

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS mapping (
    source_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    zivver_id TEXT NOT NULL,
    email TEXT NOT NULL,
    source TEXT,
    sso_key_sent TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    mode TEXT NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    summary TEXT,
    source_counts TEXT
);
CREATE TABLE IF NOT EXISTS changes (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    change_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    email TEXT NOT NULL,
    zivver_id TEXT,
    source_id TEXT,
    source TEXT,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    guard TEXT,
    state TEXT NOT NULL,
    error TEXT,
    request TEXT,
    response TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL,
    PRIMARY KEY (run_id, change_id)
);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
"""
"""The tables as zsync 0.1 made them, before the schema had a version (user_version 0)."""

MIGRATIONS: dict[int, str] = {
    1: SCHEMA_V1,
    2: """
CREATE INDEX IF NOT EXISTS runs_by_start ON runs(started_at);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id);
""",
    3: """
CREATE TABLE IF NOT EXISTS source_mirror (
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (source, kind, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_delta (
    source TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    links TEXT NOT NULL,
    full_read_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
""",
    4: """
DROP TABLE IF EXISTS source_mirror;
DELETE FROM source_delta;
ALTER TABLE source_delta ADD COLUMN hints TEXT NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS source_pages (
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (source, kind, seq)
);
""",
    5: """
CREATE TABLE IF NOT EXISTS source_state (
    source TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO source_state (source, data, updated_at) SELECT source, json_object('settings', settings, 'links', json(links), 'full_read_at', full_read_at, 'hints', json(hints)), updated_at FROM source_delta;
DROP TABLE source_delta;
ALTER TABLE source_pages RENAME TO source_blobs;
""",
}
"""Version → the statements that bring the schema from the version before to it. Never edit
one that was released: add the next. A store is migrated on open, after a backup."""

SCHEMA_VERSION = max(MIGRATIONS)


@contextmanager
def transaction(db: sqlite3.Connection, directory: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``db`` (the store in ``directory``); a failure is rolled
    back and raised as a StoreError that says what to check."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except sqlite3.Error as error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise StoreError(
            f"Local store {directory / 'zsync.sqlite3'}: write failed ({error}{free_space(directory)}). "
            "Check free disk space and permissions."
        ) from error


def copy_in_memory(path: Path, wal: Path) -> sqlite3.Connection:
    """The store with its write-ahead log applied, in memory, from a private copy of both
    files (the originals are not written: no -shm, no checkpoint)."""
    with tempfile.TemporaryDirectory(prefix="zsync-look-") as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, copy.with_name(wal.name))
        disk = sqlite3.connect(copy)
        try:
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            disk.backup(memory)
        finally:
            disk.close()
    return memory


def tune(db: sqlite3.Connection) -> sqlite3.Connection:
    """What every writing connection to the store keeps to: commits not synced to the disk
    one by one (SQLite syncs the write-ahead log at its checkpoints; a crash of zsync loses
    nothing), and a wait of up to 5 s for another writer before giving up."""
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def migrate(db: sqlite3.Connection, path: Path, *, keep_copy: bool = True) -> None:
    """Bring the database to SCHEMA_VERSION, one migration at a time, each in a transaction;
    a store that already has runs is copied to ``zsync.sqlite3.v<N>.bak`` first (unless
    ``keep_copy`` is false: a scratch copy in memory).

    Raises:
        StoreError: the store was written by a newer zsync (it is left as it is).
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"Local store {path}: written by a newer zsync (schema {version}; this zsync knows "
            f"up to {SCHEMA_VERSION}). Upgrade zsync again, or restore the store from before "
            "the upgrade; nothing was changed."
        )
    has_runs = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
    ).fetchone()
    if has_runs and keep_copy:
        copy = path.with_name(f"{path.name}.v{version}.bak")
        backup = sqlite3.connect(copy)
        try:
            db.backup(backup)
        finally:
            backup.close()
        os.chmod(copy, 0o600)
    for target in range(version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def free_space(directory: Path) -> str:
    """ "; N KiB free on its disk", for an error that may come of a full disk ("" unknown)."""
    try:
        free = shutil.disk_usage(directory if directory.exists() else directory.parent).free
    except OSError:
        return ""
    return f"; {free // 1024} KiB free on its disk"
