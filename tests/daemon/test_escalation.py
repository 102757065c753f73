"""Escalation end to end: a cancel that does not stop the worker's billing → scale the endpoint to zero.

runpod-api.md §5.4: a cancel reaches an SDK worker through the job-stop channel, but a synchronous, blocking
handler cannot be interrupted that way; its process runs on and the SDK's separate heartbeat process keeps
pinging with the job id. Whether RunPod then keeps billing the worker is UNCERTAIN, so the simulator makes it
a switch, ``SimOptions(cancelled_job_keeps_worker=True)``: the worker stays RUNNING and billed until it is
stopped. That is the case the daemon's escalation exists for (policy._escalations): a cancelled job's worker
still billed ``escalate_after_ticks`` ticks (and the idle timeout + grace) after the cancel → workersMax 0 and
an alert; once no worker bills, the brake is lifted again (policy._auto_restore).

The in-process tests run the hung-job scenario on a ManualClock with the simulator's access log as the
daemon's log source (the daemon learns the job id from the heartbeats), as tests/daemon/test_scenarios_e2e.py
does. The last test does the same in real time with a real runpod SDK worker whose handler blocks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runpod_sim.app import RateLimits
from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from runpod_sim.serve import serve_in_thread
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS, daemon_against, sim_config, sim_secrets
from tests.helpers import sdk_worker_process, tick_until
from watchdog.clock import ManualClock, SystemClock, from_iso
from watchdog.daemon.evaluate import policy_settings
from watchdog.daemon.execute import VERIFY_WITHIN_S, VERIFY_WITHIN_TICKS
from watchdog.daemon.service import Daemon
from watchdog.daemon.tick import TickOutcome
from watchdog.ledger import DecisionRow
from watchdog.vocabulary import Mode

START = from_iso("2026-06-15T12:00:00Z")
TICK_S = 5.0
IDLE_TIMEOUT_S = 5  # the hung endpoint's
GRACE_S = 30.0  # policy default
A6000_USD_PER_S = 0.00034
KEEPS_WORKER = SimOptions(cancelled_job_keeps_worker=True)


def _step(clock: ManualClock, sim: Simulator, seconds: float = TICK_S) -> None:
    """Let time pass and have the simulator catch up (writing its access log), as a live system would."""
    clock.advance(seconds)
    sim.sync()


def _hung(tmp_path: Path) -> tuple[ManualClock, Simulator, Path]:
    clock = ManualClock(START)
    log = tmp_path / "access.log"
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(log), options=KEEPS_WORKER)
    _step(clock, sim, 60)  # the daemon starts while the job already hangs
    return clock, sim, log


def _hung_job(sim: Simulator) -> Any:
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()  # the scenario's one hung job
    return job


def _runaway(outcome: TickOutcome) -> list[tuple[str, str, str]]:
    return [(r.action, r.mode, r.outcome) for r in outcome.rows if r.rule == "runaway_job"]


def _history(daemon: Daemon) -> list[DecisionRow]:
    """The runaway_job ledger rows, oldest first (without the intents written before each call)."""
    rows = [
        r for r in daemon.ledger.recent_decisions(1000) if r.rule == "runaway_job" and r.outcome != "intended"
    ]
    return sorted(rows, key=lambda r: r.id)


def _job_pings_after(sim: Simulator, job_id: str, after: float) -> int:
    return sum(
        1
        for r in sim.access_records
        if r["kind"] == "ping" and r["job_id"] == job_id and from_iso(r["ts"]) > after
    )


async def _tick_until_cancel(daemon: Daemon, clock: ManualClock, sim: Simulator) -> TickOutcome:
    for _ in range(60):
        outcome = await daemon.tick()
        assert outcome.ok and not outcome.blind
        if ("cancel_job", "enforce", "applied") in _runaway(outcome):
            return outcome
        _step(clock, sim)
    raise AssertionError("the hung job was never cancelled")


async def test_cancel_that_does_not_stop_billing_escalates_to_zero_then_restores(tmp_path: Path) -> None:
    clock, sim, log = _hung(tmp_path)
    job = _hung_job(sim)
    (worker,) = sim.workers(HUNG_ENDPOINT_ID)
    session = worker.session
    assert session is not None
    async with daemon_against(sim, tmp_path, log_path=log) as daemon:
        escalate_after = policy_settings(daemon.config).escalate_after_ticks  # not configurable: the default
        assert escalate_after == 3

        # 1. the runaway rule cancels the job the heartbeats name; the blocking handler runs on
        await _tick_until_cancel(daemon, clock, sim)
        cancelled_at = clock.now()
        assert job.status == "CANCELLED"
        assert sim.stop_signals(HUNG_ENDPOINT_ID, worker.id) == [job.id]  # the SDK was told to stop
        assert [w.state for w in sim.workers(HUNG_ENDPOINT_ID)] == ["RUNNING"]
        assert sim.stray_job_id(worker.id) == job.id

        # 2. the worker keeps billing, and the daemon waits: escalate_after_ticks and the idle tail + grace
        billed = sim.session_billed_seconds(session)
        escalation = None
        ticks = 0
        while escalation is None:
            assert ticks < 20, "never escalated"
            _step(clock, sim)
            ticks += 1
            outcome = await daemon.tick()
            assert outcome.ok
            rows = [r for r in outcome.rows if r.rule == "runaway_job" and r.action == "escalate"]
            if rows:
                escalation = rows
                break
            # no other stop in the meantime (the worker is not "unknown work": its cancelled job is watched)
            assert not [r for r in outcome.rows if r.outcome == "applied"], outcome.rows
            assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
            assert session.stopped_at is None
            assert sim.session_billed_seconds(session) == billed + TICK_S  # the bill keeps growing
            billed = sim.session_billed_seconds(session)
        escalated_at = clock.now()
        assert ticks >= escalate_after
        assert escalated_at - cancelled_at > IDLE_TIMEOUT_S + GRACE_S
        assert escalated_at - cancelled_at <= IDLE_TIMEOUT_S + GRACE_S + TICK_S
        assert _job_pings_after(sim, job.id, cancelled_at) >= 3  # the heartbeat named it all along

        # 3. the escalation: workers_max 0, a brake to lift later, an alert with the money at stake
        (escalate,) = escalation
        assert (escalate.mode, escalate.outcome) == ("enforce", "applied")
        assert (escalate.patch, escalate.previous) == ({"workers_max": 0}, {"workers_max": 1})
        assert (escalate.job_id, escalate.worker_id, escalate.endpoint_id) == (
            job.id,
            worker.id,
            HUNG_ENDPOINT_ID,
        )
        assert f"job {job.id} was cancelled" in escalate.reason
        assert f"worker {worker.id} is still running; scaling to zero" in escalate.reason
        assert escalate.saved_usd > 100  # the rest of the month of one A6000: ~15 days × $29
        assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 0
        brake = daemon.ledger.brake_states()[HUNG_ENDPOINT_ID]
        assert (brake.kind, dict(brake.previous or {})) == ("runaway", {"workers_max": 1})
        alerts = {a.key: a for a in daemon.ledger.recent_alerts(1000)}
        alert = alerts[f"action:runaway_job:escalate:{HUNG_ENDPOINT_ID}:{job.id}:{int(escalated_at)}"]
        assert alert.severity == "critical"
        assert f"Did escalate on {HUNG_ENDPOINT_ID} (saves about" in alert.text and "€" in alert.text
        assert alert.eur == pytest.approx(escalate.saved_usd / 1.16)

        # 4. the simulator stopped the worker: its session is closed, its bill no longer grows
        assert sim.workers(HUNG_ENDPOINT_ID) == [] and sim.worker_stopped(worker.id)
        assert session.stopped_at == pytest.approx(escalated_at)
        assert sim.stray_job_id(worker.id) is None
        billed_s = sim.session_billed_seconds(session)
        assert billed_s == pytest.approx(escalated_at - session.started_at, abs=1)
        usd = sim.billed_usd_total(HUNG_ENDPOINT_ID)

        # 5. next tick: the stop is verified, and with no billed worker left the brake is lifted
        _step(clock, sim)
        after = await daemon.tick()
        assert _runaway(after) == [
            ("escalate", "enforce", "verified"),
            ("restore", "enforce", "applied"),
        ]
        restore = next(r for r in after.rows if r.action == "restore")
        assert (restore.patch, restore.previous) == ({"workers_max": 1}, {"workers_max": 0})
        assert "no billed worker left: restoring workers_max=1 (braked by runaway_job)" in restore.reason
        assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
        assert daemon.ledger.brake_states() == {}
        _step(clock, sim)
        assert _runaway(await daemon.tick()) == [("restore", "enforce", "verified")]

        # 6. quiet afterwards: no repeated escalation, nothing restarts the (cancelled) job, no bill
        for _ in range(60):
            _step(clock, sim)
            outcome = await daemon.tick()
            assert not [r for r in outcome.rows if r.rule == "runaway_job"]
        assert sim.workers(HUNG_ENDPOINT_ID) == []
        assert sim.session_billed_seconds(session) == billed_s
        assert sim.billed_usd_total(HUNG_ENDPOINT_ID) == pytest.approx(usd)
        assert _job_pings_after(sim, job.id, escalated_at) == 0
        assert job.status == "CANCELLED"

        # the audit trail: the cancel did not take (its worker kept billing), the escalation did
        history = [(r.action, r.outcome) for r in _history(daemon)]
        assert history == [
            ("cancel_job", "applied"),
            ("cancel_job", "not_verified"),
            ("escalate", "applied"),
            ("escalate", "verified"),
            ("restore", "applied"),
            ("restore", "verified"),
        ]
        not_verified = _history(daemon)[1]
        # not verified once six ticks AND 30 s + the endpoint's idle timeout have passed (its idle tail)
        window_s = VERIFY_WITHIN_S + sim.endpoint(HUNG_ENDPOINT_ID).idle_timeout
        ticks = max(VERIFY_WITHIN_TICKS, math.ceil(window_s / TICK_S))
        assert not_verified.reason.startswith(f"not verified after {ticks} ticks: ")
        assert not_verified.saved_usd == 0
        assert not_verified.at - cancelled_at == ticks * TICK_S
        assert "verified: workers max is 0 and no billed worker is left" in _history(daemon)[3].reason


async def test_dry_run_proposes_the_cancel_only_and_leaves_the_simulator_alone(tmp_path: Path) -> None:
    """Dry-run cancels nothing, so nothing is escalated either: escalation watches the daemon's own cancels."""
    clock, sim, log = _hung(tmp_path)
    job = _hung_job(sim)
    (worker,) = sim.workers(HUNG_ENDPOINT_ID)
    session = worker.session
    assert session is not None
    async with daemon_against(sim, tmp_path, log_path=log, policy={"mode": "dry-run"}) as daemon:
        for _ in range(60):  # five minutes, far past the 150 s limit + escalate_after_ticks + the tail
            await daemon.tick()
            _step(clock, sim)
        assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms is None
        assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
        assert job.status == "IN_PROGRESS"
        assert [(w.id, w.state) for w in sim.workers(HUNG_ENDPOINT_ID)] == [(worker.id, "RUNNING")]
        assert sim.stop_signals(HUNG_ENDPOINT_ID, worker.id) == []
        assert session.stopped_at is None
        assert sim.session_billed_seconds(session) == pytest.approx(clock.now() - session.started_at, abs=1)
        rows = daemon.ledger.recent_decisions(1000)
        assert rows and all((r.mode, r.outcome) == ("dry-run", "proposed") for r in rows)
        assert [(r.action, r.job_id) for r in _history(daemon)] == [("cancel_job", job.id)]  # once
        assert not [r for r in rows if r.action in ("escalate", "scale_to_zero", "restore")]
        assert daemon.ledger.brake_states() == {}
        alerts = [a.key for a in daemon.ledger.recent_alerts(1000)]
        assert any(k.startswith("proposal:runaway_job:cancel_job") for k in alerts)
        assert not [k for k in alerts if k.startswith("action:")]


async def test_escalation_in_dry_run_after_an_enforced_cancel_is_proposed_once(tmp_path: Path) -> None:
    """The runaway rule switched to dry-run (control socket ``set_rule_mode``) after its cancel: the
    escalation is proposed with its money, once, and the simulator keeps billing the worker."""
    clock, sim, log = _hung(tmp_path)
    job = _hung_job(sim)
    (worker,) = sim.workers(HUNG_ENDPOINT_ID)
    session = worker.session
    assert session is not None
    async with daemon_against(sim, tmp_path, log_path=log) as daemon:
        await _tick_until_cancel(daemon, clock, sim)
        daemon.state.rule_overrides["runaway_job"] = Mode.DRY_RUN
        proposals = []
        for _ in range(40):
            _step(clock, sim)
            outcome = await daemon.tick()
            proposals += [r for r in outcome.rows if r.action == "escalate"]
        (proposal,) = proposals  # not repeated every tick
        assert (proposal.mode, proposal.outcome) == ("dry-run", "proposed")
        assert (proposal.patch, proposal.previous) == ({"workers_max": 0}, {"workers_max": 1})
        assert proposal.job_id == job.id and proposal.saved_usd > 100
        assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
        assert [(w.id, w.state) for w in sim.workers(HUNG_ENDPOINT_ID)] == [(worker.id, "RUNNING")]
        assert session.stopped_at is None and sim.stray_job_id(worker.id) == job.id
        assert daemon.ledger.brake_states() == {}
        assert not [
            r for r in daemon.ledger.recent_decisions(1000) if r.action in ("scale_to_zero", "restore")
        ]
        alerts = {a.key: a for a in daemon.ledger.recent_alerts(1000)}
        (key,) = [k for k in alerts if k.startswith("proposal:runaway_job:escalate")]
        assert f"Dry-run: would escalate on {HUNG_ENDPOINT_ID}" in alerts[key].text
        assert "€" in alerts[key].text


# ---------------------------------------------------------------------------------------------------------
# A real runpod SDK worker whose handler blocks (tests/sdk/worker.py hang-sync), in real time over loopback


SDK_WORKER = Path(__file__).resolve().parent.parent / "sdk" / "worker.py"
POLL_S = 1.0
SDK_GRACE_S = 2.0


async def _real_ticks(
    daemon: Daemon, until: Callable[[list[TickOutcome]], bool], timeout_s: float
) -> list[TickOutcome]:
    return await tick_until(daemon, until, timeout_s=timeout_s, poll_s=POLL_S)


def _log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def _wait_until(predicate: Any, what: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            text = _log_text(log)[-3000:]
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for: {what}\nworker log:\n{text}")
        await asyncio.sleep(0.1)


@pytest.mark.sdk
@pytest.mark.slow
async def test_escalation_stops_a_real_blocking_sdk_worker(
    sdk_python: Path, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    access_log = tmp_path / "access.log"
    proc_log = tmp_path / "worker.log"
    worker_id = "sdk-hang-sync"
    sim = build_simulator(
        "hung-job",
        clock=SystemClock(),
        access_log_path=str(access_log),
        external_workers=True,
        options=KEEPS_WORKER,
    )
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=1_000_000)
    try:
        with (
            serve_in_thread(sim, long_poll_s=0.5, rate_limits=limits) as base_url,
            sdk_worker_process(
                sdk_python, SDK_WORKER, sdk_env, base_url, endpoint_id=HUNG_ENDPOINT_ID, worker_id=worker_id,
                mode="hang-sync", log_path=proc_log, ping_interval_s=1.0,
            ) as proc,
        ):  # fmt: skip
            assert base_url.startswith("http://127.0.0.1:")
            job = _hung_job(sim)
            await _wait_until(
                lambda: job.status == "IN_PROGRESS", "the SDK worker took the job", 30, proc_log
            )
            (worker,) = sim.workers(HUNG_ENDPOINT_ID)
            session = worker.session
            assert session is not None
            config = sim_config(
                tmp_path,
                log_path=access_log,
                runpod={
                    "graphql_url": f"{base_url}/graphql",
                    "rest_url": f"{base_url}/v2",
                    "runtime_url": f"{base_url}/v2",
                    "poll_interval_s": POLL_S,
                    "request_timeout_s": 5.0,
                },
                policy={"max_execution_s": 5.0, "grace_s": SDK_GRACE_S},
            )
            async with Daemon(config, sim_secrets(), clock=SystemClock()) as daemon:

                def did(action: str) -> Any:
                    return lambda outs: any(
                        r.action == action and r.outcome == "applied" for r in outs[-1].rows
                    )

                await _real_ticks(daemon, did("cancel_job"), timeout_s=20)
                cancelled_at = time.time()
                assert job.status == "CANCELLED"
                # the blocking handler ignores job-stop; the SDK's heartbeat keeps naming the job
                pings = _job_pings_after(sim, job.id, cancelled_at)
                await _wait_until(
                    lambda: _job_pings_after(sim, job.id, cancelled_at) >= pings + 2,
                    "heartbeats still naming the cancelled job",
                    10,
                    proc_log,
                )
                assert [w.state for w in sim.workers(HUNG_ENDPOINT_ID)] == ["RUNNING"]
                assert session.stopped_at is None

                await _real_ticks(daemon, did("escalate"), timeout_s=30)
                escalated_after_s = time.time() - cancelled_at
                assert escalated_after_s > IDLE_TIMEOUT_S + SDK_GRACE_S
                assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 0
                assert sim.worker_stopped(worker_id) and session.stopped_at is not None
                billed_s = sim.session_billed_seconds(session)
                usd = sim.billed_usd_total(HUNG_ENDPOINT_ID)

                # the brake is lifted once no worker bills; the SDK process lives on (RunPod would kill
                # the container) and keeps pinging, but a stopped worker bills nothing and takes nothing
                await _real_ticks(daemon, did("restore"), timeout_s=10)
                assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
                await asyncio.sleep(2.5)
                assert proc.poll() is None
                assert sim.session_billed_seconds(session) == billed_s
                assert sim.billed_usd_total(HUNG_ENDPOINT_ID) == pytest.approx(usd)
                assert sim.workers(HUNG_ENDPOINT_ID) == []
                history = [
                    (r.action, r.outcome)
                    for r in sorted(daemon.ledger.recent_decisions(200), key=lambda r: r.id)
                    if r.rule == "runaway_job"
                ]
                assert history[:2] == [("cancel_job", "intended"), ("cancel_job", "applied")]
                assert ("escalate", "applied") in history and ("escalate", "verified") in history
                assert history.count(("escalate", "applied")) == 1
                print(
                    f"\n[hang-sync, cancelled job keeps its worker] escalated {escalated_after_s:.1f} s after "
                    f"the cancel; the worker billed {billed_s} s in all"
                )
    finally:
        sim.close()
