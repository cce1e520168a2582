"""Step 2 — Summary: one line per kind of action, each opening its details; options; reload."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from zsync_core.model import Action, Plan, not_sent_lines, summary_line

from .. import fmt
from .base import StepScreen
from .lines import LinesScreen


class SummaryLines(OptionList):
    """The summary's lines: Enter opens one (said in the footer); PgUp and PgDn scroll the
    notes below, which are longer than the screen on a first run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Open"),
        Binding("pagedown", "screen.notes(1)", "Scroll notes"),
        Binding("pageup", "screen.notes(-1)", "Scroll notes up", show=False),
    ]


class SummaryScreen(StepScreen):
    STEP = 2
    CSS = """
    #intro { padding: 1 1 0 1; height: auto; }
    #read { padding: 0 1 1 1; height: auto; color: $text-muted; }
    #lines { height: auto; max-height: 11; margin: 0 1; }
    #notes { height: 1fr; margin: 1 1 0 1; padding: 0 1; }
    #notes-text { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "choose('update')", "Update now"),
        Binding("p", "choose('preview')", "Preview"),
        Binding("o", "choose('options')", "Options"),
        Binding("r", "choose('reload')", "Reload"),
    ]

    class Chosen(Message):
        """``what`` is update, preview, options or reload; ``action`` filters the preview."""

        def __init__(self, what: str, action: Action | None = None) -> None:
            super().__init__()
            self.what = what
            self.action = action

    def __init__(self, where: str, plan: Plan, excluded: set[int], read: str) -> None:
        super().__init__(where)
        self.plan = plan
        self.excluded = excluded
        self.read = read

    def body(self) -> Iterable[Widget]:
        yield Static(
            "[b]Step 2 — Summary.[/b] Nothing has been changed yet. Enter opens the details of a line; "
            "[b]u[/b] starts the update; PgDn and PgUp scroll the notes.",
            id="intro",
        )
        yield Static(Text(fmt.plain(self.read)), id="read")
        yield SummaryLines(id="lines")
        with VerticalScroll(id="notes"):
            yield Static(id="notes-text")

    def on_mount(self) -> None:
        self.show(self.plan, self.excluded)
        self.query_one(OptionList).focus()

    def show(self, plan: Plan, excluded: set[int]) -> None:
        """Show (again) after the plan was recomputed or changes were excluded."""
        self.plan, self.excluded = plan, excluded
        lines = self.query_one(OptionList)
        highlighted = lines.highlighted
        lines.clear_options()
        counts = plan.by_action()
        left_out: dict[Action, int] = {}
        for change in plan.changes:
            if change.id in excluded:
                left_out[change.action] = left_out.get(change.action, 0) + 1
        for action, count in counts.items():
            if not count:
                continue
            line = Text(summary_line(action, count))
            if left_out.get(action):
                line.append(f" ({left_out[action]} excluded from this run)", style="italic")
            line.append("  Open details ›", style="bold")
            lines.add_option(Option(line, id=action.value))
        if not plan.changes and plan.attention:
            lines.add_option(
                Option(
                    Text(
                        "No change is planned, but Zivver may not be in step with the sources: "
                        f"{fmt.plain('; '.join(plan.attention))}. See the notes below.",
                        style="bold yellow",
                    ),
                    id="none",
                )
            )
        elif not plan.changes:
            lines.add_option(
                Option("Zivver is in step with the sources: there is nothing to do.", id="none")
            )
        if plan.unusable:
            count = len(plan.unusable)
            line = Text(
                f"{count} source entr{'y' if count == 1 else 'ies'} could not be used and "
                f"{'is' if count == 1 else 'are'} skipped",
                style="bold red",
            )
            line.append("  List ›", style="bold")
            lines.add_option(Option(line, id="unusable"))
        if plan.blocked_removals:
            count = len(plan.blocked_removals)
            line = Text(f"{count} suspension(s) or deletion(s) not planned", style="bold yellow")
            line.append("  List ›", style="bold")
            lines.add_option(Option(line, id="blocked"))
        lines.highlighted = (
            highlighted if highlighted is not None and highlighted < lines.option_count else 0
        )
        self.query_one("#notes-text", Static).update(self._notes(plan))

    def _notes(self, plan: Plan) -> Text:
        text = Text()
        if plan.takeover is not None and plan.takeover.worth_showing:
            text.append("Taking over this organization:\n", style="bold")
            for line in plan.takeover.lines():
                text.append(f"  • {fmt.plain(line)}\n")
        if plan.not_sent:
            text.append("Not sent, to keep what zsync cannot see:\n", style="bold yellow")
            for line in not_sent_lines(plan.not_sent, shown=10):
                text.append(f"  {fmt.plain(line)}\n")
        if plan.guards:
            text.append("Needs your confirmation at Update now:\n", style="bold")
            for guard in plan.guards:
                text.append(f"  ⚠ {fmt.plain(guard.text)}\n", style="bold yellow")
                if guard.accounts:
                    text.append(f"    {fmt.plain(guard.named())}\n", style="dim")
        if plan.refused:
            text.append("Update now is refused: ", style="bold red")
            text.append(
                f"{fmt.plain(plan.refused)}. Nothing will be sent from this read; the changes below are for "
                "looking only (no suspension or deletion is shown).\n"
            )
        elif plan.removals_blocked:
            text.append("No suspension or deletion is planned: ", style="bold yellow")
            text.append(f"{fmt.plain(plan.removals_blocked)}.\n")
        notices = [n for n in plan.notices if n.level != "info"]
        if notices:
            text.append(f"{len(notices)} note(s) about the data", style="bold")
            text.append(" (all are in Recent events, key e):\n")
            for notice in notices[:50]:
                text.append(
                    f"  • {fmt.plain(notice.message)}\n",
                    style="red" if notice.level == "error" else "",
                )
        return text

    @on(OptionList.OptionSelected)
    def _open(self, event: OptionList.OptionSelected) -> None:
        plan = self.plan
        if event.option.id == "unusable":
            self.app.push_screen(
                LinesScreen(
                    f"Source entries that could not be used: {len(plan.unusable)}. An account "
                    "whose address can be read is left as it is this run; an entry with neither "
                    "address nor id blocks every suspension and deletion",
                    [u.text() for u in plan.unusable],
                )
            )
        elif event.option.id == "blocked":
            self.app.push_screen(
                LinesScreen(
                    f"Not suspended or deleted this run: {len(plan.blocked_removals)} — "
                    f"{plan.removals_blocked}",
                    list(plan.blocked_removals),
                )
            )
        elif event.option.id and event.option.id != "none":
            self.post_message(self.Chosen("preview", Action(event.option.id)))

    def action_notes(self, direction: int) -> None:
        notes = self.query_one("#notes", VerticalScroll)
        if direction > 0:
            notes.scroll_page_down()
        else:
            notes.scroll_page_up()

    def action_choose(self, what: str) -> None:
        self.post_message(self.Chosen(what))
