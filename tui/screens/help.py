"""The "?" screen: every key, and what each command does on the daemon's side (so nobody guesses)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓", "move between endpoints"),
    ("enter", "endpoint detail: its month as a chart, spend by hour, workers, config changes, open jobs"),
    ("w", "on the endpoint detail: what other settings would have cost over the last 7 days (replayed)"),
    ("e t s", "tabs under the endpoints: e events and alerts, t traffic, s the month's spend as a chart"),
    ("tab", "move the focus (to scroll the events with ↑ ↓)"),
    ("p", "pause the endpoint: the daemon scales it to zero (workers_max 0) and remembers the old config"),
    ("r", "restore the endpoint's configuration from before the pause"),
    ("c", "cancel a job (the oldest one the daemon saw is pre-filled)"),
    ("m", "switch a policy rule between DRY-RUN (propose only) and ENFORCE (act) for the endpoint"),
    ("a", "acknowledge an alert (stops its reminders)"),
    ("?", "this help"),
    ("escape", "close a dialog or screen; sends nothing"),
    ("q", "quit the dashboard (the daemon keeps running)"),
)

LEGEND = (
    "Every state is written as a word as well as a colour: OK, WARN, OVER, ▲ HUNG, ▲ OVER, "
    "✗ (policy broken), "
    "PAUSED, DRY-RUN, ENFORCE, BLIND, DAEMON DOWN, stale since … (times are UTC). "
    "Alerts show their delivery state from the ledger: PENDING (not sent yet), SENT, FAILED (retrying), "
    "ACKED (someone acknowledged it). Actions: DONE, VERIFIED (a later tick saw the effect), PROPOSED "
    "(dry-run: nothing changed), FAILED. "
    "Money is in euros, converted at the daemon's budget.usd_per_eur. A cost per 1,000 requests needs "
    "at least 50 requests (else n/a). "
    "Every command asks for confirmation and goes to the daemon, never straight to RunPod; "
    "the daemon records it in the ledger and verifies it."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's declared class attribute
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, expand=True)
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Does")
        for key, does in KEYS:
            table.add_row(key, does)
        with VerticalScroll(id="dialog"):
            yield Static("Keys", id="dialog-title")
            yield Static(table)
            yield Static(LEGEND, id="help-legend")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
