"""The local store: private files, the run lock, interrupted runs."""

from __future__ import annotations

import stat

import pytest

from zsync_core.errors import LockedError, StoreError
from zsync_core.store import Store


def test_the_state_directory_and_database_are_private(tmp_path):
    store = Store.open(tmp_path / "state")
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "zsync.sqlite3").stat().st_mode) == 0o600
    store.close()


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    first = Store.open(tmp_path / "state")
    first.lock()
    second = Store.open(tmp_path / "state")
    with pytest.raises(LockedError, match="Another zsync run is using"):
        second.lock()
    first.close()
    second.lock()
    second.close()


def test_a_run_that_never_finished_is_marked_interrupted(tmp_path):
    store = Store.open(tmp_path / "state")
    killed = store.start_run("headless", False)
    store.start_run("headless", False)
    assert {r.id: r.status for r in store.runs()}[killed] == "interrupted"


def test_an_unwritable_state_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot be used"):
        Store.open(blocker / "state")


def test_a_store_from_before_schema_versions_is_migrated_with_a_backup_and_keeps_everything(
    tmp_path,
):
    import sqlite3

    from zsync_core.database import SCHEMA_V1, SCHEMA_VERSION

    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / "zsync.sqlite3")  # as zsync 0.1 left it: user_version 0
    old.executescript(SCHEMA_V1)
    old.execute(
        "INSERT INTO mapping VALUES ('guid-1', 'personal', 'z-1', 'ann@example.org', 'AD', 'K', 1)"
    )
    old.execute(
        "INSERT INTO runs (started_at, mode, status, source_counts) "
        "VALUES (1, 'headless', 'completed', '{\"AD\": 1}')"
    )
    old.commit()
    old.close()

    store = Store.open(state)

    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.mapping()["guid-1"].zivver_id == "z-1"
    assert store.mapping()["guid-1"].sso_key_sent == "K"
    assert [r.status for r in store.runs()] == ["completed"]
    assert store.last_good_counts() == {"AD": 1}
    store.close()
    backup = state / "zsync.sqlite3.v0.bak"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    copy = sqlite3.connect(backup)
    assert copy.execute("SELECT zivver_id FROM mapping").fetchall() == [("z-1",)]
    copy.close()
    Store.open(state).close()  # opening again migrates nothing
    assert sorted(p.name for p in state.glob("*.bak")) == ["zsync.sqlite3.v0.bak"]


def test_a_schema_3_mirror_is_dropped_so_the_next_microsoft_365_read_is_a_full_one(tmp_path):
    import sqlite3

    from zsync_core.database import MIGRATIONS

    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / "zsync.sqlite3")
    for version in (1, 2, 3):
        old.executescript(MIGRATIONS[version])
    old.execute("PRAGMA user_version = 3")
    old.execute(
        "INSERT INTO mapping VALUES ('id-1', 'personal', 'z-1', 'ann@example.org', 'M365', 'K', 1)"
    )
    old.execute("INSERT INTO source_mirror VALUES ('M365', 'user', 'id-1', '{\"id\": \"id-1\"}')")
    old.execute("INSERT INTO source_delta VALUES ('M365', '{}', '{\"user\": \"link\"}', 1, 1)")
    old.commit()
    old.close()

    store = Store.open(state)

    assert store.space.data("M365") is None, "no links without the mirror they belong to"
    assert store.space.blobs("M365", "user") == []
    assert store.mapping()["id-1"].zivver_id == "z-1", "the account mapping stays"


def test_a_store_from_a_newer_zsync_is_refused_and_left_as_it_is(tmp_path):
    import sqlite3

    state = tmp_path / "state"
    Store.open(state).close()
    db = sqlite3.connect(state / "zsync.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="written by a newer zsync"):
        Store.open(state)
    db = sqlite3.connect(state / "zsync.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 99
    db.close()


def test_retention_drops_old_runs_but_never_the_mapping_a_running_one_or_the_baseline(tmp_path):
    import time

    from zsync_core.outcome import RunStatus

    store = Store.open(tmp_path / "state")
    store.remember_account("guid-1", "personal", "z-1", "ann@example.org", "AD", "")
    baseline = store.start_run("headless", False)
    store.record_source_counts(baseline, {"AD": 40})
    store.finish_run(baseline, RunStatus.COMPLETED, {})
    for _ in range(5):
        run = store.start_run("headless", False)
        store.add_event(run, "error", "the directory was down")
        store.finish_run(run, RunStatus.ABORTED, {})
    store.db.execute("UPDATE runs SET started_at = ?", (time.time() - 500 * 86400,))
    going = store.start_run("tui", False)  # loaded in the TUI, not finished

    dropped = store.prune(keep_runs=3, keep_days=400)

    assert dropped == 5, "every old aborted run, and nothing else"
    assert {r.id for r in store.runs()} == {baseline, going}
    assert store.last_good_counts() == {"AD": 40}, "the shrink guard keeps its baseline"
    assert store.events() == []
    assert set(store.mapping()) == {"guid-1"}, "the account mapping is never pruned"
    store.close()


def test_retention_keeps_at_most_keep_runs_of_the_newest(tmp_path):
    from zsync_core.outcome import RunStatus

    store = Store.open(tmp_path / "state")
    runs = []
    for _ in range(6):
        run = store.start_run("headless", True)
        store.finish_run(run, RunStatus.DRY_RUN, {})
        runs.append(run)
    assert store.prune(keep_runs=2, keep_days=400) == 4
    assert [r.id for r in store.runs()] == runs[:-3:-1]
    store.close()


def test_a_saved_mirror_is_whole_after_closing_and_leaves_no_write_ahead_log(tmp_path):
    from zsync_core.space import SourceSave

    state = tmp_path / "state"
    store = Store.open(state)
    pages = [bytes([65 + n]) * 300_000 for n in range(20)]  # 6 MB: past SQLite's own checkpoint
    for round_ in range(2):  # the second replaces the first, as a weekly full read does
        store.space.save(
            "M365",
            SourceSave(
                {"links": {"user": f"link-{round_}"}}, {"user": pages[round_:]}, frozenset({"user"})
            ),
        )
    store.close()

    assert not (state / "zsync.sqlite3-wal").exists() or (
        (state / "zsync.sqlite3-wal").stat().st_size == 0
    ), "the pages were moved into the database"
    again = Store.open(state)
    assert again.space.blobs("M365", "user") == pages[1:]
    assert again.space.data("M365") == {"links": {"user": "link-1"}}


def test_a_delta_sources_links_and_pages_survive_the_move_to_a_neutral_space(tmp_path):
    """Schema 5 keeps what a source keeps in a space that names no Graph words: the links
    and pages an older zsync left are carried over, so the next run reads deltas still."""
    import sqlite3

    from zsync_core.database import MIGRATIONS

    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / "zsync.sqlite3")
    for version in range(1, 5):
        old.executescript(MIGRATIONS[version])
    old.execute("PRAGMA user_version = 4")
    old.execute(
        "INSERT INTO source_delta (source, settings, links, full_read_at, updated_at, hints) "
        "VALUES ('M365', 's1', '{\"user\": \"https://graph/delta?1\"}', 5.0, 6.0, "
        '\'{"user_bounds": ["m"]}\')'
    )
    old.execute("INSERT INTO source_pages VALUES ('M365', 'user', 0, x'7b7d')")
    old.commit()
    old.close()

    store = Store.open(state)

    assert store.space.data("M365") == {
        "settings": "s1",
        "links": {"user": "https://graph/delta?1"},
        "full_read_at": 5.0,
        "hints": {"user_bounds": ["m"]},
    }
    assert store.space.blobs("M365", "user") == [b"{}"]
    store.close()
