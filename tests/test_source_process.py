"""A source read in a process of its own: results, errors and a child that dies or hangs."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import ldap_source
from zsync_core.errors import SourceError
from zsync_core.sources import process


def read(reader: str, *arguments):
    events = []
    child = process.start(f"tests.readers:{reader}", *arguments)
    try:
        return process.collect(child, events.append, "S"), events
    finally:
        child.stop()


def test_the_result_arrives_whole_with_its_events():
    result, events = read("many", 25_001)  # three chunks and a bit

    assert [a.source_id for a in result.accounts] == [f"id{n}" for n in range(25_001)]
    assert result.unreadable_ids == {"id-x"}
    assert [(e.state, e.done) for e in events] == [("running", 0), ("done", 25_001)]


def test_a_source_error_in_the_child_is_the_same_error_here():
    with pytest.raises(SourceError, match="base_dn 'dc=nowhere' does not exist"):
        read("refuses")


def test_an_unexpected_exception_keeps_its_type_and_message():
    with pytest.raises(ValueError, match="unexpected value in entry cn=x"):
        read("breaks")


def test_a_child_that_dies_is_an_incomplete_read_with_its_exit_code():
    with pytest.raises(SourceError, match=r"ended without an answer \(exit code 7\).*incomplete"):
        read("dies")


def test_stop_ends_a_child_that_hangs():
    child = process.start("tests.readers:hangs")
    outcome = []
    reader = threading.Thread(
        target=lambda: outcome.append(
            pytest.raises(SourceError, process.collect, child, print, "S")
        )
    )
    reader.start()
    time.sleep(1)
    started = time.monotonic()
    child.stop()
    reader.join(10)
    assert not reader.is_alive() and time.monotonic() - started < 5
    assert outcome, "collect() raised SourceError: the read is incomplete"
    assert child.process.returncode is not None


def test_without_a_child_the_directory_is_read_in_a_thread(
    directory, zivver, make_profile, capsys, monkeypatch
):
    def cannot_start(*arguments):
        raise OSError("no process for you")

    monkeypatch.setattr(process, "start", cannot_start)  # fault injection: no child possible
    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert zivver.org.user_by_email("ann@example.org") is not None
