"""A runaway job's deadline is a timer, not a poll: once the daemon knows when a job started, the cancel is
sent at start + max_execution_s + grace_s, between ticks, whatever the tick interval; and never on stale
data (a deadline whose fresh read fails takes no action)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runpod_sim.faults import Faults
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from sim_harness.wiring import daemon_against
from watchdog.clock import ManualClock, from_iso
from watchdog.vocabulary import Action, Outcome

START = from_iso("2026-06-15T12:00:00Z")
POLICY = {"max_execution_s": 60.0, "grace_s": 10.0, "required_execution_timeout_s": 3600}
"""A 70 s limit, and a platform timeout far above it: the daemon must be the one that stops the job."""


def _hung(tmp_path: Path) -> tuple[ManualClock, object, Path]:
    clock = ManualClock(START)
    log = tmp_path / "access.log"
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(log))
    return clock, sim, log


@pytest.mark.parametrize("tick_s", [5.0, 15.0, 60.0])
async def test_the_cancel_is_sent_at_the_deadline_between_ticks(tmp_path: Path, tick_s: float) -> None:
    clock, sim, log = _hung(tmp_path)
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()  # type: ignore[attr-defined]
    runpod = {"poll_interval_s": tick_s, "billing_interval_s": 300.0}
    async with daemon_against(sim, tmp_path, log_path=log, policy=POLICY, runpod=runpod) as daemon:
        while True:
            sim.sync()  # type: ignore[attr-defined]
            await daemon.tick()
            if any(d.job_id == job.id for d in daemon.state.deadlines):
                break
            clock.advance(tick_s)
            assert clock.now() - START < 600, "the daemon never learnt the job's start"
        (deadline,) = [d for d in daemon.state.deadlines if d.job_id == job.id]
        since = daemon.state.tracker.jobs[job.id].since
        assert deadline.at == pytest.approx(since + 70.1)  # the start's earliest evidence + limit + grace
        assert clock.now() < deadline.at  # learnt before the limit, even at a 60 s tick
        clock.set(deadline.at)  # the timer fires; no tick in between
        sim.sync()  # type: ignore[attr-defined]
        outcome = await daemon.check_deadlines()
        assert [(r.action, r.outcome) for r in outcome.rows if r.outcome != Outcome.INTENDED] == [
            (Action.CANCEL_JOB, Outcome.APPLIED)
        ]
        assert sim.job(HUNG_ENDPOINT_ID, job.id).status == "CANCELLED"  # type: ignore[attr-defined]
        steps = daemon.ledger.decisions_with_key(f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job.id}")
        assert [s.outcome for s in steps] == [Outcome.INTENDED, Outcome.APPLIED]
        assert steps[-1].at == deadline.at
        assert daemon.state.tracker.jobs[job.id].evidence == "worker_log"
        assert (
            job.started_at is not None and deadline.at - (job.started_at + 70.0) <= tick_s
        )  # tick-late at most


async def test_a_deadline_on_stale_data_is_not_acted_on(tmp_path: Path) -> None:
    clock, sim, log = _hung(tmp_path)
    faults = Faults()
    async with daemon_against(sim, tmp_path, log_path=log, policy=POLICY, faults=faults) as daemon:
        while not daemon.state.deadlines:
            sim.sync()  # type: ignore[attr-defined]
            await daemon.tick()
            clock.advance(5.0)
        clock.set(daemon.state.deadlines[0].at + 0.5)
        faults.fail_next(50, status=503)
        outcome = await daemon.check_deadlines()
        assert outcome.checked and not outcome.rows  # RunPod could not confirm: no action
        (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()  # type: ignore[attr-defined]
        assert sim.job(HUNG_ENDPOINT_ID, job.id).status == "IN_PROGRESS"  # type: ignore[attr-defined]


@pytest.mark.parametrize("tick_s", [1.0, 5.0, 15.0])
async def test_with_no_log_source_the_hung_job_is_known_from_its_workers_log_and_cancelled_by_id_on_time(
    tmp_path: Path, tick_s: float
) -> None:
    """No ``[[pings.source]]`` at all (the shipped configuration): the job and its start come from RunPod
    itself, the SDK's "Started." line in its worker's log stream, so the cancel names the job and goes out
    at its true start + limit + grace, not 10 s late (the first heartbeat) and not as a scale-to-zero."""
    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()  # type: ignore[attr-defined]
    runpod = {"poll_interval_s": tick_s, "billing_interval_s": 300.0}
    async with daemon_against(sim, tmp_path, policy=POLICY, runpod=runpod) as daemon:
        assert not daemon.config.pings.source
        while not any(d.job_id == job.id for d in daemon.state.deadlines):
            sim.sync()  # type: ignore[attr-defined]
            await daemon.tick()
            clock.advance(tick_s)
            assert clock.now() - START < 300, "the daemon never learnt the job from RunPod"
        tracked = daemon.state.tracker.jobs[job.id]
        assert tracked.evidence == "worker_log"
        assert job.started_at is not None
        assert abs(tracked.since - job.started_at) <= 1.0  # RunPod's own record of the start, to the second
        (deadline,) = [d for d in daemon.state.deadlines if d.job_id == job.id]
        assert clock.now() < deadline.at  # learnt long before the limit, whatever the tick interval
        clock.set(deadline.at)  # the timer fires; no tick in between
        sim.sync()  # type: ignore[attr-defined]
        outcome = await daemon.check_deadlines()
        cancels = [r for r in outcome.rows if r.action == Action.CANCEL_JOB and r.outcome == Outcome.APPLIED]
        assert [r.job_id for r in cancels] == [job.id]
        assert 0.0 <= cancels[0].at - (job.started_at + 70.0) <= 1.0
        assert sim.job(HUNG_ENDPOINT_ID, job.id).status == "CANCELLED"  # type: ignore[attr-defined]
        with sqlite3.connect(daemon.ledger.path) as db:
            sources = db.execute("SELECT source FROM jobs WHERE job_id = ?", [job.id]).fetchall()
        assert sources == [("worker_log",)]  # the ledger says what the start rests on
