"""Each measurement of the bench, run in a process of its own started by a small spawner
(so its peak RSS is its own), and what they print."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.world import API_KEY, UNLIMITED_CONCURRENCY, ZIVVER_USER, email  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ZSYNC = str(Path(sys.executable).parent / "zsync")


@dataclass
class Figure:
    seconds: float
    peak_mb: float
    extra: dict[str, Any]


class Spawner:
    """Starts the measured commands from a small process of its own.

    Linux carries a parent's peak RSS over to a forked child (``ru_maxrss`` survives exec),
    so commands started from this driver, which holds the emulator's 100,000 accounts,
    would all seem as large as it. The spawner is started first, while the driver is small.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.zsync_bench", "spawner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def run(self, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"args": args, "env": env or {}}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(10)


def serve_spawns() -> int:
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                request["args"],
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, **request["env"]},
                cwd=ROOT,
            )
            out = process.stdout.read() if process.stdout else b""
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
        reply = {
            "seconds": seconds,
            "peak_kb": usage.ru_maxrss,
            "code": os.waitstatus_to_exitcode(status),
            "out": out.decode(errors="replace")[-100_000:],
            "err": tail,
        }
        print(json.dumps(reply), flush=True)
    return 0


SPAWNER: Spawner | None = None


def run_measured(
    args: list[str], env: dict[str, str] | None = None, codes: tuple[int, ...] = (0, 2)
) -> Figure:
    """Run a command; its wall time, its own peak RSS, and its last stdout line as JSON.
    ``codes``: the exit codes it may end with (else the bench stops with its stderr)."""
    assert SPAWNER is not None
    reply = SPAWNER.run(args, env)
    if reply["code"] not in codes:
        raise RuntimeError(f"{' '.join(args)} failed ({reply['code']}):\n{reply['err']}")
    extra: dict[str, Any] = {}
    lines = reply["out"].strip().splitlines()
    if lines and lines[-1].startswith("{"):
        extra = json.loads(lines[-1])
    return Figure(extra.pop("seconds", reply["seconds"]), reply["peak_kb"] / 1024, extra)


def median_figure(figures: list[Figure]) -> Figure:
    """The run with the median time (its own peak RSS and extras with it)."""
    return sorted(figures, key=lambda figure: figure.seconds)[len(figures) // 2]


def python(*code_args: str) -> list[str]:
    return [sys.executable, "-m", "bench.zsync_bench", *code_args]


# --- the measurements, each run in its own process ------------------------------------------


def measure_get_all(url: str) -> dict[str, Any]:
    import httpx

    started = time.perf_counter()
    count = 0
    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=300) as client:
        for kind in ("Users", "Groups"):
            body = client.get(f"{url}/{kind}", params={"startIndex": 1, "count": 1000}).json()
            count += len(body["Resources"])
    # no "seconds": like ldapsearch and zsync, this row is the whole process, start-up included
    return {"requests_seconds": time.perf_counter() - started, "resources": count}


def measure_ceiling(url: str, count: int) -> dict[str, Any]:
    """What the emulator can serve: ``count`` PUTs, 16 at a time, from a client that does nothing else."""
    import httpx

    async def run() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(headers=headers, timeout=300) as client:
            users = (await client.get(f"{url}/Users")).json()["Resources"][:count]
        queue = list(users)
        started = time.perf_counter()

        async def worker() -> None:  # a client (one connection) each, as zsync does
            async with httpx.AsyncClient(headers=headers, timeout=300) as client:
                while queue:
                    user = queue.pop()
                    response = await client.put(f"{url}/Users/{user['id']}", json=user)
                    response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(UNLIMITED_CONCURRENCY)))
        return {"seconds": time.perf_counter() - started, "changes": len(users)}

    return asyncio.run(run())


def measure_plan(profile: str) -> dict[str, Any]:
    from zsync_core.collector import collector_paused
    from zsync_core.config import load_config
    from zsync_core.session import SyncSession

    session = SyncSession(load_config(profile), mode="tui")
    loaded = asyncio.run(session.load(dry_run=True))
    assert loaded.ok, loaded.errors()

    def median(quiet: bool) -> float:
        timings = []
        for _ in range(3):  # the median of three: a shared machine makes one plan jump by ±50 %
            started = time.perf_counter()
            if quiet:
                with collector_paused():
                    session.plan()
            else:
                session.plan()
            timings.append(time.perf_counter() - started)
        return sorted(timings)[1]

    seconds = median(True)  # as zsync plans: the cycle collector paused
    busy = median(False)  # with the collector on, to show what the pause is worth
    plan = session.plan()
    session.close()
    return {
        "seconds": seconds,
        "collector_on": busy,
        "changes": len(plan.changes),
        "source": len(session.merged),
        "zivver": len(loaded.zivver),
    }


def measure_options(profile: str) -> dict[str, Any]:
    """The options screen on the loaded organization, two ways:

    - the new plan: one option toggled, nothing else pressed; from the key to the screen
      holding the plan for the new options (the debounce included);
    - keys while a plan is recomputed: an option toggled, then (from 0.3 s on, the plan now
      running in its thread) a focus key every 0.1 s until the plan is in; each key's answer
      is from the key event to the focus having moved (Textual's own handling and redraw
      included, no Pilot round trip). The same keys with no plan running, for comparison.
    """
    from textual import events
    from textual.app import App
    from textual.reactive import reactive

    from zsync_core.collector import collector_paused
    from zsync_core.config import load_config
    from zsync_core.session import SyncSession
    from zsync_tui.screens.options import OptionsScreen
    from zsync_tui.widgets.progress import Progress

    session = SyncSession(load_config(profile), mode="tui")
    loaded = asyncio.run(session.load(dry_run=True))
    assert loaded.ok, loaded.errors()

    class Host(App[None]):
        progress: reactive[Progress] = reactive(Progress)

    def quietly(options: Any) -> Any:  # as the app plans (ZsyncApp.plan_quietly)
        with collector_paused():
            return session.plan(options)

    async def answer(app: App[None], key: str) -> float:
        before = app.focused
        started = time.perf_counter()
        event = events.Key(key, None)
        event.set_sender(app)
        assert app._driver is not None
        app._driver.send_message(event)
        while app.focused is before:
            await asyncio.sleep(0.002)
        return time.perf_counter() - started

    async def run() -> dict[str, Any]:
        app = Host()
        async with app.run_test(size=(100, 40)) as pilot:
            screen = OptionsScreen(session.options, "bench.toml", quietly)
            await app.push_screen(screen)
            box = screen.query_one("#suspend_users")

            async def toggled() -> float:
                wanted = not box.value  # type: ignore[attr-defined]
                box.focus()
                await pilot.pause()
                started = time.perf_counter()
                await pilot.press("space")
                while screen.latest is None or screen.latest[0].suspend_users is not wanted:
                    await asyncio.sleep(0.005)
                return time.perf_counter() - started

            while screen.latest is None:  # the first plan, with the profile's options
                await asyncio.sleep(0.01)
            idle = []
            for key in ("tab", "shift+tab") * 3:
                idle.append(await answer(app, key))
                await asyncio.sleep(0.1)
            replans = sorted([await toggled() for _ in range(3)])
            wanted = not box.value  # type: ignore[attr-defined]
            box.focus()
            await pilot.pause()
            await pilot.press("space")
            await asyncio.sleep(0.3)
            busy: list[float] = []
            while screen.latest is None or screen.latest[0].suspend_users is not wanted:
                busy.append(await answer(app, "tab" if len(busy) % 2 == 0 else "shift+tab"))
                await asyncio.sleep(0.1)
        busy.sort()
        return {
            "key_idle": sorted(idle)[len(idle) // 2],
            "key_busy": busy[len(busy) // 2] if busy else 0.0,
            "key_busy_slowest": busy[-1] if busy else 0.0,
            "keys": len(busy),
            "replanned": replans[1],
        }

    result = asyncio.run(run())
    session.close()
    return {"seconds": result["replanned"], **result}


def measure_apply(profile: str) -> dict[str, Any]:
    from zsync_core.config import load_config
    from zsync_core.session import SyncSession

    session = SyncSession(load_config(profile), mode="headless")
    loaded = asyncio.run(session.load())
    assert loaded.ok, loaded.errors()
    plan = session.plan()
    started = time.perf_counter()
    outcome = asyncio.run(session.apply(plan, set()))
    seconds = time.perf_counter() - started
    session.close()
    result = outcome.result
    assert result is not None, outcome.message
    return {"seconds": seconds, "changes": result.done, "failed": len(result.failed)}


def measure_sdk(url: str, count: int) -> dict[str, Any]:
    """The same updates with Zivver's zivverscim SDK, one at a time, as its README shows."""
    import httpx
    from zivverscim.scim_connection_crud import ZivverSCIMConnection

    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=300) as client:
        users = client.get(f"{url}/Users").json()["Resources"][:count]
    base = url.rstrip("/") + "/Users/"
    connection = ZivverSCIMConnection(API_KEY, base, base, base, base)
    started = time.perf_counter()
    for user in users:
        connection.update_user_in_zivver(
            account_id=user["id"],
            last_name=f"SDK {user['userName']}",
            user_name=user["userName"],
            is_active=True,
            aliases=user[ZIVVER_USER]["aliases"],
            delegates=[],
        )
    return {"seconds": time.perf_counter() - started, "changes": len(users)}


def measure_tui(count: int) -> dict[str, Any]:
    """Open the preview of ``count`` changes, then type 5 characters into its search (Pilot).

    A keystroke through Pilot costs about 0.1 s however small the table (Pilot waits for
    the screen to settle), so the same is measured with 10 changes: the difference is what
    the 100,000 cost.
    """
    from textual.app import App
    from textual.reactive import reactive

    from zsync_core.collector import collector_paused
    from zsync_core.model import AccountState, Action, Change, Plan
    from zsync_tui.screens.preview import PreviewScreen
    from zsync_tui.widgets.progress import Progress
    from zsync_tui.widgets.table import VirtualTable

    class Host(App[None]):
        progress: reactive[Progress] = reactive(Progress)

    def make(rows: int) -> list[Change]:
        return [
            Change(
                n + 1,
                Action.UPDATE_USER,
                email(n),
                str(n),
                str(n),
                "Directory",
                AccountState(email(n), f"User {n:06}", True),
                frozenset({"display_name"}),
                {"display_name": f"Old {n}"},
                {"display_name": f"User {n:06}"},
            )
            for n in range(rows)
        ]

    async def run(rows: int) -> dict[str, Any]:
        with collector_paused():  # as the app plans (ZsyncApp.plan_quietly)
            changes = make(rows)
        plan = Plan(changes, [], [], [])
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            started = time.perf_counter()
            screen = PreviewScreen("bench", plan, set())
            await app.push_screen(screen)
            await pilot.pause()
            opened = time.perf_counter() - started
            await pilot.press("slash")
            await pilot.pause()
            timings = []
            for key in "user0":
                started = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                timings.append(time.perf_counter() - started)
            shown = len(screen.query_one("#changes", VirtualTable).rows)
        return {"open": opened, "filter": max(timings), "rows": shown}

    small = asyncio.run(run(10))
    large = asyncio.run(run(count))
    return {
        "seconds": large["open"],
        **large,
        "filter_10": small["filter"],
        "open_10": small["open"],
    }


# --- the driver ------------------------------------------------------------------------------
