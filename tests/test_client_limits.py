"""``RunPodClient.account_limits``: REST v2 ``GET /v2/account/limits`` against fake transports.

WHY: the spend-rate cap is RunPod's own brake (checked only when a worker starts), so the daemon wants it
beside its own budget. RunPod documented the route (2026-11-18) as two required members that are objects,
without their fields; the simulator reads ``{"limit", "current"}``. So the parser is tested on every
example the contracts hold for the route, on the simulator's shape, and on the plausible other readings
(a bare number, members missing or null), and anything else must be a protocol error naming the field.
The simulator-backed test is in tests/test_client_simulator.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from watchdog.client import RunPodClient
from watchdog.errors import RunPodNotFound, RunPodProtocolError
from watchdog.models import AccountLimits

API_KEY = "rpa_LIMITSECRET_3f9a2c7e1b8d4a60"
CONTRACTS = Path(__file__).resolve().parent / "contracts"
OPENAPI: dict[str, Any] = json.loads((CONTRACTS / "runpod-rest-v2.openapi.json").read_text())
ADDITIONS: dict[str, Any] = json.loads((CONTRACTS / "runpod-rest-v2.additions.json").read_text())
ROUTE = "GET /v2/account/limits"


@pytest.fixture
async def answer() -> AsyncIterator[Callable[..., RunPodClient]]:
    """``answer(body, status=200, rest_url=...)``: a client whose every call gets that answer; the
    requests it sent are in ``client.sent``."""
    clients: list[RunPodClient] = []

    def build(body: Any, status: int = 200, rest_url: str = "http://127.0.0.1:8401/v2") -> RunPodClient:
        sent: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            content = json.dumps(body).encode()  # not json=: httpx refuses the Infinity a server may send
            return httpx.Response(status, content=content, headers={"Content-Type": "application/json"})

        client = RunPodClient(
            api_key=API_KEY,
            graphql_url="http://127.0.0.1:8403/graphql",
            rest_url=rest_url,
            runtime_url="http://127.0.0.1:8402/v2",
            transport=httpx.MockTransport(handler),
            max_retries=0,
        )
        client.sent = sent  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


# ---------------------------------------------------------------------- what the contracts say


def _schema_example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A value of ``schema`` built from its own examples/defaults, else the first type it allows."""
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    for key in ("examples", "enum"):
        if key in schema:
            return schema[key][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object" or "properties" in schema:
        return {k: _schema_example(v, components) for k, v in schema.get("properties", {}).items()}
    return {"integer": 3, "number": 2.5, "string": "x", "boolean": False}[str(kind)]


def contract_examples() -> list[tuple[str, Any]]:
    """Every 200 example for ``/v2/account/limits`` in both contract documents (RunPod's OAS2 has none
    yet: the route is newer), plus one built from the project's ``AccountLimits`` schema, which has no
    examples of its own. New examples in either document are picked up here."""
    found: list[tuple[str, Any]] = []
    for name, document in (("OAS2", OPENAPI), ("additions", ADDITIONS)):
        operation = document["paths"].get("/v2/account/limits", {}).get("get", {})
        content = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
        for key, example in content.get("examples", {}).items():
            found.append((f"{name} {key}", example["value"]))
        if "example" in content:
            found.append((f"{name} example", content["example"]))
    schemas = ADDITIONS["components"]["schemas"]
    found.append(("additions schema", _schema_example(schemas["AccountLimits"], schemas)))
    return found


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/AccountLimits", "components": ADDITIONS["components"]}
    )


@pytest.mark.parametrize(("where", "body"), contract_examples())
async def test_every_contract_example_parses(
    answer: Callable[..., RunPodClient], where: str, body: dict[str, Any]
) -> None:
    validator().validate(body)
    limits = await answer(body).account_limits()
    assert limits == AccountLimits(
        spend_rate_limit_usd_per_hr=body["spendRate"]["limit"],
        spend_rate_current_usd_per_hr=body["spendRate"]["current"],
        serverless_workers_limit=body["serverlessWorkers"]["limit"],
        serverless_workers_current=body["serverlessWorkers"]["current"],
    )


def test_the_oas2_document_has_no_limits_route_yet() -> None:
    """When RunPod's OAS2 gains the route, its examples join the test above; this says it happened."""
    assert "/v2/account/limits" not in OPENAPI["paths"]
    assert "/v2/account/limits" in ADDITIONS["paths"]


async def test_the_request_is_a_bearer_get_without_parameters(answer: Callable[..., RunPodClient]) -> None:
    client = answer(
        {"spendRate": {"limit": 10, "current": 0}, "serverlessWorkers": {"limit": 5, "current": 2}}
    )
    await client.account_limits()
    (request,) = client.sent  # type: ignore[attr-defined]
    assert request.method == "GET" and str(request.url) == "http://127.0.0.1:8401/v2/account/limits"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}" and request.content == b""


# ---------------------------------------------------------------------- the uncertain shape, read defensively

SHAPES: dict[str, tuple[Any, AccountLimits]] = {
    "the simulator's shape": (
        {"spendRate": {"limit": 80, "current": 1.224}, "serverlessWorkers": {"limit": 5, "current": 6}},
        AccountLimits(80.0, 1.224, 5, 6),
    ),
    "no cap: a null limit": (
        {"spendRate": {"limit": None, "current": 0}, "serverlessWorkers": {"limit": 5, "current": 0}},
        AccountLimits(None, 0.0, 5, 0),
    ),
    "bare numbers: the cap and the sum of workersMax": (
        {"spendRate": 12.5, "serverlessWorkers": 7},
        AccountLimits(spend_rate_limit_usd_per_hr=12.5, serverless_workers_current=7),
    ),
    "members missing": ({}, AccountLimits()),
    "members null": ({"spendRate": None, "serverlessWorkers": None}, AccountLimits()),
    "empty member objects": ({"spendRate": {}, "serverlessWorkers": {}}, AccountLimits()),
    "one member only": ({"serverlessWorkers": {"limit": 30}}, AccountLimits(serverless_workers_limit=30)),
    "unknown fields ignored": (
        {
            "spendRate": {"limit": 3, "unit": "USD/h", "max": 9},
            "podCount": 4,
            "serverlessWorkers": {"current": 2},
        },
        AccountLimits(spend_rate_limit_usd_per_hr=3.0, serverless_workers_current=2),
    ),
    "integral floats as worker counts": (
        {"serverlessWorkers": {"limit": 5.0, "current": 0.0}},
        AccountLimits(serverless_workers_limit=5, serverless_workers_current=0),
    ),
    "a cap of zero is a cap": ({"spendRate": {"limit": 0}}, AccountLimits(spend_rate_limit_usd_per_hr=0.0)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_plausible_shapes_are_read(answer: Callable[..., RunPodClient], name: str) -> None:
    body, expected = SHAPES[name]
    limits = await answer(body).account_limits()
    assert limits == expected
    for value in (limits.serverless_workers_limit, limits.serverless_workers_current):
        assert value is None or type(value) is int


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "$"),
        ("limits", "$"),
        ({"spendRate": "12.5"}, "spendRate"),
        ({"spendRate": True}, "spendRate"),
        ({"spendRate": [1]}, "spendRate"),
        ({"spendRate": -1}, "spendRate"),
        ({"spendRate": {"limit": -0.5}}, "spendRate.limit"),
        ({"spendRate": {"limit": "none"}}, "spendRate.limit"),
        ({"spendRate": {"current": 1e400}}, "spendRate.current"),
        ({"spendRate": {"current": 10**40}}, "spendRate.current"),
        ({"serverlessWorkers": 2.5}, "serverlessWorkers"),
        ({"serverlessWorkers": {"limit": -1}}, "serverlessWorkers.limit"),
        ({"serverlessWorkers": {"current": 1.5}}, "serverlessWorkers.current"),
        ({"serverlessWorkers": {"limit": 2**60}}, "serverlessWorkers.limit"),
        ({"serverlessWorkers": {"limit": False}}, "serverlessWorkers.limit"),
    ],
)
async def test_values_that_would_mislead_are_protocol_errors_naming_the_field(
    answer: Callable[..., RunPodClient], body: Any, field: str
) -> None:
    with pytest.raises(RunPodProtocolError) as caught:
        await answer(body).account_limits()
    assert caught.value.field == field and caught.value.route == ROUTE


async def test_a_404_from_a_base_without_v2_names_the_setting(answer: Callable[..., RunPodClient]) -> None:
    client = answer({"error": "no such route"}, status=404, rest_url="http://127.0.0.1:8401")
    with pytest.raises(RunPodNotFound) as caught:
        await client.account_limits()
    assert "does not end in /v2: check runpod.rest_url or RUNPOD_REST_API_URL" in str(caught.value)
