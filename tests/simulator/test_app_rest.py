"""REST v2 (api.runpod.io/v2/serverless, /v2/billing/serverless) against RunPod's OpenAPI contract."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from runpod_sim.app import RateLimits, create_app
from runpod_sim.engine import Simulator
from runpod_sim.registry import SCENARIOS, build_simulator
from runpod_sim.serialize import validate_update_endpoint
from watchdog.clock import ManualClock, from_iso, to_iso


async def test_list_endpoints_matches_contract_and_wraps_the_list(
    oas: Any, client: httpx.AsyncClient, base_url: str
) -> None:
    response = await client.get("/v2/serverless")
    assert response.status_code == 200
    body = response.json()
    oas.check(body, "ListEndpointsResponse")
    by_id = {ep["id"]: ep for ep in body["endpoints"]}
    assert set(by_id) == {"ep-alpha", "ep-ext"}
    alpha = by_id["ep-alpha"]
    assert alpha["workers"] == {"min": 0, "max": 3, "idleTimeout": 5}
    assert alpha["gpu"]["pools"] == ["AMPERE_48"]
    assert alpha["scaling"] == {"type": "QUEUE_DELAY", "queueDelay": 4.0}
    assert alpha["timeout"] == 600_000
    assert alpha["env"] == {"MODEL": "sannu"}
    assert alpha["requestUrls"]["run"] == f"{base_url}/v2/ep-alpha/run"
    assert alpha["requestUrls"]["status"] == f"{base_url}/v2/ep-alpha/status/{{job_id}}"
    assert alpha["createdAt"] == to_iso(from_iso("2026-06-14T12:00:00Z"))
    # IETF draft rate-limit headers on every authenticated answer
    assert response.headers["RateLimit"] == '"minute";r=59;t=' + response.headers["RateLimit"].split("t=")[1]
    assert response.headers["RateLimit-Policy"] == '"minute";q=60;w=60'


async def test_get_endpoint_and_unknown_id(oas: Any, client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/serverless/ep-alpha")
    assert response.status_code == 200
    oas.check(response.json(), "Endpoint")
    assert response.json()["name"] == "alpha"
    missing = await client.get("/v2/serverless/ep-nope")
    oas.problem(missing, 404)


async def test_patch_is_sparse_and_honours_explicit_zero(
    oas: Any, client: httpx.AsyncClient, sim: Simulator
) -> None:
    response = await client.patch("/v2/serverless/ep-alpha", json={"workers": {"max": 0}})
    assert response.status_code == 200, response.text
    body = response.json()
    oas.check(body, "Endpoint")
    assert body["workers"] == {"min": 0, "max": 0, "idleTimeout": 5}
    assert sim.endpoint("ep-alpha").workers_max == 0
    # untouched fields stay as they were
    assert body["name"] == "alpha" and body["scaling"]["queueDelay"] == 4.0 and body["timeout"] == 600_000


async def test_patch_timeout_zero_means_no_timeout(
    oas: Any, client: httpx.AsyncClient, sim: Simulator
) -> None:
    response = await client.patch("/v2/serverless/ep-alpha", json={"timeout": 0})
    assert response.status_code == 200
    assert response.json()["timeout"] == 0
    assert not sim.endpoint("ep-alpha").execution_timeout_ms


async def test_patch_request_count_scaling_omits_idle_timeout(
    oas: Any, client: httpx.AsyncClient, sim: Simulator
) -> None:
    response = await client.patch(
        "/v2/serverless/ep-alpha",
        json={"scaling": {"type": "REQUEST_COUNT", "requestCount": 2}, "workers": {"min": 0, "max": 2}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    oas.check(body, "Endpoint")
    assert body["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 2}
    assert "idleTimeout" not in body["workers"]
    assert sim.endpoint("ep-alpha").scaler_type == "REQUEST_COUNT"
    refused = await client.patch("/v2/serverless/ep-alpha", json={"workers": {"idleTimeout": 9}})
    oas.problem(refused, 400)


async def test_patch_unknown_key_is_422_with_errors(
    oas: Any, client: httpx.AsyncClient, sim: Simulator
) -> None:
    response = await client.patch("/v2/serverless/ep-alpha", json={"workersMax": 0, "workers": {"max": 1}})
    body = oas.problem(response, 422)
    assert any("workersMax" in error for error in body["errors"])
    assert sim.endpoint("ep-alpha").workers_max == 3  # nothing applied


async def test_patch_semantic_conflict_is_400(oas: Any, client: httpx.AsyncClient) -> None:
    response = await client.patch("/v2/serverless/ep-alpha", json={"workers": {"min": 3, "max": 1}})
    oas.problem(response, 400)


async def test_patch_bad_json_is_400(oas: Any, client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/v2/serverless/ep-alpha", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    oas.problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"workers": {"max": 0}},
        {"workers": {"min": 0, "max": 5, "idleTimeout": 3600}},
        {"workers": {"idleTimeout": 0}},
        {"workers": {"idleTimeout": 3601}},
        {"workers": {"max": -1}},
        {"workers": {"max": 1.5}},
        {"workers": {"max": True}},
        {"workers": {"maximum": 2}},
        {"scaling": {"type": "QUEUE_DELAY", "queueDelay": 0.5}},
        {"scaling": {"type": "QUEUE_DELAY", "queueDelay": 0.4}},
        {"scaling": {"type": "QUEUE_DELAY"}},
        {"scaling": {"type": "REQUEST_COUNT", "requestCount": 1}},
        {"scaling": {"type": "REQUEST_COUNT", "requestCount": 0}},
        {"scaling": {"type": "REQUEST_COUNT", "queueDelay": 3}},
        {"scaling": {"type": "SOMETHING", "requestCount": 3}},
        {"timeout": 0},
        {"timeout": "600"},
        {"flashboot": "FLASHBOOT"},
        {"flashboot": "ON"},
        {"name": ""},
        {"name": "renamed"},
        {"gpu": {"pools": ["ADA_24"], "count": 1}},
        {"gpu": {"pools": []}},
        {"gpu": {"excludedTypes": ["NVIDIA L40"]}},
        {"gpu": {"pools": ["ADA_48_PRO"], "excludedTypes": ["NVIDIA L40"]}},
        {"gpu": {"pools": ["ADA_48_PRO"], "excludedTypes": ["-NVIDIA L40"]}},
        {"gpu": {"allowedCudaVersions": ["12.1"], "minCudaVersion": ""}},
        {"gpu": {"allowedCudaVersions": ["twelve"]}},
        {"gpu": {"count": 0}},
        {"gpu": {"pool": ["ADA_24"]}},
        {"dataCenterIds": ["US-TX-3"], "networkVolumes": []},
        {"dataCenterIds": "US-TX-3"},
        {"env": {"A": "1"}},
        {"env": {"A": 1}},
        {"disk": 0},
        {"registry": None, "image": "x", "args": "", "ports": ["80/http"]},
        {"bogus": 1},
        [],
    ],
)
def test_patch_validator_agrees_with_the_openapi_schema(oas: Any, body: object) -> None:
    assert (validate_update_endpoint(body) == []) == oas.accepts(body, "UpdateEndpointRequest")


async def test_workers_listing_rolls_up_exactly(
    oas: Any, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    for _ in range(2):
        run = await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 30}}})
        assert run.status_code == 200
    clock.advance(5)
    response = await client.get("/v2/serverless/ep-alpha/workers")
    assert response.status_code == 200
    body = response.json()
    oas.check(body, "ListEndpointWorkersResponse")
    assert body["workers"], "two queued jobs must have woken workers"
    summary = body["summary"]
    assert summary["total"] == len(body["workers"])
    for state in ("running", "idle", "initializing", "throttled", "unhealthy"):
        assert summary[state] == sum(1 for w in body["workers"] if w["status"] == state.upper())
    assert body["endpointVersion"] == sim.endpoint("ep-alpha").version
    assert {w["id"] for w in body["workers"]} == {w.id for w in sim.workers("ep-alpha")}
    oas.problem(await client.get("/v2/serverless/ep-nope/workers"), 404)


async def test_workers_started_at_uptime_and_running_status(
    oas: Any, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    """startedAt is when the worker last started, uptimeSeconds counts from it, and the status is RUNNING
    exactly while a job runs, for simulated and external (real SDK) workers alike."""
    start = clock.now()

    async def listed(endpoint_id: str) -> list[tuple[str, str, int | None]]:
        body = (await client.get(f"/v2/serverless/{endpoint_id}/workers")).json()
        oas.check(body, "ListEndpointWorkersResponse")
        return [(w["status"], w["startedAt"], w["uptimeSeconds"]) for w in body["workers"]]

    await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 30}}})
    assert await listed("ep-alpha") == [("INITIALIZING", to_iso(start), 0)]
    clock.advance(2)  # the cold start ends: the worker takes the job
    assert await listed("ep-alpha") == [("RUNNING", to_iso(start), 2)]
    clock.advance(29.5)
    assert await listed("ep-alpha") == [("RUNNING", to_iso(start), 31)]
    clock.advance(0.5)
    assert await listed("ep-alpha") == [("IDLE", to_iso(start), 32)]

    job = (await client.post("/v2/ep-ext/run", json={"input": {}})).json()["id"]
    clock.advance(8)  # an external worker's first contact is its start
    assert sim.take_job("ep-ext", "pod-1", job_in_progress=False) is not None
    assert await listed("ep-ext") == [("RUNNING", to_iso(start + 40), 0)]
    clock.advance(3)
    sim.job_done("ep-ext", "pod-1", job, {"output": 1}, is_stream=False)
    assert await listed("ep-ext") == [("IDLE", to_iso(start + 40), 3)]
    clock.advance(5)  # idle timeout: stopped, no longer listed
    assert await listed("ep-ext") == []
    clock.advance(100)
    await client.post("/v2/ep-ext/run", json={"input": {}})
    assert sim.take_job("ep-ext", "pod-1", job_in_progress=False) is not None  # started again
    assert await listed("ep-ext") == [("RUNNING", to_iso(start + 148), 0)]


async def test_billing_records_totals_and_snapping(
    oas: Any, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 20}}})
    clock.advance(3 * 3600)
    response = await client.get("/v2/billing/serverless", params={"bucketSize": "hour"})
    assert response.status_code == 200
    body = response.json()
    oas.check(body, "ListServerlessBillingResponse")
    assert body["records"], "a job ran, so there is usage"
    totals = body["metadata"]["totals"]
    assert math.isclose(totals["totalAmount"], sum(r["totalAmount"] for r in body["records"]), abs_tol=1e-12)
    assert math.isclose(totals["totalAmount"], sim.billed_usd_total(), rel_tol=1e-9, abs_tol=1e-9)
    assert body["metadata"]["recordCount"] == len(body["records"])
    assert body["metadata"]["uniqueServerlessCount"] == 1
    query = body["metadata"]["query"]
    now = clock.now()
    assert query["bucketSize"] == "hour"
    assert query["startTime"] == to_iso(now - 30 * 86_400 - (now - 30 * 86_400) % 3600)
    assert from_iso(query["endTime"]) == now  # now (15:00) is on an hour boundary: not widened
    assert query["serverlessId"] is None


async def test_billing_defaults_last_n_filter_and_errors(
    oas: Any, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    default = (await client.get("/v2/billing/serverless")).json()
    oas.check(default, "ListServerlessBillingResponse")
    assert default["metadata"]["query"]["bucketSize"] == "day"
    assert default["metadata"]["query"]["startTime"] == "2026-05-16T00:00:00Z"
    assert default["metadata"]["query"]["endTime"] == "2026-06-16T00:00:00Z"  # 12:00 snapped UP

    last = (await client.get("/v2/billing/serverless", params={"lastN": 3, "bucketSize": "day"})).json()
    assert last["metadata"]["query"]["startTime"] == "2026-06-13T00:00:00Z"
    assert last["metadata"]["query"]["endTime"] == "2026-06-16T00:00:00Z"

    month = (await client.get("/v2/billing/serverless", params={"lastN": 2, "bucketSize": "month"})).json()
    oas.check(month, "ListServerlessBillingResponse")
    assert month["metadata"]["query"]["startTime"] == "2026-05-01T00:00:00Z"
    assert month["metadata"]["query"]["endTime"] == "2026-07-01T00:00:00Z"

    week = (await client.get("/v2/billing/serverless", params={"lastN": 1, "bucketSize": "week"})).json()
    assert week["metadata"]["query"]["startTime"] == "2026-06-15T00:00:00Z"  # a Monday

    filtered = (await client.get("/v2/billing/serverless", params={"serverlessId": "ep-ext"})).json()
    assert filtered["metadata"]["query"]["serverlessId"] == "ep-ext"
    assert all(r["serverlessId"] == "ep-ext" for r in filtered["records"])

    for params in (
        {"bucketSize": "minute"},
        {"startTime": "yesterday"},
        {"lastN": 0},
        {"lastN": 2, "startTime": "2026-06-01T00:00:00Z"},
        {"startTime": "2026-06-10T00:00:00Z", "endTime": "2026-06-01T00:00:00Z"},
    ):
        oas.problem(await client.get("/v2/billing/serverless", params=params), 400)


async def test_reserved_v2_prefixes_are_rest_not_runtime(oas: Any, client: httpx.AsyncClient) -> None:
    for path in (
        "/v2/pods",
        "/v2/pods/abc/action",
        "/v2/templates",
        "/v2/billing/endpoints",
        "/v2/catalog/gpus",
    ):
        oas.problem(await client.get(path), 404)
    oas.problem(await client.post("/v2/serverless"), 405)


async def test_bad_key_is_401_problem(oas: Any, client: httpx.AsyncClient, app: Any, base_url: str) -> None:
    oas.problem(await client.get("/v2/serverless", headers={"Authorization": "Bearer wrong"}), 401)
    raw = await client.get("/v2/serverless", headers={"Authorization": "sim-key-local-only"})
    oas.problem(raw, 401)  # REST v2 is bearer only
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
    async with bare:
        oas.problem(await bare.get("/v2/serverless/ep-alpha"), 401)


@pytest.mark.parametrize("rate_limits", [RateLimits(rest_per_window=3)])
async def test_rest_quota_429_problem_with_retry_after(oas: Any, client: httpx.AsyncClient) -> None:
    remaining = []
    for _ in range(3):
        response = await client.get("/v2/serverless")
        assert response.status_code == 200
        remaining.append(response.headers["RateLimit"].split(";")[1])
    assert remaining == ["r=2", "r=1", "r=0"]
    limited = await client.get("/v2/serverless")
    body = oas.problem(limited, 429)
    assert body["detail"] == "rate limit exceeded for the minute window"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Policy"] == '"minute";q=3;w=60'


@pytest.mark.parametrize("scenario", [*sorted(SCENARIOS), "fleet-1000"])
async def test_every_scenario_serves_contract_valid_rest(oas: Any, scenario: str, base_url: str) -> None:
    """Answer shapes only. The REST quota is not what this test checks (test_rest_quota_429_problem_with_
    retry_after does): it is set above the calls the test makes (one list, one workers list per endpoint,
    one billing read), which for a big fleet is more than any fixed limit it had (fleet-1000: 1,002 calls
    against 1,000 failed whenever the test did not straddle a real minute boundary)."""
    clock = ManualClock(start=from_iso("2026-06-15T12:00:00Z"))
    sim = build_simulator(scenario, clock=clock, seed=1)
    clock.advance(1800)
    calls = 1 + len(sim.endpoints()) + 1
    app = create_app(sim, rate_limits=RateLimits(rest_per_window=calls))
    headers = {"Authorization": "Bearer sim-key-local-only"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=base_url, headers=headers
    ) as http:
        listed = (await http.get("/v2/serverless")).json()
        oas.check(listed, "ListEndpointsResponse")
        assert listed["endpoints"]
        for endpoint in listed["endpoints"]:
            workers = (await http.get(f"/v2/serverless/{endpoint['id']}/workers")).json()
            oas.check(workers, "ListEndpointWorkersResponse")
            assert workers["summary"]["total"] == len(workers["workers"])
        billing = (
            await http.get("/v2/billing/serverless", params={"bucketSize": "hour", "lastN": 48})
        ).json()
        oas.check(billing, "ListServerlessBillingResponse")
