"""Pilot tests: every screen, every command (confirm sends, cancel sends nothing), and the bad days.

The bad days matter most: a sysadmin opens the dashboard when something is wrong, so a daemon that is
down, slow or broken must leave a readable screen saying so, never a crash or a frozen terminal.
"""

from __future__ import annotations

import io
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
    dashboard_app,
    dashboard_source,
    dashboard_status,
)
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from tui.app import WatchdogApp, make_app
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.source import RecordingActions, SourceReading, StaticSource
from tui.widgets.budget_panel import BudgetPanel
from tui.widgets.endpoints_table import EndpointsTable
from tui.widgets.status_bar import StatusBar
from watchdog.control import ControlError

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
    return str(app.query_one(StatusBar).render())


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
        assert "over 6 h" in spend_title
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
        source.gate.set()
        await settle(pilot)
    assert source.most_at_once == 1
    assert source.reads < 15  # a stacking design would have started one read per refresh interval


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
    assert "OVER" not in per_1000_cell(endpoint, lenient).plain
    assert "OVER" in per_1000_cell(endpoint, strict).plain
    assert "▲" not in cold_cell(endpoint, lenient).plain
    assert "▲ >15 s" in cold_cell(endpoint, strict).plain
    assert status.budget is not None
    budget = replace(status.budget, used_ratio=0.7, thresholds=(0.6, 0.9, 1.0))
    assert verdict(budget)[0] == "OK ▲ 60 %"
    assert verdict(replace(budget, used_ratio=0.92))[0] == "WARN ▲ 90 %"
