"""What the watchdog did, would have done, and told people: newest first, each with its euro figure.

A dry-run proposal is labelled DRY-RUN (nothing was changed) and an action ACTION (something was), because
the sysadmin's first question after an incident is "did it actually stop it, and what did that save?".
Alert rows carry their delivery state (PENDING, SENT, FAILED) so an undelivered Slack message is visible.
"""

from __future__ import annotations

import re

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from tui.widgets.state import DashboardState, eur, utc_clock
from watchdog.status import EventView

KIND_WORDS: dict[str, tuple[str, str]] = {
    "action": ("ACTION", "bold green"),
    "proposal": ("DRY-RUN", "bold yellow"),
    "alert": ("ALERT", "bold red"),
    "drift": ("DRIFT", "bold magenta"),
    "traffic": ("TRAFFIC", "bold cyan"),
    "blind": ("BLIND", "bold red"),
}

STATE_STYLES: dict[str, str] = {"pending": "yellow", "failed": "bold red", "sent": "green"}

SLACK_EMOJI = re.compile(r"(?<![\w:]):[a-z][a-z0-9_+-]*:(?![\w:])\s*")
"""Alert texts are written for Slack (``:rotating_light: Budget 80 %``); a terminal shows the words only."""


def events_table(events: tuple[EventView, ...]) -> Table:
    table = Table(expand=True, box=None, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("Time", no_wrap=True, width=8)
    table.add_column("Kind", no_wrap=True, width=7)
    table.add_column("What", ratio=1)
    table.add_column("€", justify="right", no_wrap=True)
    table.add_column("State", no_wrap=True)
    for event in sorted(events, key=lambda e: e.at, reverse=True):
        word, style = KIND_WORDS.get(event.kind, (event.kind.upper(), "bold"))
        what = Text()
        if event.endpoint_id:
            what.append(f"{event.endpoint_id}: ", style="bright_black")
        what.append(SLACK_EMOJI.sub("", event.text))
        state = (
            Text(event.state.upper(), style=STATE_STYLES.get(event.state, "")) if event.state else Text("")
        )
        table.add_row(
            utc_clock(event.at).removesuffix(" UTC"),
            Text(word, style=style),
            what,
            eur(event.eur) if event.eur is not None else "",
            state,
        )
    return table


class EventsLog(VerticalScroll):
    """Scrollable list of the daemon's recent events."""

    BORDER_TITLE = "Events (UTC, newest first)"
    state: reactive[DashboardState | None] = reactive(None)

    def compose(self) -> ComposeResult:
        yield Static(id="events-body")

    def on_mount(self) -> None:
        self.watch_state(self.state)

    def watch_state(self, state: DashboardState | None) -> None:
        if not self.is_mounted:
            return
        body = self.query_one("#events-body", Static)
        events = state.status.events if state and state.status else ()
        if not events:
            body.update(Text("No events yet.", style="italic"))
        else:
            body.update(events_table(events))
