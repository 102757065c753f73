"""The daemon issue's "Done when" scenarios end to end: ping-flood, config-drift, crash-loop, budget-burn,
and a billing outage that must not blind the watchdog.

Each test runs the real Daemon against the in-process simulator on one shared ManualClock, with a real
SQLite ledger, and asserts what the operator would see: the decisions (rule, action, mode, outcome, patch,
previous values, money), the alerts (keys, texts, € figures, de-duplication), the ledger rows, and the
simulator's state before and after. The plain "steady", hung-job enforce/dry-run, stale-data and restart
cases live in tests/test_tick.py and are not repeated here.

Time: the simulator only moves when something asks it to (``sim.sync()``). A real gateway writes its access
log as requests arrive, so after every ``clock.advance`` the tests call ``sim.sync()`` to write the log up
to "now" before the daemon's tick tails it (otherwise the log would lag one tick behind the clock).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.faults import Faults
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import (
    A6000,
    CRASH_ENDPOINT_ID,
    DRIFT_ENDPOINT_ID,
    FLOOD_ENDPOINT_ID,
    HUNG_ENDPOINT_ID,
    STEADY_ENDPOINT_ID,
    ScenarioParams,
)
from runpod_sim.state import BilledSession, SimEndpoint
from sim_harness.wiring import build_daemon, daemon_against
from watchdog.clock import ManualClock, from_iso, month_start
from watchdog.daemon.service import Daemon
from watchdog.daemon.tick import TickOutcome
from watchdog.ledger import DecisionRow
from watchdog.money import SECONDS_IN_30_DAYS
from watchdog.prices import DEFAULT_PRICES
from watchdog.traffic import DenyList

START = from_iso("2026-06-15T12:00:00Z")
TICK_S = 5.0
USD_PER_EUR = 1.16
A5000 = "NVIDIA RTX A5000"
BOT = "keepwarm-bot"


@pytest.fixture(autouse=True, params=["graphql", "graphql-retired"])
def graphql(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario twice: with GraphQL, and with GraphQL answering 410 Gone as it will once RunPod
    retires it (early 2027): nothing the daemon enforces may depend on it."""
    if request.param == "graphql-retired":
        real = build_simulator

        def without_graphql(*args: Any, options: SimOptions | None = None, **kwargs: Any) -> Simulator:
            options = dataclasses.replace(options or SimOptions(), graphql_enabled=False)
            return real(*args, options=options, **kwargs)

        monkeypatch.setattr(sys.modules[__name__], "build_simulator", without_graphql)
    return str(request.param)


def _step(clock: ManualClock, sim: Simulator, seconds: float = TICK_S) -> None:
    """Let time pass and have the simulator catch up (writing its access log) as a live system would."""
    clock.advance(seconds)
    sim.sync()


def _eur(usd: float) -> float:
    return usd / USD_PER_EUR


def _rows(outcome: TickOutcome, rule: str) -> list:
    return [r for r in outcome.rows if r.rule == rule]


def _alerts(daemon: Daemon) -> dict[str, object]:
    return {a.key: a for a in daemon.ledger.recent_alerts(1000)}


def _decisions(daemon: Daemon, rule: str) -> list[DecisionRow]:
    return [r for r in daemon.ledger.recent_decisions(1000) if r.rule == rule]


# ---------------------------------------------------------------------------------------------------------
# 1. ping-flood: a keep-warm bot


def _flood(tmp_path: Path) -> tuple[ManualClock, Simulator, Path]:
    clock = ManualClock(START)
    log = tmp_path / "access.log"
    sim = build_simulator("ping-flood", clock=clock, access_log_path=str(log))
    return clock, sim, log


async def _tick_until_traffic_finding(
    daemon: Daemon, clock: ManualClock, sim: Simulator, *, max_ticks: int
) -> TickOutcome:
    for _ in range(max_ticks):
        outcome = await daemon.tick()
        assert outcome.ok and not outcome.blind
        if _rows(outcome, "suspicious_traffic"):
            return outcome
        _step(clock, sim)
    raise AssertionError(f"no suspicious_traffic decision within {max_ticks} ticks")


KEEP_WARM_WINDOW_MIN = 3.0
A5000_USD_PER_S = DEFAULT_PRICES.usd_per_s(A5000)
WARM_MONTH_EUR = _eur(A5000_USD_PER_S * SECONDS_IN_30_DAYS)
"""What the bot costs: one A5000 flex worker billed around the clock (the scenario says ~$490 a month)."""


def _assert_keep_warm_alert(daemon: Daemon) -> None:
    """The suspicious-traffic alert: queued once, naming the bot, with the keep-warm cost in €."""
    key = f"alert:suspicious_traffic:alert:{FLOOD_ENDPOINT_ID}:{BOT}:keep_warm:2026-06-15"
    alerts = _alerts(daemon)
    traffic = [k for k in alerts if k.startswith("alert:suspicious_traffic")]
    assert traffic == [key]
    alert = alerts[key]
    assert alert.kind == "traffic" and alert.severity == "warning"
    assert f"suspicious traffic (keep_warm) from {BOT}" in alert.text
    assert "never 5 s (the idle timeout) apart" in alert.text
    assert f"costs about €{WARM_MONTH_EUR:.2f} a month" in alert.text
    assert alert.eur == pytest.approx(WARM_MONTH_EUR)
    assert 400 < WARM_MONTH_EUR < 450  # ≈ $490: more than twenty times the whole monthly budget


async def test_ping_flood_deny_list_cut(tmp_path: Path) -> None:
    clock, sim, log = _flood(tmp_path)
    deny = tmp_path / "gateway" / "deny.txt"
    async with _flood_daemon(sim, tmp_path, log, cut="deny-list", deny_list_path=str(deny)) as daemon:
        found = await _tick_until_traffic_finding(daemon, clock, sim, max_ticks=60)
        # the bot's run of arrivals must last the configured window before it counts as keep-warm
        assert clock.now() - START >= KEEP_WARM_WINDOW_MIN * 60
        assert clock.now() - START <= KEEP_WARM_WINDOW_MIN * 60 + 6 * TICK_S
        rows = _rows(found, "suspicious_traffic")
        assert [(r.action, r.mode, r.outcome) for r in rows] == [
            ("deny_list", "enforce", "applied"),
            ("alert", "enforce", "applied"),
        ]
        assert rows[0].endpoint_id == FLOOD_ENDPOINT_ID
        assert rows[0].dedupe_key == f"suspicious_traffic:deny_list:{FLOOD_ENDPOINT_ID}:{BOT}"
        assert DenyList(deny).read() == {BOT}
        assert sim.endpoint(FLOOD_ENDPOINT_ID).workers_max == 1  # the deny-list cut leaves RunPod alone

        later: list[TickOutcome] = []
        for _ in range(80):  # the bot keeps going (the simulator has no gateway): nearly 7 more minutes
            _step(clock, sim)
            later.append(await daemon.tick())
        verified = [r for o in later for r in _rows(o, "suspicious_traffic") if r.outcome == "verified"]
        assert [(r.action, r.reason) for r in verified] == [
            ("deny_list", "verified: source is in the deny list")
        ]
        # already denied: neither re-applied after each cool-down nor proposed again
        assert not [r for o in later for r in _rows(o, "suspicious_traffic") if r.outcome != "verified"]
        assert [r.outcome for r in _decisions(daemon, "suspicious_traffic") if r.action == "deny_list"] == [
            "verified",
            "applied",
            "intended",
        ]
        _assert_keep_warm_alert(daemon)
        action_alerts = [k for k in _alerts(daemon) if k.startswith("action:suspicious_traffic")]
        assert len(action_alerts) == 1
        assert not [k for k in _alerts(daemon) if k.startswith("proposal:")]
        assert DenyList(deny).read() == {BOT}
        assert found.status is not None  # the dashboard showed the finding on the tick that made it
        (endpoint,) = [e for e in found.status.endpoints if e.id == FLOOD_ENDPOINT_ID]
        assert any(BOT in text for text in endpoint.suspicious)


async def test_ping_flood_cooldown_cut_scales_to_zero_then_restores(tmp_path: Path) -> None:
    clock, sim, log = _flood(tmp_path)
    cut_s = 120.0
    async with _flood_daemon(sim, tmp_path, log, cut="cooldown", cut_cooldown_s=cut_s) as daemon:
        found = await _tick_until_traffic_finding(daemon, clock, sim, max_ticks=60)
        cut_at = clock.now()
        rows = _rows(found, "suspicious_traffic")
        assert [(r.action, r.mode, r.outcome) for r in rows] == [
            ("scale_to_zero", "enforce", "applied"),
            ("alert", "enforce", "applied"),
        ]
        stop = rows[0]
        assert (stop.patch, stop.previous) == ({"workers_max": 0}, {"workers_max": 1})
        assert stop.saved_usd == pytest.approx(A5000_USD_PER_S * cut_s)  # one busy worker for the cut
        assert f"scaling to zero for {cut_s / 60:.0f} min" in stop.reason
        assert sim.endpoint(FLOOD_ENDPOINT_ID).workers_max == 0
        brake = daemon.ledger.brake_states()[FLOOD_ENDPOINT_ID]
        assert (brake.kind, brake.until, dict(brake.previous or {})) == (
            "cooldown",
            cut_at + cut_s,
            {"workers_max": 1},
        )
        action_key = f"action:suspicious_traffic:scale_to_zero:{FLOOD_ENDPOINT_ID}:{int(cut_at)}"
        action = _alerts(daemon)[action_key]
        assert f"Did scale to zero on {FLOOD_ENDPOINT_ID}" in action.text
        assert f"€{WARM_MONTH_EUR:.2f} a month" in action.text

        restored_at = None
        while clock.now() < cut_at + cut_s + 4 * TICK_S:
            _step(clock, sim)
            outcome = await daemon.tick()
            restores = [r for r in _rows(outcome, "suspicious_traffic") if r.action == "restore"]
            if clock.now() < cut_at + cut_s:
                # held down for the whole cut, the bot's requests queue up and no worker bills
                assert not restores
                assert sim.endpoint(FLOOD_ENDPOINT_ID).workers_max == 0
                assert sim.workers(FLOOD_ENDPOINT_ID) == []
            elif restores and restored_at is None:
                restored_at = clock.now()
                assert [(r.mode, r.outcome) for r in restores] == [("enforce", "applied")]
                assert (restores[0].patch, restores[0].previous) == ({"workers_max": 1}, {"workers_max": 0})
                assert "traffic cool-down is over" in restores[0].reason
        assert restored_at is not None and restored_at - cut_at < cut_s + TICK_S
        assert sim.endpoint(FLOOD_ENDPOINT_ID).workers_max == 1
        assert FLOOD_ENDPOINT_ID not in daemon.ledger.brake_states()
        _assert_keep_warm_alert(daemon)


def _flood_daemon(sim: Simulator, tmp_path: Path, log: Path, **pings: object):
    return daemon_against(
        sim,
        tmp_path,
        log_path=log,
        pings={"keep_warm_window_min": KEEP_WARM_WINDOW_MIN, **pings},
        # the restore after the cut must not wait for the anti-flapping cool-down (default 300 s)
        policy={"cooldown_s": 60.0},
    )


# ---------------------------------------------------------------------------------------------------------
# 2. config-drift


DRIFT_AT_S = 60.0
DRIFTED = {"workers_min": 1, "idle_timeout_s": 300, "workers_max": 3}
ORIGINAL = {"workers_min": 0, "idle_timeout_s": 5, "workers_max": 1}
WORKERS_MIN_USD_PER_MONTH = 622.08
"""workersMin 1: one A6000 billed 24/7 at the active price (0.00024 $/s × 30 days)."""


def _sim_fields(sim: Simulator) -> dict[str, int]:
    endpoint = sim.endpoint(DRIFT_ENDPOINT_ID)
    return {
        "workers_min": endpoint.workers_min,
        "idle_timeout_s": endpoint.idle_timeout,
        "workers_max": endpoint.workers_max,
    }


async def _drift_run(tmp_path: Path, mode: str) -> tuple[ManualClock, Simulator, Daemon, TickOutcome, list]:
    clock = ManualClock(START)
    sim = build_simulator("config-drift", clock=clock, params=ScenarioParams(drift_after_s=DRIFT_AT_S))
    # the limits equal the endpoint's own settings, so "patched back" means "restored"
    daemon = build_daemon(sim, tmp_path, policy={"mode": mode, "max_idle_timeout_s": 5})
    await daemon.open()
    before = [await daemon.tick()]
    while clock.now() < START + DRIFT_AT_S:
        assert not _rows(before[-1], "config_drift")
        assert _sim_fields(sim) == ORIGINAL
        _step(clock, sim)
        before.append(await daemon.tick())
    return clock, sim, daemon, before[-1], before


def _assert_drift_decisions(rows: list, mode: str, outcome: str) -> None:
    by_field = {next(iter(r.patch)): r for r in rows}
    assert set(by_field) == set(DRIFTED)
    for name, row in by_field.items():
        assert (row.action, row.mode, row.outcome) == ("patch_config", mode, outcome)
        assert row.patch == {name: ORIGINAL[name]} and row.previous == {name: DRIFTED[name]}
        assert row.dedupe_key == f"config_drift:{name}:{DRIFT_ENDPOINT_ID}:{DRIFTED[name]}"
        assert "per month" in row.reason and "€" in row.reason
    workers_min = by_field["workers_min"]
    assert workers_min.saved_usd == pytest.approx(WORKERS_MIN_USD_PER_MONTH)
    assert f"€{_eur(WORKERS_MIN_USD_PER_MONTH):.2f} per month" in workers_min.reason
    assert "billed 24/7 at the active price" in workers_min.reason


async def test_config_drift_enforce_patches_every_field_back(tmp_path: Path) -> None:
    clock, sim, daemon, seen, _ = await _drift_run(tmp_path, "enforce")
    try:
        _assert_drift_decisions(_rows(seen, "config_drift"), "enforce", "applied")
        assert _sim_fields(sim) == ORIGINAL  # restored within the tick that saw the drift
        assert not [w for w in sim.workers(DRIFT_ENDPOINT_ID) if w.role == "active"]
        drift_at = clock.now()
        _step(clock, sim)
        verify = await daemon.tick()
        verified = _rows(verify, "config_drift")
        assert sorted((r.outcome, r.reason) for r in verified) == [
            ("verified", "verified: endpoint shows idle_timeout_s=5"),
            ("verified", "verified: endpoint shows workers_max=1"),
            ("verified", "verified: endpoint shows workers_min=0"),
        ]
        for _ in range(10):  # nothing further: the endpoint complies again
            _step(clock, sim)
            assert not _rows(await daemon.tick(), "config_drift")

        history = daemon.ledger.config_history(DRIFT_ENDPOINT_ID)
        fields = [(h.workers_min, h.idle_timeout_s, h.workers_max) for h in history]
        assert fields == [(0, 5, 1), (1, 300, 3), (0, 5, 1)]
        assert history[0].changed_fields is None
        assert set(history[1].changed_fields or ()) == {"workers_min", "idle_timeout_s", "workers_max"}
        assert history[1].observed_at == drift_at
        assert set(history[2].changed_fields or ()) == {"workers_min", "idle_timeout_s", "workers_max"}
        assert history[2].observed_at == drift_at + TICK_S

        alerts = _alerts(daemon)
        keys = sorted(k for k in alerts if k.startswith("action:config_drift"))
        assert keys == sorted(
            f"action:config_drift:{name}:{DRIFT_ENDPOINT_ID}:{value}:{int(drift_at)}"
            for name, value in DRIFTED.items()
        )
        text = alerts[f"action:config_drift:workers_min:{DRIFT_ENDPOINT_ID}:1:{int(drift_at)}"].text
        assert (
            f"Did patch config on {DRIFT_ENDPOINT_ID} (saves about {_eur(WORKERS_MIN_USD_PER_MONTH):,.2f} €)"
            in text
        )
        assert all(alerts[k].kind == "drift" for k in keys)
    finally:
        await daemon.close()


async def test_config_drift_dry_run_only_proposes(tmp_path: Path) -> None:
    clock, sim, daemon, seen, _ = await _drift_run(tmp_path, "dry-run")
    try:
        _assert_drift_decisions(_rows(seen, "config_drift"), "dry-run", "proposed")
        for _ in range(30):  # proposals are not repeated every tick (once an hour at most)
            _step(clock, sim)
            assert not _rows(await daemon.tick(), "config_drift")
            assert _sim_fields(sim) == DRIFTED
        assert sim.endpoint(DRIFT_ENDPOINT_ID).execution_timeout_ms == 120_000
        assert [w.role for w in sim.workers(DRIFT_ENDPOINT_ID)].count("active") == 1  # workersMin's worker
        assert all(r.outcome == "proposed" for r in daemon.ledger.recent_decisions(1000))
        history = daemon.ledger.config_history(DRIFT_ENDPOINT_ID)
        assert [(h.workers_min, h.idle_timeout_s, h.workers_max) for h in history] == [(0, 5, 1), (1, 300, 3)]
        keys = sorted(k for k in _alerts(daemon) if k.startswith("proposal:config_drift"))
        assert keys == sorted(
            f"proposal:config_drift:{name}:{DRIFT_ENDPOINT_ID}:{value}:2026-06-15"
            for name, value in DRIFTED.items()
        )
        text = _alerts(daemon)[f"proposal:config_drift:workers_min:{DRIFT_ENDPOINT_ID}:1:2026-06-15"].text
        assert f"Dry-run: would patch config on {DRIFT_ENDPOINT_ID}" in text
        assert f"would save about {_eur(WORKERS_MIN_USD_PER_MONTH):,.2f} €" in text
        status = daemon.status_ref.get()
        assert status is not None
        assert status.saved_usd["config_drift|dry-run"] == pytest.approx(WORKERS_MIN_USD_PER_MONTH)
        assert "config_drift|enforce" not in status.saved_usd
    finally:
        await daemon.close()


# ---------------------------------------------------------------------------------------------------------
# 3. crash-loop


async def test_crash_loop_scales_to_zero_and_alerts(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("crash-loop", clock=clock)
    sim.submit(CRASH_ENDPOINT_ID, {"document_url": "https://example.invalid/first.pdf"})
    # cooldown 60 s: the first tick's drift patches (timeout, workersMax 2 → 1) must not hold the stop
    async with daemon_against(sim, tmp_path, policy={"cooldown_s": 60.0}) as daemon:
        first = await daemon.tick()
        assert sorted((r.action, r.outcome) for r in _rows(first, "config_drift")) == [
            ("patch_config", "applied"),
            ("patch_config", "applied"),
        ]
        found = None
        for _ in range(120):  # 10 minutes
            _step(clock, sim)
            outcome = await daemon.tick()
            assert outcome.ok
            if _rows(outcome, "crash_loop"):
                found = outcome
                break
        assert found is not None, "the crash loop was never detected"
        detected_at = clock.now()
        health = sim.health(CRASH_ENDPOINT_ID)
        assert health.retried >= 3 and health.completed == 0 and health.in_queue >= 1
        rows = _rows(found, "crash_loop")
        assert [(r.action, r.mode, r.outcome) for r in rows] == [
            ("scale_to_zero", "enforce", "applied"),
            ("alert", "enforce", "applied"),
        ]
        stop, alert_row = rows
        assert (stop.patch, stop.previous) == ({"workers_max": 0}, {"workers_max": 1})
        assert stop.saved_usd > 0
        assert (
            "crash loop:" in stop.reason and "unhealthy worker(s)" in stop.reason and "queued" in stop.reason
        )
        assert "0 completions" in stop.reason
        assert sim.endpoint(CRASH_ENDPOINT_ID).workers_max == 0

        alerts = _alerts(daemon)
        month = month_start(detected_at)
        alert = alerts[f"alert:crash_loop:alert:{CRASH_ENDPOINT_ID}:{month}:2026-06-15"]
        assert alert.severity == "critical" and "crash loop" in alert.text and alert.eur and alert.eur > 0
        action = alerts[f"action:crash_loop:scale_to_zero:{CRASH_ENDPOINT_ID}:{int(detected_at)}"]
        assert "Did scale to zero" in action.text and "€" in action.text
        assert alert_row.saved_usd == 0  # the money is the stop's, not counted twice

        _step(clock, sim)
        verify = await daemon.tick()
        assert [(r.action, r.outcome) for r in _rows(verify, "crash_loop")] == [("scale_to_zero", "verified")]
        assert sim.workers(CRASH_ENDPOINT_ID) == []
        billed = sim.billed_usd_total(CRASH_ENDPOINT_ID)
        for _ in range(60):  # a crash-loop brake waits for a human: no auto-restore, no more decisions
            _step(clock, sim)
            assert not _rows(await daemon.tick(), "crash_loop")
        assert sim.endpoint(CRASH_ENDPOINT_ID).workers_max == 0
        assert sim.billed_usd_total(CRASH_ENDPOINT_ID) == pytest.approx(billed)
        brake = daemon.ledger.brake_states()[CRASH_ENDPOINT_ID]
        assert dict(brake.previous or {}) == {"workers_max": 1}
        assert len([r for r in _decisions(daemon, "crash_loop") if r.outcome == "applied"]) == 2


# ---------------------------------------------------------------------------------------------------------
# 4. budget-burn


BURN_START = from_iso("2026-06-29T12:00:00Z")
ALLOWED_ENDPOINT_ID = "ep-hotline"


def _add_spend(sim: Simulator, usd: float, label: str) -> None:
    """A closed A6000 session on the steady endpoint worth ``usd``, just ended (billing picks it up)."""
    seconds = round(usd / sim.prices.usd_per_s(A6000))
    now = sim.clock.now()
    sim.record_session(
        BilledSession(
            worker_id=f"synthetic-{label}",
            endpoint_id=STEADY_ENDPOINT_ID,
            gpu_type_id=A6000,
            active=False,
            started_at=now - seconds - 1,
            stopped_at=now - 1,
            busy_s=seconds,
        )
    )


async def test_budget_burn_alerts_once_brakes_spares_the_allow_list_and_restores_next_month(
    tmp_path: Path,
) -> None:
    clock = ManualClock(BURN_START)
    sim = build_simulator("budget-burn", clock=clock)
    sim.add_endpoint(
        SimEndpoint(
            id=ALLOWED_ENDPOINT_ID,
            name="Health hotline (allow-listed)",
            workers_max=1,
            idle_timeout=5,
            execution_timeout_ms=120_000,
            created_at=BURN_START - 86_400,
        )
    )
    async with daemon_against(
        sim,
        tmp_path,
        runpod={"billing_interval_s": TICK_S},  # every tick reads the billing: the test adds spend to it
        policy={"allow_list": (ALLOWED_ENDPOINT_ID,)},
    ) as daemon:

        async def tick() -> TickOutcome:
            outcome = await daemon.tick()
            assert outcome.ok and not outcome.blind
            _step(clock, sim)
            return outcome

        first = await tick()
        assert first.status is not None and first.status.budget is not None
        assert first.status.budget.used_ratio == pytest.approx(0.75, abs=0.005)
        budget_rows = _rows(first, "budget_brake")
        assert [(r.action, r.outcome, r.dedupe_key) for r in budget_rows] == [
            ("alert", "applied", f"budget_brake:alert:{month_start(BURN_START)}:0.5")
        ]
        for _ in range(3):
            assert not _rows(await tick(), "budget_brake")
        assert not [k for k in _alerts(daemon) if k.startswith("budget:2026-06:0.8")]

        _add_spend(sim, 1.3, "a")  # ≈ 80.6 %: the 80 % threshold is crossed
        crossed = await tick()
        budget = crossed.status.budget
        assert 0.8 <= budget.used_ratio < 0.95
        assert [(r.action, r.outcome) for r in _rows(crossed, "budget_brake")] == [("alert", "applied")]
        alert = _alerts(daemon)["budget:2026-06:0.8"]
        assert alert.kind == "budget" and alert.severity == "critical"
        assert alert.text == (
            f":rotating_light: Budget 80 % reached: {budget.spent_eur:,.2f} € of 20.00 € spent this month "
            f"(forecast {budget.forecast_eur:,.2f} €)"
        )
        assert alert.eur == pytest.approx(budget.spent_eur)
        for _ in range(4):  # once per month, however many ticks stay above it
            assert not _rows(await tick(), "budget_brake")
        assert sorted(k for k in _alerts(daemon) if k.startswith("budget:")) == [
            "budget:2026-06:0.5",
            "budget:2026-06:0.8",
        ]

        # queued work on both endpoints, then the spend passes the 95 % brake
        for index in range(3):
            sim.submit(STEADY_ENDPOINT_ID, {"n": index, "sim": {"duration_s": 5}})
            sim.submit(ALLOWED_ENDPOINT_ID, {"n": index, "sim": {"duration_s": 5}})
        assert sim.health(STEADY_ENDPOINT_ID).in_queue >= 2
        _add_spend(sim, 3.5, "b")
        braked = await tick()
        assert braked.status.budget.used_ratio >= 0.95
        rows = _rows(braked, "budget_brake")
        assert [(r.action, r.endpoint_id, r.mode, r.outcome) for r in rows] == [
            ("pause", STEADY_ENDPOINT_ID, "enforce", "applied"),
            ("purge_queue", STEADY_ENDPOINT_ID, "enforce", "applied"),
        ]
        pause = rows[0]
        assert (pause.patch, pause.previous) == ({"workers_max": 0}, {"workers_max": 1})
        assert pause.saved_usd > 0 and "of the budget used (brake at 95%)" in pause.reason
        steady, hotline = sim.endpoint(STEADY_ENDPOINT_ID), sim.endpoint(ALLOWED_ENDPOINT_ID)
        assert steady.workers_max == 0 and sim.health(STEADY_ENDPOINT_ID).in_queue == 0
        assert sim.workers(STEADY_ENDPOINT_ID) == []
        assert hotline.workers_max == 1  # allow-listed: untouched, its jobs still run
        assert sim.health(ALLOWED_ENDPOINT_ID).in_queue + sim.health(ALLOWED_ENDPOINT_ID).in_progress == 3
        brake = daemon.ledger.brake_states()[STEADY_ENDPOINT_ID]
        assert (brake.kind, brake.month, dict(brake.previous or {})) == (
            "brake",
            month_start(BURN_START),
            {"workers_max": 1},
        )
        assert ALLOWED_ENDPOINT_ID not in daemon.ledger.brake_states()
        assert f"action:budget_brake:pause:{STEADY_ENDPOINT_ID}:{month_start(BURN_START)}:" in " ".join(
            _alerts(daemon)
        )
        later = [await tick() for _ in range(8)]
        assert sorted(r.outcome for r in _rows(later[0], "budget_brake")) == ["verified", "verified"]
        assert not [r for o in later[1:] for r in _rows(o, "budget_brake")]  # braked once, not per tick
        assert sim.endpoint(ALLOWED_ENDPOINT_ID).workers_max == 1
        assert sim.health(ALLOWED_ENDPOINT_ID).completed == 3

        # the month changes: the saved configuration comes back, the new month starts with no alert
        _step(clock, sim, from_iso("2026-07-01T00:00:05Z") - clock.now())
        july = await tick()
        restores = _rows(july, "budget_brake")
        assert [(r.action, r.endpoint_id, r.mode, r.outcome) for r in restores] == [
            ("restore", STEADY_ENDPOINT_ID, "enforce", "applied")
        ]
        assert (restores[0].patch, restores[0].previous) == ({"workers_max": 1}, {"workers_max": 0})
        assert "a new month's budget has started" in restores[0].reason
        assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 1
        assert daemon.ledger.brake_states() == {}
        assert july.status.budget.month == "2026-07" and july.status.budget.used_ratio < 0.5
        assert not [k for k in _alerts(daemon) if k.startswith("budget:2026-07")]


# ---------------------------------------------------------------------------------------------------------
# 5. the billing route failing alone


async def test_billing_outage_alone_neither_blinds_nor_misleads_the_daemon(tmp_path: Path) -> None:
    """Billing lags by hours and is read every ``billing_interval_s``: when only that route fails, the daemon
    keeps seeing (not blind), still stops the hung job, counts the live estimate, retries billing once per
    interval, and folds the billed hours in when the route is back."""
    clock = ManualClock(START)
    log = tmp_path / "access.log"
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(log))
    _step(clock, sim, 60)
    billing_interval_s = 30.0
    faults = Faults()
    outage = faults.fail_next(None, "/v2/billing/serverless", status=503)
    async with daemon_against(
        sim, tmp_path, log_path=log, faults=faults, runpod={"billing_interval_s": billing_interval_s}
    ) as daemon:
        outcomes = []
        cancelled = False
        while not cancelled:
            assert len(outcomes) < 60, "the hung job was never cancelled"
            outcome = await daemon.tick()
            outcomes.append(outcome)
            cancelled = any(r.action == "cancel_job" and r.outcome == "applied" for r in outcome.rows)
            _step(clock, sim)
        assert all(o.ok and not o.blind for o in outcomes)
        assert not [r for o in outcomes for r in o.rows if r.rule == "blind"]
        assert not [a for a in daemon.ledger.recent_alerts() if a.kind == "blind"]
        assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms == 120_000
        (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()
        assert job.status == "CANCELLED"
        # billing was tried once per interval, not on every tick
        elapsed = outcomes[-1].started_at - outcomes[0].started_at
        assert outage.hits == int(elapsed // billing_interval_s) + 1
        assert len(outcomes) > outage.hits * 3
        status = daemon.status_ref.get()
        assert status is not None and not status.blind and status.last_billing_at is None
        assert status.budget is not None and status.budget.billed_eur == 0
        assert status.budget.estimate_eur > 0  # the live estimate is what the month to date counts
        assert status.budget.variable_eur == pytest.approx(status.budget.estimate_eur)
        assert not [r for r in daemon.ledger.recent_decisions(1000) if r.rule == "budget_brake"]

        faults.clear()
        back = None
        for _ in range(int(billing_interval_s / TICK_S) + 1):
            back = await daemon.tick()
            _step(clock, sim)
            if daemon.state.billing.last_read_at is not None:
                break
        assert back is not None and back.ok
        assert daemon.state.billing.last_read_at == back.started_at
        assert back.status.budget.billed_eur > 0
        _estimate, billed = daemon.ledger.month_totals(month_start(START))
        assert billed == pytest.approx(sim.billed_usd_total(), rel=0.05)


async def test_with_graphql_retired_every_policy_works_and_the_balance_is_unknown_once(
    tmp_path: Path,
) -> None:
    """RunPod retires GraphQL in early 2027. With the simulator answering 410 Gone to every GraphQL request,
    the daemon still sees RunPod (REST v2 and the runtime), still cancels the hung job by id and patches
    the missing timeout, and says "balance unknown" once; the spend-rate cap comes from REST v2."""
    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock, options=SimOptions(graphql_enabled=False))
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()
    policy = {"max_execution_s": 60.0, "grace_s": 10.0, "required_execution_timeout_s": 3600}
    async with daemon_against(sim, tmp_path, policy=policy) as daemon:
        outcomes = []
        for _ in range(40):
            sim.sync()
            outcomes.append(await daemon.tick())
            await daemon.check_deadlines()
            _step(clock, sim)
        assert all(o.ok and not o.blind for o in outcomes), [o.error for o in outcomes if not o.ok]
        assert sim.job(HUNG_ENDPOINT_ID, job.id).status == "CANCELLED"
        status = daemon.status_ref.get()
        assert status is not None
        assert status.balance_usd is None and "410" in status.account_problem
        assert status.spend_rate_cap_usd_per_hr == pytest.approx(80.0)  # REST v2 /account/limits
        account_alerts = [a for a in daemon.ledger.recent_alerts() if a.kind == "account"]
        assert len(account_alerts) == 1  # once for the episode, not once a tick
        assert "Balance unknown" in account_alerts[0].text and "keeps working" in account_alerts[0].text


# ---------------------------------------------------------------------------------------------------------
# 6. a month that fits the budget: a bad day is braked at the day's allowance, the next UTC day restores


BAD_DAY = from_iso("2026-06-10T12:00:00Z")
NEXT_UTC_DAY = from_iso("2026-06-11T00:00:00Z")
FIXED_EUR = _eur(10.0)
"""The built-in fixed cost: the 10 USD Hugging Face space."""


async def test_a_bad_day_is_braked_at_the_days_allowance_and_the_next_utc_day_restores(
    tmp_path: Path,
) -> None:
    clock = ManualClock(BAD_DAY)
    sim = build_simulator("steady", clock=clock)
    sim.add_endpoint(
        SimEndpoint(
            id=ALLOWED_ENDPOINT_ID,
            name="Health hotline (allow-listed)",
            workers_max=1,
            idle_timeout=5,
            execution_timeout_ms=120_000,
            created_at=BAD_DAY - 86_400,
        )
    )
    async with daemon_against(
        sim,
        tmp_path,
        runpod={"billing_interval_s": TICK_S},  # every tick reads the billing: the test adds spend to it
        policy={"allow_list": (ALLOWED_ENDPOINT_ID,)},
        budget={"daily_allowance": True},
    ) as daemon:

        async def tick() -> TickOutcome:
            outcome = await daemon.tick()
            assert outcome.ok and not outcome.blind
            _step(clock, sim)
            return outcome

        quiet = await tick()
        assert quiet.status is not None and quiet.status.budget is not None
        # nothing spent yet this month: 20 € less the space, over the 21 days from the 10th to the 30th
        assert quiet.status.budget.daily_allowance_eur == pytest.approx((20.0 - FIXED_EUR) / 21, abs=0.005)
        assert not _rows(quiet, "budget_brake")

        # one bad half hour on the steady endpoint: 0.70 USD (0.60 €) of A6000 time, over the ≈ 0.54 € allowance
        _add_spend(sim, 0.7, "burst")
        braked = await tick()
        budget = braked.status.budget
        assert budget.daily_allowance_eur is not None
        assert budget.spent_today_eur >= budget.daily_allowance_eur > 0.5
        assert budget.used_ratio < 0.5  # far from the month's brake and its first threshold
        rows = _rows(braked, "budget_brake")
        assert [(r.action, r.endpoint_id, r.mode, r.outcome) for r in rows] == [
            ("alert", None, "enforce", "applied"),
            ("pause", STEADY_ENDPOINT_ID, "enforce", "applied"),
            ("purge_queue", STEADY_ENDPOINT_ID, "enforce", "applied"),
        ]
        pause = rows[1]
        assert (pause.patch, pause.previous) == ({"workers_max": 0}, {"workers_max": 1})
        assert "reached the day's allowance" in pause.reason and "until 00:00 UTC" in pause.reason
        assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 0
        assert sim.endpoint(ALLOWED_ENDPOINT_ID).workers_max == 1  # allow-listed: untouched
        brake = daemon.ledger.brake_states()[STEADY_ENDPOINT_ID]
        assert (brake.kind, brake.rule, brake.until) == ("brake", "budget_brake", NEXT_UTC_DAY)
        assert ALLOWED_ENDPOINT_ID not in daemon.ledger.brake_states()
        day_alerts = [a for k, a in _alerts(daemon).items() if k.startswith("budget:budget_brake:alert:day:")]
        assert len(day_alerts) == 1
        (fired,) = day_alerts
        assert (fired.kind, fired.severity) == ("budget", "warning")
        assert fired.text.startswith(":warning: Budget: today's GPU spend €")
        assert f"the day's brake pauses {STEADY_ENDPOINT_ID} (not on policy.allow_list) until 00:00 UTC" in (
            fired.text
        )

        later = [await tick() for _ in range(6)]
        assert sorted(r.outcome for r in _rows(later[0], "budget_brake")) == ["verified", "verified"]
        assert not [r for o in later[1:] for r in _rows(o, "budget_brake")]  # braked once, not per tick
        assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 0

        # the next UTC day: the day's brake lifts by itself, with one alert
        _step(clock, sim, NEXT_UTC_DAY + 5 - clock.now())
        next_day = await tick()
        rows = _rows(next_day, "budget_brake")
        assert [(r.action, r.endpoint_id, r.mode, r.outcome) for r in rows] == [
            ("alert", None, "enforce", "applied"),
            ("restore", STEADY_ENDPOINT_ID, "enforce", "applied"),
        ]
        assert (rows[1].patch, rows[1].previous) == ({"workers_max": 1}, {"workers_max": 0})
        assert "a new UTC day's allowance has started" in rows[1].reason
        assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 1
        assert daemon.ledger.brake_states() == {}
        assert next_day.status.budget.spent_today_eur < next_day.status.budget.daily_allowance_eur
        lifted = [
            a for k, a in _alerts(daemon).items() if k.startswith("budget:budget_brake:alert:day-lifted:")
        ]
        assert [(a.kind, a.severity) for a in lifted] == [("budget", "info")]
        assert lifted[0].text == (
            f":information_source: Budget: a new UTC day (today's allowance "
            f"€{next_day.status.budget.daily_allowance_eur:.2f}, €0.00 spent so far): the day's brake is "
            f"lifted from {STEADY_ENDPOINT_ID}"
        )
        assert not [k for k in _alerts(daemon) if k.startswith("budget:2026-06")]  # no threshold crossed
        after = [await tick() for _ in range(4)]
        assert all(r.action != "pause" for o in after for r in _rows(o, "budget_brake"))
        assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 1
