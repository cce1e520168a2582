"""Helpers for driving the TUI with Textual's Pilot, as an admin would with the keyboard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Static

from zsync_core.config import load_config
from zsync_core.session import SyncSession
from zsync_tui.app import ZsyncApp
from zsync_tui.demo import Demo, start_demo


async def wait_for(
    pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 30
) -> None:
    """Let the app run until ``condition`` holds (loads and updates run in workers)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; screen is {pilot.app.screen!r}")
        await pilot.pause(0.05)
    await pilot.pause()


def text(app: ZsyncApp, selector: str) -> str:
    """The plain text a Static shows."""
    rendered = app.screen.query_one(selector, Static).render()
    return str(getattr(rendered, "plain", rendered))


def app_for(profile: Path) -> ZsyncApp:
    return ZsyncApp(SyncSession(load_config(profile), mode="tui"))


def demo_app(directory: Path) -> tuple[ZsyncApp, Demo]:
    demo = start_demo(directory)
    return ZsyncApp(SyncSession(demo.config, mode="tui"), where="demo"), demo


def notifications(app: ZsyncApp) -> list[str]:
    """Every message the app shows as a notification from now on (recorded as it is shown)."""
    shown: list[str] = []
    notify = app.notify

    def recording(message: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        shown.append(message)
        notify(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return shown
