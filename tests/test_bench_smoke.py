"""A small run of bench/ (1,000 accounts), so the benchmark cannot rot. It times nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_end_to_end_at_1000_accounts(tmp_path):
    figures_file = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.zsync_bench",
            "--accounts",
            "1000",
            "--changes",
            "60",
            "--rate-window",
            "1",
            "--rounds",
            "2",
            "--json",
            str(figures_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| zsync daily run, no changes (load + plan)" in result.stdout
    figures = json.loads(figures_file.read_text())
    assert figures["plan"]["changes"] == 0, "the daily run over unchanged data plans nothing"
    assert figures["apply_unlimited"]["failed"] == 0
    assert figures["apply_limited"]["failed"] == 0
    assert figures["apply_limited"]["requests_per_change"] <= 1.05
    assert figures["tui"]["rows"] == 1000
    assert figures["options"]["replanned"] > 0, "the options screen got its new plan"
    assert len(figures["daily"]["ratios"]) == 2
    assert figures["emulator_http"] in ("httptools", "h11")


def test_the_microsoft_365_benchmark_runs_end_to_end_at_3000_users():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.m365_bench",
            "--users",
            "3000",
            "--groups",
            "100",
            "--latency",
            "0",
            "--no-save",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if "|" in line}
    for row in ("Full read (first run)", "Delta read, no change", "Full read (weekly)"):
        assert row in rows, result.stdout
    assert "Floor: the same requests, bare" in rows
    # a run's load step: the source beside a Zivver organization of as many accounts
    assert "Zivver's 3,030 accounts" in rows["Load step: daily (delta) + Zivver"]
    assert "Load step: weekly (full) + Zivver" in rows
    columns = [c.strip() for c in rows["Measurement"].split("|")]
    cell = {name: n for n, name in enumerate(columns)}
    # a quiet delta sends one request per kind; a weekly read of 3,000 users is split
    assert rows["Delta read, no change"].split("|")[cell["Requests"]].strip() == "2"
    spent = rows["Full read (weekly)"].split("|")[cell["CPU"]].strip()
    assert float(spent.removesuffix("s")) > 0, "what the reading process spent is shown"
