"""The seed incident replayed with a REAL runpod SDK worker, in real time, over loopback.

The incident: a job whose handler hangs, on an endpoint with NO execution timeout, while the SDK's heartbeat
(a separate process) keeps pinging with the job id, so the worker looks alive and bills around the clock.

Here the ``hung-job`` scenario runs with ``external_workers``: its speech-to-text endpoint has no timeout and
its hung job waits for a real ``runpod.serverless`` process (tests/sdk/worker.py, in the SDK's own venv) that
takes it and hangs — ``hang-sync`` (a blocking handler: the incident; only stopping the worker ends the bill)
or ``hang-async`` (cancellable through the SDK's job-stop channel). The simulator serves on 127.0.0.1 with
a real clock; the daemon talks to it over HTTP like it would to RunPod, with the simulator's access log (the
heartbeats) as its log source, polling every second, a 5 s execution limit and 2 s of grace.

Enforce must: stop the work within one tick plus the grace after the limit, patch the execution timeout in,
alert, record the money saved, and the simulator's billing must show the worker stopped billing.
Dry-run must touch nothing and record what it would have saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runpod_sim.app import RateLimits
from runpod_sim.engine import Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from runpod_sim.serve import serve_in_thread
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS, sim_config, sim_secrets
from tests.helpers import sdk_worker_process, tick_until
from watchdog.clock import SystemClock
from watchdog.daemon.service import Daemon
from watchdog.daemon.tick import TickOutcome

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

WORKER = Path(__file__).resolve().parent.parent / "sdk" / "worker.py"
POLL_S = 1.0
MAX_EXECUTION_S = 5.0
GRACE_S = 2.0
LIMIT_S = MAX_EXECUTION_S + GRACE_S
PING_S = 1.0
"""The SDK heartbeat interval (RUNPOD_PING_INTERVAL 1000 ms): how late the daemon can learn of the job."""
SLACK_S = 1.0
"""Scheduling slack on a loaded CI machine (a tick's own HTTP calls, the thread hand-offs)."""
A6000_USD_PER_S = 0.00034


def _sdk_worker(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, *, worker_id: str, mode: str, log_path: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return sdk_worker_process(
        sdk_python, WORKER, sdk_env, base_url, endpoint_id=HUNG_ENDPOINT_ID, worker_id=worker_id, mode=mode,
        log_path=log_path, ping_interval_s=PING_S,
    )  # fmt: skip


def _log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def _wait_until(predicate: Callable[[], bool], what: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            text = _log_text(log)[-3000:]
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for: {what}\nworker log:\n{text}")
        await asyncio.sleep(0.1)


def _hung_job(sim: Simulator) -> Any:
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()  # the scenario's one hung job
    return job


def _busy_pings(sim: Simulator, worker_id: str, job_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in list(sim.access_records)
        if r.get("kind") == "ping" and r.get("worker_id") == worker_id and r.get("job_id") == job_id
    ]


def _daemon(base_url: str, tmp_path: Path, access_log: Path, mode: str) -> Daemon:
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
        policy={"mode": mode, "max_execution_s": MAX_EXECUTION_S, "grace_s": GRACE_S},
    )
    return Daemon(config, sim_secrets(), clock=SystemClock())


async def _ticks(
    daemon: Daemon, until: Callable[[list[TickOutcome]], bool], timeout_s: float
) -> list[TickOutcome]:
    return await tick_until(daemon, until, timeout_s=timeout_s, poll_s=POLL_S)


@contextlib.contextmanager
def _served(tmp_path: Path) -> Iterator[tuple[Simulator, str, Path]]:
    access_log = tmp_path / "access.log"
    sim = build_simulator(
        "hung-job", clock=SystemClock(), access_log_path=str(access_log), external_workers=True
    )
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=1_000_000)
    try:
        with serve_in_thread(sim, long_poll_s=0.5, rate_limits=limits) as base_url:
            assert base_url.startswith("http://127.0.0.1:")
            yield sim, base_url, access_log
    finally:
        sim.close()


async def _start_hung_worker(sim: Simulator, proc_log: Path, worker_id: str) -> Any:
    job = _hung_job(sim)
    assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms is None  # the incident's condition
    await _wait_until(lambda: job.status == "IN_PROGRESS", "the SDK worker took the hung job", 30, proc_log)
    assert job.worker_id == worker_id
    await _wait_until(
        lambda: len(_busy_pings(sim, worker_id, job.id)) >= 1, "a heartbeat naming the job", 10, proc_log
    )
    return job


@pytest.mark.parametrize("mode", ["hang-sync", "hang-async"])
async def test_incident_replay_enforce_stops_the_hung_sdk_worker(
    mode: str, sdk_python: Path, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    worker_id = f"sdk-{mode}"
    proc_log = tmp_path / "worker.log"
    with (
        _served(tmp_path) as (sim, base_url, access_log),
        _sdk_worker(sdk_python, sdk_env, base_url, worker_id=worker_id, mode=mode, log_path=proc_log) as proc,
    ):
        job = await _start_hung_worker(sim, proc_log, worker_id)
        (worker,) = sim.workers(HUNG_ENDPOINT_ID)
        session = worker.session
        assert session is not None and session.stopped_at is None
        async with _daemon(base_url, tmp_path, access_log, "enforce") as daemon:
            # 1. the first tick patches the missing execution timeout in
            first = await daemon.tick()
            drift = [r for r in first.rows if r.rule == "config_drift"]
            assert [(r.action, r.mode, r.outcome) for r in drift] == [("patch_config", "enforce", "applied")]
            assert (drift[0].patch, drift[0].previous) == (
                {"execution_timeout_ms": 120_000},
                {"execution_timeout_ms": None},
            )
            assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms == 120_000

            # 2. the job is cancelled within one tick + the heartbeat's lag after limit + grace
            def cancelled(outcomes: list[TickOutcome]) -> bool:
                return any(r.action == "cancel_job" and r.outcome == "applied" for r in outcomes[-1].rows)

            await _ticks(daemon, cancelled, timeout_s=LIMIT_S + 10)
            cancelled_after_s = time.time() - job.started_at
            assert job.status == "CANCELLED"
            assert cancelled_after_s > LIMIT_S
            assert cancelled_after_s <= LIMIT_S + POLL_S + PING_S + SLACK_S, cancelled_after_s
            intent, cancel = daemon.ledger.decisions_with_key(
                f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job.id}"
            )
            assert intent.outcome == "intended" and intent.id < cancel.id  # written before the call
            assert (cancel.mode, cancel.outcome, cancel.worker_id) == ("enforce", "applied", worker_id)
            assert cancel.saved_usd > 0
            alerts = {a.key: a for a in daemon.ledger.recent_alerts()}
            action = [a for k, a in alerts.items() if k.startswith("action:runaway_job:cancel_job")]
            assert len(action) == 1 and "Did cancel job" in action[0].text and "€" in action[0].text
            assert any(k.startswith("action:config_drift:execution_timeout_ms") for k in alerts)

            # 3. the worker stops billing. The simulator frees a worker whose job is cancelled (a hang-async
            #    handler really stops through job-stop; a blocking hang-sync one does not, its heartbeats
            #    keep naming the job) and scales it down after the endpoint's 5 s idle timeout. Were it
            #    still billed after that, the daemon would escalate to workersMax 0 (policy._escalations).
            await _ticks(daemon, lambda _: session.stopped_at is not None, timeout_s=30)
            stopped_after_s = session.stopped_at - job.started_at
            idle_timeout_s = sim.endpoint(HUNG_ENDPOINT_ID).idle_timeout
            assert stopped_after_s <= cancelled_after_s + idle_timeout_s + SLACK_S, stopped_after_s
            if mode == "hang-async":
                await _wait_until(
                    lambda: "Job stopped." in _log_text(proc_log),
                    "the SDK to stop the job on the cancel",
                    10,
                    proc_log,
                )
            else:
                pings = len(_busy_pings(sim, worker_id, job.id))
                await _wait_until(
                    lambda: len(_busy_pings(sim, worker_id, job.id)) >= pings + 2,
                    "heartbeats still naming the cancelled job",
                    10,
                    proc_log,
                )
            assert proc.poll() is None  # the SDK process lives on (RunPod would kill the container)
            billed_s = sim.session_billed_seconds(session)
            usd = sim.billed_usd_total(HUNG_ENDPOINT_ID)
            await asyncio.sleep(2.5)  # heartbeats (sync) or job-take polls (async) go on: the bill does not
            assert sim.session_billed_seconds(session) == billed_s
            assert sim.billed_usd_total(HUNG_ENDPOINT_ID) == pytest.approx(usd)
            assert sim.workers(HUNG_ENDPOINT_ID) == []

            # 4. verification on later ticks, and the money saved in the status
            def verified() -> list[Any]:
                rows = daemon.ledger.recent_decisions(200)
                return [r for r in rows if r.action == "cancel_job" and r.outcome == "verified"]

            await _ticks(daemon, lambda _: bool(verified()), timeout_s=10)
            assert "its worker no longer bills" in verified()[0].reason
            assert not [r for r in daemon.ledger.recent_decisions(200) if r.action == "escalate"]
            status = daemon.status_ref.get()
            assert status is not None and status.saved_usd.get("runaway_job|enforce", 0) > 0
            assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms == 120_000
            print(
                f"\n[{mode}] cancelled {cancelled_after_s:.2f} s after the job started (limit {LIMIT_S:g} s "
                f"+ tick {POLL_S:g} s); worker billing stopped after {stopped_after_s:.2f} s; "
                f"billed {billed_s} s, saved (estimated) ${cancel.saved_usd:.4f}"
            )


async def test_incident_replay_dry_run_touches_nothing_and_records_the_saving(
    sdk_python: Path, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    worker_id = "sdk-dry-run"
    proc_log = tmp_path / "worker.log"
    with (
        _served(tmp_path) as (sim, base_url, access_log),
        _sdk_worker(sdk_python, sdk_env, base_url, worker_id=worker_id, mode="hang-sync", log_path=proc_log),
    ):
        job = await _start_hung_worker(sim, proc_log, worker_id)
        (worker,) = sim.workers(HUNG_ENDPOINT_ID)
        session = worker.session
        assert session is not None
        async with _daemon(base_url, tmp_path, access_log, "dry-run") as daemon:
            key = f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job.id}"
            await _ticks(
                daemon, lambda _: bool(daemon.ledger.decisions_with_key(key)), timeout_s=LIMIT_S + 10
            )
            proposed_after_s = time.time() - job.started_at
            assert LIMIT_S < proposed_after_s <= LIMIT_S + POLL_S + PING_S + SLACK_S
            billed_s = sim.session_billed_seconds(session)
            await _ticks(daemon, lambda outs: len(outs) >= 3, timeout_s=10)  # and a few more ticks

            assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms is None
            assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
            assert job.status == "IN_PROGRESS"
            assert [w.id for w in sim.workers(HUNG_ENDPOINT_ID)] == [worker_id]
            assert session.stopped_at is None
            assert sim.session_billed_seconds(session) > billed_s  # still billing

            (proposal,) = daemon.ledger.decisions_with_key(key)
            assert (proposal.mode, proposal.outcome) == ("dry-run", "proposed")
            # no timeout: left alone, it would bill until the month ends
            assert proposal.saved_usd > 3600 * A6000_USD_PER_S
            rows = daemon.ledger.recent_decisions(200)
            assert rows and all(r.outcome == "proposed" and r.mode == "dry-run" for r in rows)
            drift = [r for r in rows if r.rule == "config_drift"]
            assert [(r.action, r.patch, r.previous) for r in drift] == [
                ("patch_config", {"execution_timeout_ms": 120_000}, {"execution_timeout_ms": None})
            ]
            alerts = [a.key for a in daemon.ledger.recent_alerts()]
            assert any(k.startswith("proposal:runaway_job:cancel_job") for k in alerts)
            assert not [k for k in alerts if k.startswith("action:")]
            status = daemon.status_ref.get()
            assert status is not None
            assert status.saved_usd["runaway_job|dry-run"] == pytest.approx(proposal.saved_usd)
            assert "runaway_job|enforce" not in status.saved_usd


@pytest.mark.parametrize("tick_s", [1.0, 5.0, 15.0])
@pytest.mark.parametrize("mode", ["hang-sync", "hang-async"])
async def test_with_no_log_source_the_sdk_job_is_cancelled_by_id_within_a_second_of_its_deadline(
    mode: str, tick_s: float, sdk_python: Path, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    """The shipped configuration has no log source: the real daemon loop (``Daemon.run``) learns the hung
    job and its start from RunPod itself (the SDK's "Started." line in the worker's log stream) and its
    deadline timer sends the cancel, naming the job, within a second of start + limit + grace, whatever
    the tick interval (at 15 s the deadline falls between two ticks)."""
    worker_id = f"sdk-{mode}-{tick_s:g}"
    proc_log = tmp_path / "worker.log"
    with (
        _served(tmp_path) as (sim, base_url, _access_log),
        _sdk_worker(sdk_python, sdk_env, base_url, worker_id=worker_id, mode=mode, log_path=proc_log),
    ):
        job = _hung_job(sim)
        await _wait_until(
            lambda: job.status == "IN_PROGRESS", "the SDK worker took the hung job", 30, proc_log
        )
        config = sim_config(
            tmp_path,
            runpod={
                "graphql_url": f"{base_url}/graphql",
                "rest_url": f"{base_url}/v2",
                "runtime_url": f"{base_url}/v2",
                "poll_interval_s": tick_s,
                "request_timeout_s": 5.0,
            },
            policy={"mode": "enforce", "max_execution_s": MAX_EXECUTION_S, "grace_s": GRACE_S},
        )
        assert not config.pings.source
        daemon = Daemon(config, sim_secrets(), clock=SystemClock())
        stop = asyncio.Event()
        loop = asyncio.create_task(daemon.run(stop))
        try:
            await _wait_until(lambda: job.status == "CANCELLED", "the cancel", LIMIT_S + 10, proc_log)
            key = f"runaway_job:cancel_job:{HUNG_ENDPOINT_ID}:{job.id}"
            await _wait_until(
                lambda: any(r.outcome == "applied" for r in daemon.ledger.decisions_with_key(key)),
                "the cancel in the ledger",
                tick_s + 5,
                proc_log,
            )
            (cancel,) = [r for r in daemon.ledger.decisions_with_key(key) if r.outcome == "applied"]
            late_s = cancel.at - (job.started_at + LIMIT_S)
            assert 0.0 <= late_s <= 1.0, late_s
            assert cancel.job_id == job.id and cancel.worker_id == worker_id
            tracked = daemon.state.tracker.jobs[job.id]
            assert tracked.evidence == "worker_log"
            print(f"\n[{mode}, tick {tick_s:g} s] cancel sent {late_s:.3f} s after the deadline")
        finally:
            stop.set()
            assert await loop == 0
