"""The product's RunPodClient against the simulator, route by route, compared with the simulator's state.

WHY: tests/test_client.py checks the client against hand-written responses; tests/test_sdk_oracle.py checks
the simulator against RunPod's SDK. This file closes the triangle: the client, talking real HTTP to the
simulator's real ASGI app (in-process through ``httpx.ASGITransport``, on a ``ManualClock``), must parse
exactly what the simulator's model holds, for every route the daemon uses, and must survive the
simulator's injected faults the way its module docstring promises. One test repeats a few calls over a
real loopback socket to prove the path does not depend on the in-process transport; the worker log stream
is read over one too, where it is live and never ends by itself (in-process, ``create_app(...,
log_stream_max_s=0)`` sends the backlog and closes, because ``httpx.ASGITransport`` buffers a whole answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from runpod_sim.app import DEFAULT_API_KEY, create_app
from runpod_sim.engine import SimNotFound, SimOptions, Simulator
from runpod_sim.faults import Faults
from runpod_sim.serve import serve_in_thread
from runpod_sim.state import SimEndpoint
from watchdog.client import RunPodClient
from watchdog.clock import ManualClock, from_iso
from watchdog.errors import RunPodAuthError, RunPodNotFound, RunPodProtocolError
from watchdog.models import (
    AccountLimits,
    EndpointConfig,
    EndpointWorkers,
    Health,
    JobStatus,
    LogStreamEnd,
    WorkerLogBatch,
)
from watchdog.prices import DEFAULT_PRICES
from watchdog.vocabulary import WorkerStatus

START = from_iso("2026-06-15T12:00:00Z")
BASE = "http://127.0.0.1:8787"
"""Never dialled: the in-process transport answers. Loopback anyway, in case it ever were."""
KEY = DEFAULT_API_KEY
A6000 = "NVIDIA RTX A6000"
HANG = {"sim": {"hang": True}}


def _endpoints() -> list[SimEndpoint]:
    return [
        SimEndpoint(
            id="ep-llm",
            name="Translation LLM",
            gpu_ids="AMPERE_48",
            gpu_type_ids=(A6000,),
            workers_max=2,
            idle_timeout=5,
            execution_timeout_ms=120_000,
            cold_start_s=2.0,
            flashboot="FLASHBOOT",
            created_at=START - 10 * 86_400,
        ),
        SimEndpoint(
            id="ep-asr",
            name="Speech (no timeout, request-count scaling)",
            gpu_ids="ADA_24,AMPERE_24",
            gpu_type_ids=("NVIDIA GeForce RTX 4090",),
            gpu_count=2,
            workers_min=1,
            workers_max=1,
            execution_timeout_ms=None,
            scaler_type="REQUEST_COUNT",
            scaler_value=3,
            cold_start_s=5.0,
            created_at=START - 3 * 86_400,
        ),
        SimEndpoint(
            id="ep-ext",
            name="External workers (timeout 0)",
            gpu_ids="AMPERE_48",
            workers_max=3,
            idle_timeout=600,
            execution_timeout_ms=0,
            worker_kind="external",
            created_at=START - 3600,
        ),
        SimEndpoint(
            id="ep-busy",
            name="Busy, capacity 2",
            gpu_ids="AMPERE_16",
            gpu_type_ids=("NVIDIA RTX A4000",),
            workers_max=3,
            capacity=2,
            scaler_type="REQUEST_COUNT",
            scaler_value=1,
            cold_start_s=2.0,
            created_at=START - 7200,
        ),
        SimEndpoint(
            id="ep-warm",
            name="Standby worker",
            gpu_ids="AMPERE_24",
            gpu_type_ids=("NVIDIA RTX A5000",),
            workers_max=1,
            workers_standby=1,
            cold_start_s=1.0,
            created_at=START - 600,
        ),
        SimEndpoint(id="ep-paused", name="Paused", gpu_ids="AMPERE_48", workers_max=0, created_at=START - 60),
    ]


@dataclasses.dataclass
class Rig:
    sim: Simulator
    clock: ManualClock
    faults: Faults
    app: Any
    api: RunPodClient
    http: httpx.AsyncClient
    """Raw access to the same app: submitting jobs (the client has no ``run``) and reading wire bodies."""
    sleeps: list[float]
    calls: list[tuple[str, int | None]]

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.sim.sync()

    async def submit(self, endpoint_id: str, job_input: Any) -> str:
        response = await self.http.post(f"/v2/{endpoint_id}/run", json={"input": job_input})
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


@contextlib.asynccontextmanager
async def _rig(options: SimOptions | None = None) -> AsyncIterator[Rig]:
    clock = ManualClock(start=START)
    sim = Simulator(clock=clock, options=options)
    for endpoint in _endpoints():
        sim.add_endpoint(endpoint)
    faults = Faults()
    app = create_app(sim, faults=faults, long_poll_s=0.2, runsync_max_wait_s=0.5, log_stream_max_s=0)
    sleeps: list[float] = []
    calls: list[tuple[str, int | None]] = []

    async def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    api = RunPodClient(
        api_key=KEY,
        graphql_url=f"{BASE}/graphql",
        rest_url=f"{BASE}/v2",
        runtime_url=f"{BASE}/v2",
        transport=httpx.ASGITransport(app=app),
        sleep=recording_sleep,
        on_call=lambda template, status, _s: calls.append((template, status)),
        rng=random.Random(7),
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE, headers={"Authorization": f"Bearer {KEY}"}
    )
    async with api, http:
        yield Rig(sim, clock, faults, app, api, http, sleeps, calls)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with _rig() as value:
        yield value


def _expected_config(ep: SimEndpoint) -> EndpointConfig:
    """What REST v2 must tell the client about ``ep``, field by field (runpod-api.md §3.3)."""
    return EndpointConfig(
        id=ep.id,
        name=ep.name,
        workers_min=ep.workers_min,
        workers_max=ep.workers_max,
        idle_timeout_s=0 if ep.scaler_type == "REQUEST_COUNT" else ep.idle_timeout,  # "not applicable"
        execution_timeout_ms=ep.execution_timeout_ms or None,  # None or 0: no timeout
        gpu_pools=tuple(ep.gpu_ids.split(",")),
        gpu_count=ep.gpu_count,
        scaler_type=ep.scaler_type,
        scaler_value=float(ep.scaler_value),
        flashboot=ep.flashboot,
        endpoint_type="QUEUE",
        created_at=ep.created_at,
        workers_standby=0,  # REST v2 does not report it
    )


def _fields(ep: SimEndpoint) -> dict[str, Any]:
    return dataclasses.asdict(ep)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {key: (before[key], after[key]) for key in before if before[key] != after[key]}


# ------------------------------------------------------------------------------------ REST v2


async def test_list_and_get_endpoints_match_every_field(rig: Rig) -> None:
    endpoints = await rig.api.list_endpoints()
    assert [e.id for e in endpoints] == [ep.id for ep in rig.sim.endpoints()]
    for got in endpoints:
        expected = _expected_config(rig.sim.endpoint(got.id))
        assert got == expected
        assert await rig.api.get_endpoint(got.id) == expected
    by_id = {e.id: e for e in endpoints}
    # "no execution timeout" is None in the model whether RunPod holds null or 0; the wire shows 0
    assert by_id["ep-asr"].execution_timeout_ms is None and by_id["ep-ext"].execution_timeout_ms is None
    assert by_id["ep-llm"].execution_timeout_ms == 120_000
    for endpoint_id in ("ep-asr", "ep-ext"):
        wire = (await rig.http.get(f"/v2/serverless/{endpoint_id}")).json()
        assert wire["timeout"] == 0
    assert by_id["ep-asr"].gpu_pools == ("ADA_24", "AMPERE_24") and by_id["ep-asr"].gpu_count == 2
    assert by_id["ep-asr"].scaler_type == "REQUEST_COUNT" and by_id["ep-asr"].scaler_value == 3
    assert by_id["ep-llm"].flashboot == "FLASHBOOT" and by_id["ep-llm"].idle_timeout_s == 5
    with pytest.raises(RunPodNotFound) as missing:
        await rig.api.get_endpoint("ep-nope")
    assert missing.value.route == "GET /v2/serverless/ep-nope"


async def test_patch_workers_max_zero_stops_workers_and_changes_nothing_else(rig: Rig) -> None:
    jobs = [await rig.submit("ep-llm", HANG) for _ in range(2)]
    rig.advance(10)  # first worker after 2 s cold start, the second after the 4 s queue delay
    assert sorted(w.state for w in rig.sim.workers("ep-llm")) == ["RUNNING", "RUNNING"]
    sessions = rig.sim.sessions("ep-llm")
    before = _fields(rig.sim.endpoint("ep-llm"))

    patched = await rig.api.patch_endpoint("ep-llm", workers_max=0)

    after = _fields(rig.sim.endpoint("ep-llm"))
    assert _changed(before, after) == {
        "workers_max": (2, 0),
        "version": (before["version"], before["version"] + 1),
    }
    assert patched == _expected_config(rig.sim.endpoint("ep-llm")) and patched.workers_max == 0
    assert rig.sim.workers("ep-llm") == []
    assert len(sessions) == 2 and all(s.stopped_at == rig.clock.now() for s in sessions)
    for job_id in jobs:
        job = await rig.api.job_status("ep-llm", job_id)
        assert job.status is JobStatus.FAILED and job.error == "worker stopped"
    usd = rig.sim.billed_usd_total("ep-llm")
    rig.advance(3600)
    assert rig.sim.billed_usd_total("ep-llm") == usd  # nothing bills any more


async def test_patch_is_sparse_and_explicit_zero_lands(rig: Rig) -> None:
    before = _fields(rig.sim.endpoint("ep-asr"))
    assert before["workers_min"] == 1
    patched = await rig.api.patch_endpoint("ep-asr", execution_timeout_ms=300_000)
    after = _fields(rig.sim.endpoint("ep-asr"))
    assert _changed(before, after) == {
        "execution_timeout_ms": (None, 300_000),
        "version": (before["version"], before["version"] + 1),
    }
    assert patched.execution_timeout_ms == 300_000 and patched.workers_min == 1

    before = after
    patched = await rig.api.patch_endpoint("ep-asr", workers_min=0)
    after = _fields(rig.sim.endpoint("ep-asr"))
    assert _changed(before, after) == {
        "workers_min": (1, 0),
        "version": (before["version"], before["version"] + 1),
    }
    assert patched.workers_min == 0

    before = _fields(rig.sim.endpoint("ep-llm"))
    patched = await rig.api.patch_endpoint(
        "ep-llm", execution_timeout_ms=0, idle_timeout_s=30, scaler_type="QUEUE_DELAY", scaler_value=2.5
    )
    after = _fields(rig.sim.endpoint("ep-llm"))
    assert set(_changed(before, after)) == {"execution_timeout_ms", "idle_timeout", "scaler_value", "version"}
    assert after["execution_timeout_ms"] == 0 and after["idle_timeout"] == 30 and after["scaler_value"] == 2.5
    assert patched.execution_timeout_ms is None  # 0 = no timeout, read back as None
    assert patched == _expected_config(rig.sim.endpoint("ep-llm"))


def _assert_workers_match(listed: EndpointWorkers, sim: Simulator, endpoint_id: str) -> None:
    ep = sim.endpoint(endpoint_id)
    live = {w.id: w for w in sim.workers(endpoint_id)}
    assert {w.id: w.status.value for w in listed.workers} == {w.id: w.state for w in live.values()}
    for worker in listed.workers:
        model = live[worker.id]
        placed = model.state != "THROTTLED"  # a throttled worker has no machine (and no GPU) yet
        assert worker.gpu_type_id == (model.gpu_type_id if placed else None)
        assert worker.is_stale == (model.version != ep.version)
        assert worker.started_at == (float(int(model.started_at)) if placed else None)
    states = [w.state for w in live.values()]
    summary = listed.summary
    assert (summary.running, summary.idle, summary.initializing, summary.throttled, summary.unhealthy) == (
        states.count("RUNNING"),
        states.count("IDLE"),
        states.count("INITIALIZING"),
        states.count("THROTTLED"),
        states.count("UNHEALTHY"),
    )
    assert summary.total == len(live)
    assert listed.endpoint_version == ep.version


async def test_list_workers_ids_statuses_gpus_summary(rig: Rig) -> None:
    for _ in range(3):
        await rig.submit("ep-busy", HANG)
    listed = await rig.api.list_workers("ep-busy")
    _assert_workers_match(listed, rig.sim, "ep-busy")
    assert (listed.summary.initializing, listed.summary.throttled) == (2, 1)

    rig.advance(3)
    listed = await rig.api.list_workers("ep-busy")
    _assert_workers_match(listed, rig.sim, "ep-busy")
    assert (listed.summary.running, listed.summary.throttled) == (2, 1)
    assert {w.gpu_type_id for w in listed.workers} == {"NVIDIA RTX A4000", None}

    rig.sim.ping("ep-ext", "w-idle", job_ids=[])
    rig.sim.ping("ep-ext", "w-sick", job_ids=[], status="unhealthy", reason="CUDA not available")
    listed = await rig.api.list_workers("ep-ext")
    _assert_workers_match(listed, rig.sim, "ep-ext")
    assert {w.id: w.status for w in listed.workers} == {
        "w-idle": WorkerStatus.IDLE,
        "w-sick": WorkerStatus.UNHEALTHY,
    }
    assert (await rig.api.list_workers("ep-paused")).workers == ()


# ---------------------------------------------------------------------------------- billing


def _session_usd(sim: Simulator, endpoint_id: str | None = None) -> float:
    """Ground truth computed here from the sessions: Σ ceil(seconds) × the GPU type's price."""
    return sum(
        sim.session_billed_seconds(s) * DEFAULT_PRICES.usd_per_s(s.gpu_type_id, active=s.active)
        for s in sim.sessions(endpoint_id)
    )


async def test_serverless_billing_hourly_buckets_sum_to_the_cent(rig: Rig) -> None:
    rig.sim.add_traffic(
        "ep-llm",
        actor="translate-app",
        rate_per_s=1 / 300,
        input_factory=lambda _r: {"sim": {"duration_s": 8.5}},
    )
    for _ in range(4):
        await rig.submit("ep-busy", {"sim": {"duration_s": 40}})
    rig.advance(6 * 3600)
    assert len(rig.sim.sessions("ep-llm")) > 10  # real traffic, many cold starts and idle tails

    report = await rig.api.serverless_billing(start=START, end=rig.clock.now(), bucket_size="hour")
    assert report.record_count == len(report.records)
    assert abs(report.total_usd - _session_usd(rig.sim)) < 0.005
    assert abs(report.total_usd - rig.sim.billed_usd_total()) < 0.005
    assert abs(sum(r.total_usd for r in report.records) - report.total_usd) < 1e-9
    for record in report.records:
        assert record.end - record.start == 3600 and record.start % 3600 == 0
        assert START <= record.start < rig.clock.now()
    billed_endpoints = {r.endpoint_id for r in report.records}
    assert billed_endpoints == {"ep-llm", "ep-asr", "ep-busy", "ep-warm"}
    for endpoint_id in billed_endpoints:
        records_usd = sum(r.total_usd for r in report.records if r.endpoint_id == endpoint_id)
        assert abs(records_usd - _session_usd(rig.sim, endpoint_id)) < 0.005, endpoint_id
        only = await rig.api.serverless_billing(
            start=START, end=rig.clock.now(), bucket_size="hour", endpoint_id=endpoint_id
        )
        assert {r.endpoint_id for r in only.records} == {endpoint_id}
        assert abs(only.total_usd - rig.sim.billed_usd_total(endpoint_id)) < 0.005, endpoint_id
    assert report.total_usd > 1.0


# ---------------------------------------------------------------------------------- runtime


def _expected_health(sim: Simulator, endpoint_id: str) -> Health:
    c = sim.health(endpoint_id)
    return Health(
        jobs_completed=c.completed,
        jobs_failed=c.failed,
        jobs_in_progress=c.in_progress,
        jobs_in_queue=c.in_queue,
        jobs_retried=c.retried,
        workers_idle=c.idle,
        workers_initializing=c.initializing,
        workers_ready=c.ready,
        workers_running=c.running,
        workers_throttled=c.throttled,
        workers_unhealthy=c.unhealthy,
    )


async def _mixed_health_state(rig: Rig) -> None:
    await rig.submit("ep-llm", {"sim": {"duration_s": 1}})
    await rig.submit("ep-llm", {"sim": {"duration_s": 1, "fail": "out of memory"}})
    rig.advance(5)  # both done on one worker (2 s cold start, 1 s each)
    await rig.submit("ep-llm", HANG)  # picked up by the warm worker
    await rig.submit("ep-llm", HANG)  # queued behind it
    await rig.submit("ep-paused", {"prompt": "waits"})


async def test_health_matches_simulator(rig: Rig) -> None:
    await _mixed_health_state(rig)
    for ep in rig.sim.endpoints():
        assert await rig.api.health(ep.id) == _expected_health(rig.sim, ep.id), ep.id
    llm = await rig.api.health("ep-llm")
    assert (llm.jobs_completed, llm.jobs_failed, llm.jobs_in_progress, llm.jobs_in_queue) == (1, 1, 1, 1)
    assert llm.workers_running == 1


async def test_health_with_zero_keys_omitted_reads_zeros() -> None:
    async with _rig(SimOptions(health_omit_zero=True)) as rig:
        await _mixed_health_state(rig)
        wire = (await rig.http.get("/v2/ep-paused/health")).json()
        assert wire == {"jobs": {"inQueue": 1}, "workers": {}}  # the path under test really omits keys
        for ep in rig.sim.endpoints():
            assert await rig.api.health(ep.id) == _expected_health(rig.sim, ep.id), ep.id
        paused = await rig.api.health("ep-paused")
        assert paused == Health(jobs_in_queue=1)


async def test_job_status_times_and_worker(rig: Rig) -> None:
    job_id = await rig.submit("ep-llm", {"sim": {"duration_s": 3}})
    queued = await rig.api.job_status("ep-llm", job_id)
    assert queued.status is JobStatus.IN_QUEUE
    assert (queued.delay_time_ms, queued.execution_time_ms, queued.worker_id) == (None, None, None)

    rig.advance(2.5)  # cold start 2 s, then running for 0.5 s
    running = await rig.api.job_status("ep-llm", job_id)
    model = rig.sim.job("ep-llm", job_id)
    assert running.status is JobStatus.IN_PROGRESS
    assert running.worker_id == model.worker_id is not None
    assert running.delay_time_ms == model.delay_time_ms == 2000
    assert running.execution_time_ms is None and not running.has_output

    rig.advance(3)
    done = await rig.api.job_status("ep-llm", job_id)
    model = rig.sim.job("ep-llm", job_id)
    assert done.status is JobStatus.COMPLETED and done.has_output
    assert done.execution_time_ms == model.execution_time_ms == 3000
    assert done.delay_time_ms == 2000 and done.worker_id == model.worker_id
    with pytest.raises(RunPodNotFound):
        await rig.api.job_status("ep-llm", "no-such-job")


async def test_cancel_job_in_progress_and_queued(rig: Rig) -> None:
    running_id = await rig.submit("ep-llm", HANG)
    rig.advance(3)
    worker_id = rig.sim.job("ep-llm", running_id).worker_id
    assert worker_id is not None

    cancelled = await rig.api.cancel_job("ep-llm", running_id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.id == running_id
    assert rig.sim.job("ep-llm", running_id).status == "CANCELLED"
    assert rig.sim.stop_signals("ep-llm", worker_id) == [running_id]  # the worker is told to stop it
    (worker,) = rig.sim.workers("ep-llm")
    assert worker.state == "IDLE" and worker.current_job_id is None

    queued_id = await rig.submit("ep-paused", {"prompt": "never runs"})
    cancelled = await rig.api.cancel_job("ep-paused", queued_id)
    assert cancelled.status is JobStatus.CANCELLED
    assert rig.sim.health("ep-paused").in_queue == 0


async def test_purge_queue_removes_exactly_the_queued_jobs(rig: Rig) -> None:
    running_id = await rig.submit("ep-llm", HANG)
    rig.advance(3)
    queued = [await rig.submit("ep-llm", {"n": n}) for n in range(3)]
    in_queue = rig.sim.health("ep-llm").in_queue
    assert in_queue == 3

    result = await rig.api.purge_queue("ep-llm")
    assert result.removed == in_queue
    assert rig.sim.health("ep-llm").in_queue == 0
    assert rig.sim.job("ep-llm", running_id).status == "IN_PROGRESS"  # in-progress jobs keep running
    for job_id in queued:
        with pytest.raises(SimNotFound):
            rig.sim.job("ep-llm", job_id)
        with pytest.raises(RunPodNotFound):
            await rig.api.job_status("ep-llm", job_id)


# ---------------------------------------------------------------------------------- GraphQL


async def test_account_spend_matches_simulator(rig: Rig) -> None:
    rig.advance(1800)  # the standby worker of ep-warm and the active one of ep-asr have been billing
    spend = await rig.api.account_spend()
    assert spend.client_balance_usd == pytest.approx(rig.sim.account.client_balance_usd)
    assert spend.client_balance_usd is not None and spend.client_balance_usd < rig.sim.initial_balance_usd
    assert spend.spend_limit_usd == rig.sim.spend_limit_usd == 80.0
    assert spend.current_spend_per_hr_usd == pytest.approx(rig.sim.current_spend_per_hr())
    assert spend.current_spend_per_hr_usd is not None and spend.current_spend_per_hr_usd > 0
    assert spend.workers_standby == {ep.id: ep.workers_standby for ep in rig.sim.endpoints()}
    assert spend.workers_standby["ep-warm"] == 1


# --------------------------------------------------------------------------- REST v2 account limits


def _expected_limits(sim: Simulator) -> AccountLimits:
    model = sim.account_limits()
    return AccountLimits(
        spend_rate_limit_usd_per_hr=model.spend_rate_usd_per_hr,
        spend_rate_current_usd_per_hr=pytest.approx(model.current_spend_per_hr),  # type: ignore[arg-type]
        serverless_workers_limit=model.serverless_workers_limit,
        serverless_workers_current=model.serverless_workers_max_total,
    )


async def test_account_limits_match_the_simulator(rig: Rig) -> None:
    before = await rig.api.account_limits()
    assert before == _expected_limits(rig.sim)
    assert before.serverless_workers_current == sum(ep.workers_max for ep in _endpoints()) == 10
    assert before.spend_rate_limit_usd_per_hr is not None and before.serverless_workers_limit == 5

    await rig.submit("ep-llm", HANG)
    rig.advance(3)  # an A6000 runs the job: RunPod counts it against the cap
    await rig.api.patch_endpoint("ep-busy", workers_max=1)
    after = await rig.api.account_limits()
    assert after == _expected_limits(rig.sim)
    assert (
        after.spend_rate_current_usd_per_hr is not None and before.spend_rate_current_usd_per_hr is not None
    )
    assert after.spend_rate_current_usd_per_hr > before.spend_rate_current_usd_per_hr
    assert after.serverless_workers_current == 10 - 2
    assert ("GET /v2/account/limits", 200) in rig.calls


async def test_account_limits_without_a_cap_read_none() -> None:
    async with _rig(SimOptions(spend_rate_usd_per_hr=None)) as rig:
        limits = await rig.api.account_limits()
        assert limits.spend_rate_limit_usd_per_hr is None
        assert limits == _expected_limits(rig.sim)


# ---------------------------------------------------------------------------- REST v2 worker logs


def _sdk_lines(batch: WorkerLogBatch) -> list[tuple[str, str, str]]:
    """(job id, message, level) of each line, as runpod SDK 1.12 prints them on RunPod (JSON)."""
    lines = []
    for event in batch.events:
        printed = json.loads(event.line)
        assert set(printed) == {"requestId", "message", "level"}, event.line
        lines.append((printed["requestId"], printed["message"], printed["level"]))
    return lines


async def test_a_simulated_jobs_worker_log_has_the_sdks_started_and_finished_lines(rig: Rig) -> None:
    ok = await rig.submit("ep-llm", {"sim": {"duration_s": 3}})
    rig.advance(2 + 3)  # cold start, then the job
    bad = await rig.submit("ep-llm", {"sim": {"duration_s": 1, "fail": "out of memory"}})
    rig.advance(1)  # on the same, warm worker
    (worker,) = (await rig.api.list_workers("ep-llm")).workers
    batch = await rig.api.worker_logs("ep-llm", worker.id)  # source "container": the SDK's own lines
    assert _sdk_lines(batch) == [
        (ok, "Started.", "INFO"),
        (ok, "Finished.", "INFO"),
        (bad, "Started.", "INFO"),
        (bad, "Captured Handler Exception", "ERROR"),
        (bad, "Finished.", "INFO"),
    ]
    assert [e.ts - START for e in batch.events] == [2, 5, 5, 6, 6]
    assert {e.source for e in batch.events} == {"container"}
    assert batch.end is LogStreamEnd.CLOSED and batch.skipped == 0
    assert batch.last_event_id == batch.events[-1].id

    everything = await rig.api.worker_logs("ep-llm", worker.id, source=None)
    assert [e.line for e in everything.events[:2]] == ["Worker initializing.", "Worker ready."]
    assert [e.line for e in everything.events[2:]] == [e.line for e in batch.events]
    assert [e.line for e in (await rig.api.worker_logs("ep-llm", worker.id, tail=1)).events] == [
        batch.events[-1].line
    ]
    system = await rig.api.worker_logs("ep-llm", worker.id, source="system", max_lines=1)
    assert [e.line for e in system.events] == [
        "Worker initializing."
    ] and system.end is LogStreamEnd.MAX_LINES


async def test_an_external_workers_log_has_the_started_and_finished_lines(rig: Rig) -> None:
    """External workers (real SDK processes): the platform writes the SDK's lines as the jobs go."""
    first = await rig.submit("ep-ext", {"n": 1})
    second = await rig.submit("ep-ext", {"n": 2})
    worker_side = {"Authorization": KEY}  # the worker SDK sends the raw key
    taken = await rig.http.get(
        "/v2/ep-ext/job-take-batch/pod-1?batch_size=2&job_in_progress=0", headers=worker_side
    )
    assert taken.status_code == 200, taken.text
    done = await rig.http.post(
        f"/v2/ep-ext/job-done/pod-1?job_id={second}",
        content='{"output": "ok"}',
        headers={**worker_side, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200, done.text
    batch = await rig.api.worker_logs("ep-ext", "pod-1")
    assert _sdk_lines(batch) == [
        (first, "Started.", "INFO"),
        (second, "Started.", "INFO"),
        (second, "Finished.", "INFO"),
    ]
    assert batch.end is LogStreamEnd.CLOSED  # in-process: the backlog, then the stream closes


async def test_a_worker_log_resumes_after_the_last_event_id(rig: Rig) -> None:
    first = await rig.submit("ep-llm", {"sim": {"duration_s": 1}})
    rig.advance(3.5)
    (worker,) = (await rig.api.list_workers("ep-llm")).workers
    before = await rig.api.worker_logs("ep-llm", worker.id)
    assert [message for _, message, _ in _sdk_lines(before)] == ["Started.", "Finished."]

    second = await rig.submit("ep-llm", {"sim": {"duration_s": 1}})  # the warm worker takes it
    rig.advance(1.5)
    after = await rig.api.worker_logs("ep-llm", worker.id, last_event_id=before.last_event_id)
    assert _sdk_lines(after) == [(second, "Started.", "INFO"), (second, "Finished.", "INFO")]
    assert first != second and after.last_event_id != before.last_event_id

    nothing_new = await rig.api.worker_logs("ep-llm", worker.id, last_event_id=after.last_event_id)
    assert nothing_new.events == () and nothing_new.last_event_id == after.last_event_id


async def test_a_worker_log_of_a_gone_or_unknown_worker_is_not_found(rig: Rig) -> None:
    with pytest.raises(RunPodNotFound) as unknown:
        await rig.api.worker_logs("ep-llm", "no-such-worker")
    assert unknown.value.route == "GET /v2/serverless/ep-llm/workers/no-such-worker/logs"
    with pytest.raises(RunPodNotFound):
        await rig.api.worker_logs("ep-nope", "no-such-worker")

    await rig.submit("ep-llm", {"sim": {"duration_s": 1}})
    rig.advance(1)
    (worker,) = rig.sim.workers("ep-llm")
    rig.advance(2 + 1 + 5 + 1)  # done, then the idle timeout stops it: its log stays readable
    assert rig.sim.workers("ep-llm") == []
    kept = await rig.api.worker_logs("ep-llm", worker.id, source="system")
    assert kept.events[-1].line.startswith("Worker stopped") and kept.end is LogStreamEnd.CLOSED


async def test_a_live_worker_log_over_a_real_socket_returns_in_time_and_resumes(rig: Rig) -> None:
    """A live worker's stream never ends: the call comes back after ``max_seconds`` with the backlog,
    and the next call (``last_event_id``) sees only what was printed since; once the worker is gone the
    server ends the stream and the call comes back at once."""
    job_id = await rig.submit("ep-llm", {"sim": {"duration_s": 3}})
    rig.advance(2.5)  # cold start over: the job runs
    (worker,) = rig.sim.workers("ep-llm")
    with serve_in_thread(rig.sim, log_poll_s=0.02) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        async with RunPodClient(
            api_key=KEY,
            graphql_url=f"{base_url}/graphql",
            rest_url=f"{base_url}/v2",
            runtime_url=f"{base_url}/v2",
            timeout_s=5,
        ) as api:
            started = time.monotonic()
            backlog = await api.worker_logs("ep-llm", worker.id, max_seconds=0.5)
            elapsed = time.monotonic() - started
            assert 0.5 <= elapsed < 1.5, elapsed  # opening the stream on loopback takes milliseconds
            assert _sdk_lines(backlog) == [(job_id, "Started.", "INFO")]
            assert backlog.end is LogStreamEnd.MAX_SECONDS and backlog.cut

            rig.advance(3)  # the job finishes; the worker idles (idle timeout 5 s)
            fresh = await api.worker_logs(
                "ep-llm", worker.id, last_event_id=backlog.last_event_id, max_seconds=0.5
            )
            assert _sdk_lines(fresh) == [(job_id, "Finished.", "INFO")]
            assert fresh.end is LogStreamEnd.MAX_SECONDS

            with api.deadline(0.3):  # a tick's deadline before max_seconds ends the read
                started = time.monotonic()
                quiet = await api.worker_logs("ep-llm", worker.id, last_event_id=fresh.last_event_id)
                assert time.monotonic() - started < 1.5
            assert quiet.events == () and quiet.end is LogStreamEnd.DEADLINE
            assert quiet.last_event_id == fresh.last_event_id

            rig.advance(6)  # the idle timeout stops the worker: the server ends its stream
            started = time.monotonic()
            last = await api.worker_logs(
                "ep-llm", worker.id, last_event_id=fresh.last_event_id, source=None, max_seconds=10
            )
            assert time.monotonic() - started < 5
            assert [e.line for e in last.events] == ["Worker stopped: idle timeout."]
            assert last.end is LogStreamEnd.CLOSED and not last.cut


# ------------------------------------------------------------------------------------ faults


async def test_503_burst_is_retried_then_succeeds(rig: Rig) -> None:
    rig.faults.fail_next(2, "/v2/serverless", status=503)
    endpoints = await rig.api.list_endpoints()
    assert [e.id for e in endpoints] == [ep.id for ep in rig.sim.endpoints()]
    assert [status for _, status in rig.calls] == [503, 503, 200]
    assert len(rig.sleeps) == 2


async def test_429_retry_after_is_honoured(rig: Rig) -> None:
    rig.faults.rate_limit_next(1, "/v2/ep-llm/health", retry_after_s=7)
    health = await rig.api.health("ep-llm")
    assert health == _expected_health(rig.sim, "ep-llm")
    assert [status for _, status in rig.calls] == [429, 200]
    assert rig.sleeps == [7.0]


async def test_malformed_body_is_a_protocol_error_naming_the_route(rig: Rig) -> None:
    rig.advance(60)
    rig.faults.malformed_next(1, "/v2/billing/serverless", mode="invalid_json")
    with pytest.raises(RunPodProtocolError) as truncated:
        await rig.api.serverless_billing(start=START, bucket_size="hour")
    assert truncated.value.route == "GET /v2/billing/serverless"
    assert "GET /v2/billing/serverless" in str(truncated.value) and "not JSON" in str(truncated.value)

    rig.faults.malformed_next(1, "/v2/ep-llm/health", mode="wrong_shape")
    with pytest.raises(RunPodProtocolError) as wrapped:
        await rig.api.health("ep-llm")
    assert wrapped.value.route == "GET /v2/ep-llm/health" and wrapped.value.field == "$"
    assert rig.sleeps == []  # a malformed answer is not retried


async def test_expired_key_is_an_auth_error_on_every_api(rig: Rig) -> None:
    rig.faults.expire_key()
    with pytest.raises(RunPodAuthError) as rest:
        await rig.api.list_endpoints()
    with pytest.raises(RunPodAuthError) as runtime:
        await rig.api.health("ep-llm")
    with pytest.raises(RunPodAuthError) as graphql:
        await rig.api.account_spend()
    assert [rest.value.status, runtime.value.status, graphql.value.status] == [401, 401, 401]
    assert [status for _, status in rig.calls] == [401, 401, 401]  # never retried
    for exc in (rest.value, runtime.value, graphql.value):
        assert KEY not in str(exc)
    rig.faults.expire_key(False)
    assert len(await rig.api.list_endpoints()) == len(rig.sim.endpoints())


# ---------------------------------------------------------------------------- real loopback


async def test_over_a_real_loopback_socket(rig: Rig) -> None:
    """The same client with no injected transport: httpx's own network stack, uvicorn, a loopback port."""
    await _mixed_health_state(rig)
    in_process = await rig.api.list_endpoints()
    with serve_in_thread(rig.sim) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        async with RunPodClient(
            api_key=KEY,
            graphql_url=f"{base_url}/graphql",
            rest_url=f"{base_url}/v2",
            runtime_url=f"{base_url}/v2",
            timeout_s=5,
        ) as api:
            assert await api.list_endpoints() == in_process
            assert await api.health("ep-llm") == _expected_health(rig.sim, "ep-llm")
            report = await api.serverless_billing(start=START, bucket_size="hour")
            assert abs(report.total_usd - rig.sim.billed_usd_total()) < 0.005 and report.total_usd > 0
            patched = await api.patch_endpoint("ep-llm", workers_max=0)
            assert patched.workers_max == 0 == rig.sim.endpoint("ep-llm").workers_max
            assert rig.sim.workers("ep-llm") == []
