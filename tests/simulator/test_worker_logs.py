"""REST v2 ``GET /v2/serverless/{id}/workers/{workerId}/logs``: a worker's log as server-sent events.

OAS2 ``getWorkerLogs``: events carry ``id: <ts>/<seq>`` and a JSON ``data: {ts, source, line}``; ``source``
(container | system), ``tail`` (default 100, max 5000), ``since`` and ``Last-Event-ID`` choose the backfill.
The container lines about jobs are the runpod SDK's own: ``log.info("Started.", job_id)`` (rp_job.py) and
``log.info("Finished.", job_id)`` (rp_http.py), printed as JSON on RunPod (RUNPOD_ENDPOINT_ID set).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from runpod_sim.app import DEFAULT_API_KEY, create_app
from runpod_sim.engine import SimNotFound, SimOptions, Simulator
from runpod_sim.serve import serve_in_thread
from runpod_sim.state import SimEndpoint
from watchdog.clock import ManualClock, from_iso

START = from_iso("2026-06-15T12:00:00Z")  # the conftest clock's start
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
BASE_URL = "http://127.0.0.1:8787"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SSE_HEADERS = {"cache-control": "no-cache", "connection": "keep-alive", "x-accel-buffering": "no"}


def sdk_json(job_id: str, message: str, level: str = "INFO") -> str:
    """What runpod SDK 1.12.0 prints on RunPod (rp_logger.py: RUNPOD_ENDPOINT_ID set)."""
    return json.dumps({"requestId": job_id, "message": message, "level": level})


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events of an SSE body: ``{"id": ..., "data": {...}}`` (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or not line:
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            events.append({"id": fields.get("id"), "data": json.loads(fields["data"])})
    return events


def run_one_job(sim: Simulator, clock: ManualClock, job_input: Any) -> tuple[str, str]:
    """A job on ep-alpha's simulated worker (cold start 2 s), then the 5 s idle tail: the worker stops.
    Returns (worker id, job id)."""
    job = sim.submit("ep-alpha", job_input)
    (worker,) = sim.workers("ep-alpha")
    clock.advance(2 + 3 + 5)
    sim.sync()
    assert sim.workers("ep-alpha") == []
    return worker.id, job.id


async def test_a_stopped_workers_log_is_sent_and_the_stream_ends(
    oas: Any, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    worker_id, job_id = run_one_job(sim, clock, {"sim": {"duration_s": 3}})
    response = await client.get(f"/v2/serverless/ep-alpha/workers/{worker_id}/logs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert {k: response.headers[k] for k in SSE_HEADERS} == SSE_HEADERS
    assert "RateLimit" in response.headers
    events = parse_sse(response.text)
    for event in events:
        oas.check(event["data"], "LogEventData")
        stamp, _, seq = event["id"].partition("/")
        assert stamp == event["data"]["ts"] and len(seq) == 12 and seq.isdigit()
    lines = [(from_iso(e["data"]["ts"]) - START, e["data"]["source"], e["data"]["line"]) for e in events]
    assert lines == [
        (0, "system", "Worker initializing."),
        (2, "system", "Worker ready."),
        (2, "container", sdk_json(job_id, "Started.")),
        (5, "container", sdk_json(job_id, "Finished.")),
        (10, "system", "Worker stopped: idle timeout."),
    ]
    seqs = [int(e["id"].rsplit("/", 1)[1]) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_source_tail_since_and_last_event_id_choose_the_backfill(
    oas: Any, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    worker_id, job_id = run_one_job(sim, clock, {"sim": {"duration_s": 3}})
    url = f"/v2/serverless/ep-alpha/workers/{worker_id}/logs"

    async def lines(query: str = "", **headers: str) -> list[str]:
        response = await client.get(url + query, headers=headers)
        assert response.status_code == 200, response.text
        return [event["data"]["line"] for event in parse_sse(response.text)]

    everything = await lines()
    assert len(everything) == 5
    assert await lines("?source=container") == [sdk_json(job_id, "Started."), sdk_json(job_id, "Finished.")]
    assert await lines("?source=system&tail=1") == ["Worker stopped: idle timeout."]
    assert await lines("?tail=2") == everything[-2:]
    assert await lines("?tail=0") == []
    since = "2026-06-15T12:00:02Z"  # START + 2 s: the ready line onwards; tail is ignored
    assert await lines(f"?since={since}&tail=1") == everything[1:]
    events = parse_sse((await client.get(url)).text)
    assert await lines("?tail=1", **{"Last-Event-ID": events[1]["id"]}) == everything[2:]
    assert await lines(f"?since={since}", **{"Last-Event-ID": "2026-06-15T12:00:04Z"}) == everything[3:]

    for bad in ("?source=stdout", "?tail=5001", "?tail=-1", "?tail=x", "?since=yesterday", "?follow=1"):
        oas.problem(await client.get(url + bad), 400)
    oas.problem(await client.get(url, headers={"Last-Event-ID": "not-an-id"}), 400)
    oas.problem(await client.get("/v2/serverless/ep-alpha/workers/nobody/logs"), 404)
    oas.problem(await client.get(f"/v2/serverless/ep-ext/workers/{worker_id}/logs"), 404)  # other endpoint
    oas.problem(await client.get(f"/v2/serverless/ep-nope/workers/{worker_id}/logs"), 404)
    oas.problem(await client.post(url), 405)
    oas.problem(await client.get(url, headers={"Authorization": "Bearer wrong"}), 401)


@pytest.mark.parametrize("options", [SimOptions(worker_log_format="text")])
async def test_the_text_format_is_the_sdks_own_without_runpod_endpoint_id(
    client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    worker_id, job_id = run_one_job(sim, clock, {"sim": {"duration_s": 3, "fail": "bad input"}})
    response = await client.get(f"/v2/serverless/ep-alpha/workers/{worker_id}/logs?source=container")
    assert [e["data"]["line"] for e in parse_sse(response.text)] == [
        f"INFO   | {job_id} | Started.",
        f"ERROR  | {job_id} | Captured Handler Exception",
        f"INFO   | {job_id} | Finished.",
    ]


async def test_a_cancelled_simulated_job_logs_the_sdks_stop_lines(
    client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    job = sim.submit("ep-alpha", {"sim": {"hang": True}})
    clock.advance(3)
    sim.cancel("ep-alpha", job.id)
    (worker,) = sim.workers("ep-alpha")
    app = create_app(sim, log_stream_max_s=0)  # a live worker: backfill only, then the stream ends
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=AUTH) as http:
        response = await http.get(f"/v2/serverless/ep-alpha/workers/{worker.id}/logs?source=container")
    assert [e["data"]["line"] for e in parse_sse(response.text)] == [
        sdk_json(job.id, "Started."),
        sdk_json(job.id, "Stopping job."),
        sdk_json(job.id, "Job stopped."),
    ]


async def test_external_workers_get_started_and_finished_lines_from_the_platform(
    app: Any, client: httpx.AsyncClient, sim: Simulator
) -> None:
    first = (await client.post("/v2/ep-ext/run", json={"input": {"n": 1}})).json()["id"]
    second = (await client.post("/v2/ep-ext/run", json={"input": {"n": 2}})).json()["id"]
    transport = httpx.ASGITransport(app=app)
    worker_auth = {"Authorization": "sim-key-local-only"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=worker_auth) as worker:
        await worker.get("/v2/ep-ext/job-take-batch/pod-1?batch_size=2&job_in_progress=0")
        await worker.post(
            f"/v2/ep-ext/job-done/pod-1?job_id={second}", content='{"error": "x"}', headers=FORM
        )
        await worker.post(
            f"/v2/ep-ext/job-done/pod-1?job_id={first}",
            content='{"status": "IN_PROGRESS", "output": "half"}',  # a progress update: no line
            headers=FORM,
        )
    log, alive = sim.worker_log("ep-ext", "pod-1")
    assert alive
    assert [(line.source, line.message, line.job_id) for line in log] == [
        ("system", "Worker ready (external process).", None),
        ("container", "Started.", first),
        ("container", "Started.", second),
        ("container", "Finished.", second),
    ]


def test_logs_are_bounded_per_worker_and_in_stopped_workers_kept() -> None:
    clock = ManualClock(START)
    sim = Simulator(clock=clock, options=SimOptions(worker_log_lines=3, worker_logs_kept=1))
    sim.add_endpoint(SimEndpoint(id="ep", name="ep", cold_start_s=1, idle_timeout=1, workers_max=1))
    workers = []
    for _ in range(3):
        sim.submit("ep", {"sim": {"duration_s": 1}})
        workers.append(sim.workers("ep")[0].id)
        clock.advance(10)
        sim.sync()
    lines, alive = sim.worker_log("ep", workers[-1])
    assert not alive
    assert [line.message for line in lines] == ["Started.", "Finished.", "Worker stopped: idle timeout."]
    with pytest.raises(SimNotFound):
        sim.worker_log("ep", workers[0])  # only the most recently stopped worker's log is kept


def test_a_live_stream_follows_the_worker_and_ends_when_it_stops(sim: Simulator, clock: ManualClock) -> None:
    job = sim.submit("ep-alpha", {"sim": {"duration_s": 3}})
    (worker,) = sim.workers("ep-alpha")
    received: list[dict[str, Any]] = []
    ended = threading.Event()
    with serve_in_thread(sim, log_poll_s=0.02) as base_url:

        def follow() -> None:
            url = f"{base_url}/v2/serverless/ep-alpha/workers/{worker.id}/logs?source=container"
            with httpx.stream("GET", url, headers=AUTH, timeout=10) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        received.append(json.loads(line.removeprefix("data: ")))
            ended.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 5
            while len(received) < count and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(received) >= count, received

        time.sleep(0.2)
        assert received == [] and not ended.is_set()  # nothing yet: the worker is still initializing
        clock.advance(2)
        wait_for(1)
        assert received[0]["line"] == sdk_json(job.id, "Started.")
        clock.advance(3)
        wait_for(2)
        assert received[1]["line"] == sdk_json(job.id, "Finished.")
        assert not ended.is_set()  # idle, still alive
        clock.advance(5)  # the idle timeout stops it: the stream ends
        assert ended.wait(5)
        reader.join(5)
    assert len(received) == 2
