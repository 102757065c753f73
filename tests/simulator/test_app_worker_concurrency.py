"""Several jobs on one worker, and external workers the platform stops and starts again.

The runpod SDK asks for work only when it has room (its ``concurrency_modifier`` minus the jobs it holds)
and says with ``job_in_progress`` whether it runs any; with room for two it asks ``job-take-batch`` with
``batch_size=2``, with one job running it asks ``job-take`` with ``job_in_progress=1`` (runpod-api.md
§5.4, SDK ``rp_job._job_get_url``, ``rp_scale.JobScaler.get_jobs``). Before this, the simulator gave a
worker one job at a time whatever it asked, so a concurrent SDK worker ran its jobs one after another.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.state import JobPolicy, SimEndpoint
from watchdog.clock import ManualClock, from_iso

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EP = "ep-ext"
START = from_iso("2026-06-15T12:00:00Z")


@pytest.fixture
async def worker(app: Any, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.9", 50000))
    headers = {"Authorization": "sim-key-local-only"}
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers, timeout=10) as http:
        yield http


async def submit(client: httpx.AsyncClient, job_input: Any, **extra: Any) -> str:
    response = await client.post(f"/v2/{EP}/run", json={"input": job_input, **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def done(worker: httpx.AsyncClient, worker_id: str, job_id: str, body: Any) -> None:
    response = await worker.post(
        f"/v2/{EP}/job-done/{worker_id}?job_id={job_id}&isStream=false",
        content=json.dumps(body),
        headers=FORM,
    )
    assert response.status_code == 200


async def test_batch_take_gives_two_jobs_that_run_at_once(
    worker: httpx.AsyncClient, client: httpx.AsyncClient, sim: Simulator, oas: Any
) -> None:
    first = await submit(client, {"n": 1})
    second = await submit(client, {"n": 2})
    third = await submit(client, {"n": 3})
    taken = await worker.get(
        f"/v2/{EP}/job-take-batch/w1?gpu=NVIDIA+RTX+A6000&batch_size=2&job_in_progress=0"
    )
    assert taken.status_code == 200
    assert [job["id"] for job in taken.json()] == [first, second]
    for job_id in (first, second):
        status = (await client.get(f"/v2/{EP}/status/{job_id}")).json()
        assert status["status"] == "IN_PROGRESS" and status["workerId"] == "w1"
    health = (await client.get(f"/v2/{EP}/health")).json()
    assert health["jobs"]["inProgress"] == 2 and health["jobs"]["inQueue"] == 1
    assert health["workers"]["running"] == 1
    listed = (await client.get(f"/v2/serverless/{EP}/workers")).json()
    oas.check(listed, "ListEndpointWorkersResponse")
    assert [(w["id"], w["status"]) for w in listed["workers"]] == [("w1", "RUNNING")]

    # one finishes: the worker still runs the other, so it stays RUNNING; the SDK then asks for one more
    await done(worker, "w1", first, {"output": "one"})
    (w1,) = sim.workers(EP)
    assert w1.state == "RUNNING" and w1.job_ids == [second]
    more = await worker.get(f"/v2/{EP}/job-take/w1?job_in_progress=1")
    assert more.status_code == 200 and more.json()["id"] == third
    assert w1.job_ids == [second, third] and sim.health(EP).in_progress == 2
    await done(worker, "w1", second, {"output": "two"})
    await done(worker, "w1", third, {"error": "three failed"})
    assert w1.state == "IDLE" and w1.job_ids == []
    statuses = [(await client.get(f"/v2/{EP}/status/{j}")).json()["status"] for j in (first, second, third)]
    assert statuses == ["COMPLETED", "COMPLETED", "FAILED"]


async def test_a_take_without_job_in_progress_gets_one_job_at_a_time(
    worker: httpx.AsyncClient, client: httpx.AsyncClient, sim: Simulator
) -> None:
    """An older SDK (or curl) does not say what it runs: one job at a time, as before."""
    first = await submit(client, {"n": 1})
    second = await submit(client, {"n": 2})
    assert (await worker.get(f"/v2/{EP}/job-take/w1")).json()["id"] == first
    assert (await worker.get(f"/v2/{EP}/job-take/w1")).status_code == 204  # held, then nothing
    await done(worker, "w1", first, {"output": 1})
    assert (await worker.get(f"/v2/{EP}/job-take/w1")).json()["id"] == second


async def test_job_in_progress_must_be_0_or_1(worker: httpx.AsyncClient) -> None:
    response = await worker.get(f"/v2/{EP}/job-take/w1?job_in_progress=maybe")
    assert response.status_code == 400 and "job_in_progress" in response.json()["error"]


async def test_an_unexpanded_pod_id_in_the_take_url_is_refused_not_registered(
    worker: httpx.AsyncClient, client: httpx.AsyncClient, sim: Simulator
) -> None:
    """runpod-python's .env_example puts $RUNPOD_POD_ID in the take URL, which the SDK never replaces:
    such a worker would poll as "$RUNPOD_POD_ID" while pinging under its real id (and, with workersMax 1,
    be refused as a second worker: its jobs would stay IN_QUEUE forever)."""
    await submit(client, {"n": 1})
    response = await worker.get(f"/v2/{EP}/job-take/$RUNPOD_POD_ID?gpu=x&job_in_progress=0")
    assert response.status_code == 400
    assert "only $ID" in response.json()["error"]
    assert sim.workers(EP) == [] and sim.health(EP).in_queue == 1


async def test_an_execution_timeout_stops_the_worker_and_fails_its_other_job(
    worker: httpx.AsyncClient, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    slow = await submit(client, {"n": 1}, policy={"executionTimeout": 5000})
    other = await submit(client, {"n": 2})
    taken = await worker.get(f"/v2/{EP}/job-take-batch/w1?batch_size=2&job_in_progress=0")
    assert len(taken.json()) == 2
    clock.advance(5)
    assert sim.job(EP, slow).status == "TIMED_OUT"
    stopped = sim.job(EP, other)
    assert stopped.status == "FAILED" and stopped.error == "worker stopped"
    assert sim.workers(EP) == [] and sim.stop_signals(EP, "w1") == [slow, other]


def _external_sim(**options: Any) -> tuple[Simulator, ManualClock]:
    clock = ManualClock(START)
    sim = Simulator(clock=clock, options=SimOptions(**options))
    sim.add_endpoint(
        SimEndpoint(id=EP, name="external", worker_kind="external", workers_max=1, idle_timeout=5)
    )
    return sim, clock


def test_a_parked_worker_is_started_again_only_when_a_job_needs_it() -> None:
    sim, clock = _external_sim()
    sim.take_job(EP, "w1")  # first contact: registered, billed from now
    clock.advance(5)
    assert sim.worker_stopped("w1") and sim.workers(EP) == []  # idle timeout: RunPod scales it down
    assert sim.take_job(EP, "w1", job_in_progress=False) is None  # nothing queued: stays parked
    sim.ping(EP, "w1", job_ids=[])
    assert sim.workers(EP) == []  # a heartbeat never starts a worker
    clock.advance(60)
    low = sim.submit(EP, {"n": 0}, policy=JobPolicy(low_priority=True))  # "won't trigger worker scaling"
    assert sim.take_job(EP, "w1", job_in_progress=False) is None
    job = sim.submit(EP, {"n": 1})
    assert sim.take_job(EP, "w1", job_in_progress=True) is None  # a process still running something: no
    assert sim.take_job(EP, "w1", job_in_progress=False) is low  # started: it takes the oldest job
    (worker,) = sim.workers(EP)
    assert worker.started_at == START + 65 and worker.state == "RUNNING"
    first, second = sim.sessions(EP)
    assert (first.started_at, first.stopped_at) == (START, START + 5)
    assert second.started_at == START + 65 and second.stopped_at is None
    sim.job_done(EP, "w1", low.id, {"output": 0}, is_stream=False)
    assert sim.take_job(EP, "w1", job_in_progress=False) is job


def test_a_parked_worker_of_a_full_endpoint_stays_parked() -> None:
    sim, clock = _external_sim()
    sim.take_job(EP, "w1")
    clock.advance(5)
    sim.take_job(EP, "w2")  # registered in the free slot
    sim.submit(EP, {"n": 1})
    assert sim.take_job(EP, "w1") is None  # workersMax 1 is taken by w2
    assert sim.take_job(EP, "w2") is not None
