"""Job webhooks: ``"webhook": url`` on /run is POSTed the job's /status body when the job ends.

RunPod (runpod-api.md §4.3, "Additions"): the same body as /status, FAILED too; a 200 is expected, else it
"retries up to 2 more times with a 10-second delay". The simulator only ever calls loopback URLs.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from runpod_sim.engine import SimInvalid, SimOptions, Simulator
from runpod_sim.state import JobPolicy
from runpod_sim.webhooks import webhook_url_problem
from tests.simulator.webhook_receiver import WebhookReceiver
from watchdog.clock import ManualClock

FAST_RETRIES = SimOptions(webhook_retry_delay_s=0.2, webhook_timeout_s=2)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("options", [FAST_RETRIES])
async def test_completed_and_failed_jobs_post_their_status_body(
    client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    with WebhookReceiver() as hook:
        done = await client.post(
            "/v2/ep-alpha/run",
            json={"input": {"sim": {"duration_s": 3}}, "webhook": f"{hook.url}/done?token=abc"},
        )
        failed = await client.post(
            "/v2/ep-alpha/run",
            json={"input": {"sim": {"duration_s": 1, "fail": "bad input"}}, "webhook": f"{hook.url}/failed"},
        )
        assert done.status_code == failed.status_code == 200
        assert hook.calls == []  # nothing until a job ends
        clock.advance(10)  # the first worker runs `done` at 2-5 s, a second one (queue delay 4 s) `failed`
        sim.sync()
        (done_body,) = hook.wait_for(1, path="/done?token=abc")
        (failed_body,) = hook.wait_for(1, path="/failed")
        done_status = (await client.get(f"/v2/ep-alpha/status/{done.json()['id']}")).json()
        failed_status = (await client.get(f"/v2/ep-alpha/status/{failed.json()['id']}")).json()
        assert done_body == done_status and done_body["status"] == "COMPLETED"
        assert done_body["output"] == {"echo": {"sim": {"duration_s": 3}}}
        assert failed_body == failed_status and failed_body["status"] == "FAILED"
        assert failed_body["error"] == "bad input" and failed_body["executionTime"] == 1000
        call = hook.calls[0]
        assert call.headers["Content-Type"] == "application/json"
    assert len(hook.calls) == 2
    attempts = sim.webhooks.attempts_for(done.json()["id"])
    assert [(a.attempt, a.status, a.delivered) for a in attempts] == [(1, 200, True)]


@pytest.mark.parametrize("options", [FAST_RETRIES])
async def test_a_refused_delivery_is_retried_twice_more_then_dropped(
    client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    with WebhookReceiver(statuses=[500, 404, 503, 200]) as hook:
        job_id = (
            await client.post(
                "/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 1}}, "webhook": hook.url + "/h"}
            )
        ).json()["id"]
        clock.advance(3)
        sim.sync()
        bodies = hook.wait_for(3)
        assert sim.webhooks.wait_idle(5)
        assert len(hook.calls) == 3  # the 4th answer (200) is never asked for: 1 + 2 retries
        assert all(body == bodies[0] for body in bodies) and bodies[0]["id"] == job_id
        gaps = [b.at - a.at for a, b in zip(hook.calls, hook.calls[1:], strict=False)]
        assert all(gap >= 0.19 for gap in gaps), gaps  # webhook_retry_delay_s apart (RunPod: 10 s)
    attempts = sim.webhooks.attempts_for(job_id)
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 404), (3, 503)]


@pytest.mark.parametrize("options", [FAST_RETRIES])
async def test_an_unreachable_receiver_is_retried_and_recorded(
    client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    with WebhookReceiver() as hook:
        gone = hook.url
    await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 1}}, "webhook": gone})
    clock.advance(3)
    sim.sync()
    assert sim.webhooks.wait_idle(10)
    (record,) = {a.job_id for a in sim.webhooks.records}
    attempts = sim.webhooks.attempts_for(record)
    assert len(attempts) == 3 and all(a.status is None and a.error for a in attempts)


@pytest.mark.parametrize("options", [FAST_RETRIES])
async def test_timed_out_and_cancelled_jobs_call_it_ttl_deleted_ones_do_not(
    client: httpx.AsyncClient, sim: Simulator, clock: ManualClock, app: Any
) -> None:
    with WebhookReceiver() as hook:
        sim.update_endpoint("ep-alpha", {"workers_max": 3})
        timed = sim.submit(
            "ep-alpha", {"sim": {"hang": True}}, policy=JobPolicy(execution_timeout_ms=5000), webhook=hook.url
        )
        cancelled = sim.submit("ep-alpha", {"sim": {"hang": True}}, webhook=hook.url)
        expired = sim.submit(
            "ep-alpha", {"sim": {"hang": True}}, policy=JobPolicy(ttl_ms=10_000), webhook=hook.url
        )
        clock.advance(3)
        sim.cancel("ep-alpha", cancelled.id)
        clock.advance(20)
        sim.sync()
        bodies = hook.wait_for(2)
        assert sim.webhooks.wait_idle(5)
    assert sorted((b["id"], b["status"]) for b in bodies) == sorted(
        [(timed.id, "TIMED_OUT"), (cancelled.id, "CANCELLED")]
    )
    assert expired.id not in {b["id"] for b in hook.bodies()}  # deleted by its TTL: it never ended


async def test_only_loopback_webhooks_are_accepted(client: httpx.AsyncClient, sim: Simulator) -> None:
    for url in (
        "https://hooks.example.org/runpod",
        "http://10.0.0.8/hook",
        "http://0.0.0.0:9000/",
        "http://user:pw@127.0.0.1/",
        "ftp://127.0.0.1/x",
        "127.0.0.1:9000",
        "",
        42,
    ):
        response = await client.post("/v2/ep-alpha/run", json={"input": {}, "webhook": url})
        assert response.status_code == 400, url
        assert "webhook" in response.json()["error"]
    assert sim.health("ep-alpha").in_queue == 0  # nothing was queued
    with pytest.raises(SimInvalid):
        sim.submit("ep-alpha", {}, webhook="http://192.168.1.1/")
    for url in (
        "http://127.0.0.1:8080/h",
        "http://[::1]:9/x",
        "https://127.9.9.9/a?b=c",
        "http://localhost/h",
    ):
        assert webhook_url_problem(url) is None, url


@pytest.mark.parametrize("options", [FAST_RETRIES])
def test_close_stops_the_dispatcher(sim: Simulator, clock: ManualClock) -> None:
    with WebhookReceiver() as hook:
        sim.submit("ep-alpha", {"sim": {"duration_s": 1}}, webhook=hook.url)
        clock.advance(3)
        sim.sync()
        hook.wait_for(1)
    dispatcher = sim.webhooks
    sim.close()
    assert dispatcher.pending() == 0
    assert json.dumps(hook.bodies()[0])  # a JSON document was delivered
