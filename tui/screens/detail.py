"""One endpoint in depth: its live figures from the daemon, its history from the ledger.

The live part follows the App's state (it refreshes with the dashboard); the history is read once per
visit in a worker thread, because it comes from SQLite and the screen must open instantly even when the
ledger is slow or missing (then it says why instead of showing nothing).
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

from tui.source import EndpointHistory, StatusSource
from tui.widgets.endpoints_table import (
    cold_cell,
    compliance_cell,
    oldest_cell,
    paused_cell,
    per_1000_cell,
    workers_cell,
)
from tui.widgets.state import DashboardState, duration, eur, mode_word, usd, utc_stamp
from watchdog.status import EndpointView, StatusTargets

HOURS_LISTED = 12


class HistoryLoaded(Message):
    def __init__(self, history: EndpointHistory) -> None:
        super().__init__()
        self.history = history


def live_summary(endpoint: EndpointView, targets: StatusTargets | None) -> Table:
    table = Table(box=None, show_header=False, expand=True)
    table.add_column("What", style="bold", no_wrap=True)
    table.add_column("Value")
    config = endpoint.config
    execution_ms = config.get("execution_timeout_ms")
    table.add_row("Mode", mode_word(endpoint.mode))
    table.add_row("Paused", paused_cell(endpoint))
    table.add_row("Workers", workers_cell(endpoint))
    jobs = ", ".join(f"{key} {value}" for key, value in sorted(endpoint.jobs.items())) or "—"
    table.add_row("Jobs (/health)", jobs)
    table.add_row("Oldest job / limit", oldest_cell(endpoint))
    table.add_row("Cold start p50/p95", cold_cell(endpoint, targets))
    table.add_row(
        "GPU s today / month", f"{endpoint.gpu_seconds_today:,.0f} / {endpoint.gpu_seconds_month:,.0f}"
    )
    table.add_row("Spend this month", eur(endpoint.spend_month_eur))
    table.add_row(
        "Requests 1h / 24h / month",
        f"{endpoint.requests_1h} / {endpoint.requests_24h} / {endpoint.requests_month}",
    )
    table.add_row("Cost per 1,000 requests", per_1000_cell(endpoint, targets))
    table.add_row(
        "Config",
        f"workers min {config.get('workers_min', '?')} · max {config.get('workers_max', '?')}"
        f" · standby {config.get('workers_standby', '?')}"
        f" · idle timeout {config.get('idle_timeout_s', '?')} s"
        f" · execution timeout {'NONE' if not execution_ms else duration(execution_ms / 1000)}",
    )
    table.add_row("Policy", compliance_cell(endpoint))
    if endpoint.suspicious:
        table.add_row("Traffic", Text("▲ SUSPICIOUS: " + "; ".join(endpoint.suspicious), style="bold red"))
    return table


def spend_table(history: EndpointHistory) -> Table | Text:
    if not history.spend_by_hour:
        return Text("No hourly spend recorded this month.", style="italic")
    table = Table(box=None, expand=False, header_style="bold")
    table.add_column("Hour (UTC)", no_wrap=True)
    table.add_column("Estimate", justify="right")
    table.add_column("Billed", justify="right")
    for hour in history.spend_by_hour[-HOURS_LISTED:]:
        billed = (
            usd(hour.billed_usd)
            if hour.billed_usd is not None
            else Text("not billed yet", style="bright_black")
        )
        table.add_row(utc_stamp(hour.hour), usd(hour.estimate_usd), billed)
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


def open_work(history: EndpointHistory, now: float) -> Text:
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
                f"  up {duration(now - worker.first_seen_at)}  ≈ {usd(worker.estimated_usd)}\n"
            )
    return text


class DetailScreen(Screen[None]):
    """Pushed by enter on an endpoint row; escape returns to the dashboard."""

    BINDINGS = [Binding("escape", "back", "Back")]  # noqa: RUF012 - Textual's declared class attribute

    def __init__(self, endpoint_id: str, source: StatusSource, clock: Callable[[], float]) -> None:
        super().__init__()
        self.endpoint_id = endpoint_id
        self.source = source
        self.clock = clock

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-title")
            yield Static(id="detail-live", classes="detail-section")
            yield Static("Spend by hour (loading…)", id="detail-spend-title", classes="detail-heading")
            yield Sparkline([0], id="detail-spark")
            yield Static(id="detail-spend", classes="detail-section")
            yield Static("Open work", classes="detail-heading")
            yield Static("loading…", id="detail-work", classes="detail-section")
            yield Static("Configuration changes (newest first)", classes="detail-heading")
            yield Static("loading…", id="detail-config", classes="detail-section")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "state", self.show_state)
        self.load_history()

    @work(thread=True, exclusive=True, exit_on_error=False, group="history")
    def load_history(self) -> None:
        self.post_message(HistoryLoaded(self.source.endpoint_history(self.endpoint_id, self.clock())))

    def show_state(self, state: DashboardState) -> None:
        endpoint = state.endpoint(self.endpoint_id)
        title = self.query_one("#detail-title", Static)
        live = self.query_one("#detail-live", Static)
        if endpoint is None:
            title.update(Text(f"{self.endpoint_id}: not in the daemon's current status", style="bold red"))
            live.update("")
            return
        heading = Text(endpoint.name, style="bold")
        heading.append(f"  {endpoint.id}", style="bright_black")
        if not state.live:
            heading.append("  (daemon down: last stored figures)", style="bold red")
        title.update(heading)
        live.update(live_summary(endpoint, state.targets))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        history = message.history
        hours = history.spend_by_hour
        month_usd = sum(max(h.estimate_usd, h.billed_usd or 0.0) for h in hours)
        heading = f"Spend by hour this month (UTC, ledger): {usd(month_usd)} over {len(hours)} h"
        if history.problem:
            heading += f"  ⚠ {history.problem}"
        self.query_one("#detail-spend-title", Static).update(heading)
        self.query_one("#detail-spark", Sparkline).data = [h.estimate_usd for h in hours] or [0]
        self.query_one("#detail-spend", Static).update(spend_table(history))
        self.query_one("#detail-work", Static).update(open_work(history, self.clock()))
        self.query_one("#detail-config", Static).update(history_tables(history))

    def action_back(self) -> None:
        self.dismiss(None)
