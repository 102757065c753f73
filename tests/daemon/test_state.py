"""The daemon's one state: where each concept lives, how it restarts with the calendar, and what survives
a restart. Each test reproduces a bug the old centre had when copies of one concept drifted apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID
from sim_harness.wiring import daemon_against, sim_config
from watchdog.clock import ManualClock, from_iso
from watchdog.config import ConfigError, load_config
from watchdog.daemon.state import Calendar, roll_calendar
from watchdog.ledger import LedgerReader
from watchdog.vocabulary import Action, Outcome

TICK_S = 5.0


def test_the_calendar_restarts_the_days_counters_at_utc_midnight_and_everything_at_the_month() -> None:
    start = from_iso("2026-06-30T23:59:50Z")
    calendar = Calendar.starting(start)
    calendar.gpu_seconds["ep"]["A6000"] += 100.0
    calendar.gpu_seconds_today["ep"] += 100.0
    calendar.requests["ep"] += 7
    calendar.alerted_thresholds.add(0.5)

    same_day = roll_calendar(calendar, start + 5)
    assert same_day is calendar and same_day.gpu_seconds_today["ep"] == 100.0

    june_first_day = from_iso("2026-06-15T00:00:01Z")
    mid = Calendar.starting(from_iso("2026-06-14T23:59:00Z"))
    mid.gpu_seconds_today["ep"] += 50.0
    mid.gpu_seconds["ep"]["A6000"] += 50.0
    mid.requests["ep"] += 3
    next_day = roll_calendar(mid, june_first_day)
    assert next_day.gpu_seconds_today == {}  # reset at the UTC day change...
    assert next_day.gpu_seconds["ep"]["A6000"] == 50.0 and next_day.requests["ep"] == 3  # ...not the month

    july = roll_calendar(calendar, from_iso("2026-07-01T00:00:01Z"))
    assert july.gpu_seconds == {} and july.requests == {} and july.alerted_thresholds == set()
    assert july.month == from_iso("2026-07-01T00:00:00Z")


async def test_gpu_seconds_today_restart_at_utc_midnight_in_the_published_status(tmp_path: Path) -> None:
    """The dashboard's "GPU seconds today" used to count since the daemon started."""
    clock = ManualClock(from_iso("2026-06-15T23:58:00Z"))
    log = tmp_path / "access.log"
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(log))
    clock.advance(60)
    async with daemon_against(sim, tmp_path, log_path=log, policy={"mode": "dry-run"}) as daemon:
        midnight = from_iso("2026-06-16T00:00:00Z")
        before_midnight = None
        for _ in range(18):  # 23:59:00 → 00:00:25, the hung worker running throughout
            outcome = await daemon.tick()
            assert outcome.ok and outcome.status is not None
            hung = next(e for e in outcome.status.endpoints if e.id == HUNG_ENDPOINT_ID)
            if clock.now() < midnight:
                before_midnight = hung
            clock.advance(TICK_S)
        assert before_midnight is not None
        assert before_midnight.gpu_seconds_today == pytest.approx(55.0)  # 23:59:00 → 23:59:55
        assert hung.gpu_seconds_today == pytest.approx(25.0)  # restarted at 00:00:00 UTC
        assert hung.gpu_seconds_month == pytest.approx(55.0 + 5.0 + 25.0)  # the month goes on


async def test_a_pause_from_the_dashboard_survives_a_crash_before_the_next_tick(tmp_path: Path) -> None:
    """A command's effect (the brake and what to restore) is recorded in its own transaction: the daemon
    dying before its next tick used to lose the brake, and `restore` then said the endpoint was not held."""
    clock = ManualClock(from_iso("2026-06-15T12:00:00Z"))
    sim = build_simulator("steady", clock=clock)
    async with daemon_against(sim, tmp_path) as daemon:
        await daemon.tick()
        clock.advance(TICK_S)
        answer = await daemon.command("pause", {"endpoint_id": STEADY_ENDPOINT_ID, "by": "alice"})
        assert answer["ok"] is True
        # no tick after the command: the daemon "dies" here
    reader = LedgerReader.open(tmp_path / "ledger.sqlite3")
    try:
        brakes = reader.brake_states()
        assert STEADY_ENDPOINT_ID in brakes
        assert brakes[STEADY_ENDPOINT_ID].previous == {"workers_max": 1}
        assert brakes[STEADY_ENDPOINT_ID].rule == "manual"
        steps = [(r.action, r.outcome) for r in reader.recent_decisions(10)]
        assert (Action.PAUSE, Outcome.APPLIED) in steps
        assert any(a.key.startswith("manual:") for a in reader.recent_alerts(10))
    finally:
        reader.close()
    clock.advance(TICK_S)
    async with daemon_against(sim, tmp_path) as restarted:
        answer = await restarted.command("restore", {"endpoint_id": STEADY_ENDPOINT_ID, "by": "alice"})
        assert answer["ok"] is True
        assert (await restarted.ports.client.get_endpoint(STEADY_ENDPOINT_ID)).workers_max == 1
        assert restarted.ledger.brake_states() == {}


async def test_rule_modes_set_from_the_dashboard_survive_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(from_iso("2026-06-15T12:00:00Z"))
    sim = build_simulator("steady", clock=clock)
    async with daemon_against(sim, tmp_path) as daemon:
        await daemon.command("set_rule_mode", {"rule": "idle_leak", "mode": "dry-run"})
    async with daemon_against(sim, tmp_path) as restarted:
        assert restarted.state.rule_overrides == {"idle_leak": "dry-run"}


def test_a_retention_shorter_than_a_month_is_refused(tmp_path: Path) -> None:
    """The month to date counts, hour by hour, the larger of the estimate and the bill; with hourly rows
    folded after a day, older spend dropped out of the budget and the brake fired late."""
    path = tmp_path / "config.toml"
    path.write_text("[ledger]\nraw_retention_days = 1\nrollup_retention_days = 400\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert error.value.problems == [f"{path}:2: ledger.raw_retention_days: must be >= 32, got 1"]


def test_the_shipped_defaults_are_the_only_defaults(tmp_path: Path) -> None:
    """The policy's inputs are built from the configuration; nothing else carries a default for them."""
    from watchdog.daemon.evaluate import policy_settings, traffic_thresholds

    config = sim_config(tmp_path)
    settings, thresholds = policy_settings(config), traffic_thresholds(config)
    assert settings.stale_after_s == config.policy.stale_after_s == 30
    assert settings.max_actions_per_hour == config.policy.max_actions_per_hour == 12
    assert thresholds.max_requests_per_min == config.pings.max_requests_per_min == 30
    assert thresholds.jump_factor == config.pings.jump_factor
