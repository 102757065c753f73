"""The dashboard a sysadmin opens over SSH: where the 20 EUR stand and what the watchdog is doing.

How it stays responsive: all I/O (control socket, ledger) runs in thread workers; the App keeps ONE
reactive :class:`DashboardState` that every widget is bound to and renders. Refreshes are exclusive and a
new one is only started when the previous one finished, so a slow daemon (2 s socket timeout) never stacks
reads or freezes the UI; the last data stays on screen with the problem written above it.

How it stays cheap: the daemon publishes a new status once per tick (5 s) while the dashboard reads every
``[tui] refresh_s`` (2 s). A read equal to the status on screen keeps the object on screen, and every
widget compares what it would draw with what it drew (by identity first) and does nothing when that did
not change; the ledger (alerts, spend by day) is read only when a new tick arrived. Between ticks only the
status bar's "tick N s ago" moves. A tick moves figures, seldom heights: widgets repaint without a new
layout of the screen unless their number of lines changed, the endpoints table repaints only the rows
that changed, the month's chart only when its picture did, and what sits on a closed tab only when the
tab is opened (``bench/tui_idle.py`` measures the dashboard idling on a live daemon).

Layout: the status bar, the budget (with the month's chart beside it from 110 columns on), the endpoints,
then tabs for the events, the traffic and the month's chart, switched with e, t and s (named in the footer),
so at 80x24 nothing is pushed off-screen.

Errors have one home, :meth:`WatchdogApp.on_worker_state_changed`: a failed read becomes the status bar's
problem line, a failed command a notification. The dashboard never talks to RunPod: commands are confirmed
in a dialog and sent to the daemon through an :class:`~tui.source.ActionSink`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from tui.screens.confirm import ActionRequest, ChoiceField, ConfirmedAction, ConfirmScreen, TextField
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.source import ActionSink, ControlActions, DaemonSource, LedgerView, SourceReading, StatusSource
from tui.widgets.budget_panel import BudgetPanel
from tui.widgets.endpoints_table import EndpointsTable
from tui.widgets.events_log import EventsLog, plain_words
from tui.widgets.month_chart import MonthChart, MonthKey, MonthWords
from tui.widgets.state import DashboardState, duration, eur, mode_word
from tui.widgets.status_bar import StatusBar
from tui.widgets.traffic_panel import TrafficPanel
from watchdog.config import load_config
from watchdog.control import ControlError
from watchdog.errors import ConfigError, WatchdogError
from watchdog.status import DaemonStatus, EndpointView
from watchdog.vocabulary import CONFIGURABLE_RULES

ENDPOINT_ACTIONS = frozenset({"pause", "restore", "cancel_job", "rule_mode"})
"""Actions that act on the selected endpoint (the table's cursor, or the endpoint on the detail screen)."""
COMMAND_ACTIONS = ENDPOINT_ACTIONS | {"ack_alert"}
TABS: dict[str, str] = {"events": "tab-events", "traffic": "tab-traffic", "month": "tab-month"}
NOT_A_TERMINAL = (
    "runpod-watchdog tui: not a terminal (stdin and stdout must be a TTY): use 'ssh -t HOST runpod-watchdog"
    " tui', or 'runpod-watchdog snapshot' for a one-shot text view"
)

TickKey = tuple[float, float | None] | None
"""Which tick a status comes from: (daemon started at, last tick at)."""


def tick_key(status: DaemonStatus | None) -> TickKey:
    return None if status is None else (status.started_at, status.last_tick_at)


# ------------------------------------------------------------------------------------------------------------
# Messages: past events, posted from worker threads
# ------------------------------------------------------------------------------------------------------------


class StatusRead(Message):
    """A refresh finished (with the ledger's view when a new tick came). A newer one replaces an older one
    still queued, unless only the older one carries the ledger's view."""

    def __init__(self, reading: SourceReading, ledger: LedgerView | None = None) -> None:
        super().__init__()
        self.reading = reading
        self.ledger = ledger

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusRead) and (self.ledger is not None or message.ledger is None)


class ActionPrepared(Message):
    """What a command needs (the oldest job, the alert keys) was looked up: time to ask for confirmation."""

    def __init__(self, request: ActionRequest) -> None:
        super().__init__()
        self.request = request


class ActionSent(Message):
    """The daemon accepted a command."""

    def __init__(self, action: ConfirmedAction, reply: str) -> None:
        super().__init__()
        self.action = action
        self.reply = reply


def describe_error(error: BaseException | None) -> str:
    """Plain words for the user; our own errors already are, others get their type for the bug report."""
    if error is None:
        return "unknown error"
    if isinstance(error, ControlError | WatchdogError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# ------------------------------------------------------------------------------------------------------------
# The App
# ------------------------------------------------------------------------------------------------------------


class WatchdogApp(App[int]):
    """The dashboard. Build it with :func:`make_app`."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    """Absolute, so apps built on this one elsewhere (the demo) find it too."""
    TITLE = "runpod-watchdog"
    ENABLE_COMMAND_PALETTE = (
        False  # every command is a visible key; the palette's hint would crowd 80 columns
    )
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012  # textual types it as it does
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_dashboard", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("p", "pause", "Pause"),
        Binding("r", "restore", "Restore"),
        Binding("c", "cancel_job", "Cancel job"),
        Binding("m", "rule_mode", "Rule mode"),
        Binding("a", "ack_alert", "Ack alert"),
        Binding("e", "show_tab('events')", "Events"),
        # Named on their tabs ("Traffic (t)", "Month (s)"): the footer has room for 80 columns only.
        Binding("t", "show_tab('traffic')", "Traffic", show=False),
        Binding("s", "show_tab('month')", "Month chart", show=False),
    ]

    state: var[DashboardState] = var(
        lambda: DashboardState(None, False, "connecting to the daemon…", 0.0, 15.0), always_update=False
    )
    """A ``var``, not a repainting ``reactive``: on the App, a repaint is the whole screen, every second.
    The widgets bound to it redraw themselves, and only what changed."""

    def __init__(
        self,
        source: StatusSource,
        actions: ActionSink,
        *,
        refresh_s: float = 1.0,
        stale_after_s: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.source = source
        self.actions = actions
        self.refresh_s = refresh_s
        self.stale_after_s = stale_after_s
        self.clock = clock
        self._refresh_worker: Worker[None] | None = None
        self._ledger_wanted = True
        """Read the ledger with the next status even if the tick did not change (after a command)."""
        self._ledger_tick: TickKey = None
        """The tick the ledger was last read for (written by the refresh worker; reads never overlap)."""
        self.set_reactive(
            WatchdogApp.state,
            DashboardState(None, False, "connecting to the daemon…", clock(), stale_after_s),
        )

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status-bar").data_bind(WatchdogApp.state)
        with Horizontal(id="top"):
            yield BudgetPanel(id="budget").data_bind(WatchdogApp.state)
            with Vertical(id="month-compact", classes="month-panel"):
                yield MonthChart(classes="month-chart").data_bind(WatchdogApp.state)
                yield MonthKey(classes="month-key").data_bind(WatchdogApp.state)
        self.endpoints_table = EndpointsTable(id="endpoints").data_bind(WatchdogApp.state)
        yield self.endpoints_table
        with TabbedContent(id="tabs", initial=TABS["events"]):
            with TabPane("Events (e)", id=TABS["events"]):
                yield EventsLog(id="events").data_bind(WatchdogApp.state)
            with TabPane("Traffic (t)", id=TABS["traffic"]):
                yield TrafficPanel(id="traffic").data_bind(WatchdogApp.state)
            with TabPane("Month (s)", id=TABS["month"]), Vertical(classes="month-panel"):
                yield MonthChart(id="month-chart", classes="month-chart").data_bind(WatchdogApp.state)
                yield MonthKey(classes="month-key").data_bind(WatchdogApp.state)
                yield MonthWords(id="month-words", classes="month-words").data_bind(WatchdogApp.state)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#month-compact").border_title = "The month (s: larger)"
        self.endpoints_table.border_title = "Endpoints (enter: detail)"
        self.endpoints_table.focus()
        self.refresh_if_idle()
        self.set_interval(self.refresh_s, self.refresh_if_idle)

    # -- reading -------------------------------------------------------------------------------------------

    def refresh_if_idle(self) -> None:
        """Start a read unless one is still running (a slow daemon must not pile up threads)."""
        worker = self._refresh_worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            return
        self._refresh_worker = self.refresh_status(self._ledger_wanted)
        self._ledger_wanted = False

    @work(thread=True, exclusive=True, exit_on_error=False, group="refresh")
    def refresh_status(self, read_ledger: bool = True) -> None:
        reading = self.source.read()
        ledger = None
        tick = tick_key(reading.status)
        if reading.status is not None and (read_ledger or tick != self._ledger_tick):
            ledger = self.source.ledger_view(self.clock())  # once per tick, not once per refresh
            self._ledger_tick = tick
        self.post_message(StatusRead(reading, ledger))

    def on_status_read(self, message: StatusRead) -> None:
        reading, shown = message.reading, self.state
        # Keep the last figures when a read brings none: stale numbers, clearly marked, beat a blank screen.
        status = reading.status if reading.status is not None else shown.status
        if status is not shown.status and status == shown.status:
            status = shown.status  # the same tick, read again: keep the object widgets compare against
        ledger = message.ledger if message.ledger is not None else shown.ledger
        if ledger is not shown.ledger and ledger == shown.ledger:
            ledger = shown.ledger
        self.state = DashboardState(
            status, reading.live, reading.problem, self.clock(), self.stale_after_s, ledger
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures reach the user."""
        if event.state is not WorkerState.ERROR:
            return
        problem = describe_error(event.worker.error)
        if event.worker.group == "refresh":
            self.state = dataclasses.replace(
                self.state, problem=f"could not read the status: {problem}", now=self.clock()
            )
        elif event.worker.group == "actions":
            self.notify(problem, title="Command not applied", severity="error", timeout=10)
        else:
            self.notify(problem, title="Could not read the ledger", severity="warning", timeout=8)

    # -- navigation ----------------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.push_screen(DetailScreen(event.row_key.value, self.source, self.clock))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_show_tab(self, name: str) -> None:
        self.query_one("#tabs", TabbedContent).active = TABS[name]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # Narrower than 110 columns the month's chart takes the budget panel's and the endpoints' rows
        # while its tab is open (see app.tcss): at 80x24 it would otherwise get two rows of plot.
        self.screen.set_class(event.pane.id == TABS["month"], "-month-tab")
        self.call_after_refresh(self._focus_endpoints)

    def _focus_endpoints(self) -> None:
        """↑ ↓ keep moving between endpoints after a tab switch (hiding the table drops its focus)."""
        if self.screen is self.screen_stack[0] and self.endpoints_table.display and self.focused is None:
            self.endpoints_table.focus()

    def action_quit_dashboard(self) -> None:
        self.exit(0)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_tab":
            return self.screen is self.screen_stack[0]
        if action not in COMMAND_ACTIONS and action != "help":
            return True
        if self.screen is not self.screen_stack[0] and not isinstance(self.screen, DetailScreen):
            return False  # a dialog is open: its own keys only
        if action in ENDPOINT_ACTIONS and self.target_endpoint() is None:
            return None  # shown, greyed out: nothing selected
        return True

    def target_endpoint(self) -> EndpointView | None:
        if isinstance(self.screen, DetailScreen):
            return self.state.endpoint(self.screen.endpoint_id)
        if not hasattr(self, "endpoints_table"):  # not composed yet
            return None
        endpoint_id = self.endpoints_table.selected_endpoint_id
        return self.state.endpoint(endpoint_id) if endpoint_id else None

    # -- commands: ask, confirm, send ----------------------------------------------------------------------

    def action_pause(self) -> None:
        endpoint = self.target_endpoint()
        if endpoint is None:
            return
        note = f"\nAlready PAUSED ({endpoint.paused})." if endpoint.paused else ""
        self.ask(
            ActionRequest(
                kind="pause",
                title=f"Pause {endpoint.name} ({endpoint.id})?",
                explanation=(
                    "The daemon scales it to zero (workers_max 0): running work stops, new requests queue."
                    " It keeps the current configuration so 'r' can restore it."
                    f"\nSpent this month: {eur(endpoint.spend_month_eur)}.{note}"
                ),
                args={"endpoint_id": endpoint.id},
            )
        )

    def action_restore(self) -> None:
        endpoint = self.target_endpoint()
        if endpoint is None:
            return
        note = (
            f"Currently PAUSED ({endpoint.paused})."
            if endpoint.paused
            else "It is not paused by the watchdog: the daemon refuses if it saved no configuration."
        )
        self.ask(
            ActionRequest(
                kind="restore",
                title=f"Restore {endpoint.name} ({endpoint.id})?",
                explanation=f"The daemon puts back the configuration it saved when it paused it.\n{note}",
                args={"endpoint_id": endpoint.id},
            )
        )

    def action_rule_mode(self) -> None:
        endpoint = self.target_endpoint()
        if endpoint is None:
            return
        other_mode = "enforce" if endpoint.mode == "dry-run" else "dry-run"
        self.ask(
            ActionRequest(
                kind="set_rule_mode",
                title=f"Switch a rule's mode on {endpoint.name} ({endpoint.id})",
                explanation=(
                    f"The endpoint runs in {mode_word(endpoint.mode)}. DRY-RUN records what a rule would do"
                    " (and what it would save); ENFORCE lets the rule act."
                ),
                args={"endpoint_id": endpoint.id},
                fields=(
                    ChoiceField(
                        "rule",
                        "Rule",
                        tuple((rule, rule) for rule in CONFIGURABLE_RULES),
                        CONFIGURABLE_RULES[0],
                    ),
                    ChoiceField(
                        "mode",
                        "New mode",
                        (("DRY-RUN (propose only)", "dry-run"), ("ENFORCE (act)", "enforce")),
                        other_mode,
                    ),
                ),
            )
        )

    def action_cancel_job(self) -> None:
        endpoint = self.target_endpoint()
        if endpoint is not None:
            self.prepare_cancel_job(endpoint)

    @work(thread=True, exclusive=True, exit_on_error=False, group="prepare")
    def prepare_cancel_job(self, endpoint: EndpointView) -> None:
        history = self.source.endpoint_history(endpoint.id, self.clock())
        oldest = history.open_jobs[0] if history.open_jobs else None
        if oldest is not None:
            running_for = duration(self.clock() - (oldest.started_at or oldest.first_seen_at))
            known = f"Oldest open job: {oldest.job_id} ({oldest.status}, for {running_for})."
        else:
            known = "No open job known to the ledger: type the job id."
        if history.problem:
            known += f"\n⚠ {history.problem}"
        oldest_work = (
            "" if endpoint.oldest_work_s is None else f" Oldest work: {duration(endpoint.oldest_work_s)}"
        )
        self.post_message(
            ActionPrepared(
                ActionRequest(
                    kind="cancel_job",
                    title=f"Cancel a job on {endpoint.name} ({endpoint.id})?",
                    explanation=(
                        f"The daemon asks RunPod to cancel it; its worker is then free to scale down."
                        f"{oldest_work} (limit {duration(endpoint.work_limit_s)}).\n{known}"
                    ),
                    args={"endpoint_id": endpoint.id},
                    fields=(
                        TextField("job_id", "Job id", oldest.job_id if oldest else "", "the RunPod job id"),
                    ),
                )
            )
        )

    def action_ack_alert(self) -> None:
        self.prepare_ack_alert()

    @work(thread=True, exclusive=True, exit_on_error=False, group="prepare")
    def prepare_ack_alert(self) -> None:
        alerts = self.source.unacknowledged_alerts()
        field: TextField | ChoiceField
        if alerts:
            rate = self.state.usd_per_eur
            options = tuple(
                (f"{alert.state.upper()} · {plain_words(alert.text, rate)}"[:70], alert.key)
                for alert in alerts
            )
            field = ChoiceField("key", "Alert", options, alerts[0].key)
            explanation = f"{len(alerts)} alert(s) not acknowledged. Acknowledging stops the reminders."
        else:
            field = TextField("key", "Alert key", "", "the alert's key (from the ledger or Slack)")
            explanation = "No unacknowledged alert found in the ledger; type the alert's key."
        self.post_message(
            ActionPrepared(
                ActionRequest(
                    kind="ack_alert", title="Acknowledge an alert?", explanation=explanation, fields=(field,)
                )
            )
        )

    def on_action_prepared(self, message: ActionPrepared) -> None:
        self.ask(message.request)

    def ask(self, request: ActionRequest) -> None:
        self.push_screen(ConfirmScreen(request), callback=self.on_confirmed)

    def on_confirmed(self, action: ConfirmedAction | None) -> None:
        if action is None:
            self.notify("Nothing was sent.", title="Cancelled", timeout=3)
            return
        self.send_action(action)

    @work(thread=True, exit_on_error=False, group="actions")
    def send_action(self, action: ConfirmedAction) -> None:
        self.post_message(ActionSent(action, self.actions.send(action.kind, **action.args)))

    def on_action_sent(self, message: ActionSent) -> None:
        self.notify(message.reply, title="Sent to the daemon", timeout=6)
        self._ledger_wanted = True  # an acknowledgement changes the ledger, not the tick
        self.refresh_if_idle()


def make_app(
    source: StatusSource,
    actions: ActionSink,
    *,
    refresh_s: float = 1.0,
    stale_after_s: float = 15.0,
    clock: Callable[[], float] = time.time,
) -> WatchdogApp:
    """Build the dashboard; tests pass a StaticSource, a RecordingActions and a fixed clock."""
    return WatchdogApp(source, actions, refresh_s=refresh_s, stale_after_s=stale_after_s, clock=clock)


def is_terminal() -> bool:
    """The dashboard needs a terminal on both ends: keys in, screen out."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def tui_command(args: argparse.Namespace) -> int:
    """``runpod-watchdog tui [--config PATH]``: 0 on quit, 2 on a bad configuration or without a terminal
    (``ssh host runpod-watchdog tui`` without ``-t``, a pipe, CI): one line on stderr instead of a hang
    and escape codes."""
    try:
        config = load_config(getattr(args, "config", None), check_files=False)
    except ConfigError as error:
        for line in error.problems:
            print(line, file=sys.stderr)
        return 2
    if not is_terminal():
        print(NOT_A_TERMINAL, file=sys.stderr)
        return 2
    socket_path = config.control.resolved_socket_path
    app = make_app(
        DaemonSource(socket_path, config.ledger.resolved_path, config=config),
        ControlActions(socket_path),
        refresh_s=config.tui.refresh_s,
        stale_after_s=config.tui.stale_after_s,
    )
    app.run()
    return app.return_code if app.return_code is not None else 0
