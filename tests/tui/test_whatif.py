"""The endpoint screen's what-if and the budget panel's day allowance, driven with Pilot.

The what-if is checked against the ``whatif`` command's own computation on a simulated month's ledger (the
report tests' steady month): the screen must show the same euros and waits, computed off the event loop,
once per visit or per ``w``, never per tick; with too few recorded requests it says so in one line.
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any

import pytest
from dashboard_fixtures import (
    FIXED_NOW,
    HUNG_ID,
    dashboard_app,
    dashboard_source,
    dashboard_status,
    healthy_endpoint,
)
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from sim_harness.wiring import sim_config
from tests.reports.sim_month import START, SteadyMonth, steady_month
from tui.app import make_app
from tui.screens.detail import DetailScreen
from tui.source import DaemonSource, RecordingActions, StaticSource, WhatIfView, read_whatif
from tui.widgets.budget_panel import BudgetPanel, budget_text
from watchdog.config import Config
from watchdog.money import usd_to_eur
from watchdog.reports.source import ReportLedger
from watchdog.reports.whatif import MIN_ARRIVALS, SPEED_FACTORS, load_inputs, whatif_options, whatif_text
from watchdog.status import DaemonStatus

STEADY_ID = "ep-llm-mos"


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


class LedgerWhatIfSource(StaticSource):
    """The fixtures' status, with the what-if read from a real ledger the way DaemonSource reads it;
    counts the replays."""

    def __init__(self, status: DaemonStatus, ledger_path: Path, config: Config) -> None:
        super().__init__(status)
        self.ledger_path = ledger_path
        self.config = config
        self.whatif_calls = 0

    def whatif(self, endpoint_id: str, now: float) -> WhatIfView:
        self.whatif_calls += 1
        return read_whatif(self.ledger_path, self.config, endpoint_id, now)


def steady_status(tick: float = FIXED_NOW) -> DaemonStatus:
    endpoint = dataclasses.replace(healthy_endpoint(), id=STEADY_ID, name="Translation LLM (A6000)")
    return dataclasses.replace(dashboard_status(), endpoints=(endpoint,), last_tick_at=tick)


def text_of(widget: Static, width: int = 200) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def eur_of(usd: float, config: Config) -> str:
    return f"{usd_to_eur(usd, config.budget.usd_per_eur):,.2f} €"


async def test_the_detail_screen_shows_the_whatif_commands_figures(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)
    source = LedgerWhatIfSource(steady_status(), steady.ledger_path, config)
    app = dashboard_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        shown = text_of(screen.query_one("#detail-whatif", Static))
    with ReportLedger.open(steady.ledger_path) as ledger:
        inputs = load_inputs(ledger, config, endpoint=STEADY_ID, days=7, now=FIXED_NOW)
        printed = whatif_text(
            ledger,
            config,
            endpoint=STEADY_ID,
            days=7,
            now=FIXED_NOW,
            max_wait_p95_s=None,
            flashboot_cold_start_s=None,
            baseline_cold_start_s=None,
            exec_s=None,
            speeds=SPEED_FACTORS,
            batch_times_s=(),
        )
    expected = whatif_options(inputs, config, speeds=SPEED_FACTORS)
    assert f"{len(inputs.arrivals):,} requests of 7.0 days replayed" in shown
    today_row = next(line for line in shown.splitlines() if line.startswith("Today's settings"))
    assert eur_of(expected.base.usd_month, config) in today_row
    assert (
        f"{expected.base.wait_p50_s:,.1f} s" in today_row
        and f"{expected.base.wait_p95_s:,.1f} s" in today_row
    )
    assert f"The replay of today's settings: {eur_of(expected.base.usd_month, config)}/month" in printed
    rows = {line.strip().split("  ")[0]: line for line in shown.splitlines()}
    for option in (*expected.workers, *expected.gpus):
        label = option.label + (f" ({option.note})" if option.note else "")
        assert eur_of(option.outcome.usd_month, config) in rows[label]
        assert f"{option.outcome.wait_p95_s:,.1f} s" in rows[label]
    for seconds in (1.0, 30.0, 120.0, inputs.idle_timeout_s):  # a few idle timeouts, today's included
        option = next(o for o in expected.idle if o.outcome.candidate.idle_timeout_s == seconds)
        label = option.label + (f" ({option.note})" if option.note else "")
        assert eur_of(option.outcome.usd_month, config) in rows[label]
    found = expected.found
    assert found is not None and expected.search.best is found  # the steady month has one that fits
    assert f"  {eur_of(found.usd_month, config)}/month" in printed  # the command's cheapest...
    flat = " ".join(shown.split())
    assert f"{eur_of(found.usd_month, config)} per month" in flat  # ...is the screen's
    assert f"wait p50 {found.wait_p50_s:,.1f} s, p95 {found.wait_p95_s:,.1f} s" in flat
    assert "Changes: " + "; ".join(expected.changes()).replace("× ", "×") in flat
    assert "$" not in shown and "USD" not in shown


async def test_the_replay_runs_once_per_visit_and_on_w_never_per_tick(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)

    class Ticking(LedgerWhatIfSource):
        """A new tick on every read, so the screen would recompute per tick if it were wired to ticks."""

        def read(self) -> Any:
            self.ticks = getattr(self, "ticks", 0) + 1
            return dataclasses.replace(self.reading, status=steady_status(FIXED_NOW + self.ticks))

    source = Ticking(steady_status(), steady.ledger_path, config)
    app = make_app(source, RecordingActions(), refresh_s=0.05, clock=lambda: FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert source.whatif_calls == 1
        await pilot.pause(0.5)  # about ten new ticks
        await settle(pilot)
        assert source.ticks >= 5 and source.whatif_calls == 1
        await pilot.press("w")
        await settle(pilot)
        assert source.whatif_calls == 2
        title = text_of(app.screen.query_one("#detail-whatif-title", Static))
        assert "computing" not in title and "w: recompute" in title
        await pilot.press("escape", "enter")
        await settle(pilot)
        assert source.whatif_calls == 3  # a new visit


def test_too_few_recorded_requests_are_said_in_one_line(steady: SteadyMonth) -> None:
    config = sim_config(steady.ledger_path.parent)
    view = read_whatif(steady.ledger_path, config, STEADY_ID, START + 3 * 3600)
    assert view.options is None and view.problem is not None
    assert f"too few to replay (it takes {MIN_ARRIVALS})" in view.problem
    before = read_whatif(steady.ledger_path, config, STEADY_ID, START - 86_400)
    assert before.options is None
    assert f"no request with a recorded execution time for {STEADY_ID} in the last 7 days" in (
        before.problem or ""
    )
    missing = DaemonSource(steady.ledger_path.parent / "w.sock", steady.ledger_path.parent / "none.sqlite3")
    assert "no ledger at" in (missing.whatif(STEADY_ID, FIXED_NOW).problem or "")


async def test_the_detail_screen_says_why_there_is_no_whatif_in_one_line() -> None:
    few = WhatIfView(HUNG_ID, problem="only 3 requests recorded in the last 7 days: too few to replay")
    app = dashboard_app(source=dashboard_source(whatifs={HUNG_ID: few}))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("enter", "w")
        await settle(pilot)
        shown = text_of(app.screen.query_one("#detail-whatif", Static)).strip()
        assert shown == "No what-if: only 3 requests recorded in the last 7 days: too few to replay."
        assert "€" not in shown and "0.00" not in shown


async def test_a_failed_replay_says_so_in_its_section() -> None:
    class Broken(StaticSource):
        def whatif(self, endpoint_id: str, now: float) -> WhatIfView:
            raise RuntimeError("price table has no GPU")

    app = dashboard_app(source=Broken(dashboard_status()))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await pilot.pause(0.3)
        shown = text_of(app.screen.query_one("#detail-whatif", Static))
        assert "The what-if failed: RuntimeError: price table has no GPU" in shown
        assert isinstance(app.screen, DetailScreen)  # the dashboard keeps running


# -- the day's allowance in the budget panel ----------------------------------------------------------------


def allowance_status(spent_today: float, allowance: float | None) -> DaemonStatus:
    status = dashboard_status()
    assert status.budget is not None
    budget = dataclasses.replace(status.budget, spent_today_eur=spent_today, daily_allowance_eur=allowance)
    return dataclasses.replace(status, budget=budget)


TODAY = re.compile(r"today \d")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("allowance", [None, 0.38])
async def test_the_budget_panel_shows_today_against_the_allowance_iff_there_is_one(
    size: tuple[int, int], allowance: float | None
) -> None:
    app = dashboard_app(source=dashboard_source(allowance_status(0.21, allowance)))
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        shown = app.query_one(BudgetPanel).render().plain
    if allowance is None:
        assert not TODAY.search(shown)
    else:
        assert "today 0.21 € of 0.38 €" in shown
        assert "$" not in shown


@pytest.mark.parametrize(
    ("spent", "style", "mark"), [(0.10, "", False), (0.33, "yellow", False), (0.40, "bold red", True)]
)
def test_the_allowance_warns_near_it_and_says_the_brake_once_reached(
    spent: float, style: str, mark: bool
) -> None:
    for wide in (False, True):
        text = budget_text(allowance_status(spent, 0.38), 76, with_saved=wide)
        start = text.plain.index("today ")
        assert text.plain[start:].startswith(f"today {spent:.2f} € of 0.38 €")
        assert ("▲ brake" in text.plain[start:].split("\n")[0]) is mark
        styles = {str(span.style) for span in text.spans if span.start <= start < span.end}
        assert (style in styles) if style else not styles
