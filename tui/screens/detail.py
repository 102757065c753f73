"""One endpoint in depth: its live figures from the daemon, its history from the ledger.

The live part follows the App's state (it redraws when a new tick changes this endpoint); the history is
read once per visit in a worker thread, because it comes from SQLite and the screen must open instantly
even when the ledger is slow or missing (then it says why instead of showing nothing).

Money is in euros (the ledger's USD converted at the budget's ``usd_per_eur``); every heading says what it
shows ("the last 12 of 567 hours"), and the month's spend is a chart, like the dashboard's.

The what-if section (``w`` jumps to it and recomputes) replays the last week's recorded requests against
other settings with the ``runpod-watchdog whatif`` command's own functions. That is CPU work (about a
second), so it runs in its own worker thread when the screen opens or when ``w`` asks, never per tick, and
never two at once.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static
from textual.worker import Worker, WorkerState

from tui.source import EndpointHistory, StatusSource, WhatIfView
from tui.widgets.endpoints_table import all_compliance, all_workers, cold_cell, oldest_cell, today_spend
from tui.widgets.month_chart import SpendChart, endpoint_plan, plan_key, plan_words
from tui.widgets.state import (
    DashboardState,
    Prose,
    cost_per_1000,
    count,
    duration,
    eur,
    eur_from_usd,
    mode_word,
    month_requests,
    utc_stamp,
)
from tui.widgets.whatif import whatif_heading, whatif_renderable
from watchdog.status import DaemonStatus, EndpointView

HOURS_LISTED = 12
JOB_WORDS = (
    ("inQueue", "in queue"),
    ("inProgress", "in progress"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("retried", "retried"),
)


class HistoryLoaded(Message):
    def __init__(self, history: EndpointHistory) -> None:
        super().__init__()
        self.history = history


class WhatIfLoaded(Message):
    def __init__(self, view: WhatIfView) -> None:
        super().__init__()
        self.view = view


def live_summary(endpoint: EndpointView, state: DashboardState) -> Table:
    status = state.status
    assert status is not None
    targets = status.targets
    rate = state.usd_per_eur
    table = Table(box=None, show_header=False, expand=True)
    table.add_column("What", style="bold", no_wrap=True)
    table.add_column("Value")
    config = endpoint.config
    execution_ms = config.get("execution_timeout_ms")
    table.add_row("Mode", mode_word(endpoint.mode))
    table.add_row(
        "Paused",
        Text(f"PAUSED ({endpoint.paused})", style="bold white on red") if endpoint.paused else Text("no"),
    )
    table.add_row("Workers", all_workers(endpoint))
    known = [(word, endpoint.jobs[key]) for key, word in JOB_WORDS if key in endpoint.jobs]
    table.add_row("Jobs (/health)", " · ".join(f"{word} {count(n)}" for word, n in known) or "—")
    table.add_row("Oldest job / limit", oldest_cell(endpoint))
    table.add_row("Cold start p50/p95", cold_cell(endpoint, targets.cold_start_s if targets else None))
    table.add_row(
        "GPU seconds today / month",
        f"{count(endpoint.gpu_seconds_today)} / {count(endpoint.gpu_seconds_month)}",
    )
    today = today_spend(state)
    spent_today = (
        eur(today.get(endpoint.id, 0.0) / rate) if today is not None and rate is not None else "— (no ledger)"
    )
    table.add_row("Spend today / this month", f"{spent_today} / {eur(endpoint.spend_month_eur)}")
    month = month_requests(endpoint, status)
    table.add_row(
        "Requests 1 h / 24 h / month",
        f"{count(endpoint.requests_1h)} / {count(endpoint.requests_24h)} / {month.words()}",
    )
    cost = cost_per_1000(endpoint, status)
    per_1000 = Text(cost.words(), style="bold red" if cost.over else "")
    if targets is not None:
        per_1000.append(f" · target ≤ {eur_from_usd(targets.cost_per_1000_usd, rate)}")
        if cost.over:
            per_1000.append(" ▲ OVER", style="bold red")
    table.add_row("Cost per 1,000 requests", per_1000)
    table.add_row(
        "Config",
        f"workers min {config.get('workers_min', '?')} · max {config.get('workers_max', '?')}"
        f" · standby {config.get('workers_standby', '?')}"
        f" · idle timeout {config.get('idle_timeout_s', '?')} s"
        f" · execution timeout {'NONE' if not execution_ms else duration(execution_ms / 1000)}",
    )
    table.add_row("Policy", all_compliance(endpoint))
    if endpoint.suspicious:
        table.add_row("Traffic", Text("▲ SUSPICIOUS: " + "; ".join(endpoint.suspicious), style="bold red"))
    return table


def spend_heading(history: EndpointHistory, usd_per_eur: float | None) -> str:
    """Says exactly what the hourly table shows: how many of the hours kept, and their total."""
    hours = history.spend_by_hour
    if not hours:
        heading = "Spend by hour (UTC, ledger): no hourly spend recorded this month"
    else:
        total = sum(max(h.estimate_usd, h.billed_usd or 0.0) for h in hours)
        if len(hours) == 1:
            listed = "the only hour"
        elif len(hours) <= HOURS_LISTED:
            listed = f"all {len(hours)} hours"
        else:
            listed = f"the last {HOURS_LISTED} of {len(hours)} hours"
        heading = (
            f"Spend by hour (UTC, ledger): {listed} kept hourly this month"
            f" · those {len(hours)} h: {eur_from_usd(total, usd_per_eur)}"
        )
    if history.problem:
        heading += f"  ⚠ {history.problem}"
    return heading


def spend_table(history: EndpointHistory, usd_per_eur: float | None) -> Table | Text:
    if not history.spend_by_hour:
        return Text("No hourly spend recorded this month.", style="italic")
    table = Table(box=None, expand=False, header_style="bold")
    table.add_column("Hour (UTC)", no_wrap=True)
    table.add_column("Live estimate", justify="right", no_wrap=True)
    table.add_column("RunPod billed", justify="right", no_wrap=True)
    for hour in history.spend_by_hour[-HOURS_LISTED:]:
        billed = (
            eur_from_usd(hour.billed_usd, usd_per_eur)
            if hour.billed_usd is not None
            else Text("not billed yet", style="bright_black")
        )
        table.add_row(utc_stamp(hour.hour), eur_from_usd(hour.estimate_usd, usd_per_eur), billed)
    return table


def history_tables(history: EndpointHistory) -> Table | Text:
    if not history.config_history:
        return Text("No configuration recorded.", style="italic")
    table = Table(box=None, expand=True, header_style="bold")
    table.add_column("Seen (UTC)", no_wrap=True)
    table.add_column("Changed")
    table.add_column("min/max/standby", no_wrap=True)
    table.add_column("idle", no_wrap=True)
    table.add_column("exec timeout", no_wrap=True)
    for row in reversed(history.config_history):
        changed = "first seen" if row.changed_fields is None else ", ".join(row.changed_fields)
        timeout = "NONE" if not row.execution_timeout_ms else duration(row.execution_timeout_ms / 1000)
        table.add_row(
            utc_stamp(row.observed_at),
            changed,
            f"{row.workers_min}/{row.workers_max}/{row.workers_standby}",
            f"{row.idle_timeout_s} s",
            timeout,
        )
    return table


def open_work(history: EndpointHistory, now: float, usd_per_eur: float | None) -> Text:
    text = Text()
    if history.open_jobs:
        text.append("Open jobs (oldest first):\n", style="bold")
        for job in history.open_jobs:
            since = job.started_at or job.first_seen_at
            text.append(f"  {job.job_id}  {job.status}  for {duration(now - since)}\n")
    else:
        text.append("No open jobs recorded.\n", style="italic")
    if history.workers:
        text.append("Workers (oldest first):\n", style="bold")
        for worker in history.workers:
            text.append(
                f"  {worker.worker_id}  {worker.last_status}  {worker.gpu_type_id or '?'}"
                f"  up {duration(now - worker.first_seen_at)}"
                f"  ≈ {eur_from_usd(worker.estimated_usd, usd_per_eur)}\n"
            )
    return text


class DetailScreen(Screen[None]):
    """Pushed by enter on an endpoint row; escape returns to the dashboard."""

    BINDINGS = [  # noqa: RUF012 - Textual's declared class attribute
        Binding("escape", "back", "Back"),
        Binding("w", "whatif", "What-if"),
    ]

    def __init__(self, endpoint_id: str, source: StatusSource, clock: Callable[[], float]) -> None:
        super().__init__()
        self.endpoint_id = endpoint_id
        self.source = source
        self.clock = clock
        self.history: EndpointHistory | None = None
        self.whatif: WhatIfView | None = None
        self._whatif_worker: Worker[None] | None = None
        self._drawn: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-title")
            yield Static(id="detail-live", classes="detail-section")
            yield Static("Spend this month", classes="detail-heading")
            yield SpendChart(id="detail-chart")
            yield Static(id="detail-chart-key", classes="detail-section")
            yield Static("loading…", id="detail-chart-words", classes="detail-section")
            yield Static("Spend by hour (loading…)", id="detail-spend-title", classes="detail-heading")
            yield Sparkline([0], id="detail-spark")
            yield Static(id="detail-spend", classes="detail-section")
            yield Static("Open work", classes="detail-heading")
            yield Static("loading…", id="detail-work", classes="detail-section")
            yield Static("Configuration changes (newest first)", classes="detail-heading")
            yield Static("loading…", id="detail-config", classes="detail-section")
            yield Static(whatif_heading(None), id="detail-whatif-title", classes="detail-heading")
            yield Static("computing…", id="detail-whatif", classes="detail-section")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.app, "state", self.show_state)
        self.load_history()
        self.recompute_whatif()

    @work(thread=True, exclusive=True, exit_on_error=False, group="history")
    def load_history(self) -> None:
        self.post_message(HistoryLoaded(self.source.endpoint_history(self.endpoint_id, self.clock())))

    def recompute_whatif(self) -> None:
        """Start the replay unless one is still running (a second press must not pile up CPU work)."""
        worker = self._whatif_worker
        if worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            return
        self.query_one("#detail-whatif-title", Static).update(whatif_heading(self.whatif, busy=True))
        self._whatif_worker = self.load_whatif()

    @work(thread=True, exit_on_error=False, group="whatif")
    def load_whatif(self) -> None:
        self.post_message(WhatIfLoaded(self.source.whatif(self.endpoint_id, self.clock())))

    def on_what_if_loaded(self, message: WhatIfLoaded) -> None:
        self.whatif = message.view
        self.query_one("#detail-whatif-title", Static).update(whatif_heading(message.view))
        self.query_one("#detail-whatif", Static).update(whatif_renderable(message.view))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A replay that failed says so in its section (the App would call it a ledger problem)."""
        if event.worker.group != "whatif" or event.state is not WorkerState.ERROR:
            return
        event.stop()
        error = event.worker.error
        self.query_one("#detail-whatif-title", Static).update(whatif_heading(self.whatif))
        self.query_one("#detail-whatif", Static).update(
            Text(f"The what-if failed: {type(error).__name__}: {error}", style="bold red")
        )

    def action_whatif(self) -> None:
        self.query_one("#detail", VerticalScroll).scroll_to_widget(
            self.query_one("#detail-whatif-title", Static), animate=False, top=True
        )
        self.recompute_whatif()

    def show_state(self, state: DashboardState) -> None:
        endpoint = state.endpoint(self.endpoint_id)
        key = (endpoint, state.live, state.status.budget if state.status else None, state.ledger)
        if key == self._drawn:
            return  # nothing this screen shows has changed
        self._drawn = key
        title = self.query_one("#detail-title", Static)
        live = self.query_one("#detail-live", Static)
        if endpoint is None or state.status is None:
            title.update(Text(f"{self.endpoint_id}: not in the daemon's current status", style="bold red"))
            live.update("")
            return
        heading = Text(endpoint.name, style="bold")
        heading.append(f"  {endpoint.id}", style="bright_black")
        if not state.live:
            heading.append("  (daemon down: last stored figures)", style="bold red")
        title.update(heading)
        live.update(live_summary(endpoint, state))
        self.show_chart(state.status, endpoint)

    def show_chart(self, status: DaemonStatus, endpoint: EndpointView) -> None:
        spend = self.history.spend_by_day if self.history is not None and not self.history.problem else None
        at = status.last_tick_at if status.last_tick_at is not None else self.clock()
        plan = endpoint_plan(endpoint, status.budget, spend, at)
        self.query_one("#detail-chart", SpendChart).draw(plan)
        self.query_one("#detail-chart-key", Static).update(Prose(plan_key(plan)))
        words = self.query_one("#detail-chart-words", Static)
        words.update(plan_words(plan, words.content_size.width or 100))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        history = self.history = message.history
        state = self.app.state  # type: ignore[attr-defined]  # the WatchdogApp's
        rate = state.usd_per_eur if isinstance(state, DashboardState) else None
        self.query_one("#detail-spend-title", Static).update(spend_heading(history, rate))
        hourly = [hour.estimate_usd for hour in history.spend_by_hour]
        self.query_one("#detail-spark", Sparkline).data = hourly or [0]
        self.query_one("#detail-spend", Static).update(spend_table(history, rate))
        self.query_one("#detail-work", Static).update(open_work(history, self.clock(), rate))
        self.query_one("#detail-config", Static).update(history_tables(history))
        if isinstance(state, DashboardState) and state.status is not None:
            endpoint = state.endpoint(self.endpoint_id)
            if endpoint is not None:
                self.show_chart(state.status, endpoint)

    def action_back(self) -> None:
        self.dismiss(None)
