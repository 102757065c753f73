"""The product's RunPodClient against the simulator, route by route, compared with the simulator's state.

WHY: tests/test_client.py checks the client against hand-written responses; tests/test_sdk_oracle.py checks
the simulator against RunPod's SDK. This file closes the triangle: the client, talking real HTTP to the
simulator's real ASGI app (in-process through ``httpx.ASGITransport``, on a ``ManualClock``), must parse
exactly what the simulator's model holds, for every route the daemon uses, and must survive the
simulator's injected faults the way its module docstring promises. One test repeats a few calls over a
real loopback socket to prove the path does not depend on the in-process transport.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
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
from watchdog.models import EndpointConfig, EndpointWorkers, Health, JobStatus, WorkerStatus
from watchdog.prices import DEFAULT_PRICES

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
    app = create_app(sim, faults=faults, long_poll_s=0.2, runsync_max_wait_s=0.5)
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
    assert spend.client_balance_usd < rig.sim.initial_balance_usd
    assert spend.spend_limit_usd == rig.sim.spend_limit_usd == 80.0
    assert spend.current_spend_per_hr_usd == pytest.approx(rig.sim.current_spend_per_hr())
    assert spend.current_spend_per_hr_usd is not None and spend.current_spend_per_hr_usd > 0
    assert spend.workers_standby == {ep.id: ep.workers_standby for ep in rig.sim.endpoints()}
    assert spend.workers_standby["ep-warm"] == 1


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
