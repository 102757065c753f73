"""GraphQL (api.runpod.io/graphql): the SDK's literal queries, variables, enum literals, reset semantics."""

from __future__ import annotations

from typing import Any

import httpx

from runpod_sim.engine import Simulator

SDK_GET_ENDPOINTS = (
    "query { myself { endpoints { aiKey gpuIds id idleTimeout name networkVolumeId locations scalerType "
    "scalerValue templateId type userId version workersMax workersMin workersStandby gpuCount env { key value } "
    "createdAt networkVolume { id dataCenterId } } } }"
)


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return await client.post("/graphql", json=payload)


async def test_sdk_get_endpoints_query_text(client: httpx.AsyncClient) -> None:
    response = await gql(client, SDK_GET_ENDPOINTS)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    endpoints = {ep["id"]: ep for ep in body["data"]["myself"]["endpoints"]}
    alpha = endpoints["ep-alpha"]
    assert alpha == {
        "aiKey": None,
        "gpuIds": "AMPERE_48",
        "id": "ep-alpha",
        "idleTimeout": 5,
        "name": "alpha",
        "networkVolumeId": None,
        "locations": "",
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "templateId": "tpl-sim",
        "type": "QB",
        "userId": "user-sim",
        "version": 1,
        "workersMax": 3,
        "workersMin": 0,
        "workersStandby": 0,
        "gpuCount": 1,
        "env": [{"key": "MODEL", "value": "sannu"}],
        "createdAt": "2026-06-14T12:00:00Z",
        "networkVolume": None,
    }


async def test_account_fields_and_pods(client: httpx.AsyncClient, sim: Simulator) -> None:
    await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 60}}})
    query = (
        "{ myself { clientBalance currentSpendPerHr spendLimit serverlessDiscount { discountFactor } "
        "endpoints { id executionTimeoutMs flashBootType workersPFBTarget computeType "
        "pods { id desiredStatus lastStatusChange costPerHr machine { gpuDisplayName location } } } } }"
    )
    body = (await gql(client, query)).json()
    assert "errors" not in body, body
    myself = body["data"]["myself"]
    assert myself["clientBalance"] == sim.account.client_balance_usd
    assert myself["spendLimit"] == sim.account.spend_limit_usd
    assert myself["currentSpendPerHr"] == sim.current_spend_per_hr()
    alpha = next(ep for ep in myself["endpoints"] if ep["id"] == "ep-alpha")
    assert alpha["executionTimeoutMs"] == 600_000
    assert alpha["flashBootType"] == "OFF"
    assert alpha["workersPFBTarget"] is None
    assert {pod["id"] for pod in alpha["pods"]} == {w.id for w in sim.workers("ep-alpha")}
    assert alpha["pods"], "a queued job wakes a worker"
    assert all(pod["desiredStatus"] == "RUNNING" for pod in alpha["pods"])


async def test_save_endpoint_with_variables_creates(client: httpx.AsyncClient, sim: Simulator) -> None:
    mutation = (
        "mutation Save($input: EndpointInput!) { saveEndpoint(input: $input) "
        "{ id name gpuIds workersMax idleTimeout executionTimeoutMs flashBootType } }"
    )
    variables = {
        "input": {
            "name": "beta",
            "templateId": "tpl-beta",
            "gpuIds": "ADA_24",
            "workersMax": 2,
            "executionTimeoutMs": 120000,
            "flashBootType": "FLASHBOOT",
        }
    }
    body = (await gql(client, mutation, variables)).json()
    assert "errors" not in body, body
    created = body["data"]["saveEndpoint"]
    assert created["name"] == "beta" and created["gpuIds"] == "ADA_24"
    assert created["workersMax"] == 2 and created["flashBootType"] == "FLASHBOOT"
    stored = sim.endpoint(created["id"])
    assert stored.execution_timeout_ms == 120_000 and stored.flashboot == "FLASHBOOT"


async def test_save_endpoint_inline_literals_reset_omitted_fields(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    sim.update_endpoint("ep-alpha", {"workers_max": 7, "idle_timeout": 42, "scaler_value": 9})
    mutation = (
        'mutation { saveEndpoint(input: {id: "ep-alpha", name: "alpha", gpuIds: "AMPERE_48", '
        "flashBootType: FLASHBOOT}) { id workersMax idleTimeout scalerValue workersStandby flashBootType } }"
    )
    body = (await gql(client, mutation)).json()
    assert "errors" not in body, body
    saved = body["data"]["saveEndpoint"]
    defaults = sim.options.saveendpoint_defaults
    assert saved["workersMax"] == defaults["workers_max"] == 3
    assert saved["idleTimeout"] == defaults["idle_timeout"]
    assert saved["scalerValue"] == defaults["scaler_value"]
    assert saved["workersStandby"] == defaults["workers_standby"]
    assert saved["flashBootType"] == "FLASHBOOT"
    assert sim.endpoint("ep-alpha").template_id == "tpl-sim"  # not in the reset list: kept


async def test_delete_endpoint_refuses_until_scaled_to_zero(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    refused = await gql(client, 'mutation { deleteEndpoint(id: "ep-alpha") }')
    assert refused.status_code == 200
    assert refused.json()["errors"][0]["message"]
    assert refused.json()["data"] == {"deleteEndpoint": None}
    assert sim.endpoint("ep-alpha")  # still there
    sim.update_endpoint("ep-alpha", {"workers_min": 0, "workers_max": 0})
    deleted = await gql(client, 'mutation { deleteEndpoint(id: "ep-alpha") }')
    assert deleted.json() == {"data": {"deleteEndpoint": None}}
    ids = [
        ep["id"]
        for ep in (await gql(client, "{ myself { endpoints { id } } }")).json()["data"]["myself"]["endpoints"]
    ]
    assert "ep-alpha" not in ids


async def test_request_errors_are_400(client: httpx.AsyncClient) -> None:
    unknown_field = await gql(client, "{ myself { endpoints { id workersMaximum } } }")
    assert unknown_field.status_code == 400
    assert "workersMaximum" in unknown_field.json()["errors"][0]["message"]
    syntax = await gql(client, "{ myself { endpoints { id ")
    assert syntax.status_code == 400 and syntax.json()["errors"]
    wrong_enum = await gql(
        client, 'mutation { saveEndpoint(input: {name: "x", flashBootType: TURBO}) { id } }'
    )
    assert wrong_enum.status_code == 400
    bad_variable = await gql(
        client,
        "mutation($input: EndpointInput!) { saveEndpoint(input: $input) { id } }",
        {"input": {"workersMax": "x"}},
    )
    assert bad_variable.status_code == 400 and bad_variable.json()["data"] is None
    introspection = await gql(client, "{ __schema { types { name } } }")
    assert introspection.status_code == 400  # disabled in production too
    no_query = await client.post("/graphql", json={"variables": {}})
    assert no_query.status_code == 400


async def test_graphql_auth_forms(client: httpx.AsyncClient, app: Any, base_url: str) -> None:
    query = {"query": "{ myself { id } }"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as bare:
        by_query = await bare.post("/graphql", params={"api_key": "sim-key-local-only"}, json=query)
        assert by_query.status_code == 200 and by_query.json()["data"]["myself"]["id"]
        for headers, params in (
            ({}, {}),
            ({"Authorization": "Bearer nope"}, {}),
            ({}, {"api_key": "nope"}),
            ({"Authorization": "sim-key-local-only"}, {}),  # raw key: runtime and worker side only
        ):
            refused = await bare.post("/graphql", headers=headers, params=params, json=query)
            assert refused.status_code == 401
            assert refused.json()["data"] is None and refused.json()["errors"][0]["message"]
    assert (await client.get("/graphql")).status_code == 405


async def test_retired_graphql_answers_410_gone_for_everyone(
    oas: Any, client: httpx.AsyncClient, sim: Simulator
) -> None:
    """``SimOptions.graphql_enabled = False`` (RunPod retires GraphQL in early 2027): 410 Gone with an
    RFC 9457 problem body, before auth (the route is gone), while REST v2 and the runtime keep working."""
    assert (await gql(client, "{ myself { clientBalance } }")).status_code == 200
    sim.options.graphql_enabled = False
    for response in (
        await gql(client, "{ myself { clientBalance } }"),
        await client.post("/graphql", json={"query": "{ myself { id } }"}, headers={"Authorization": "x"}),
        await client.get("/graphql"),
        await client.post("/graphql?api_key=sim-key-local-only", content=b"not json"),
    ):
        body = oas.problem(response, 410)
        assert body["title"] == "Gone" and "retired" in body["detail"] and "REST API v2" in body["detail"]
        assert "data" not in body
    assert (await client.get("/v2/serverless")).status_code == 200
    assert (await client.get("/v2/ep-alpha/health")).status_code == 200
    sim.options.graphql_enabled = True
    assert (await gql(client, "{ myself { clientBalance } }")).status_code == 200
