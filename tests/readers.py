"""Readers for tests/test_source_process.py: the child process imports them by name."""

from __future__ import annotations

import os
import time

from zsync_core.errors import SourceError
from zsync_core.model import Kind, SourceAccount, StepEvent
from zsync_core.sources import SourceResult


def many(count: int, emit) -> SourceResult:
    emit(StepEvent("read", "read", "running", 0, count))
    accounts = [
        SourceAccount(Kind.PERSONAL, f"id{n}", f"u{n}@example.org", f"U {n}", True, "S", f"e{n}")
        for n in range(count)
    ]
    emit(StepEvent("read", "read", "done", count, count))
    result = SourceResult("S", accounts)
    result.skip("e-x", "a test's unusable entry", source_id="id-x")
    return result


def refuses(emit) -> SourceResult:
    raise SourceError("Source 'S': base_dn 'dc=nowhere' does not exist on ldap://x.")


def breaks(emit) -> SourceResult:
    raise ValueError("an unexpected value in entry cn=x")


def dies(emit) -> SourceResult:
    emit(StepEvent("read", "read", "running"))
    os._exit(7)


def hangs(emit) -> SourceResult:
    emit(StepEvent("read", "read", "running"))
    time.sleep(600)
    raise AssertionError("not reached")
