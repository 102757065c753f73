"""Pilot tests: every screen, every command (confirm sends, cancel sends nothing), and the bad days.

The bad days matter most: a sysadmin opens the dashboard when something is wrong, so a daemon that is
down, slow or broken must leave a readable screen saying so, never a crash or a frozen terminal.
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import time
from typing import Any

import pytest
from dashboard_fixtures import (
    ALERT_KEY,
    FIXED_NOW,
    HEALTHY_ID,
    HUNG_ID,
    HUNG_JOB_ID,
    LONG_NAME,
    blind_status,
    dashboard_app,
    dashboard_source,
    dashboard_status,
    healthy_status,
    known_alerts,
    long_spend,
    long_status,
    story_spend,
)
from rich.console import Console
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Static

from tui.app import WatchdogApp, make_app
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.source import LedgerView, RecordingActions, SourceReading, StaticSource
from tui.widgets.budget_panel import BudgetPanel
from tui.widgets.endpoints_table import ROW_HEIGHT, EndpointsTable
from tui.widgets.month_chart import MonthChart, MonthWords
from tui.widgets.status_bar import StatusBar
from watchdog.control import ControlError
from watchdog.status import DaemonStatus

SIZE = (120, 40)


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def let_failing_reads_finish(pilot: Pilot[Any]) -> None:
    """``workers.wait_for_complete`` re-raises a worker's error; the App must not, so just give it time."""
    await pilot.pause(0.3)


def plain(widget: Static) -> str:
    """The text a Static shows, whatever Rich renderable it holds."""
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def status_bar_text(app: WatchdogApp) -> str:
    return app.query_one(StatusBar).render_text().plain


async def test_dashboard_shows_budget_endpoints_and_state_in_words() -> None:
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        budget = str(app.query_one(BudgetPanel).render())
        assert "16.20 € of 20.00 € (81 %)" in budget
        assert "WARN ▲ 80 %" in budget
        assert "OVERRUNS" in budget
        table = app.query_one(EndpointsTable)
        assert [key.value for key in table.rows] == [HUNG_ID, HEALTHY_ID]
        hung_row = " ".join(str(cell) for cell in table.get_row(HUNG_ID))
        assert "▲ HUNG" in hung_row and "DRY-RUN" in hung_row and "✗ exec timeout" in hung_row
        assert "DAEMON UP" in status_bar_text(app)


async def test_q_quits_with_code_zero() -> None:
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
    assert app.return_code == 0


async def test_help_opens_and_closes() -> None:
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_enter_opens_endpoint_detail_with_ledger_history() -> None:
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        assert screen.endpoint_id == HUNG_ID
        spend_title = str(screen.query_one("#detail-spend-title").render())
        assert "all 6 hours kept hourly this month" in spend_title
        assert "3.89 €" in spend_title  # the ledger's 4.20 USD, in euros
        assert "execution_timeout_ms" in plain(screen.query_one("#detail-config", Static))
        assert HUNG_JOB_ID in plain(screen.query_one("#detail-work", Static))
        assert "▲ HUNG" in plain(screen.query_one("#detail-live", Static))
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_detail_without_history_says_why() -> None:
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert "no history recorded" in str(app.screen.query_one("#detail-spend-title").render())


COMMANDS = [
    pytest.param(["p"], "y", ("pause", {"endpoint_id": HUNG_ID}), id="pause"),
    pytest.param(["r"], "y", ("restore", {"endpoint_id": HUNG_ID}), id="restore"),
    pytest.param(
        ["c"],
        "enter",
        ("cancel_job", {"endpoint_id": HUNG_ID, "job_id": HUNG_JOB_ID}),
        id="cancel-oldest-job",
    ),
    pytest.param(
        ["m"],
        "y",
        ("set_rule_mode", {"endpoint_id": HUNG_ID, "rule": "runaway_job", "mode": "enforce"}),
        id="rule-mode",
    ),
    pytest.param(["a"], "y", ("ack_alert", {"key": ALERT_KEY}), id="ack-alert"),
    pytest.param(["down", "p"], "y", ("pause", {"endpoint_id": HEALTHY_ID}), id="pause-second-row"),
]


@pytest.mark.parametrize(("keys", "confirm_key", "expected"), COMMANDS)
async def test_confirming_a_command_sends_it(
    keys: list[str], confirm_key: str, expected: tuple[str, dict[str, str]]
) -> None:
    actions = RecordingActions()
    app = dashboard_app(actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert actions.calls == []  # nothing leaves before the confirmation
        await pilot.press(confirm_key)
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
    assert actions.calls == [expected]


@pytest.mark.parametrize("key", ["p", "r", "c", "m", "a"])
@pytest.mark.parametrize("cancel_key", ["escape", "button"])
async def test_cancelling_a_command_sends_nothing(key: str, cancel_key: str) -> None:
    actions = RecordingActions()
    app = dashboard_app(actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        if cancel_key == "button":
            await pilot.click("#cancel")
        else:
            await pilot.press(cancel_key)
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
    assert actions.calls == []


async def test_confirm_button_sends_and_typed_job_id_wins() -> None:
    actions = RecordingActions()
    app = dashboard_app(actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        app.screen.query_one("#field-job_id").value = ""
        await pilot.press(*"abc-123")
        await pilot.click("#confirm")
        await settle(pilot)
    assert actions.calls == [("cancel_job", {"endpoint_id": HUNG_ID, "job_id": "abc-123"})]


async def test_empty_job_id_is_refused_in_the_dialog() -> None:
    actions = RecordingActions()
    app = dashboard_app(actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        app.screen.query_one("#field-job_id").value = ""
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "required" in str(app.screen.query_one("#dialog-error").render())
    assert actions.calls == []


async def test_a_refused_command_is_reported_and_the_app_keeps_running() -> None:
    actions = RecordingActions(
        failure=ControlError("the daemon is not running (no control socket at /x.sock)")
    )
    app = dashboard_app(actions=actions)
    notes: list[tuple[str, dict[str, Any]]] = []
    async with app.run_test(size=SIZE) as pilot:
        original = app.notify
        app.notify = lambda message, **kw: notes.append((message, kw)) or original(message, **kw)  # type: ignore[method-assign]
        await settle(pilot)
        await pilot.press("p", "y")
        await let_failing_reads_finish(pilot)
        assert app.is_running
    assert actions.calls == [("pause", {"endpoint_id": HUNG_ID})]
    assert any("not running" in message and kw.get("severity") == "error" for message, kw in notes)


async def test_daemon_down_shows_stale_since_and_the_problem() -> None:
    source = dashboard_source(
        live=False, problem="the daemon is not running (no control socket at /run/w.sock)"
    )
    app = dashboard_app(source=source)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = status_bar_text(app)
        assert "DAEMON DOWN" in text
        assert "stale since 11:59:56 UTC" in text
        assert "no control socket" in text
        assert "16.20 €" in str(app.query_one(BudgetPanel).render())  # the last figures stay visible


async def test_old_tick_from_a_live_daemon_is_marked_stale() -> None:
    app = make_app(dashboard_source(), RecordingActions(), stale_after_s=15, clock=lambda: FIXED_NOW + 60)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = status_bar_text(app)
        assert "STALE since 11:59:56 UTC" in text
        assert "tick 1m04s ago" in text


class FlakySource(StaticSource):
    """Answers once, then raises: the way a broken read looks to the App."""

    def __init__(self) -> None:
        super().__init__(dashboard_status())
        self.reads = 0

    def read(self) -> SourceReading:
        self.reads += 1
        if self.reads > 1:
            raise RuntimeError("disk on fire")
        return super().read()


async def test_a_source_that_raises_does_not_crash_and_keeps_the_last_data() -> None:
    source = FlakySource()
    app = make_app(source, RecordingActions(), refresh_s=0.05, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 5
        while source.reads < 3 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await let_failing_reads_finish(pilot)
        assert app.is_running
        assert "could not read the status: RuntimeError: disk on fire" in status_bar_text(app)
        assert "16.20 €" in str(app.query_one(BudgetPanel).render())


async def test_a_source_that_always_raises_shows_the_problem() -> None:
    class BrokenSource(StaticSource):
        def read(self) -> SourceReading:
            raise OSError("ledger on a read-only NFS mount")

    app = make_app(BrokenSource(None), RecordingActions(), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await let_failing_reads_finish(pilot)
        text = status_bar_text(app)
        assert "DAEMON DOWN" in text
        assert "OSError: ledger on a read-only NFS mount" in text


async def test_a_slow_daemon_never_stacks_reads_and_the_ui_stays_responsive() -> None:
    """A read that does not come back (a stuck daemon) neither freezes the UI nor piles up more reads,
    whatever the refresh interval. The read is held by a gate the test opens, so nothing depends on how
    fast this machine is."""

    class StuckSource(StaticSource):
        def __init__(self) -> None:
            super().__init__(dashboard_status())
            self.lock = threading.Lock()
            self.gate = threading.Event()
            self.running = 0
            self.most_at_once = 0
            self.reads = 0

        def read(self) -> SourceReading:
            with self.lock:
                self.running += 1
                self.reads += 1
                self.most_at_once = max(self.most_at_once, self.running)
            self.gate.wait(timeout=30)
            with self.lock:
                self.running -= 1
            return super().read()

    source = StuckSource()
    app = make_app(source, RecordingActions(), refresh_s=0.02, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)  # about 15 refresh intervals while the first read is stuck
        assert source.running == 1 and source.reads == 1
        await pilot.press("question_mark")  # the UI answers while the read is still in flight
        assert isinstance(app.screen, HelpScreen)
        assert source.running == 1
        await pilot.press("escape")
        stuck_reads = source.reads
        opened = time.monotonic()
        source.gate.set()
        await settle(pilot)
        elapsed = time.monotonic() - opened
    assert source.most_at_once == 1
    assert stuck_reads == 1  # a stacking design would have started one read per refresh interval
    # once the daemon answers again, reads follow one another: at most one per refresh interval
    assert source.reads - stuck_reads <= elapsed / 0.02 + 2


@pytest.mark.parametrize(
    ("slack_text", "terminal_text"),
    [
        (":white_check_mark: Did cancel job (saves 1.20 €)", "Did cancel job (saves 1.20 €)"),
        (":rotating_light: Budget 80 % reached at 14:31:36", "Budget 80 % reached at 14:31:36"),
        ("ratio 3:1:2 kept", "ratio 3:1:2 kept"),
    ],
)
def test_events_log_shows_words_not_slack_emoji_codes(slack_text: str, terminal_text: str) -> None:
    from tui.widgets.events_log import SLACK_EMOJI

    assert SLACK_EMOJI.sub("", slack_text) == terminal_text


def test_cells_judge_against_the_daemons_configured_targets() -> None:
    """The dashboard used to judge against its own copies ($3 per 1,000 requests, 15 s, 50/80 %)."""
    from dataclasses import replace

    from tui.widgets.budget_panel import verdict
    from tui.widgets.endpoints_table import cold_cell, per_1000_cell
    from watchdog.status import StatusTargets

    status = dashboard_status()
    endpoint = replace(
        status.endpoints[0], cost_per_1000_month_usd=4.0, cold_start_p50_s=10.0, cold_start_p95_s=18.0
    )
    lenient = StatusTargets(cost_per_1000_usd=5.0, cold_start_s=20.0, budget_thresholds=(0.5,), brake_at=0.9)
    strict = StatusTargets(cost_per_1000_usd=3.0, cold_start_s=15.0, budget_thresholds=(0.5,), brake_at=0.9)
    assert "OVER" not in per_1000_cell(endpoint, replace(status, targets=lenient)).plain
    assert "OVER" in per_1000_cell(endpoint, replace(status, targets=strict)).plain
    assert "3.70 €" in per_1000_cell(endpoint, replace(status, targets=strict)).plain  # $4.00 at 1.08
    assert "▲" not in cold_cell(endpoint, lenient.cold_start_s).plain
    assert "▲ >15 s" in cold_cell(endpoint, strict.cold_start_s).plain
    assert status.budget is not None
    budget = replace(status.budget, used_ratio=0.7, thresholds=(0.6, 0.9, 1.0))
    assert verdict(budget)[0] == "OK ▲ 60 %"
    assert verdict(replace(budget, used_ratio=0.92))[0] == "WARN ▲ 90 %"


# ------------------------------------------------------------------------------------------------------------
# A dashboard a sysadmin trusts at 80x24: everything reachable, nothing cut, every state true
# ------------------------------------------------------------------------------------------------------------


def screen_text(app: WatchdogApp) -> str:
    """Every character on screen, as a terminal shows it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_events_traffic_and_the_month_are_reachable_and_the_footer_says_how(
    size: tuple[int, int],
) -> None:
    app = dashboard_app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "e Events" in text  # the footer names the key
        assert "Events (e)" in text and "Traffic (t)" in text and "Month (s)" in text
        assert "Budget 80 % reached" in text  # the newest alert is on screen, not pushed off it
        await pilot.press("t")
        await settle(pilot)
        text = screen_text(app)
        assert "▲ SUSPICIOUS" in text and "1,300 pings" in text and "203.0.113.7" in text
        await pilot.press("s")
        await settle(pilot)
        text = screen_text(app)
        assert "brake 19.00 € ~24 Jun" in text
        assert "fires on ~24 Jun" in text
        await pilot.press("e")
        await settle(pilot)
        assert "Budget 80 % reached" in screen_text(app)


@pytest.mark.parametrize(
    ("source", "says", "never"),
    [
        pytest.param(
            dashboard_source(live=False, problem="the daemon is not running (no control socket at /x)"),
            "RunPod: unknown (daemon down)",
            "sees RunPod",
            id="daemon-down",
        ),
        pytest.param(
            dashboard_source(blind_status()), "BLIND: RunPod answered 503", "sees RunPod", id="blind"
        ),
        pytest.param(dashboard_source(), "sees RunPod", "unknown", id="healthy-tick"),
    ],
)
async def test_the_status_bar_says_it_sees_runpod_only_when_it_does(
    source: StaticSource, says: str, never: str
) -> None:
    app = dashboard_app(source=source)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = status_bar_text(app)
        assert says in text
        assert never not in text


async def test_a_stale_tick_from_a_live_daemon_does_not_claim_runpod_either() -> None:
    app = make_app(dashboard_source(), RecordingActions(), stale_after_s=15, clock=lambda: FIXED_NOW + 60)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = status_bar_text(app)
        assert "RunPod: unknown (no fresh tick)" in text and "sees RunPod" not in text


SCREENS = {
    "hung": dashboard_source,
    "healthy": lambda: dashboard_source(healthy_status(), alerts=()),
    "blind": lambda: dashboard_source(blind_status()),
    "long": lambda: dashboard_source(long_status(), spend_by_day=long_spend()),
    "down": lambda: dashboard_source(live=False, problem="the daemon is not running"),
}


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("name", list(SCREENS))
async def test_no_slack_code_no_dollar_no_python_on_any_screen(name: str, size: tuple[int, int]) -> None:
    app = dashboard_app(source=SCREENS[name]())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for keys in ((), ("t",), ("s",), ("e", "enter")):
            await pilot.press(*keys)
            await settle(pilot)
            text = screen_text(app)
            assert not re.search(r":[a-z_]+:", text), text  # :rotating_light:
            assert "$" not in text, text  # money in euros
            assert not re.search(r"\{'|'\}|None|True|False", text), text  # no Python on screen
            assert not re.search(r"€\d", text), text  # "12.34 €", never "€12.34"
        await pilot.press("escape")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_long_names_and_large_numbers_are_never_cut_mid_value(size: tuple[int, int]) -> None:
    app = dashboard_app(source=SCREENS["long"]())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        text = screen_text(app)
        for value in ("12,345.67 €", "12,380.12 €", "61,901 %", "99 run", "1 unh +2", "12h00m/10m", "▲ HUNG"):
            assert value in text, value
        assert "translation-swahi" in text  # the name is shortened, with an ellipsis...
        assert LONG_NAME not in text  # ...not wrapped into the next row
        assert "PAUSED" in text and "✗ +2 more" in text
        assert "…" not in text.replace("translation-swahi…", "").replace("translation-swahili…", "")
        await pilot.press("enter")
        await settle(pilot)
        detail = screen_text(app)
        assert LONG_NAME in detail  # whole on the detail screen
        assert "1,234,567" in detail and "99 run, 1 unh, 2 init, 3 idle" in detail


# ------------------------------------------------------------------------------------------------------------
# Redraw only what changed
# ------------------------------------------------------------------------------------------------------------


class TickingSource(StaticSource):
    """Answers like the real DaemonSource: a NEW status object on every read (parsed from JSON), equal to the
    last one until the daemon's next tick; counts the ledger reads."""

    def __init__(self) -> None:
        super().__init__(dashboard_status(), alerts=known_alerts(), spend_by_day=story_spend())
        self.status = dashboard_status()
        self.ledger_reads = 0
        self.reads = 0

    def read(self) -> SourceReading:
        self.reads += 1
        return SourceReading(DaemonStatus.from_dict(self.status.to_dict()), live=True)

    def ledger_view(self, now: float) -> LedgerView:
        self.ledger_reads += 1
        return super().ledger_view(now)


def count_calls(counts: dict[str, int], name: str, method: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[name] = counts.get(name, 0) + 1
        return method(*args, **kwargs)

    return counted


async def test_reading_the_same_tick_again_redraws_nothing_and_a_new_tick_only_what_changed() -> None:
    source = TickingSource()
    app = make_app(source, RecordingActions(), refresh_s=0.02, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert source.ledger_reads == 1
        counts: dict[str, int] = {}
        table = app.query_one(EndpointsTable)
        for name in ("update_cell", "add_row", "clear"):
            setattr(table, name, count_calls(counts, f"table.{name}", getattr(table, name)))
        budget = app.query_one(BudgetPanel)
        budget.render = count_calls(counts, "budget.render", budget.render)  # type: ignore[method-assign]
        events = app.query_one("#events-body", Static)
        events.update = count_calls(counts, "events.update", events.update)  # type: ignore[method-assign]
        chart = app.query_one("#month-compact MonthChart")
        chart.render = count_calls(counts, "chart.render", chart.render)  # type: ignore[method-assign]
        bar = app.query_one(StatusBar)
        bar.update = count_calls(counts, "status.update", bar.update)  # type: ignore[method-assign]
        reads = source.reads
        deadline = time.monotonic() + 5
        while source.reads < reads + 10 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await settle(pilot)
        assert source.reads >= reads + 10
        assert counts == {}, "the same tick read again must redraw nothing"
        assert source.ledger_reads == 1, "the ledger is read once per tick, not once per refresh"

        # the daemon's next tick: one more worker running on hermes, nothing else
        hung, healthy = source.status.endpoints
        source.status = dataclasses.replace(
            source.status,
            last_tick_at=FIXED_NOW + 1,
            endpoints=(dataclasses.replace(hung, workers={"RUNNING": 2, "IDLE": 0}), healthy),
        )
        deadline = time.monotonic() + 5
        while source.ledger_reads < 2 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await settle(pilot)
        assert source.ledger_reads == 2
        assert counts.get("table.update_cell") == 1  # hermes' workers, and only that cell
        assert "table.add_row" not in counts and "table.clear" not in counts
        assert (
            "budget.render" not in counts and "events.update" not in counts and "chart.render" not in counts
        )
        assert counts.get("status.update") == 1  # "tick 0 s ago"
        assert "2 run" in " ".join(str(cell) for cell in table.get_row(HUNG_ID))


async def test_a_tick_that_moves_figures_repaints_them_without_a_layout_and_only_the_row_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a live daemon's ticks do all day: a cent more spent, a job a few seconds older, a request more
    in the hour. The figures on screen follow, but no widget changes height, so nothing may lay the screen
    out again; the endpoints table repaints the changed endpoint's row, not the whole table; the month's
    chart, whose picture does not show a cent, is not repainted; the events, which show no spend, are not
    redrawn; nothing on the tabs not open is repainted (each costs Textual a map of every widget), and
    they show the new figures when opened again."""
    source = TickingSource()
    app = make_app(source, RecordingActions(), refresh_s=0.02, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in ("t", "s", "e"):  # both tabs drawn once, then closed: what they drew must not stay
            await pilot.press(key)
            await settle(pilot)
        layouts: list[str] = []
        hidden: list[str] = []
        widget_refresh = Widget.refresh

        def refresh(widget: Widget, *regions: Region, **kwargs: bool) -> Widget:
            if kwargs.get("layout"):
                layouts.append(f"{type(widget).__name__}#{widget.id}")
            if not all(node.display for node in widget.ancestors_with_self):
                hidden.append(f"{type(widget).__name__}#{widget.id}")
            return widget_refresh(widget, *regions, **kwargs)

        monkeypatch.setattr(Widget, "refresh", refresh)
        table = app.query_one(EndpointsTable)
        painted: list[int] = []
        render_line = table.render_line

        def counted_line(y: int) -> Any:
            painted.append(y)
            return render_line(y)

        table.render_line = counted_line  # type: ignore[method-assign]
        counts: dict[str, int] = {}
        chart = app.query_one("#month-compact MonthChart", MonthChart)
        chart.render = count_calls(counts, "chart.render", chart.render)  # type: ignore[method-assign]
        events = app.query_one("#events-body", Static)
        events.update = count_calls(counts, "events.update", events.update)  # type: ignore[method-assign]

        status = source.status
        hung, healthy = status.endpoints
        assert status.budget is not None and hung.oldest_work_s is not None
        source.status = dataclasses.replace(
            status,
            last_tick_at=FIXED_NOW + 1,
            budget=dataclasses.replace(
                status.budget,
                spent_eur=status.budget.spent_eur + 0.01,
                variable_eur=status.budget.variable_eur + 0.01,
            ),
            endpoints=(
                dataclasses.replace(
                    hung,
                    oldest_work_s=hung.oldest_work_s + 5,
                    spend_month_eur=hung.spend_month_eur + 0.01,
                    requests_1h=hung.requests_1h + 1,
                ),
                healthy,
            ),
        )
        deadline = time.monotonic() + 5
        while source.ledger_reads < 2 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await settle(pilot)
        assert source.ledger_reads == 2

        assert "16.21 € of 20.00 €" in str(app.query_one(BudgetPanel).render())
        assert chart.plan is not None and chart.plan.spent[-1][1] == pytest.approx(16.21)
        assert layouts == [], "figures that keep their lines must not lay the screen out"
        row = table.get_row_index(HUNG_ID) * ROW_HEIGHT + table.header_height
        assert sorted(painted) == list(range(row, row + ROW_HEIGHT)), "only hermes' row is repainted"
        assert counts == {}, "the chart's picture and the events did not change"
        assert hidden == [], "nothing on a tab that is not open is repainted"

        monkeypatch.undo()
        await pilot.press("t")
        await settle(pilot)
        assert "last hour: 211 requests" in screen_text(app)
        await pilot.press("s")
        await settle(pilot)
        assert "16.21 € spent by" in screen_text(app)


async def test_the_month_tab_closed_plots_nothing_and_shows_the_new_month_when_opened_again() -> None:
    source = TickingSource()
    app = make_app(source, RecordingActions(), refresh_s=0.02, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert "44.0┤" not in screen_text(app)
        await pilot.press("e")
        await settle(pilot)
        counts: dict[str, int] = {}
        chart = app.query_one("#month-chart", MonthChart)
        chart.refresh = count_calls(counts, "tab chart.refresh", chart.refresh)  # type: ignore[method-assign]

        status = source.status
        assert status.budget is not None
        forecast = dataclasses.replace(status.budget, forecast_eur=40.0)  # the chart's top: 40 € + 10 %
        source.status = dataclasses.replace(status, last_tick_at=FIXED_NOW + 1, budget=forecast)
        deadline = time.monotonic() + 5
        while source.ledger_reads < 2 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await settle(pilot)
        assert source.ledger_reads == 2
        assert counts == {}, "a chart on a closed tab is not repainted (nor plotted)"

        await pilot.press("s")
        await settle(pilot)
        assert "44.0┤" in screen_text(app)


async def test_after_a_resize_the_panels_are_as_tall_as_their_lines_without_waiting_for_a_tick() -> None:
    """Ticks no longer lay the screen out, so a resize must get every height right by itself: the budget
    panel and the month's words are measured at the width being laid out, not at the one they had."""
    app = dashboard_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        for size in ((80, 24), (100, 30), SIZE):
            await pilot.resize_terminal(*size)
            await settle(pilot)
            words = app.query_one(MonthWords)
            assert words.content_size.height == len(words.render().plain.split("\n")), size
        await pilot.press("e")
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        budget = app.query_one(BudgetPanel)
        assert budget.content_size.height == len(budget.render().plain.split("\n"))


async def test_acknowledging_an_alert_rereads_the_ledger_without_waiting_for_a_tick() -> None:
    source = TickingSource()
    actions = RecordingActions()
    app = make_app(source, actions, refresh_s=0.02, clock=lambda: FIXED_NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert source.ledger_reads == 1
        await pilot.press("a", "y")
        deadline = time.monotonic() + 5
        while source.ledger_reads < 2 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert source.ledger_reads == 2
    assert actions.calls == [("ack_alert", {"key": ALERT_KEY})]


async def test_an_unreadable_ledger_says_the_alert_states_are_unknown() -> None:
    app = dashboard_app(source=dashboard_source(ledger_problem="no ledger at /var/lib/w.sqlite3"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "Alert delivery states unknown: no ledger at /var/lib/w.sqlite3" in text
        assert "PENDING" not in text  # the status's "pending" is not the truth
        assert "— " in text or "—" in text  # € today unknown


async def test_arrows_still_move_between_endpoints_after_the_month_tab_hid_the_table() -> None:
    app = dashboard_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert not app.query_one(EndpointsTable).display  # at 80x24 the chart takes its rows
        await pilot.press("e", "down")
        await settle(pilot)
        assert app.query_one(EndpointsTable).selected_endpoint_id == HEALTHY_ID
