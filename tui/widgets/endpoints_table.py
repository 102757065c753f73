"""One row per endpoint: is it working, is it costing too much, does its configuration follow the policy.

Cells carry words and marks (▲ HUNG, ▲ OVER, ✗ exec timeout, PAUSED) so nothing depends on colour alone.
Every column has a width its values fit in, so nothing is cut or wrapped mid-value; only an endpoint's
name is shortened (with "…"; the detail screen shows it whole). Narrower than :data:`WIDE_FROM` cells,
the table keeps the columns that matter most (name, state, workers, oldest job against its limit, € today,
policy) and leaves queue, cold starts and cost per 1,000 requests to the detail screen.

Rows are keyed by endpoint id and updated in place, cell by cell and only where a cell changed, so the
cursor stays on the endpoint the sysadmin is looking at while the data refreshes underneath. Only the rows
whose cells changed are repainted: ``DataTable.update_cell`` repaints the whole table, and rendering a
table line renders every cell on it, so at each daemon tick (a few endpoints' figures move) repainting the
whole table was the dashboard's largest idle cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

from rich.text import Text
from textual.geometry import Region
from textual.reactive import var
from textual.widgets import DataTable

from tui.widgets.state import (
    DAY_S,
    DashboardState,
    cost_per_1000,
    count,
    duration,
    eur,
    mode_word,
)
from watchdog.status import DaemonStatus, EndpointView

ROW_HEIGHT = 2
"""Two lines per endpoint: the figure, then its verdict (or its second figure) under it."""
WIDE_FROM = 100
"""From this many cells of table width on, every column is shown."""
NAME_MIN = 12

WORKER_STATES: tuple[tuple[str, str], ...] = (
    ("RUNNING", "run"),
    ("UNHEALTHY", "unh"),
    ("THROTTLED", "thr"),
    ("INITIALIZING", "init"),
    ("IDLE", "idle"),
)

COMPLIANCE_WORDS: dict[str, str] = {
    "execution_timeout": "exec timeout",
    "idle_timeout": "idle timeout",
    "max_workers": "max workers",
    "min_standby": "min/standby",
}


@dataclass(frozen=True, slots=True)
class RowContext:
    """What cells need besides the endpoint: the whole status and today's spend per endpoint (ledger)."""

    status: DaemonStatus
    today_usd: Mapping[str, float] | None
    """Today's spend per endpoint id from the ledger; None when the ledger could not be read."""


def _cell(text: Text) -> Text:
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _fits(words: list[str], width: int) -> str:
    """The other worker states on one line, or a count of them; unhealthy workers are always named."""
    line = " ".join(words)
    if len(line) <= width:
        return line
    if words[0].endswith(" unh") and len(words) > 1:
        return f"{words[0]} +{len(words) - 1}"
    return f"+{len(words)} more"


def workers_cell(endpoint: EndpointView, width: int = 9) -> Text:
    present = [(state, word) for state, word in WORKER_STATES if endpoint.workers.get(state)]
    if not present:
        return _cell(Text("none", style="bright_black"))
    first = f"{count(endpoint.workers[present[0][0]])} {present[0][1]}"
    rest = [f"{count(endpoint.workers[state])} {word}" for state, word in present[1:]]
    text = Text(first)
    if rest:
        text.append("\n" + _fits(rest, width))
    if endpoint.workers.get("UNHEALTHY"):
        text.stylize("red")
    return _cell(text)


def all_workers(endpoint: EndpointView) -> Text:
    """Every worker state, on one line (the detail screen)."""
    parts = [f"{count(endpoint.workers[s])} {w}" for s, w in WORKER_STATES if endpoint.workers.get(s)]
    return Text(", ".join(parts) or "none", style="red" if endpoint.workers.get("UNHEALTHY") else "")


def queue_cell(endpoint: EndpointView) -> Text:
    return _cell(
        Text(f"{count(endpoint.jobs.get('inQueue', 0))}/{count(endpoint.jobs.get('inProgress', 0))}")
    )


def oldest_cell(endpoint: EndpointView) -> Text:
    limit = duration(endpoint.work_limit_s)
    if endpoint.oldest_work_s is None:
        return _cell(Text(f"—/{limit}", style="bright_black"))
    text = Text(f"{duration(endpoint.oldest_work_s)}/{limit}")
    if endpoint.oldest_work_s > endpoint.work_limit_s:
        text.append("\n▲ HUNG")
        text.stylize("bold red")
    return _cell(text)


def cold_cell(endpoint: EndpointView, cold_start_target_s: float | None) -> Text:
    if endpoint.cold_start_p50_s is None or endpoint.cold_start_p95_s is None:
        return _cell(Text("—", style="bright_black"))
    text = Text(f"{endpoint.cold_start_p50_s:.1f}/{endpoint.cold_start_p95_s:.1f} s")
    if cold_start_target_s is not None and endpoint.cold_start_p95_s > cold_start_target_s:
        text.append(f"\n▲ >{cold_start_target_s:.0f} s")
        text.stylize("yellow")
    return _cell(text)


def per_1000_cell(endpoint: EndpointView, status: DaemonStatus) -> Text:
    cost = cost_per_1000(endpoint, status)
    if cost.eur is None:
        return _cell(Text(f"n/a\n{cost.basis.replace('requests', 'req').replace('request', 'req')}", "dim"))
    if status.targets is None:
        return _cell(Text(eur(cost.eur)))
    if cost.over:
        return _cell(Text(f"{eur(cost.eur)}\n▲ OVER", style="bold red"))
    return _cell(Text(f"{eur(cost.eur)}\nok", style="green"))


def spend_cell(endpoint: EndpointView, context: RowContext) -> Text:
    """Today's spend (ledger) over the month's (status)."""
    budget = context.status.budget
    today = context.today_usd.get(endpoint.id, 0.0) if context.today_usd is not None else None
    if today is None or budget is None or budget.usd_per_eur <= 0:
        text = Text("—", style="bright_black")
    else:
        text = Text(eur(today / budget.usd_per_eur))
    text.append(f"\n{eur(endpoint.spend_month_eur)}", style="bright_black")
    return _cell(text)


def compliance_cell(endpoint: EndpointView) -> Text:
    broken = [COMPLIANCE_WORDS.get(key, key) for key, ok in endpoint.compliance.items() if not ok]
    if not broken:
        return _cell(Text("OK", style="green"))
    lines = [f"✗ {broken[0]}"]
    if len(broken) == 2:
        lines.append(f"✗ {broken[1]}")
    elif len(broken) > 2:
        lines.append(f"✗ +{len(broken) - 1} more")
    return _cell(Text("\n".join(lines), style="bold red"))


def all_compliance(endpoint: EndpointView) -> Text:
    broken = [COMPLIANCE_WORDS.get(key, key) for key, ok in endpoint.compliance.items() if not ok]
    if not broken:
        return Text("OK: within policy", style="green")
    return Text(", ".join(f"✗ {word}" for word in broken), style="bold red")


def state_cell(endpoint: EndpointView) -> Text:
    text = Text(mode_word(endpoint.mode), style="green" if endpoint.mode == "enforce" else "yellow")
    if endpoint.paused:
        text.append("\n")
        text.append("PAUSED", style="bold white on red")
    return _cell(text)


def endpoint_cell(endpoint: EndpointView) -> Text:
    text = Text(endpoint.name, style="bold")
    text.append(f"\n{endpoint.id}", style="bright_black")
    return _cell(text)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    """Cells; 0 = the name column, which takes what the others leave."""
    cell: Callable[[EndpointView, RowContext], Text]
    wide_only: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("endpoint", "Endpoint", 0, lambda e, c: endpoint_cell(e)),
    Column("state", "State", 7, lambda e, c: state_cell(e)),
    Column("workers", "Workers", 8, lambda e, c: workers_cell(e, 8)),
    Column("queue", "Queue/run", 9, lambda e, c: queue_cell(e), wide_only=True),
    Column("oldest", "Oldest/max", 10, lambda e, c: oldest_cell(e)),
    Column(
        "cold",
        "Cold p50/95",
        11,
        lambda e, c: cold_cell(e, c.status.targets.cold_start_s if c.status.targets else None),
        wide_only=True,
    ),
    Column("spend", "€ today/mo", 11, spend_cell),
    Column("per1k", "€/1k req", 10, lambda e, c: per_1000_cell(e, c.status), wide_only=True),
    Column("compliance", "Policy", 14, lambda e, c: compliance_cell(e)),
)


def columns_for(width: int) -> tuple[Column, ...]:
    wide = width >= WIDE_FROM
    return tuple(column for column in COLUMNS if wide or not column.wide_only)


def name_width(columns: tuple[Column, ...], width: int, cell_padding: int = 1) -> int:
    others = sum(column.width + 2 * cell_padding for column in columns if column.width)
    return max(NAME_MIN, width - others - 2 * cell_padding)


def today_spend(state: DashboardState) -> dict[str, float] | None:
    """Today's spend per endpoint from the ledger's days (None when it could not be read)."""
    status = state.status
    if state.ledger is None or state.ledger.problem is not None or status is None:
        return None
    at = status.last_tick_at if status.last_tick_at is not None else state.now
    today = at - at % DAY_S
    spend: dict[str, float] = {}
    for day in state.ledger.spend_by_day:
        if day.day == today:
            spend[day.endpoint_id] = spend.get(day.endpoint_id, 0.0) + day.usd
    return spend


class EndpointsTable(DataTable[Text]):
    """The endpoints; enter opens the detail screen (the App handles RowSelected)."""

    state: var[DashboardState | None] = var(None)
    _rows_only = False
    """True while :meth:`show` updates cells in place: the whole-table repaint each ``update_cell`` asks for
    is dropped, and the rows that changed are repainted instead."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.fixed_columns = 1  # the endpoint's name stays in view if a very narrow terminal scrolls
        self._layout: tuple[tuple[str, ...], int] | None = None
        self._cells: dict[tuple[str, str], Text] = {}
        self._drawn: tuple[object, ...] | None = None
        self.show(self.state)

    def on_resize(self) -> None:
        self.show(self.state)

    def watch_state(self, state: DashboardState | None) -> None:
        if self.is_mounted:
            self.show(state)

    def _available_width(self) -> int:
        return self.scrollable_content_region.width or self.size.width or 80

    def show(self, state: DashboardState | None) -> None:
        status = state.status if state else None
        width = self._available_width()
        columns = columns_for(width)
        layout = (tuple(column.key for column in columns), name_width(columns, width, self.cell_padding))
        ledger = state.ledger if state else None
        key = (status, ledger, layout)
        if key == self._drawn:
            return  # nothing this table shows has changed
        self._drawn = key
        selected = self.selected_endpoint_id
        if layout != self._layout:
            self._rebuild_columns(columns, layout[1])
        endpoints = status.endpoints if status is not None else ()
        context = RowContext(status, today_spend(state)) if status is not None and state else None
        wanted = [endpoint.id for endpoint in endpoints]
        current = [row_key.value for row_key in self.rows]
        if wanted == current and context is not None:
            changed: list[int] = []
            with self._repainting_rows_only():
                for index, endpoint in enumerate(endpoints):
                    for column in columns:
                        cell = column.cell(endpoint, context)
                        if self._cells.get((endpoint.id, column.key)) != cell:
                            self._cells[(endpoint.id, column.key)] = cell
                            self.update_cell(endpoint.id, column.key, cell)
                            if not changed or changed[-1] != index:
                                changed.append(index)
            for index in changed:
                self.refresh_row(index)  # nothing when the row is scrolled out of view
            return
        self.clear()
        self._cells.clear()
        if context is None:
            return
        for endpoint in endpoints:
            cells = [column.cell(endpoint, context) for column in columns]
            for column, cell in zip(columns, cells, strict=True):
                self._cells[(endpoint.id, column.key)] = cell
            self.add_row(*cells, key=endpoint.id, height=ROW_HEIGHT)
        if selected in wanted:
            self.move_cursor(row=wanted.index(selected))

    @contextmanager
    def _repainting_rows_only(self) -> Iterator[None]:
        self._rows_only = True
        try:
            yield
        finally:
            self._rows_only = False

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        if self._rows_only and not regions and not layout and not recompose:
            return self  # update_cell's repaint of the whole table: show() repaints the changed rows
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _rebuild_columns(self, columns: tuple[Column, ...], name_cells: int) -> None:
        self.clear(columns=True)
        self._cells.clear()
        self._layout = (tuple(column.key for column in columns), name_cells)
        for column in columns:
            self.add_column(column.label, width=column.width or name_cells, key=column.key)

    @property
    def selected_endpoint_id(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _column_key = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value
