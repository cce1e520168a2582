"""The preview with 100,000 changes: search, filter and exclusion work on the whole plan.

(How fast is measured in bench/, not here: tests do not time things.)
"""

from __future__ import annotations

from textual.app import App
from textual.reactive import reactive

from tests.tui import wait_for
from zsync_core.model import AccountState, Action, Change, Plan
from zsync_tui.screens.preview import PreviewScreen
from zsync_tui.widgets.progress import Progress
from zsync_tui.widgets.table import VirtualTable

COUNT = 100_000


class Host(App[None]):
    """Just enough of the zsync app to hold one screen."""

    progress: reactive[Progress] = reactive(Progress)

    def __init__(self, screen: PreviewScreen) -> None:
        super().__init__()
        self.preview = screen

    def on_mount(self) -> None:
        self.push_screen(self.preview)


def big_plan() -> Plan:
    changes = []
    for number in range(COUNT):
        action = Action.CREATE_USER if number % 10 else Action.SUSPEND_USER
        after = {"email": f"user{number:06}@example.org", "display_name": f"User {number}"}
        if action is Action.SUSPEND_USER:
            after = {"active": False}
        changes.append(
            Change(
                number + 1,
                action,
                f"user{number:06}@example.org",
                None,
                f"S{number}",
                "AD",
                AccountState(f"user{number:06}@example.org", f"User {number}", True),
                frozenset(after),
                {},
                after,
            )
        )
    return Plan(changes, [], [], [])


async def test_preview_of_100000_changes_searches_filters_and_excludes() -> None:
    plan = big_plan()
    screen = PreviewScreen("bench", plan, set())
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen is screen, "the preview")
        table = screen.query_one(VirtualTable)
        assert len(table.rows) == COUNT
        await pilot.press("end")
        assert table.current.email == "user099999@example.org"
        await pilot.press("slash", *"user0999")
        assert [c.email for c in table.rows][:2] == [
            "user099900@example.org",
            "user099901@example.org",
        ]
        assert len(table.rows) == 100
        await pilot.press("enter", "f", "f")  # suspend-user only
        assert {c.action for c in table.rows} == {Action.SUSPEND_USER}
        assert len(table.rows) == 10
        await pilot.press("x")
        assert screen.excluded == {table.rows[0].id}
        assert "10/100,000 · suspend-user · 1 excluded" in str(screen.query_one("#filter").render())
