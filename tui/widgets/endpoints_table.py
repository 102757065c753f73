"""One row per endpoint: is it working, is it costing too much, does its configuration follow the policy.

Cells carry words and marks (▲ HUNG, ▲ SLOW, ▲ OVER, ✗ exec timeout, PAUSED) so nothing depends on colour
alone. Rows are keyed by endpoint id and updated in place, so the cursor stays on the endpoint the
sysadmin is looking at while the data refreshes underneath.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from tui.widgets.state import (
    DashboardState,
    duration,
    mode_word,
    usd,
)
from watchdog.status import EndpointView, StatusTargets

COLUMNS: tuple[tuple[str, str], ...] = (
    ("endpoint", "Endpoint"),
    ("mode", "Mode"),
    ("workers", "Workers"),
    ("queue", "Queue/run"),
    ("oldest", "Oldest/max"),
    ("cold", "Cold p50/95"),
    ("gpu", "GPU s d/mo"),
    ("per1k", "$/1k req"),
    ("compliance", "Policy"),
    ("paused", "Paused"),
)
ROW_HEIGHT = 2
"""Two lines per endpoint: the figure, then its verdict under it, so every column fits 120 columns."""

WORKER_STATES: tuple[tuple[str, str], ...] = (
    ("RUNNING", "run"),
    ("IDLE", "idle"),
    ("INITIALIZING", "init"),
    ("THROTTLED", "thr"),
    ("UNHEALTHY", "unh"),
)

COMPLIANCE_WORDS: dict[str, str] = {
    "execution_timeout": "exec timeout",
    "idle_timeout": "idle timeout",
    "max_workers": "max workers",
    "min_standby": "min/standby",
}


def workers_cell(endpoint: EndpointView) -> Text:
    parts = [
        f"{endpoint.workers[state]} {word}" for state, word in WORKER_STATES if endpoint.workers.get(state)
    ]
    if not parts:
        return Text("none", style="bright_black")
    text = Text("\n".join(parts))
    if endpoint.workers.get("UNHEALTHY"):
        text.stylize("red")
    return text


def queue_cell(endpoint: EndpointView) -> Text:
    return Text(f"{endpoint.jobs.get('inQueue', 0)}/{endpoint.jobs.get('inProgress', 0)}")


def oldest_cell(endpoint: EndpointView) -> Text:
    limit = duration(endpoint.work_limit_s)
    if endpoint.oldest_work_s is None:
        return Text(f"—/{limit}", style="bright_black")
    text = Text(f"{duration(endpoint.oldest_work_s)}/{limit}")
    if endpoint.oldest_work_s > endpoint.work_limit_s:
        text.append("\n▲ HUNG")
        text.stylize("bold red")
    return text


def cold_cell(endpoint: EndpointView, targets: StatusTargets | None) -> Text:
    if endpoint.cold_start_p50_s is None or endpoint.cold_start_p95_s is None:
        return Text("—", style="bright_black")
    text = Text(f"{endpoint.cold_start_p50_s:.1f}/{endpoint.cold_start_p95_s:.1f} s")
    if targets is not None and endpoint.cold_start_p95_s > targets.cold_start_s:
        text.append(f"\n▲ >{targets.cold_start_s:.0f} s")
        text.stylize("yellow")
    return text


def gpu_cell(endpoint: EndpointView) -> Text:
    return Text(f"{endpoint.gpu_seconds_today:,.0f}\n{endpoint.gpu_seconds_month:,.0f}")


def per_1000_cell(endpoint: EndpointView, targets: StatusTargets | None) -> Text:
    cost = endpoint.cost_per_1000_month_usd
    if cost is None:
        cost = endpoint.cost_per_1000_24h_usd
    if cost is None:
        return Text("—", style="bright_black")
    if targets is None:
        return Text(usd(cost))
    if cost > targets.cost_per_1000_usd:
        return Text(f"{usd(cost)}\n▲ OVER", style="bold red")
    return Text(f"{usd(cost)}\nok", style="green")


def compliance_cell(endpoint: EndpointView) -> Text:
    broken = [COMPLIANCE_WORDS.get(key, key) for key, ok in endpoint.compliance.items() if not ok]
    if not broken:
        return Text("OK", style="green")
    return Text("\n".join(f"✗ {word}" for word in broken), style="bold red")


def mode_cell(endpoint: EndpointView) -> Text:
    return Text(mode_word(endpoint.mode), style="green" if endpoint.mode == "enforce" else "yellow")


def paused_cell(endpoint: EndpointView) -> Text:
    if endpoint.paused:
        return Text(f"PAUSED\n{endpoint.paused}", style="bold white on red")
    return Text("—", style="bright_black")


def endpoint_cell(endpoint: EndpointView) -> Text:
    text = Text(endpoint.name, style="bold")
    text.append(f"\n{endpoint.id}", style="bright_black")
    return text


def endpoint_row(endpoint: EndpointView, targets: StatusTargets | None) -> tuple[Text, ...]:
    return (
        endpoint_cell(endpoint),
        mode_cell(endpoint),
        workers_cell(endpoint),
        queue_cell(endpoint),
        oldest_cell(endpoint),
        cold_cell(endpoint, targets),
        gpu_cell(endpoint),
        per_1000_cell(endpoint, targets),
        compliance_cell(endpoint),
        paused_cell(endpoint),
    )


class EndpointsTable(DataTable[Text]):
    """The endpoints; enter opens the detail screen (the App handles RowSelected)."""

    state: reactive[DashboardState | None] = reactive(None)

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.fixed_columns = 1  # the endpoint's name stays in view when a narrow terminal scrolls sideways
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        if not self.columns:
            for key, label in COLUMNS:
                self.add_column(label, key=key)

    def watch_state(self, state: DashboardState | None) -> None:
        self._ensure_columns()
        endpoints = state.status.endpoints if state and state.status else ()
        targets = state.targets if state else None
        wanted = [endpoint.id for endpoint in endpoints]
        current = [row_key.value for row_key in self.rows]
        if wanted == current:
            for endpoint in endpoints:
                for (column, _label), cell in zip(COLUMNS, endpoint_row(endpoint, targets), strict=True):
                    self.update_cell(endpoint.id, column, cell)
            return
        selected = self.selected_endpoint_id
        self.clear()
        for endpoint in endpoints:
            self.add_row(*endpoint_row(endpoint, targets), key=endpoint.id, height=ROW_HEIGHT)
        if selected in wanted:
            self.move_cursor(row=wanted.index(selected))

    @property
    def selected_endpoint_id(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _column_key = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value
