"""The worker-log reads under RunPod's REST quota: the first read of a RUNNING worker's log (the only way
to name the job it runs when no log source is configured) is made even when the quota's budget for reads
that can wait is spent; later reads of the same worker wait for it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from runpod_sim.faults import Faults
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from sim_harness.wiring import sim_config, sim_secrets, sim_transport
from watchdog.client import RunPodClient
from watchdog.clock import ManualClock, from_iso
from watchdog.config import Config
from watchdog.daemon.fetch import ReadPlan, read_runpod
from watchdog.vocabulary import WorkerStatus

START = from_iso("2026-06-15T12:00:00Z")


def _plan(config: Config, rest_budget: int, log_cursors: Mapping[str, str] | None = None) -> ReadPlan:
    """A tick's plan at a 5 s poll: ``rest_budget`` REST calls for reads that can wait, these log cursors."""
    return ReadPlan(
        rest_budget=rest_budget,
        stale_after_s=config.policy.stale_after_s,
        poll_interval_s=5.0,
        log_cursors=log_cursors or {},
    )


async def test_a_running_workers_first_log_read_never_waits_for_the_quota(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    clock.advance(30)  # the hung job runs
    sim.sync()
    config = sim_config(tmp_path)
    async with RunPodClient.from_config(
        config.runpod, sim_secrets().runpod_api_key, transport=sim_transport(sim)
    ) as client:
        spent = _plan(config, 0)
        first = await read_runpod(client, config, spent, clock.now())
        (worker,) = [w for w in first.workers[HUNG_ENDPOINT_ID] if w.status == WorkerStatus.RUNNING]
        (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()  # type: ignore[attr-defined]
        assert [(s.job_id, s.worker_id) for s in first.job_starts] == [(job.id, worker.id)]
        cursor = first.log_cursors[worker.id]
        assert cursor  # where the next read resumes

        # read once: the next read of the same worker waits for the quota
        again = _plan(config, 0, {worker.id: cursor})
        second = await read_runpod(client, config, again, clock.now())
        assert worker.id not in second.log_cursors and not second.job_starts
        with_room = _plan(config, 10, {worker.id: cursor})
        third = await read_runpod(client, config, with_room, clock.now())
        assert third.log_cursors.get(worker.id)  # read, resuming after the cursor


async def test_a_worker_whose_log_stream_fails_is_not_asked_again_outside_the_quota(tmp_path: Path) -> None:
    """A log stream that keeps failing (here 503s; a 404, no stream on this account, takes the same path)
    must not make every tick spend an unbudgeted call on it: it counts as read, and its next read waits
    for the quota."""
    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    clock.advance(30)
    sim.sync()
    faults = Faults()
    faults.fail_next(None, "/v2/serverless/*/workers/*/logs*", status=503)
    config = sim_config(tmp_path)
    async with RunPodClient.from_config(
        config.runpod, sim_secrets().runpod_api_key, transport=sim_transport(sim, faults=faults)
    ) as client:
        plan = _plan(config, 0)
        first = await read_runpod(client, config, plan, clock.now())
        (worker,) = [w for w in first.workers[HUNG_ENDPOINT_ID] if w.status == WorkerStatus.RUNNING]
        assert first.log_cursors == {worker.id: ""} and not first.job_starts and first.ok
        later = _plan(config, 0, first.log_cursors)
        second = await read_runpod(client, config, later, clock.now())
        assert second.log_cursors == {} and second.ok
