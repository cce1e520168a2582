"""The Excel source at 100,000 rows: the whole read (cells to accounts, every row checked)
against python-calamine alone reading the same sheet, in the same process, in turn.

    .venv/bin/python -m bench.excel_bench [--rows 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "bench" / "latest.json"


def make_workbook(path: Path, rows: int) -> None:
    """Users as an HR export has them: one in eight with a mobile number typed as a number,
    divisions, a functional sheet of one in a hundred."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    users = book.create_sheet("Users")
    users.append(["Email", "Name", "Active", "Phone", "Division", "Id"])
    for n in range(rows):
        phone = 612345678 + n if n % 8 == 0 else None
        users.append([f"user{n:06}@example.org", f"User {n}", n % 50 != 0, phone, f"d{n % 20}", n])
    functional = book.create_sheet("Functional accounts")
    functional.append(["email", "name", "delegates"])
    for n in range(rows // 100):
        functional.append([f"box{n:05}@example.org", f"Box {n}", f"user{n:06}@example.org"])
    book.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from python_calamine import CalamineWorkbook

    from zsync_core.config import parse_config
    from zsync_core.sources import make_source
    from zsync_core.sources.fields import finish, read_numbers

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "staff.xlsx"
        started = time.perf_counter()
        make_workbook(path, args.rows)
        print(f"{args.rows:,} rows written in {time.perf_counter() - started:.1f} s", flush=True)
        source = {
            "name": "Staff workbook",
            "type": "excel",
            "path": str(path),
            "sheet": "Users",
            "functional_sheet": "Functional accounts",
            "phone_region": "NL",
        }
        config = parse_config(
            {"target": {"api_key_env": "UNUSED"}, "sources": [source]}, Path(folder) / "z.toml"
        )
        floors, reads, numbers = [], [], []
        accounts = 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            book = CalamineWorkbook.from_path(str(path))
            for name in ("Users", "Functional accounts"):
                book.get_sheet_by_name(name).to_python(skip_empty_area=False)
            floors.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = asyncio.run(make_source(config.sources[0], config).load(lambda event: None))
            finish(result, config.sources[0], True)
            reads.append(time.perf_counter() - started)
            # the session's later step, against an organization that holds none of the
            # numbers yet (a first run; a daily run finds them in Zivver unparsed)
            started = time.perf_counter()
            read_numbers(result, "NL", {})
            numbers.append(time.perf_counter() - started)
            accounts = len(result.accounts)
    ratios = [read / floor for read, floor in zip(reads, floors, strict=True)]
    figures = {
        "rows": args.rows,
        "accounts": accounts,
        "reader_alone_seconds": statistics.median(floors),
        "excel_source_seconds": statistics.median(reads),
        "numbers_first_run_seconds": statistics.median(numbers),
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(
        f"\nExcel source: {args.rows:,} rows (+{args.rows // 100:,} functional), {args.rounds} rounds"
    )
    print(f"| python-calamine alone (the floor) | {figures['reader_alone_seconds']:.2f} s |")
    print(f"| the numbers checked (a first run)  | {figures['numbers_first_run_seconds']:.2f} s |")
    print(
        f"| zsync's Excel source               | {figures['excel_source_seconds']:.2f} s | "
        f"{figures['ratio']:.2f} × the floor (rounds {min(ratios):.2f}–{max(ratios):.2f}; target ≤ 2 ×) |"
    )
    latest = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    latest["excel"] = figures
    LATEST.write_text(json.dumps(latest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
