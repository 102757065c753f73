"""What the watchdog did, would have done, and told people: newest first, each with its euro figure.

A dry-run proposal is labelled DRY-RUN (nothing was changed) and an action ACTION (something was), because
the sysadmin's first question after an incident is "did it actually stop it, and what did that save?".

Alerts are one row each, with their real delivery state from the ledger's ``alerts`` table (PENDING, SENT,
FAILED, ACKED once someone acknowledged it): the daemon's own event list only knows that it queued them.
The decision step that raised an alert ("alert (applied): …") is the same story told twice, so it is not
shown beside its alert. Texts are written for Slack (``:rotating_light:``, ``€16.03``, ``$155.74``); the
terminal shows the words, with every amount in euros written ``16.03 €``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import var
from textual.widgets import Static

from tui.source import KnownAlert, LedgerView
from tui.widgets.state import DashboardState, Prose, eur, event_time
from watchdog.status import DaemonStatus, EventView

MAX_ROWS = 60

KIND_WORDS: dict[str, tuple[str, str]] = {
    "action": ("ACTION", "bold green"),
    "proposal": ("DRY-RUN", "bold yellow"),
    "alert": ("ALERT", "bold red"),
    "drift": ("DRIFT", "bold magenta"),
    "traffic": ("TRAFFIC", "bold cyan"),
    "blind": ("BLIND", "bold red"),
}

ACTION_WORDS: dict[str, str] = {
    "cancel_job": "Cancel job",
    "escalate": "Stop the endpoint's workers (cancel did not stop the bill)",
    "scale_to_zero": "Scale to zero",
    "pause": "Pause",
    "purge_queue": "Purge the queue",
    "tighten": "Tighten (1 worker, short idle timeout)",
    "patch_config": "Fix configuration",
    "deny_list": "Deny-list the source",
    "restore": "Restore configuration",
    "set_rule_mode": "Rule mode",
    "alert": "Alert",
    "none": "Noted",
}

OUTCOME_STATES: dict[str, tuple[str, str]] = {
    "intended": ("STARTED", "yellow"),
    "proposed": ("PROPOSED", "yellow"),
    "applied": ("DONE", "green"),
    "failed": ("FAILED", "bold red"),
    "verified": ("VERIFIED", "green"),
    "not_verified": ("UNVERIFIED", "bold red"),
    "skipped": ("SKIPPED", "bright_black"),
}

ALERT_STATES: dict[str, tuple[str, str]] = {
    "acked": ("ACKED", "green"),
    "sent": ("SENT", "green"),
    "pending": ("PENDING", "bold yellow"),
    "failed": ("FAILED", "bold red"),
}

SLACK_EMOJI = re.compile(r"(?<![\w:]):[a-z][a-z0-9_+-]*:(?![\w:])\s*")
"""Alert texts are written for Slack (``:rotating_light: Budget 80 % reached``); a terminal shows words."""
_EURO_FIRST = re.compile(r"€\s?(\d[\d,]*(?:\.\d+)?)")
_DOLLARS = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)")
_PYTHON_NONE = re.compile(r"\b([a-z_]+) is None\b")
_STEP = re.compile(r"^(?P<action>[a-z_]+) \((?P<outcome>[a-z_]+)\): (?P<reason>.*)$", re.DOTALL)
SAME_TICK_S = 2.0
"""A decision step and the alert it raised carry the same tick's time."""


def plain_words(text: str, usd_per_eur: float | None) -> str:
    """A daemon text as a terminal should show it: no Slack emoji codes, euros written ``12.34 €``, dollar
    amounts converted to euros, no Python ``None``."""
    text = SLACK_EMOJI.sub("", text)
    text = _EURO_FIRST.sub(lambda match: f"{match.group(1)} €", text)
    if usd_per_eur:
        text = _DOLLARS.sub(lambda match: eur(float(match.group(1).replace(",", "")) / usd_per_eur), text)
    text = _PYTHON_NONE.sub(lambda match: f"{match.group(1)} is not set", text)
    return text.strip()


@dataclass(frozen=True, slots=True)
class EventRow:
    at: float
    kind: str
    endpoint_id: str | None
    what: str
    eur: float | None
    state: str
    """A key of :data:`ALERT_STATES` for alerts, of :data:`OUTCOME_STATES` for steps, or ""."""


def alert_state(alert: KnownAlert) -> str:
    return "acked" if alert.acknowledged_at is not None else alert.state


def alert_row(alert: KnownAlert, usd_per_eur: float | None) -> EventRow:
    what = plain_words(alert.text, usd_per_eur)
    if alert.state == "failed":
        tries = (
            f" after {alert.attempts} attempt{'s' if alert.attempts != 1 else ''}" if alert.attempts else ""
        )
        what += f" (delivery failed{tries}: {alert.last_error or 'no answer'}; retrying)"
    return EventRow(alert.created_at, "alert", None, what, alert.eur, alert_state(alert))


def step_row(event: EventView, usd_per_eur: float | None) -> EventRow:
    match = _STEP.match(event.text)
    if match is None:
        return EventRow(
            event.at, event.kind, event.endpoint_id, plain_words(event.text, usd_per_eur), event.eur, ""
        )
    action, outcome, reason = match["action"], match["outcome"], match["reason"]
    reason = reason.removeprefix(f"{outcome}: ").removeprefix("verified: ")
    words = ACTION_WORDS.get(action, action.replace("_", " ").capitalize())
    return EventRow(
        event.at,
        event.kind,
        event.endpoint_id,
        f"{words}: {plain_words(reason, usd_per_eur)}",
        event.eur,
        outcome if outcome in OUTCOME_STATES else "",
    )


def _raises_alert(event: EventView) -> bool:
    match = _STEP.match(event.text)
    return match is not None and match["action"] == "alert"


def event_rows(status: DaemonStatus | None, ledger: LedgerView | None) -> list[EventRow]:
    """One row per event and per alert, newest first. With the ledger read, alerts come from it (their real
    state); without it, from the status (their state unknown)."""
    events = status.events if status is not None else ()
    rate = status.budget.usd_per_eur if status is not None and status.budget is not None else None
    ledger_ok = ledger is not None and ledger.problem is None
    rows: list[EventRow] = []
    alert_times: list[float] = []
    if ledger_ok:
        assert ledger is not None
        for alert in ledger.alerts:
            rows.append(alert_row(alert, rate))
            alert_times.append(alert.created_at)
    for event in events:
        if event.kind == "alert":
            alert_times.append(event.at)
            if not ledger_ok:
                rows.append(
                    EventRow(event.at, "alert", None, plain_words(event.text, rate), event.eur, "unknown")
                )
    for event in events:
        if event.kind == "alert":
            continue
        if _raises_alert(event) and any(abs(event.at - at) <= SAME_TICK_S for at in alert_times):
            continue  # the alert's own row tells it, with its delivery state
        rows.append(step_row(event, rate))
    rows.sort(key=lambda row: row.at, reverse=True)
    return rows[:MAX_ROWS]


def _state_cell(row: EventRow) -> Text:
    if row.kind == "alert":
        word, style = ALERT_STATES.get(row.state, ("?", "bright_black"))
    else:
        word, style = OUTCOME_STATES.get(row.state, ("", ""))
    return Text(word, style=style, no_wrap=True)


STACK_BELOW = 100
"""Narrower than this, an event's state goes under its kind (one column less, more room for the words)."""


def events_table(rows: Iterable[EventRow], now: float, *, stacked: bool = False) -> Table:
    table = Table(expand=True, box=None, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("UTC", no_wrap=True)
    table.add_column("Kind/state" if stacked else "Kind", no_wrap=True, min_width=7)
    table.add_column("What", ratio=1)
    table.add_column("€", justify="right", no_wrap=True)
    if not stacked:
        table.add_column("State", no_wrap=True)
    for row in rows:
        word, style = KIND_WORDS.get(row.kind, (row.kind.upper(), "bold"))
        kind = Text(word, style=style, no_wrap=True)
        what = Text()
        if row.endpoint_id:
            what.append(f"{row.endpoint_id}: ", style="bright_black")
        what.append(row.what)
        money = eur(row.eur) if row.eur is not None else ""
        if stacked:
            state = _state_cell(row)
            if state.plain:
                kind.append("\n")
                kind.append_text(state)
            table.add_row(event_time(row.at, now), kind, Prose(what), money)
        else:
            table.add_row(event_time(row.at, now), kind, Prose(what), money, _state_cell(row))
    return table


def caption(ledger: LedgerView | None) -> Text:
    """A line above the events only when the alerts' states are not known (the help explains the words)."""
    if ledger is None:
        return Text("Alert delivery states: reading the ledger…", style="bright_black")
    if ledger.problem is not None:
        return Text(f"⚠ Alert delivery states unknown: {ledger.problem}", style="yellow")
    return Text("")


class EventsLog(VerticalScroll):
    """Scrollable list of the daemon's recent events and alerts; redrawn only when they change."""

    state: var[DashboardState | None] = var(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[object, ...] | None = None
        self._caption: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="events-caption")
        yield Static(id="events-body")

    def on_mount(self) -> None:
        self.watch_state(self.state)

    def watch_state(self, state: DashboardState | None) -> None:
        if not self.is_mounted:
            return
        status = state.status if state else None
        ledger = state.ledger if state else None
        day = int(state.now // 86_400) if state else 0
        stacked = 0 < self.size.width < STACK_BELOW
        # Only what the rows are made of: the budget and the ledger's spend by day move at every tick.
        rate = status.budget.usd_per_eur if status is not None and status.budget is not None else None
        alerts = (ledger.alerts, ledger.problem) if ledger is not None else None
        key = (status.events if status else None, rate, alerts, day, stacked)
        if key == self._drawn:
            return
        self._drawn = key
        words = caption(ledger)
        note = self.query_one("#events-caption", Static)
        if words != self._caption:
            self._caption = words
            note.display = bool(words.plain)
            note.update(Prose(words))
        rows = event_rows(status, ledger)
        body = self.query_one("#events-body", Static)
        if not rows:
            body.update(Text("No events yet.", style="italic"))
        else:
            body.update(events_table(rows, state.now if state else 0.0, stacked=stacked))

    def on_resize(self) -> None:
        self.watch_state(self.state)
