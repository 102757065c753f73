"""One tick end to end: the daemon against the in-process simulator on a shared ManualClock, a real ledger."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from runpod_sim.faults import Faults
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID, ScenarioParams
from sim_harness.wiring import build_daemon, daemon_against
from watchdog.clock import ManualClock, from_iso
from watchdog.errors import LedgerError
from watchdog.ledger import Ledger
from watchdog.status import DaemonStatus, status_json

START = from_iso("2026-06-15T12:00:00Z")
TICK_S = 5.0
A6000_USD_PER_S = 0.00034


def _hung(tmp_path: Path, clock: ManualClock):
    log = tmp_path / "access.log"
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(log))
    clock.advance(60)  # the daemon starts while the job already hangs
    return sim, log


def _job_id(sim) -> str:
    jobs = [j for j in sim._jobs[HUNG_ENDPOINT_ID].values()]  # the scenario's one hung job
    assert len(jobs) == 1
    return jobs[0].id


async def test_steady_ticks_fill_the_ledger_and_publish_a_status(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock, seed=3)
    async with daemon_against(sim, tmp_path) as daemon:
        outcomes = []
        for _ in range(12):
            outcomes.append(await daemon.tick())
            clock.advance(TICK_S)
        ledger = daemon.ledger
        assert all(o.ok and not o.blind for o in outcomes)
        assert len(ledger.ticks_since(START)) == 12
        assert ledger.last_accounted_at() == outcomes[-1].started_at
        history = ledger.config_history(STEADY_ENDPOINT_ID)
        assert len(history) == 1 and history[0].execution_timeout_ms == 120_000
        status = outcomes[-1].status
        assert isinstance(status, DaemonStatus)
        assert daemon.status_ref.get() is status
        assert [e.id for e in status.endpoints] == [STEADY_ENDPOINT_ID]
        assert status.budget is not None and status.budget.monthly_eur == 20.0
        assert status.budget.fixed_eur == pytest.approx(10.0 / 1.16)
        assert len(status.endpoints[0].rate_per_min) == 60
        assert status.api_calls and all("|" in key for key in status.api_calls)
        # to_dict is asdict without its deep copies: the same dict, and the status survives the round trip
        assert status.to_dict() == dataclasses.asdict(status)
        assert DaemonStatus.from_dict(json.loads(status_json(status))) == status
        stored = DaemonStatus.from_dict(json.loads(ledger.meta("status") or "{}"))
        assert status.last_tick_at is not None and stored.last_tick_at is not None
        assert status.last_tick_at - stored.last_tick_at <= 30.0  # written at most every 30 s
        # steady is compliant: nothing to do
        assert not [r for o in outcomes for r in o.rows if r.outcome in ("applied", "proposed")]


async def test_live_estimate_matches_a_worker_seen_running(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    async with daemon_against(sim, tmp_path, log_path=log, policy={"mode": "dry-run"}) as daemon:
        first = await daemon.tick()
        for _ in range(10):
            clock.advance(TICK_S)
            await daemon.tick()
        estimate, _billed = daemon.ledger.month_totals(from_iso("2026-06-01T00:00:00Z"))
        # the hung worker RUNNING the whole time, the translation endpoint idle: 50 s of one A6000
        assert estimate == pytest.approx(10 * TICK_S * A6000_USD_PER_S, rel=1e-6)
        assert first.status is not None


async def test_hung_job_enforce_cancels_patches_alerts_and_billing_stops(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    job_id = _job_id(sim)
    async with daemon_against(sim, tmp_path, log_path=log, policy={"cooldown_s": 60.0}) as daemon:
        first = await daemon.tick()
        drift = [r for r in first.rows if r.rule == "config_drift"]
        assert [(r.action, r.outcome) for r in drift] == [("patch_config", "applied")]
        assert drift[0].previous == {"execution_timeout_ms": None}
        assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms == 120_000
        job_started = sim.job(HUNG_ENDPOINT_ID, job_id).started_at
        limit = 120 + 30
        cancelled_at = None
        while clock.now() < START + 400:
            clock.advance(TICK_S)
            outcome = await daemon.tick()
            if any(r.action == "cancel_job" and r.outcome == "applied" for r in outcome.rows):
                cancelled_at = clock.now()
                break
        assert cancelled_at is not None
        # the job is first seen through its heartbeat (10 s pings), so: limit + one ping + one tick
        assert cancelled_at <= job_started + limit + 10 + TICK_S
        assert sim.job(HUNG_ENDPOINT_ID, job_id).status == "CANCELLED"
        rows = daemon.ledger.decisions_with_key(f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job_id}")
        # the intent is on disk before the call, then its outcome
        assert [r.outcome for r in rows[:2]] == ["intended", "applied"]
        assert rows[1].saved_usd > 10  # days of A6000 left in the month
        alerts = {a.key: a for a in daemon.ledger.recent_alerts()}
        assert any(k.startswith("action:runaway_job:cancel_job") for k in alerts)
        assert any(k.startswith("action:config_drift") for k in alerts)
        assert "€" in next(a.text for k, a in alerts.items() if k.startswith("action:runaway_job"))
        # the next ticks verify it and the simulator's bill for the hung endpoint stops growing
        verified = []
        for _ in range(3):
            clock.advance(TICK_S)
            verified += [r for r in (await daemon.tick()).rows if r.outcome == "verified"]
        assert any(r.action == "cancel_job" for r in verified)
        billed_then = sim.billed_usd_total(HUNG_ENDPOINT_ID)
        assert not sim.workers(HUNG_ENDPOINT_ID)
        clock.advance(3600)
        assert sim.billed_usd_total(HUNG_ENDPOINT_ID) == pytest.approx(billed_then)
        status = daemon.status_ref.get()
        assert status is not None and status.saved_usd.get("runaway_job|enforce", 0) > 10


async def test_hung_job_dry_run_touches_nothing_and_records_the_saving(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    job_id = _job_id(sim)
    async with daemon_against(sim, tmp_path, log_path=log, policy={"mode": "dry-run"}) as daemon:
        for _ in range(40):
            await daemon.tick()
            clock.advance(TICK_S)
        assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms is None
        assert sim.job(HUNG_ENDPOINT_ID, job_id).status == "IN_PROGRESS"
        rows = daemon.ledger.decisions_with_key(f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job_id}")
        assert len(rows) == 1  # proposed once, not every tick
        assert rows[0].outcome == "proposed" and rows[0].mode == "dry-run" and rows[0].saved_usd > 10
        assert all(r.outcome == "proposed" for r in daemon.ledger.recent_decisions(100))
        assert any(a.key.startswith("proposal:runaway_job") for a in daemon.ledger.recent_alerts())
        status = daemon.status_ref.get()
        assert status is not None and status.saved_usd["runaway_job|dry-run"] > 10


async def test_stale_data_takes_no_action_and_reports_blind_once(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    faults = Faults()
    async with daemon_against(sim, tmp_path, log_path=log, faults=faults) as daemon:
        await daemon.tick()  # sees RunPod once (patches the missing timeout)
        faults.fail_next(None, "/v2/serverless*", status=503)
        outcomes = []
        for _ in range(60):  # five minutes blind, far past the runaway limit
            clock.advance(TICK_S)
            outcomes.append(await daemon.tick())
        assert all(o.blind and not o.ok for o in outcomes)
        assert all(r.rule == "blind" for o in outcomes for r in o.rows)
        blind_rows = [r for o in outcomes for r in o.rows]
        assert len(blind_rows) == 1 and blind_rows[0].action == "none"
        assert sim.job(HUNG_ENDPOINT_ID, _job_id(sim)).status == "IN_PROGRESS"
        assert len([a for a in daemon.ledger.recent_alerts() if a.kind == "blind"]) == 1
        assert daemon.ledger.latest_tick().blind
        status = daemon.status_ref.get()
        assert status is not None and status.blind and "503" in status.blind_reason
        faults.clear()
        clock.advance(TICK_S)
        back = await daemon.tick()
        assert back.ok and not back.blind


async def test_restart_neither_loses_nor_double_counts(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    month = from_iso("2026-06-01T00:00:00Z")
    first = build_daemon(sim, tmp_path, log_path=log, policy={"mode": "dry-run"})
    await first.open()
    begin = (await first.tick()).started_at
    for _ in range(5):
        clock.advance(TICK_S)
        await first.tick()
    await first.close()  # as good as SIGKILL for the ledger: every committed tick is there
    clock.advance(12)  # down for 12 s (< stale_after_s 30): the restored snapshot covers the gap
    second = build_daemon(sim, tmp_path, log_path=log, policy={"mode": "dry-run"})
    await second.open()
    end = (await second.tick()).started_at
    for _ in range(3):
        clock.advance(TICK_S)
        end = (await second.tick()).started_at
    estimate, _ = second.ledger.month_totals(month)
    assert estimate == pytest.approx((end - begin) * A6000_USD_PER_S, rel=1e-6)
    await second.close()
    clock.advance(600)  # a long outage: left to billing, never guessed
    third = build_daemon(sim, tmp_path, log_path=log, policy={"mode": "dry-run"})
    await third.open()
    after = await third.tick()
    assert after.ok
    assert third.ledger.last_accounted_at() == after.started_at
    estimate_after, _ = third.ledger.month_totals(month)
    assert estimate_after == pytest.approx(estimate)
    # the dry-run proposal was not repeated by the restarted daemons within the hour
    job_key = f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{_job_id(sim)}"
    assert len(third.ledger.decisions_with_key(job_key)) <= 1
    await third.close()


async def test_a_second_daemon_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock)
    async with daemon_against(sim, tmp_path) as daemon:
        await daemon.tick()
        other = build_daemon(sim, tmp_path)
        with pytest.raises(LedgerError, match="another runpod-watchdog"):
            await other.open()
        with pytest.raises(LedgerError):
            Ledger.open(daemon.config.ledger.resolved_path)


def test_queueing_behind_a_brake_is_not_a_cold_start() -> None:
    """A job that waited while the daemon held its endpoint at zero did not wait for a cold start."""
    from watchdog.daemon.tracker import Tracker
    from watchdog.models import JobStatus

    tracker = Tracker()
    tracker.note_held("ep", 1100.0)  # held while the first job (submitted at 1022) was queued
    tracker.observe_job(
        "ep", "held", JobStatus.COMPLETED, 1200.0, worker_id="w", delay_ms=170_000, execution_ms=8_000
    )
    tracker.observe_job(
        "ep", "fresh", JobStatus.COMPLETED, 1300.0, worker_id="w", delay_ms=12_000, execution_ms=8_000
    )
    assert tracker.cold_start_samples("ep", 0.0) == [12.0]


async def test_an_alert_that_stays_true_appears_once_in_the_events_log(tmp_path: Path) -> None:
    """Alerts are rebuilt every tick from what is true; the dashboard's events log shows each key once."""
    from watchdog.daemon.notices import first_sightings
    from watchdog.ledger import Alert

    now = from_iso("2026-06-15T12:00:00Z")
    alert = Alert("cost1000:ep:2026-06-15", "cost", "warning", "costs $4.10 per 1,000 requests", 0.5)
    assert first_sightings([alert], {}, now) == [alert]
    raised = {alert.key: now}
    assert first_sightings([alert], raised, now + 5) == []
    assert first_sightings([alert], raised, now + 3 * 86_400) == [alert]  # forgotten after two days


async def test_free_share_is_measured_from_the_logs_tier_field(tmp_path: Path) -> None:
    """The steady scenario tags 30 % of its requests free in the access log; the daemon measures that
    share instead of assuming the configured one once enough tiered requests arrived."""
    clock = ManualClock(from_iso("2026-06-15T12:00:00Z"))
    log = tmp_path / "access.log"
    sim = build_simulator(
        "steady", clock=clock, access_log_path=str(log), params=ScenarioParams(requests_per_month=300_000)
    )
    async with daemon_against(sim, tmp_path, log_path=log, budget={"free_share": 0.9}) as daemon:
        for _ in range(120):
            clock.advance(30)
            sim.sync()
            outcome = await daemon.tick()
    budget = outcome.status.budget
    assert budget is not None and budget.free_share_measured
    calendar = daemon.state.calendar
    assert calendar.tiered_requests >= 20
    assert budget.free_share == pytest.approx(calendar.free_requests / calendar.tiered_requests)
    assert 0.15 < budget.free_share < 0.45  # the scenario's 30 %, not the configured 90 %


async def test_a_daemon_that_cannot_reach_runpod_logs_it_at_a_slowing_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable RunPod used to write a line every tick (5 lines every 5 s); now the episode is logged
    when it starts, then after 1, 2, 4 ... minutes, and once more when the daemon sees again."""
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock)
    faults = Faults()
    async with daemon_against(sim, tmp_path, faults=faults) as daemon:
        await daemon.tick()
        faults.fail_next(None, status=503)
        caplog.clear()
        for _ in range(int(30 * 60 / 5)):  # half an hour of 5 s ticks
            clock.advance(5)
            assert (await daemon.tick()).blind
        blind_lines = [r.getMessage() for r in caplog.records if "blind" in r.getMessage()]
        # the start, then 1, 2, 4 and 8 minutes apart (1, 3, 7, 15 min in): 5 lines for 360 blind ticks
        assert len(blind_lines) == 5, blind_lines
        assert "still blind after 15 min" in blind_lines[-1] and "next report in 16 min" in blind_lines[-1]
        faults.clear()
        clock.advance(5)
        assert (await daemon.tick()).ok
        assert any("sees RunPod again" in r.getMessage() for r in caplog.records)


async def test_the_first_enforce_tick_on_an_account_says_everything_it_changed_once(tmp_path: Path) -> None:
    """A week in dry-run, then enforce: the first tick that acts sends one summary of its changes (the
    patch, and the hung job's cancel when its time comes is its own alert), never again, not after a restart."""
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    dry = build_daemon(sim, tmp_path, log_path=log, policy={"mode": "dry-run"})
    await dry.open()
    for _ in range(3):
        await dry.tick()
        clock.advance(TICK_S)
    assert not [a for a in dry.ledger.recent_alerts(100) if "First enforce tick" in a.text]
    await dry.close()

    enforcing = build_daemon(sim, tmp_path, log_path=log)
    await enforcing.open()
    first = await enforcing.tick()
    assert [(r.rule, r.action, r.outcome) for r in first.rows if r.outcome == "applied"] == [
        ("config_drift", "patch_config", "applied")
    ]
    for _ in range(3):
        clock.advance(TICK_S)
        await enforcing.tick()
    summaries = [a for a in enforcing.ledger.recent_alerts(100) if "First enforce tick" in a.text]
    await enforcing.close()
    assert len(summaries) == 1
    (summary,) = summaries
    assert summary.severity == "warning" and summary.kind == "action"
    assert summary.text.startswith(":warning: First enforce tick on this account: 1 change(s) on 1 of ")
    assert f"- {HUNG_ENDPOINT_ID}: patch_config execution_timeout_ms none -> 120000 [config_drift]" in (
        summary.text
    )

    again = build_daemon(sim, tmp_path, log_path=log)
    await again.open()
    clock.advance(TICK_S)
    await again.tick()
    assert len([a for a in again.ledger.recent_alerts(100) if "First enforce tick" in a.text]) == 1
    await again.close()


async def test_a_first_enforce_tick_that_changes_nothing_says_so(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock)
    async with daemon_against(sim, tmp_path) as daemon:
        await daemon.tick()
        (summary,) = [a for a in daemon.ledger.recent_alerts(100) if "First enforce tick" in a.text]
        assert summary.severity == "info"
        assert "nothing needed changing (1 endpoint(s) within policy)" in summary.text


def test_the_first_enforce_summary_counts_changes_not_alerts() -> None:
    from watchdog.daemon.notices import first_enforce_summary
    from watchdog.ledger import DecisionStep
    from watchdog.vocabulary import Outcome

    alert = DecisionStep(START, "budget_brake", "alert", "enforce", Outcome.APPLIED, "80 % of the budget")
    patch = DecisionStep(
        START,
        "config_drift",
        "patch_config",
        "enforce",
        Outcome.APPLIED,
        "no execution timeout",
        endpoint_id="ep-a",
        patch={"execution_timeout_ms": 120_000},
        previous={"execution_timeout_ms": None},
    )
    only_alert = first_enforce_summary([alert], endpoints=2, usd_per_eur=1.16, now=START)
    assert "nothing needed changing (2 endpoint(s) within policy)" in only_alert.text
    both = first_enforce_summary([alert, patch], endpoints=2, usd_per_eur=1.16, now=START)
    assert both.text.startswith(":warning: First enforce tick on this account: 1 change(s) on 1 of 2 ")
    assert "budget_brake" not in both.text


async def test_a_job_cancelled_by_the_tick_is_not_cancelled_again_by_a_deadline_check_waiting_to_act(
    tmp_path: Path,
) -> None:
    """A tick judges before it takes the acting lock, and so does a deadline check: each may judge the job
    still running while the other is about to cancel it. Seen in a fresh-clone run under load (1 s ticks,
    the SDK replay): two applied cancels for one job. Here the lock is held while both have judged and
    wait; the first to act cancels, the other finds it taken meanwhile."""
    clock = ManualClock(START)
    sim, log = _hung(tmp_path, clock)
    job_id = _job_id(sim)
    async with daemon_against(sim, tmp_path, log_path=log, policy={"cooldown_s": 60.0}) as daemon:
        await daemon.tick()
        while not daemon.state.deadlines and clock.now() < START + 400:
            clock.advance(TICK_S)
            await daemon.tick()
        (deadline,) = [d for d in daemon.state.deadlines if d.job_id == job_id]
        clock.set(deadline.at + 1)
        acting = daemon.ports.acting
        async with acting:
            tick = asyncio.create_task(daemon.tick())
            # the tick judged and waits to act (the lock's queue is the only sign of it: polled)
            while len(getattr(acting, "_waiters", None) or ()) < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            check = asyncio.create_task(daemon.check_deadlines())
            while len(getattr(acting, "_waiters", None) or ()) < 2:  # noqa: ASYNC110  (so did the check)
                await asyncio.sleep(0.01)
        await asyncio.gather(tick, check)
        rows = daemon.ledger.decisions_with_key(f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job_id}")
        assert [r.outcome for r in rows] == ["intended", "applied"]
        assert sim.job(HUNG_ENDPOINT_ID, job_id).status == "CANCELLED"
