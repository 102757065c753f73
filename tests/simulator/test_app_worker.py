"""The worker-side protocol (job-take, job-done, job-stream, job-stop, ping) as the runpod SDK speaks it:
raw ``Authorization: <key>``, JSON bodies labelled ``application/x-www-form-urlencoded``, long polls."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from runpod_sim.engine import Simulator

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WORKER = "/v2/ep-ext"


@pytest.fixture
async def worker(app: Any, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client that authenticates like the worker SDK: the raw key, no Bearer."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 50000))
    headers = {"Authorization": "sim-key-local-only"}
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers, timeout=10) as http:
        yield http


async def submit(client: httpx.AsyncClient, job_input: Any) -> str:
    response = await client.post("/v2/ep-ext/run", json={"input": job_input})
    assert response.status_code == 200
    return str(response.json()["id"])


async def test_job_take_long_polls_then_204(worker: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await worker.get(
        f"{WORKER}/job-take/w1", params={"gpu": "NVIDIA RTX A6000", "job_in_progress": "0"}
    )
    assert response.status_code == 204
    assert time.monotonic() - started >= 0.25  # held for long_poll_s (0.3 s in these tests)


async def test_take_done_completes_the_job(
    worker: httpx.AsyncClient, client: httpx.AsyncClient, sim: Simulator
) -> None:
    job_id = await submit(client, {"prompt": "sannu", "tier": "free"})
    taken = await worker.get(f"{WORKER}/job-take/w1?gpu=NVIDIA+RTX+A6000&job_in_progress=0")
    assert taken.status_code == 200
    assert taken.json() == {"id": job_id, "input": {"prompt": "sannu", "tier": "free"}}
    assert (await client.get(f"/v2/ep-ext/status/{job_id}")).json()["status"] == "IN_PROGRESS"

    progress = json.dumps({"status": "IN_PROGRESS", "output": "half way"})
    posted = await worker.post(
        f"{WORKER}/job-done/w1?job_id={job_id}&isStream=false", content=progress, headers=FORM
    )
    assert posted.status_code == 200
    mid = (await client.get(f"/v2/ep-ext/status/{job_id}")).json()
    assert mid["status"] == "IN_PROGRESS" and mid["output"] == "half way" and mid["workerId"] == "w1"

    done = json.dumps({"output": {"echo": "sannu"}})
    posted = await worker.post(
        f"{WORKER}/job-done/w1?job_id={job_id}&isStream=false", content=done, headers=FORM
    )
    assert posted.status_code == 200
    final = (await client.get(f"/v2/ep-ext/status/{job_id}")).json()
    assert final["status"] == "COMPLETED" and final["output"] == {"echo": "sannu"}
    assert [w.id for w in sim.workers("ep-ext")] == ["w1"]


async def test_job_done_error_report_fails_the_job(
    worker: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    job_id = await submit(client, {})
    await worker.get(f"{WORKER}/job-take/w1")
    report = json.dumps(
        {"error_type": "ValueError", "error_message": "boom", "hostname": "h", "worker_id": "w1"}
    )
    # the job id may also come in the path or the X-Request-ID header
    response = await worker.post(
        f"{WORKER}/job-done/w1", content=report, headers={**FORM, "X-Request-ID": job_id}
    )
    assert response.status_code == 200
    status = (await client.get(f"/v2/ep-ext/status/{job_id}")).json()
    assert status["status"] == "FAILED" and "boom" in status["error"]
    no_id = await worker.post(f"{WORKER}/job-done/w1", content="{}", headers=FORM)
    assert no_id.status_code == 400 and no_id.json()["error"]


async def test_batch_take_and_streaming(worker: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    sim_ids = [await submit(client, {"n": n}) for n in range(2)]
    batch = await worker.get(f"{WORKER}/job-take-batch/w1", params={"batch_size": 5})
    assert batch.status_code == 200
    jobs = batch.json()
    assert isinstance(jobs, list) and jobs[0]["id"] == sim_ids[0]
    assert all(set(job) == {"id", "input"} for job in jobs)
    job_id = jobs[0]["id"]
    for chunk in ("a", "b"):
        posted = await worker.post(
            f"{WORKER}/job-stream/w1/{job_id}?isStream=false",
            content=json.dumps({"output": chunk}),
            headers=FORM,
        )
        assert posted.status_code == 200
    drained = (await client.get(f"/v2/ep-ext/stream/{job_id}")).json()
    assert drained == {"status": "IN_PROGRESS", "stream": [{"output": "a"}, {"output": "b"}]}
    assert (await client.get(f"/v2/ep-ext/stream/{job_id}")).json()["stream"] == []
    # the engine runs one job per worker, so the second job went to nobody yet: w2's batch gets it
    taken_ids = [job["id"] for job in jobs]
    if sim_ids[1] not in taken_ids:
        second = await worker.get(f"{WORKER}/job-take-batch/w2", params={"batch_size": 2})
        assert second.status_code == 200 and [job["id"] for job in second.json()] == [sim_ids[1]]
    empty = await worker.get(f"{WORKER}/job-take-batch/w3", params={"batch_size": 2})
    assert empty.status_code == 204
    assert (await worker.get(f"{WORKER}/job-take-batch/w1", params={"batch_size": "x"})).status_code == 400


async def test_job_stop_long_poll_delivers_cancellations(
    worker: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    nothing = await worker.get(f"{WORKER}/job-stop/w1", params={"gpu": "NVIDIA RTX A6000"})
    assert nothing.status_code == 204
    job_id = await submit(client, {})
    assert (await worker.get(f"{WORKER}/job-take/w1")).json()["id"] == job_id
    cancelled = await client.post(f"/v2/ep-ext/cancel/{job_id}")
    assert cancelled.json()["status"] == "CANCELLED"
    stop = await worker.get(f"{WORKER}/job-stop/w1")
    assert stop.status_code == 200 and stop.json() == {"jobsToStop": [job_id]}


async def test_ping_records_and_unhealthy_report(
    worker: httpx.AsyncClient,
    client: httpx.AsyncClient,
    sim: Simulator,
    access_log: Callable[[], list[dict[str, Any]]],
) -> None:
    job_id = await submit(client, {})
    await worker.get(f"{WORKER}/job-take/w1")
    pong = await worker.get(
        f"{WORKER}/ping/w1", params={"job_id": f"{job_id},other", "runpod_version": "1.12.0"}
    )
    assert pong.status_code == 200
    assert next(w for w in sim.workers("ep-ext") if w.id == "w1").runpod_version == "1.12.0"
    pings = [r for r in access_log() if r.get("kind") == "ping"]
    assert pings and pings[-1]["worker_id"] == "w1" and pings[-1]["job_id"] == f"{job_id},other"
    assert pings[-1]["source"] == "127.0.0.9" and pings[-1]["route"].endswith("/ping/w1")

    sick = await worker.get(
        f"{WORKER}/ping/w2",
        params={"status": "unhealthy", "check": "gpu", "reason": "CUDA error", "runpod_version": "1.12.0"},
    )
    assert sick.status_code == 200
    listed = (await client.get("/v2/serverless/ep-ext/workers")).json()
    assert {w["id"]: w["status"] for w in listed["workers"]}.get("w2") == "UNHEALTHY"


async def test_worker_side_auth(app: Any, base_url: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as bare:
        for headers in ({}, {"Authorization": "wrong"}):
            refused = await bare.get(f"{WORKER}/ping/w1", headers=headers)
            assert refused.status_code == 401 and set(refused.json()) == {"error"}
        bearer = await bare.get(f"{WORKER}/ping/w1", headers={"Authorization": "Bearer sim-key-local-only"})
        assert bearer.status_code == 200
