"""The job runtime (api.runpod.ai/v2/{endpoint_id}/...) over real in-process HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runpod_sim.engine import SimOptions, Simulator
from watchdog.clock import ManualClock

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


async def test_run_status_lifecycle(client: httpx.AsyncClient, clock: ManualClock) -> None:
    run = await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 3}, "prompt": "sannu"}})
    assert run.status_code == 200
    submitted = run.json()
    assert submitted["status"] == "IN_QUEUE" and set(submitted) == {"id", "status"}
    clock.advance(60)
    status = (await client.get(f"/v2/ep-alpha/status/{submitted['id']}")).json()
    assert status["status"] == "COMPLETED", status
    assert status["id"] == submitted["id"]
    assert isinstance(status["delayTime"], int) and status["delayTime"] >= 0
    assert isinstance(status["executionTime"], int) and status["executionTime"] >= 3000
    assert status["workerId"]
    assert "output" in status
    assert (await client.get("/v2/ep-alpha/status/no-such-job")).status_code == 404


async def test_run_validates_body_and_endpoint(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v2/ep-alpha/run", json={"prompt": "no input key"})).status_code == 400
    assert (await client.post("/v2/ep-alpha/run", content=b"{not json")).status_code == 400
    bad_policy = await client.post("/v2/ep-alpha/run", json={"input": {}, "policy": {"executionTimeout": 10}})
    assert bad_policy.status_code == 400 and "executionTimeout" in bad_policy.json()["error"]
    missing = await client.post("/v2/ep-nope/run", json={"input": {}})
    assert missing.status_code == 404 and missing.json()["error"]
    assert (await client.get("/v2/ep-alpha/run")).status_code == 405


async def test_runsync_returns_non_terminal_when_wait_elapses(client: httpx.AsyncClient) -> None:
    # nothing advances the ManualClock, so the job cannot finish within the (capped) wait
    response = await client.post("/v2/ep-alpha/runsync?wait=1000", json={"input": {"sim": {"duration_s": 5}}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in {"IN_QUEUE", "IN_PROGRESS"} and body["id"]


async def test_runsync_completes_while_time_passes(client: httpx.AsyncClient, clock: ManualClock) -> None:
    async def advance_soon() -> None:
        await asyncio.sleep(0.1)
        clock.advance(30)  # less than the 60 s a runsync result is retained

    mover = asyncio.create_task(advance_soon())
    response = await client.post("/v2/ep-alpha/runsync", json={"input": {"sim": {"duration_s": 2}}})
    await mover
    body = response.json()
    assert body["status"] == "COMPLETED", body
    assert body["executionTime"] >= 2000


async def test_stream_always_has_a_stream_list(client: httpx.AsyncClient, clock: ManualClock) -> None:
    job_id = (await client.post("/v2/ep-alpha/run", json={"input": {}})).json()["id"]
    queued = (await client.get(f"/v2/ep-alpha/stream/{job_id}")).json()
    assert queued == {"status": "IN_QUEUE", "stream": []}
    clock.advance(120)
    done = (await client.get(f"/v2/ep-alpha/stream/{job_id}")).json()
    assert done["status"] in TERMINAL and isinstance(done["stream"], list)


async def test_cancel_retry_purge(client: httpx.AsyncClient, clock: ManualClock, sim: Simulator) -> None:
    first = (await client.post("/v2/ep-alpha/run", json={"input": {}})).json()["id"]
    cancelled = (await client.post(f"/v2/ep-alpha/cancel/{first}")).json()
    assert cancelled == {"id": first, "status": "CANCELLED"}
    refused = await client.post(f"/v2/ep-alpha/retry/{first}")
    assert refused.status_code == 400 and refused.json()["error"]

    sim.update_endpoint("ep-alpha", {"workers_max": 0})  # nothing runs: everything stays queued
    for _ in range(3):
        await client.post("/v2/ep-alpha/run", json={"input": {}})
    purged = await client.post("/v2/ep-alpha/purge-queue")
    assert purged.json() == {"removed": 3, "status": "completed"}
    assert (await client.get("/v2/ep-alpha/health")).json()["jobs"]["inQueue"] == 0


async def test_health_shape(client: httpx.AsyncClient) -> None:
    await client.post("/v2/ep-alpha/run", json={"input": {}})
    body = (await client.get("/v2/ep-alpha/health")).json()
    assert set(body["jobs"]) == {"completed", "failed", "inProgress", "inQueue", "retried"}
    assert set(body["workers"]) == {"idle", "initializing", "ready", "running", "throttled", "unhealthy"}
    assert body["jobs"]["inQueue"] == 1


@pytest.mark.parametrize("options", [SimOptions(health_omit_zero=True)])
async def test_health_can_omit_zero_keys(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v2/ep-alpha/health")).json()
    assert body == {"jobs": {}, "workers": {}}


async def test_auth_forms_and_401_shape(client: httpx.AsyncClient, app: Any, base_url: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as bare:
        raw = await bare.get("/v2/ep-alpha/health", headers={"Authorization": "sim-key-local-only"})
        assert raw.status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "wrong"}):
            refused = await bare.get("/v2/ep-alpha/health", headers=headers)
            assert refused.status_code == 401
            assert set(refused.json()) == {"error"}
        assert (
            await bare.get("/v2/ep-alpha/health", params={"api_key": "sim-key-local-only"})
        ).status_code == 401


async def test_purge_queue_rate_limit_is_2_per_10s(client: httpx.AsyncClient) -> None:
    statuses = [(await client.post("/v2/ep-alpha/purge-queue")).status_code for _ in range(2)]
    assert statuses == [200, 200]
    limited = await client.post("/v2/ep-alpha/purge-queue")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert "error" in limited.json()
    # per endpoint and per operation: others are unaffected
    assert (await client.post("/v2/ep-ext/purge-queue")).status_code == 200
    assert (await client.get("/v2/ep-alpha/health")).status_code == 200


async def test_access_log_records_runtime_requests(
    client: httpx.AsyncClient, access_log: Callable[[], list[dict[str, Any]]]
) -> None:
    run = await client.post("/v2/ep-alpha/run", json={"input": {"tier": "premium", "prompt": "x"}})
    job_id = run.json()["id"]
    await client.get(f"/v2/ep-alpha/status/{job_id}")
    await client.get("/v2/ep-alpha/health", headers={"Authorization": "Bearer wrong"})
    records = access_log()
    run_record = next(r for r in records if r["route"] == "/v2/ep-alpha/run")
    assert run_record["kind"] == "request"  # user traffic, counted by the ping watch
    assert run_record["endpoint_id"] == "ep-alpha"
    assert run_record["method"] == "POST" and run_record["status"] == 200
    assert run_record["job_id"] == job_id and run_record["tier"] == "premium"
    assert run_record["source"] == "127.0.0.7"
    assert run_record["duration_ms"] >= 0
    status_record = next(r for r in records if r["route"] == f"/v2/ep-alpha/status/{job_id}")
    assert status_record["job_id"] == job_id and status_record["tier"] == "premium"
    assert status_record["kind"] == "api"  # management calls are logged but are not traffic
    assert any(r["route"] == "/v2/ep-alpha/health" and r["status"] == 401 for r in records)
