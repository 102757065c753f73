"""Injected faults: 5xx and 429 bursts, slow answers, malformed bodies, an expired key, and the
simulator-only control routes that flip them from another process."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from runpod_sim.faults import Faults


async def test_next_n_5xx_on_a_route_pattern_in_each_api_shape(
    client: httpx.AsyncClient, faults: Faults, oas: Any
) -> None:
    faults.fail_next(2, "/v2/*/health", status=502)
    first = await client.get("/v2/ep-alpha/health")
    assert first.status_code == 502 and set(first.json()) == {"error"}
    assert (await client.get("/v2/ep-ext/health")).status_code == 502
    assert (await client.get("/v2/ep-alpha/health")).status_code == 200  # spent
    assert (await client.get("/v2/serverless")).status_code == 200  # never matched

    faults.fail_next(1, "/v2/serverless*")
    oas.problem(await client.get("/v2/serverless"), 503)
    faults.fail_next(1, "/graphql")
    gql = await client.post("/graphql", json={"query": "{ myself { id } }"})
    assert gql.status_code == 503 and gql.json()["errors"][0]["message"] and gql.json()["data"] is None


async def test_next_n_429_with_retry_after(client: httpx.AsyncClient, faults: Faults) -> None:
    faults.rate_limit_next(1, "/v2/*/status/*", retry_after_s=2.5)
    job_id = (await client.post("/v2/ep-alpha/run", json={"input": {}})).json()["id"]
    limited = await client.get(f"/v2/ep-alpha/status/{job_id}")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert (await client.get(f"/v2/ep-alpha/status/{job_id}")).status_code == 200


async def test_slow_answers(client: httpx.AsyncClient, faults: Faults) -> None:
    faults.slow(0.3, "/v2/*/health", count=1)
    started = time.monotonic()
    assert (await client.get("/v2/ep-alpha/health")).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await client.get("/v2/ep-alpha/health")
    assert time.monotonic() - started < 0.3


async def test_malformed_bodies(client: httpx.AsyncClient, faults: Faults) -> None:
    faults.malformed_next(1, "/v2/*/health", mode="invalid_json")
    broken = await client.get("/v2/ep-alpha/health")
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)
    faults.malformed_next(1, "/v2/serverless", mode="wrong_shape")
    shaped = await client.get("/v2/serverless")
    assert isinstance(shaped.json(), list) and "endpoints" in shaped.json()[0]
    assert isinstance((await client.get("/v2/serverless")).json(), dict)


async def test_expired_key_is_401_on_every_host(client: httpx.AsyncClient, faults: Faults, oas: Any) -> None:
    faults.expire_key()
    oas.problem(await client.get("/v2/serverless"), 401)
    assert (await client.post("/graphql", json={"query": "{ myself { id } }"})).status_code == 401
    assert (await client.get("/v2/ep-alpha/health")).status_code == 401
    assert (
        await client.get("/v2/ep-ext/ping/w1", headers={"Authorization": "sim-key-local-only"})
    ).status_code == 401
    faults.expire_key(False)
    assert (await client.get("/v2/ep-alpha/health")).status_code == 200


async def test_control_routes_flip_faults_over_http(client: httpx.AsyncClient, faults: Faults) -> None:
    command = {
        "add": [{"kind": "error", "pattern": "/v2/*/run", "count": 1, "status": 500}],
        "keyExpired": False,
    }
    applied = await client.post("/_sim/faults", json=command)
    assert applied.status_code == 200
    assert applied.json()["rules"][0]["kind"] == "error"
    assert (await client.post("/v2/ep-alpha/run", json={"input": {}})).status_code == 500
    assert (await client.get("/_sim/faults")).json()["rules"] == []
    assert (await client.post("/_sim/faults", json={"add": [{"kind": "explode"}]})).status_code == 400
    assert (await client.post("/_sim/faults", json={"keyExpired": True})).status_code == 200
    assert faults.key_expired
    assert (await client.get("/v2/ep-alpha/health")).status_code == 401
    # control routes stay reachable with an expired key, and clear resets it
    assert (await client.post("/_sim/faults", json={"clear": True})).json() == {
        "keyExpired": False,
        "rules": [],
    }
    state = (await client.get("/_sim/state")).json()
    assert {ep["id"] for ep in state["endpoints"]} == {"ep-alpha", "ep-ext"}
    assert state["nowIso"] == "2026-06-15T12:00:00Z"
    advanced = await client.post("/_sim/advance", json={"seconds": 60})
    assert advanced.json()["nowIso"] == "2026-06-15T12:01:00Z"
