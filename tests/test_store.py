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
