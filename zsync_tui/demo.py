"""``zsync demo``: the built-in demo (the TUI lands with the next issue)."""

from __future__ import annotations

import sys


def run_demo() -> int:
    print(
        "zsync demo: the terminal UI is coming in the next release.\n"
        "Meanwhile, try the headless run against the bundled emulator:\n"
        "  zsync emulator --port 8765 --api-key demo-key &\n"
        "  ZIVVER_API_KEY=demo-key zsync --headless --dry-run --config examples/demo.toml",
        file=sys.stderr,
    )
    return 0
