"""``GET /_sim/state``'s ground truth: jobs with their times, billed sessions, every cancel received and
every settings change, so a benchmark or test measures latencies from the simulator rather than from
the daemon under test (bench/runaway_latency.py reads them from a real ``simulate`` process)."""

from __future__ import annotations

from typing import Any

import httpx

from runpod_sim.app import RateLimits
from runpod_sim.engine import Simulator
from watchdog.clock import ManualClock, from_iso

START = from_iso("2026-06-15T12:00:00Z")
"""The simulator fixtures' clock start (tests/simulator/conftest.py)."""

HANG = {"input": {"sim": {"hang": True}}}


async def _state(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/_sim/state")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def _running_hung_job(client: httpx.AsyncClient, clock: ManualClock) -> str:
    job_id: str = (await client.post("/v2/ep-alpha/run", json=HANG)).json()["id"]
    clock.advance(10)  # a worker is started at once; after its 2 s cold start it runs the job
    assert (await client.get(f"/v2/ep-alpha/status/{job_id}")).json()["status"] == "IN_PROGRESS"
    return job_id


async def test_a_cancelled_job_its_cancel_and_its_worker_session_with_their_times(
    client: httpx.AsyncClient, clock: ManualClock, sim: Simulator
) -> None:
    job_id = await _running_hung_job(client, clock)
    state = await _state(client)
    (job,) = [j for j in state["jobs"] if j["id"] == job_id]
    assert job["status"] == "IN_PROGRESS" and job["endpointId"] == "ep-alpha"
    assert (job["submittedAt"], job["startedAt"]) == (START, START + 2)
    assert job["finishedAt"] is None and job["workerId"]
    (alpha,) = [ep for ep in state["endpoints"] if ep["id"] == "ep-alpha"]
    assert alpha["idleTimeout"] == 5
    assert alpha["workerList"] == [
        {
            "id": job["workerId"],
            "state": "RUNNING",
            "since": job["startedAt"],
            "startedAt": START,
            "jobIds": [job_id],
        }
    ]
    (session,) = state["sessions"]
    assert session["workerId"] == job["workerId"] and session["stoppedAt"] is None

    clock.advance(20)
    cancelled_at = clock.now()
    assert (await client.post(f"/v2/ep-alpha/cancel/{job_id}")).status_code == 200
    clock.advance(30)  # past the idle timeout: the platform stops the idle worker
    state = await _state(client)
    (job,) = [j for j in state["jobs"] if j["id"] == job_id]
    assert (job["status"], job["finishedAt"]) == ("CANCELLED", cancelled_at)
    assert state["cancelRequests"] == [
        {
            "at": cancelled_at,
            "atIso": "2026-06-15T12:00:30Z",
            "endpointId": "ep-alpha",
            "jobId": job_id,
            "status": 200,
        }
    ]
    (session,) = state["sessions"]
    assert session["stoppedAt"] == cancelled_at + 5  # the idle timeout after the cancel
    assert session["billedSeconds"] == 35  # from the worker's start to 5 s after the cancel
    assert session["usd"] == sim.session_usd(sim.sessions()[0])
    # the summary the route always had is still there
    assert {"now", "nowIso", "billedUsdTotal", "endpoints", "faults"} <= set(state)


async def test_refused_and_unknown_cancels_are_recorded_with_their_answer(
    client: httpx.AsyncClient, clock: ManualClock, rate_limits: RateLimits
) -> None:
    job_id = await _running_hung_job(client, clock)
    rate_limits.runtime_per_window["cancel"] = 0  # every cancel refused: 429
    assert (await client.post(f"/v2/ep-alpha/cancel/{job_id}")).status_code == 429
    rate_limits.runtime_per_window["cancel"] = 100
    assert (await client.post("/v2/ep-alpha/cancel/no-such-job")).status_code == 404
    records = (await _state(client))["cancelRequests"]
    assert [(r["jobId"], r["status"]) for r in records] == [(job_id, 429), ("no-such-job", 404)]
    assert (await _state(client))["jobs"][0]["status"] == "IN_PROGRESS"  # a refused cancel cancels nothing


async def test_settings_changes_through_rest_and_graphql_are_recorded(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(7)
    patched = await client.patch("/v2/serverless/ep-alpha", json={"workers": {"max": 0}, "timeout": 20_000})
    assert patched.status_code == 200
    assert (await client.patch("/v2/serverless/ep-alpha", json={"workers": {"max": 0}})).status_code == 200
    clock.advance(1)
    mutation = 'mutation { saveEndpoint(input: {id: "ep-alpha", name: "alpha", gpuIds: "AMPERE_48"}) { id } }'
    assert "errors" not in (await client.post("/graphql", json={"query": mutation})).json()
    changes = (await _state(client))["endpointChanges"]
    assert changes[0] == {
        "at": START + 7,
        "atIso": "2026-06-15T12:00:07Z",
        "endpointId": "ep-alpha",
        "via": "rest",
        "changes": {"workersMax": [3, 0], "executionTimeoutMs": [600_000, 20_000]},
    }
    assert len(changes) == 2  # the repeated PATCH changed nothing: no record
    # saveEndpoint resets the omitted fields to the server's defaults: workersMax back to 3, standby 1
    assert (changes[1]["at"], changes[1]["via"]) == (START + 8, "graphql")
    assert changes[1]["changes"] == {"workersMax": [0, 3], "workersStandby": [0, 1]}
