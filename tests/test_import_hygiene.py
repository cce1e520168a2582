"""The core never imports a user interface; the headless run never loads textual."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).parent.parent / "zsync_core"


def test_no_core_module_imports_textual_rich_or_the_front_ends():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("textual", "rich", "zsync_tui", "zsync_emulator")
            ]
    assert offenders == []


def test_the_headless_run_does_not_load_textual():
    # (httpx itself loads rich when rich is installed, for its own CLI; that is not ours)
    code = (
        "import sys, zsync_core.session, zsync_core.check, zsync_tui.headless, zsync_tui.cli;"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'textual'];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
