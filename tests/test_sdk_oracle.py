"""The official runpod SDK (1.12.0, in its own venv) as the oracle for the simulator.

WHY: the simulator is the ground truth every other test of the product trusts, so something independent
must check the simulator itself. RunPod's own SDK is the closest thing to production we can run offline:
if the real client parses the simulator's answers, raises its own errors on a bad key, and a real SDK
worker can take jobs, heartbeat, be cancelled and be stopped through the simulator, then the simulator
speaks RunPod's protocol and not just our idea of it. Each SDK answer is compared with the simulator's
state (never only "it did not crash").

Everything runs on a real loopback port (``serve_in_thread``) with a real clock, the SDK in subprocesses
(``tests/sdk/client_probe.py`` for the client side, ``tests/sdk/worker.py`` as a serverless worker).
Worker subprocesses run in their own process group and are always killed in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runpod_sim.app import DEFAULT_API_KEY
from runpod_sim.engine import SimNotFound, Simulator
from runpod_sim.serialize import SIM_DATA_CENTER_ID
from runpod_sim.serve import serve_in_thread
from runpod_sim.state import SimEndpoint
from tests.helpers import sdk_worker_process
from watchdog.client import RunPodClient
from watchdog.clock import SystemClock, to_iso
from watchdog.models import JobStatus

pytestmark = pytest.mark.sdk

SDK_DIR = Path(__file__).resolve().parent / "sdk"
PROBE = SDK_DIR / "client_probe.py"
WORKER = SDK_DIR / "worker.py"
KEY = DEFAULT_API_KEY
LONG_POLL_S = 0.5
"""Worker-side long polls (job-take, job-stop) answer 204 after this long: keeps stop latency ~1.5 s."""

SIM_EP = "ep-sim-echo"
EXT_EP = "ep-ext-sdk"
EXT2_EP = "ep-ext-sdk-2"
PAUSED_EP = "ep-paused"

SDK_ENDPOINT_FIELDS = {
    "aiKey",
    "gpuIds",
    "id",
    "idleTimeout",
    "name",
    "networkVolumeId",
    "locations",
    "scalerType",
    "scalerValue",
    "templateId",
    "type",
    "userId",
    "version",
    "workersMax",
    "workersMin",
    "workersStandby",
    "gpuCount",
    "env",
    "createdAt",
    "networkVolume",
}
"""What ``runpod.get_endpoints()`` selects (SDK api/queries/endpoints.py; runpod-api.md §2.1)."""


def _build_simulator() -> Simulator:
    sim = Simulator(clock=SystemClock())
    created = float(int(time.time()) - 86_400)
    sim.add_endpoint(
        SimEndpoint(
            id=SIM_EP,
            name="Echo (simulated workers)",
            template_id="tpl-echo",
            gpu_ids="AMPERE_48,ADA_24",
            gpu_type_ids=("NVIDIA RTX A6000",),
            workers_max=2,
            idle_timeout=300,
            execution_timeout_ms=120_000,
            scaler_value=4,
            locations="EU-RO-1",
            network_volume_id="nv-sannu",
            env={"MODEL": "sannu", "LANG": "bm"},
            cold_start_s=0.2,
            default_duration_s=0.2,
            created_at=created,
        )
    )
    sim.add_endpoint(
        SimEndpoint(
            id=EXT_EP,
            name="Real SDK worker (external)",
            gpu_ids="AMPERE_48",
            workers_max=1,
            idle_timeout=3600,  # the SDK process keeps polling; the platform must not scale it down mid-test
            execution_timeout_ms=None,  # the incident's condition: nothing times a hung job out
            worker_kind="external",
            created_at=created + 60,
        )
    )
    sim.add_endpoint(
        SimEndpoint(
            id=EXT2_EP,
            name="Second real SDK worker (external)",
            gpu_ids="AMPERE_48",
            workers_max=1,
            idle_timeout=3600,
            execution_timeout_ms=None,
            worker_kind="external",
            created_at=created + 90,
        )
    )
    sim.add_endpoint(
        SimEndpoint(
            id=PAUSED_EP,
            name="Paused (workersMax 0)",
            gpu_ids="AMPERE_24",
            gpu_count=2,
            workers_max=0,
            workers_standby=0,
            scaler_type="REQUEST_COUNT",
            scaler_value=2,
            created_at=created + 120,
        )
    )
    return sim


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = _build_simulator()
    yield simulator
    simulator.close()


@pytest.fixture
def base_url(sim: Simulator) -> Iterator[str]:
    with serve_in_thread(sim, long_poll_s=LONG_POLL_S, runsync_max_wait_s=30) as url:
        assert url.startswith("http://127.0.0.1:")
        yield url


@pytest.fixture
def probe(sdk_python: Path, sdk_env: dict[str, str], base_url: str) -> Callable[..., Any]:
    """Run one client_probe.py operation with the real SDK; returns its JSON answer."""
    env = {
        **sdk_env,
        "RUNPOD_API_BASE_URL": base_url,
        "RUNPOD_ENDPOINT_BASE_URL": f"{base_url}/v2",
        "SIM_API_KEY": KEY,
    }

    def run(operation: str, *args: str, timeout: float = 60) -> Any:
        done = subprocess.run(
            [str(sdk_python), str(PROBE), operation, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"probe {operation} failed:\n{done.stderr[-3000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


def _op(record: dict[str, Any]) -> str | None:
    """The operation of an access-log record: ``/v2/{ep}/{op}/...`` → ``op`` (a bare op name is kept)."""
    route = record.get("route") or ""
    parts = [part for part in route.split("/") if part]
    if len(parts) >= 3 and parts[0] == "v2":
        return parts[2]
    return route or None


def _records(sim: Simulator, op: str | None = None, **match: Any) -> list[dict[str, Any]]:
    """Access-log records (newest last) of operation ``op`` whose other keys equal ``match``."""
    return [
        r
        for r in list(sim.access_records)
        if (op is None or _op(r) == op) and all(r.get(k) == v for k, v in match.items())
    ]


def _health_wire(sim: Simulator, endpoint_id: str) -> dict[str, Any]:
    """The simulator's health counters in /health's documented shape (runpod-api.md §4.1)."""
    c = sim.health(endpoint_id)
    return {
        "jobs": {
            "completed": c.completed,
            "failed": c.failed,
            "inProgress": c.in_progress,
            "inQueue": c.in_queue,
            "retried": c.retried,
        },
        "workers": {
            "idle": c.idle,
            "initializing": c.initializing,
            "ready": c.ready,
            "running": c.running,
            "throttled": c.throttled,
            "unhealthy": c.unhealthy,
        },
    }


def _runtime_client(base_url: str) -> RunPodClient:
    return RunPodClient(
        api_key=KEY,
        graphql_url=f"{base_url}/graphql",
        rest_url=f"{base_url}/v2",
        runtime_url=f"{base_url}/v2",
        timeout_s=10,
    )


async def _wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for: {what}")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------ the SDK's client side


def test_get_endpoints_matches_simulator_state(probe: Callable[..., Any], sim: Simulator) -> None:
    endpoints = probe("get_endpoints")
    by_id = {item["id"]: item for item in endpoints}
    assert set(by_id) == {ep.id for ep in sim.endpoints()}
    for ep in sim.endpoints():
        got = by_id[ep.id]
        assert set(got) == SDK_ENDPOINT_FIELDS, f"{ep.id}: the simulator must answer every selected field"
        expected = {
            "aiKey": None,
            "gpuIds": ep.gpu_ids,
            "id": ep.id,
            "idleTimeout": ep.idle_timeout,
            "name": ep.name,
            "networkVolumeId": ep.network_volume_id or None,
            "locations": ep.locations,
            "scalerType": ep.scaler_type,
            "scalerValue": ep.scaler_value,
            "templateId": ep.template_id,
            "type": "QB",
            "userId": ep.user_id,
            "version": ep.version,
            "workersMax": ep.workers_max,
            "workersMin": ep.workers_min,
            "workersStandby": ep.workers_standby,
            "gpuCount": ep.gpu_count,
            "env": [{"key": k, "value": v} for k, v in ep.env.items()],
            "createdAt": to_iso(ep.created_at),
            "networkVolume": (
                {"id": ep.network_volume_id, "dataCenterId": SIM_DATA_CENTER_ID}
                if ep.network_volume_id
                else None
            ),
        }
        assert got == expected, ep.id
    # spot-check the distinctive values, so a blanket mismatch in the helper above cannot hide anything
    assert by_id[SIM_EP]["gpuIds"] == "AMPERE_48,ADA_24" and by_id[SIM_EP]["idleTimeout"] == 300
    assert by_id[PAUSED_EP]["workersMax"] == 0 and by_id[PAUSED_EP]["scalerType"] == "REQUEST_COUNT"


def test_health_matches_simulator(probe: Callable[..., Any], sim: Simulator) -> None:
    # a completed job and a warm idle worker on one endpoint, two queued jobs on the paused one
    done = sim.submit(SIM_EP, {"sim": {"duration_s": 0.1}})
    deadline = time.monotonic() + 10
    while sim.job(SIM_EP, done.id).status != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(2):
        sim.submit(PAUSED_EP, {"prompt": "waits"})

    warm = probe("health", SIM_EP)
    assert warm == _health_wire(sim, SIM_EP)
    assert warm["jobs"]["completed"] == 1 and warm["workers"]["idle"] == 1

    paused = probe("health", PAUSED_EP)
    assert paused == _health_wire(sim, PAUSED_EP)
    assert paused["jobs"]["inQueue"] == 2 and sum(paused["workers"].values()) == 0


def test_run_status_cancel_ends_cancelled_in_the_simulator(probe: Callable[..., Any], sim: Simulator) -> None:
    out = probe("run_status_cancel", SIM_EP)
    job = sim.job(SIM_EP, out["id"])
    assert out["first"] in ("IN_QUEUE", "IN_PROGRESS")
    assert out["before_cancel"] == "IN_PROGRESS"
    assert out["cancel"] == {"id": job.id, "status": "CANCELLED"}
    assert out["after"] == "CANCELLED"
    assert job.status == "CANCELLED" and job.input == {"sim": {"hang": True}}
    assert job.worker_id is not None  # it had really started on a simulated worker before the cancel
    assert sim.health(SIM_EP).in_progress == 0  # the worker was freed


def test_run_sync_output_is_what_the_simulator_stored(probe: Callable[..., Any], sim: Simulator) -> None:
    output = probe("run_sync", SIM_EP)
    (request,) = _records(sim, op="runsync", endpoint_id=SIM_EP)
    assert request["status"] == 200 and request["job_id"].startswith("sync-")
    job = sim.job(SIM_EP, request["job_id"])
    assert job.status == "COMPLETED"
    assert output == job.output
    assert output == {"echo": {"sim": {"duration_s": 0.3}, "prompt": "i ni ce"}}


def test_run_then_output_polls_to_completion(probe: Callable[..., Any], sim: Simulator) -> None:
    out = probe("run_then_output", SIM_EP)
    job = sim.job(SIM_EP, out["id"])
    assert out["status"] == job.status == "COMPLETED"
    assert out["output"] == job.output == {"echo": {"sim": {"duration_s": 0.5}, "prompt": "sannu"}}


def test_purge_queue_removed_count_equals_simulator_queue(probe: Callable[..., Any], sim: Simulator) -> None:
    already = sim.submit(PAUSED_EP, {"prompt": "queued before the SDK's"})
    queued = probe("run_n", PAUSED_EP, "3")["queued"]
    assert len(queued) == 3
    in_queue = sim.health(PAUSED_EP).in_queue
    assert in_queue == 4
    assert all(sim.job(PAUSED_EP, job_id).status == "IN_QUEUE" for job_id in [*queued, already.id])

    purge = probe("purge_only", PAUSED_EP)
    assert purge["removed"] == in_queue
    assert sim.health(PAUSED_EP).in_queue == 0
    for job_id in [*queued, already.id]:
        with pytest.raises(SimNotFound):
            sim.job(PAUSED_EP, job_id)


def test_bad_key_raises_the_sdks_own_errors(probe: Callable[..., Any], sim: Simulator) -> None:
    graphql = probe("bad_key_graphql")
    assert graphql["raised"] == "AuthenticationError"
    assert "Unauthorized" in graphql["message"]

    runtime = probe("bad_key_runtime", SIM_EP)
    assert runtime["raised"] == "RuntimeError"
    assert runtime["message"].startswith("401 Unauthorized")
    refused = _records(sim, op="health", endpoint_id=SIM_EP)
    assert [r["status"] for r in refused] == [401]


# ----------------------------------------------------------------------------- a real SDK worker


def _sdk_worker(
    sdk_python: Path,
    sdk_env: dict[str, str],
    base_url: str,
    *,
    endpoint_id: str,
    worker_id: str,
    mode: str,
    log_path: Path,
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return sdk_worker_process(
        sdk_python, WORKER, sdk_env, base_url, endpoint_id=endpoint_id, worker_id=worker_id, mode=mode,
        log_path=log_path, api_key=KEY,
    )  # fmt: skip


def _log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def _submit(base_url: str, endpoint_id: str, job_input: Any) -> str:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        response = await http.post(f"/v2/{endpoint_id}/run", json={"input": job_input})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _pings(sim: Simulator, worker_id: str) -> list[dict[str, Any]]:
    return _records(sim, kind="ping", endpoint_id=EXT_EP, worker_id=worker_id, status=200)


async def test_sdk_worker_echo_takes_job_returns_result_and_pings(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    worker_id = "sdk-echo-1"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id=worker_id, mode="echo", log_path=log
    ) as proc:
        job_input = {"prompt": "i ni sogoma", "sleep_s": 0.3}
        job_id = await _submit(base_url, EXT_EP, job_input)
        async with _runtime_client(base_url) as api:
            job = await api.job_status(EXT_EP, job_id)
            deadline = time.monotonic() + 30
            while not job.status.terminal and time.monotonic() < deadline:
                assert proc.poll() is None, _log_text(log)
                await asyncio.sleep(0.2)
                job = await api.job_status(EXT_EP, job_id)
            assert job.status is JobStatus.COMPLETED, _log_text(log)
            assert job.worker_id == worker_id and job.has_output
            assert job.execution_time_ms is not None and job.execution_time_ms >= 250

        stored = sim.job(EXT_EP, job_id)
        assert stored.output == {"echo": job_input, "worker": worker_id}

        await _wait_until(lambda: any(p["job_id"] is None for p in _pings(sim, worker_id)), "an idle ping")
        (worker,) = sim.workers(EXT_EP)
        assert worker.id == worker_id and worker.external
        assert worker.runpod_version == "1.12.0"
        assert worker.state == "IDLE" and worker.current_job_id is None
        assert worker.session is not None and worker.session.stopped_at is None
        assert sim.session_billed_seconds(worker.session) >= 1
        assert sim.billed_usd_total(EXT_EP) > 0

        took = _records(sim, op="job-take", worker_id=worker_id, job_id=job_id)
        assert [r["status"] for r in took] == [200]
        done = _records(sim, op="job-done", worker_id=worker_id, job_id=job_id)
        assert [r["status"] for r in done] == [200]


async def test_sdk_worker_hang_async_is_stopped_by_cancel(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    worker_id = "sdk-hang-async"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python,
        sdk_env,
        base_url,
        endpoint_id=EXT_EP,
        worker_id=worker_id,
        mode="hang-async",
        log_path=log,
    ) as proc:
        job_id = await _submit(base_url, EXT_EP, {"prompt": "never answers"})
        await _wait_until(lambda: sim.job(EXT_EP, job_id).status == "IN_PROGRESS", "the worker took the job")
        assert sim.job(EXT_EP, job_id).worker_id == worker_id

        def busy_pings() -> list[dict[str, Any]]:
            return [p for p in _pings(sim, worker_id) if p["job_id"] == job_id]

        await _wait_until(lambda: len(busy_pings()) >= 3, "3 pings listing the hung job", timeout_s=20)
        assert sim.job(EXT_EP, job_id).status == "IN_PROGRESS"  # heartbeats are not progress

        async with _runtime_client(base_url) as api:
            cancelled = await api.cancel_job(EXT_EP, job_id)
        assert cancelled.status is JobStatus.CANCELLED
        assert sim.job(EXT_EP, job_id).status == "CANCELLED"

        await _wait_until(lambda: "Job stopped." in _log_text(log), "the SDK to stop the job", timeout_s=15)
        stop = _records(sim, op="job-stop", worker_id=worker_id, job_id=job_id)
        assert [r["status"] for r in stop] == [200]  # delivered as {"jobsToStop": [job_id]}
        stop_index = sim.access_records.index(stop[0])

        def idle_pings_after_stop() -> list[dict[str, Any]]:
            later = list(sim.access_records)[stop_index:]
            return [
                p for p in later if p["kind"] == "ping" and p["worker_id"] == worker_id and not p["job_id"]
            ]

        await _wait_until(lambda: len(idle_pings_after_stop()) >= 1, "a ping no longer listing the job")
        assert not _records(sim, op="job-done", job_id=job_id)  # a stopped job sends no result
        assert proc.poll() is None  # the worker survives the cancel and stays available
        (worker,) = sim.workers(EXT_EP)
        assert worker.id == worker_id and worker.state == "IDLE" and worker.current_job_id is None


async def test_sdk_worker_hang_sync_only_workers_max_zero_stops_the_bill(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """The incident: a blocking handler. The job-stop poll starves with the event loop, but the separate
    ping process keeps reporting the job. Only stopping the worker (workersMax 0) ends the billing."""
    worker_id = "sdk-hang-sync"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id=worker_id, mode="hang-sync", log_path=log
    ) as proc:
        job_id = await _submit(base_url, EXT_EP, {"prompt": "blocks the event loop"})
        await _wait_until(lambda: sim.job(EXT_EP, job_id).status == "IN_PROGRESS", "the worker took the job")

        def busy_pings() -> list[dict[str, Any]]:
            return [p for p in _pings(sim, worker_id) if p["job_id"] == job_id]

        await _wait_until(lambda: len(busy_pings()) >= 3, "3 pings listing the hung job", timeout_s=20)
        (worker,) = sim.workers(EXT_EP)
        session = worker.session
        assert session is not None and session.stopped_at is None
        billed_while_hung = sim.session_billed_seconds(session)
        await asyncio.sleep(1.5)
        assert sim.session_billed_seconds(session) > billed_while_hung  # it keeps billing

        async with _runtime_client(base_url) as api:
            patched = await api.patch_endpoint(EXT_EP, workers_max=0)
        assert patched.workers_max == 0 and sim.endpoint(EXT_EP).workers_max == 0

        assert sim.workers(EXT_EP) == []
        assert session.stopped_at is not None
        job = sim.job(EXT_EP, job_id)
        assert job.status == "FAILED" and job.error == "worker stopped"
        billed_at_stop = sim.session_billed_seconds(session)
        usd_at_stop = sim.billed_usd_total(EXT_EP)
        pings_at_stop = len(busy_pings())

        await _wait_until(lambda: len(busy_pings()) >= pings_at_stop + 2, "pings after the stop")
        assert proc.poll() is None, "the SDK cannot interrupt a blocking handler: the process lives on"
        assert sim.workers(EXT_EP) == []  # its heartbeats do not bring it back
        assert sim.session_billed_seconds(session) == billed_at_stop
        assert sim.billed_usd_total(EXT_EP) == usd_at_stop
        assert not _records(sim, op="job-done", job_id=job_id)


async def test_sdk_worker_stopped_by_the_platform_is_not_spun_into_a_hot_loop(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """After workersMax 0 stops an idle SDK worker, its process (which RunPod would have killed) keeps
    polling job-take: each poll must still be held for the long poll, not answered at once (the SDK
    re-polls immediately on 204; unheld, that was ~2000 requests per second into the access log)."""
    worker_id = "sdk-idle-stopped"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id=worker_id, mode="echo", log_path=log
    ) as proc:
        await _wait_until(lambda: len(_pings(sim, worker_id)) >= 1, "the worker's first ping")
        (worker,) = sim.workers(EXT_EP)
        session = worker.session
        assert session is not None and session.stopped_at is None

        async with _runtime_client(base_url) as api:
            await api.patch_endpoint(EXT_EP, workers_max=0)
        assert sim.workers(EXT_EP) == [] and session.stopped_at is not None
        usd_at_stop = sim.billed_usd_total(EXT_EP)

        takes_before = len(_records(sim, op="job-take", worker_id=worker_id))
        window_s = 3.0
        await asyncio.sleep(window_s)
        takes = len(_records(sim, op="job-take", worker_id=worker_id)) - takes_before
        assert proc.poll() is None
        assert 1 <= takes <= window_s / LONG_POLL_S + 3, f"{takes} job-take polls in {window_s:g}s"
        assert sim.workers(EXT_EP) == [] and sim.billed_usd_total(EXT_EP) == usd_at_stop


# ------------------------------------------------- real workers: concurrency, streams, policies, limits


def _sdk_lines(path: Path, job_id: str) -> list[str]:
    """The lines the real SDK printed about ``job_id`` at INFO and above (what RunPod's log shows)."""
    lines = []
    for line in _log_text(path).splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("requestId") == job_id and record["level"] != "DEBUG":
                lines.append(line)
    return lines


def _log_events(
    base_url: str, endpoint_id: str, worker_id: str, *, count: int, query: str = "", timeout_s: float = 10
) -> list[dict[str, Any]]:
    """The first ``count`` events of the worker's REST v2 log stream (a live worker's stream never ends)."""
    url = f"{base_url}/v2/serverless/{endpoint_id}/workers/{worker_id}/logs{query}"
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {KEY}"}, timeout=timeout_s) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if len(events) >= count:
                    break
    return events


async def _post_run(base_url: str, endpoint_id: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        return await http.post(f"/v2/{endpoint_id}/run", json=body)


async def _status(base_url: str, endpoint_id: str, job_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        return await http.get(f"/v2/{endpoint_id}/status/{job_id}")


def _wait_sync(predicate: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for: {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_simulate_external_workers_environment_runs_a_real_sdk_worker(
    sdk_python: Path, sdk_env: dict[str, str], tmp_path: Path
) -> None:
    """The issue "a simulator real workers can use": ``runpod-watchdog simulate --scenario hung-job
    --external-workers`` prints an environment; a real SDK worker started from exactly those ``export``
    lines takes the scenario's queued job, and the worker log stream shows the SDK's own lines for it.
    (Before: the hung endpoint was simulated and an SDK worker's job-take never got a job.)"""
    from tests.simulator.simulate_process import running_simulate, simulate_argv

    log = tmp_path / "worker.log"
    with running_simulate(simulate_argv("hung-job", external_workers=True), expect_workers=True) as run:
        exports = "\n".join(run.exports["ep-asr-hung"])
        script = f"{exports}\nexec {sdk_python} {WORKER}"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                ["bash", "-c", script],
                env={**sdk_env, "SIM_WORKER_MODE": "echo"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            api = {"Authorization": f"Bearer {KEY}"}

            def completed() -> bool:
                health = httpx.get(f"{run.base_url}/v2/ep-asr-hung/health", headers=api, timeout=10).json()
                return bool(health["jobs"]["completed"] == 1)

            _wait_sync(completed, "the real worker completed the scenario's job", timeout_s=40)
            started, finished = _log_events(
                run.base_url, "ep-asr-hung", "local-worker-1", count=2, query="?source=container"
            )
            job_id = json.loads(started["line"])["requestId"]
            assert started["line"] == json.dumps(
                {"requestId": job_id, "message": "Started.", "level": "INFO"}
            )
            assert finished["line"] == started["line"].replace("Started.", "Finished.")
            assert _sdk_lines(log, job_id) == [started["line"], finished["line"]]  # the SDK's very lines
            status = httpx.get(
                f"{run.base_url}/v2/ep-asr-hung/status/{job_id}", headers=api, timeout=10
            ).json()
            assert status["status"] == "COMPLETED" and status["workerId"] == "local-worker-1"
            assert status["output"]["worker"] == "local-worker-1" and status["output"]["echo"]["hang"] is True
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


@pytest.mark.slow
async def test_sdk_worker_with_concurrency_two_runs_two_jobs_at_once(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    worker_id = "sdk-concurrent"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python,
        sdk_env,
        base_url,
        endpoint_id=EXT_EP,
        worker_id=worker_id,
        mode="concurrent",
        log_path=log,
    ):
        await _wait_until(lambda: len(_pings(sim, worker_id)) >= 1, "the worker's first ping")
        first = await _submit(base_url, EXT_EP, {"sleep_s": 3, "n": 1})
        second = await _submit(base_url, EXT_EP, {"sleep_s": 3, "n": 2})

        def both_running() -> bool:
            jobs = [sim.job(EXT_EP, first), sim.job(EXT_EP, second)]
            return all(job.status == "IN_PROGRESS" and job.worker_id == worker_id for job in jobs)

        await _wait_until(both_running, "two jobs IN_PROGRESS on the one worker", timeout_s=15)
        assert sim.health(EXT_EP).in_progress == 2
        (worker,) = sim.workers(EXT_EP)
        assert worker.state == "RUNNING" and sorted(worker.job_ids) == sorted([first, second])
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
            body = (await http.get(f"/v2/serverless/{EXT_EP}/workers")).json()
            health = (await http.get(f"/v2/{EXT_EP}/health")).json()
        (row,) = body["workers"]
        assert (row["id"], row["status"], row["startedAt"]) == (
            worker_id,
            "RUNNING",
            to_iso(worker.started_at),
        )
        assert row["uptimeSeconds"] >= 0 and body["summary"]["running"] == 1
        assert health["jobs"]["inProgress"] == 2 and health["workers"]["running"] == 1

        await _wait_until(
            lambda: sim.job(EXT_EP, first).status == sim.job(EXT_EP, second).status == "COMPLETED",
            "both jobs completed",
            timeout_s=15,
        )
        jobs = [sim.job(EXT_EP, first), sim.job(EXT_EP, second)]
        assert max(j.started_at or 0 for j in jobs) < min(j.finished_at or 0 for j in jobs)  # overlapped
        assert all((j.execution_time_ms or 0) >= 2900 for j in jobs)
        batch = _records(sim, op="job-take-batch", worker_id=worker_id, status=200)
        assert batch or _records(sim, op="job-take", worker_id=worker_id, status=200)

        events = _log_events(base_url, EXT_EP, worker_id, count=4, query="?source=container")
        messages = [(json.loads(e["line"])["message"], json.loads(e["line"])["requestId"]) for e in events]
        assert [m for m, _ in messages] == ["Started.", "Started.", "Finished.", "Finished."]
        for job_id in (first, second):
            assert _sdk_lines(log, job_id) == [e["line"] for e in events if job_id in e["line"]]


def test_sdk_worker_streams_chunks_the_sdk_client_reads(
    probe: Callable[..., Any], sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator,
    *, tmp_path: Path,
) -> None:  # fmt: skip
    worker_id = "sdk-stream"
    with _sdk_worker(
        sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id=worker_id, mode="stream",
        log_path=tmp_path / "worker.log",
    ):  # fmt: skip
        out = probe("run_stream", EXT_EP, "3")
    chunks = [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]
    assert out["chunks"] == chunks  # every chunk the worker posted, read by the SDK's own Job.stream()
    assert out["status"] == "COMPLETED" and out["output"] == chunks  # return_aggregate_stream
    job = sim.job(EXT_EP, out["id"])
    assert job.worker_id == worker_id and job.output == chunks
    assert len(_records(sim, op="job-stream", worker_id=worker_id, job_id=job.id, status=200)) == 3
    (final,) = _records(sim, op="job-done", worker_id=worker_id, job_id=job.id)
    assert final["status"] == 200


async def test_sdk_worker_progress_updates_show_in_status(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    worker_id = "sdk-progress"
    with _sdk_worker(
        sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id=worker_id, mode="progress",
        log_path=tmp_path / "worker.log",
    ):  # fmt: skip
        job_id = await _submit(base_url, EXT_EP, {"sleep_s": 2})
        seen: list[tuple[str, Any]] = []

        def polled() -> bool:
            body = httpx.get(
                f"{base_url}/v2/{EXT_EP}/status/{job_id}",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=10,
            ).json()
            seen.append((body["status"], body.get("output")))
            return body["status"] == "COMPLETED"

        await _wait_until(polled, "the job to complete", timeout_s=20)
    assert ("IN_PROGRESS", {"percent": 50}) in seen  # progress_update() posted to job-done, IN_PROGRESS
    assert seen[-1] == ("COMPLETED", {"done": True})
    assert sim.job(EXT_EP, job_id).worker_id == worker_id


async def test_webhooks_report_completion_and_failure_of_sdk_jobs(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    from tests.simulator.webhook_receiver import WebhookReceiver

    with (
        WebhookReceiver() as hook,
        _sdk_worker(
            sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id="sdk-ok", mode="echo",
            log_path=tmp_path / "ok.log",
        ),
        _sdk_worker(
            sdk_python, sdk_env, base_url, endpoint_id=EXT2_EP, worker_id="sdk-raise", mode="raise",
            log_path=tmp_path / "raise.log",
        ),
    ):  # fmt: skip
        ok = await _post_run(base_url, EXT_EP, {"input": {"prompt": "sannu"}, "webhook": f"{hook.url}/ok"})
        bad = await _post_run(base_url, EXT2_EP, {"input": {"prompt": "x"}, "webhook": f"{hook.url}/bad"})
        assert ok.status_code == bad.status_code == 200
        (ok_body,) = hook.wait_for(1, timeout_s=30, path="/ok")
        (bad_body,) = hook.wait_for(1, timeout_s=30, path="/bad")
        assert ok_body == (await _status(base_url, EXT_EP, ok.json()["id"])).json()
        assert bad_body == (await _status(base_url, EXT2_EP, bad.json()["id"])).json()
        refused = await _post_run(base_url, EXT_EP, {"input": {}, "webhook": "https://example.org/hook"})
        assert refused.status_code == 400 and "loopback" in refused.json()["error"]
    assert ok_body["status"] == "COMPLETED" and ok_body["workerId"] == "sdk-ok"
    assert ok_body["output"] == {"echo": {"prompt": "sannu"}, "worker": "sdk-ok"}
    assert bad_body["status"] == "FAILED" and bad_body["workerId"] == "sdk-raise"
    report = json.loads(bad_body["error"])  # the SDK's own error report for a raising handler
    assert report["error_type"] == "<class 'ValueError'>" and report["error_message"] == "handler exploded"
    assert len(hook.calls) == 2


@pytest.mark.slow
async def test_execution_timeout_policy_stops_the_sdk_job_and_the_worker_is_started_again(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    """``policy.executionTimeout`` on /run: the job is TIMED_OUT and its worker stopped (the SDK's async
    handler is cancelled through job-stop). The process keeps polling: the next job starts it again."""
    worker_id = "sdk-timeout"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python,
        sdk_env,
        base_url,
        endpoint_id=EXT_EP,
        worker_id=worker_id,
        mode="hang-async",
        log_path=log,
    ) as proc:
        response = await _post_run(
            base_url, EXT_EP, {"input": {"n": 1}, "policy": {"executionTimeout": 5000}}
        )
        job_id = response.json()["id"]
        await _wait_until(lambda: sim.job(EXT_EP, job_id).status == "IN_PROGRESS", "the worker took the job")
        started = time.monotonic()
        await _wait_until(lambda: sim.job(EXT_EP, job_id).status == "TIMED_OUT", "the timeout", timeout_s=10)
        assert 4.0 <= time.monotonic() - started <= 7.0
        assert sim.job(EXT_EP, job_id).error == "execution timeout exceeded"
        assert sim.workers(EXT_EP) == [] and sim.worker_stopped(worker_id)
        await _wait_until(lambda: "Job stopped." in _log_text(log), "the SDK to stop the job", timeout_s=10)

        again = await _post_run(base_url, EXT_EP, {"input": {"n": 2}, "policy": {"executionTimeout": 5000}})
        again_id = again.json()["id"]
        await _wait_until(
            lambda: sim.job(EXT_EP, again_id).status == "IN_PROGRESS", "the parked worker started again"
        )
        (worker,) = sim.workers(EXT_EP)
        assert worker.id == worker_id and worker.started_at > started and proc.poll() is None
        assert len(sim.sessions(EXT_EP)) == 2


@pytest.mark.slow
async def test_ttl_policy_deletes_a_running_sdk_job(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    worker_id = "sdk-ttl"
    log = tmp_path / "worker.log"
    with _sdk_worker(
        sdk_python,
        sdk_env,
        base_url,
        endpoint_id=EXT_EP,
        worker_id=worker_id,
        mode="hang-async",
        log_path=log,
    ):
        response = await _post_run(base_url, EXT_EP, {"input": {"n": 1}, "policy": {"ttl": 10_000}})
        job_id = response.json()["id"]
        submitted = time.monotonic()
        await _wait_until(lambda: sim.job(EXT_EP, job_id).status == "IN_PROGRESS", "the worker took the job")

        def gone() -> bool:
            try:
                sim.job(EXT_EP, job_id)
            except SimNotFound:
                return True
            return False

        await _wait_until(gone, "the TTL to delete the job", timeout_s=15)
        assert 9.5 <= time.monotonic() - submitted <= 12.5
        assert (await _status(base_url, EXT_EP, job_id)).status_code == 404
        await _wait_until(lambda: "Job stopped." in _log_text(log), "the SDK to stop the job", timeout_s=10)
        (worker,) = sim.workers(EXT_EP)  # the worker was not stopped: only its job was
        assert worker.id == worker_id and worker.state == "IDLE"


async def test_account_limits_and_a_real_worker_refused_by_the_spend_rate(
    sdk_python: Path, sdk_env: dict[str, str], base_url: str, sim: Simulator, tmp_path: Path
) -> None:
    sim.options.spend_rate_usd_per_hr = 0.5  # below one A6000 flex worker (1.224 USD/h)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        limits = (await http.get("/v2/account/limits")).json()
    assert limits == {
        "spendRate": {"limit": 0.5, "current": 0.0},
        "serverlessWorkers": {"limit": 5, "current": sum(ep.workers_max for ep in sim.endpoints())},
    }
    worker_id = "sdk-capped"
    with _sdk_worker(
        sdk_python, sdk_env, base_url, endpoint_id=EXT_EP, worker_id=worker_id, mode="echo",
        log_path=tmp_path / "worker.log",
    ):  # fmt: skip
        job_id = await _submit(base_url, EXT_EP, {"prompt": "refused first"})
        refusals = [r for r in list(sim.access_records) if r["kind"] == "worker" and r["status"] == "REFUSED"]
        await _wait_until(
            lambda: any(r["worker_id"] == worker_id for r in sim.access_records if r["status"] == "REFUSED"),
            "the start to be refused",
        )
        await asyncio.sleep(1.5)
        assert sim.job(EXT_EP, job_id).status == "IN_QUEUE" and sim.workers(EXT_EP) == []
        assert "spend rate" in [r for r in sim.access_records if r["status"] == "REFUSED"][-1]["reason"]
        assert refusals == []

        sim.options.spend_rate_usd_per_hr = 2.0  # raised: the next poll of the process starts it
        await _wait_until(
            lambda: sim.job(EXT_EP, job_id).status == "COMPLETED", "the job to run", timeout_s=15
        )
        assert sim.job(EXT_EP, job_id).worker_id == worker_id
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"}) as http:
            limits = (await http.get("/v2/account/limits")).json()
        assert limits["spendRate"] == {"limit": 2.0, "current": pytest.approx(0.00034 * 3600)}


def test_retired_graphql_fails_the_sdks_graphql_calls_not_its_runtime(
    probe: Callable[..., Any], sim: Simulator
) -> None:
    sim.options.graphql_enabled = False
    out = probe("graphql_retired", SIM_EP)
    # SDK 1.12 checks only 401 and an "errors" member: on the 410 problem body it fails reading "data"
    assert out["raised"] == "KeyError" and out["message"] == "'data'"
    assert out["health"]["jobs"]["inQueue"] == 0
