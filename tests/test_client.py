"""RunPodClient against a fake transport: the real client code, with RunPod replaced by handlers.

Why these tests look the way they do: the client's job is to turn RunPod's answers (as documented in the
REST v2 OpenAPI document and runpod-api.md) into typed models, to survive a flaky RunPod without making
rate limiting worse, and to never leak the API key. So each test drives the client through an
``httpx.MockTransport``, records what went over the "wire", the sleeps it asked for and the ``on_call``
reports, and checks the outcome. Every exception is checked for the key (``expect_error``).
Simulator-backed integration tests live elsewhere.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest

from watchdog import client as client_module
from watchdog.client import (
    ACCOUNT_SPEND_QUERY,
    DeadlineScope,
    InvalidIdentifier,
    QuotaWindow,
    RunPodClient,
    RunPodDeadlineReached,
)
from watchdog.clock import from_iso
from watchdog.errors import (
    ConfigError,
    RunPodAuthError,
    RunPodError,
    RunPodNotFound,
    RunPodProtocolError,
    RunPodRejected,
    RunPodUnavailable,
)
from watchdog.models import JobStatus
from watchdog.vocabulary import WorkerStatus

API_KEY = "rpa_TESTSECRET_7c1e9b04d2a84f5e"
REST_URL = "http://127.0.0.1:8401/v2"
RUNTIME_URL = "http://localhost:8402/v2"
GRAPHQL_URL = "http://127.0.0.1:8403/graphql"
OPENAPI_PATH = Path(__file__).resolve().parent / "contracts" / "runpod-rest-v2.openapi.json"
OPENAPI: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())

E = TypeVar("E", bound=BaseException)
Reply = httpx.Response | Exception
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


# ---------------------------------------------------------------------- harness


class FakeClock:
    """Monotonic time that moves only when the client sleeps (or a test says so): deadlines are exact."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    client: RunPodClient
    clock: FakeClock = field(default_factory=FakeClock)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    calls: list[tuple[str, int | None, float]] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    """Requests and sleeps in the order they happened."""

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


class AlwaysOne(random.Random):
    """Jitter at its ceiling, so backoff values are exact."""

    def random(self) -> float:
        return 1.0


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Harness]]:
    clients: list[RunPodClient] = []

    def build(handler: Handler, **overrides: Any) -> Harness:
        harness_ref: list[Harness] = []
        clock = FakeClock()

        def transport_handler(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
            harness_ref[0].requests.append(request)
            harness_ref[0].events.append(("request", f"{request.method} {request.url.path}"))
            return handler(request)

        async def fake_sleep(seconds: float) -> None:
            harness_ref[0].sleeps.append(seconds)
            harness_ref[0].events.append(("sleep", seconds))
            clock.advance(seconds)

        options: dict[str, Any] = {
            "api_key": API_KEY,
            "graphql_url": GRAPHQL_URL,
            "rest_url": REST_URL,
            "runtime_url": RUNTIME_URL,
            "transport": httpx.MockTransport(transport_handler),  # type: ignore[arg-type]  # sync or async
            "sleep": fake_sleep,
            "clock": clock,
            "on_call": lambda route, status, seconds: harness_ref[0].calls.append((route, status, seconds)),
        }
        options.update(overrides)
        client = RunPodClient(**options)
        clients.append(client)
        harness_ref.append(Harness(client, clock))
        return harness_ref[0]

    yield build
    for client in clients:
        await client.aclose()


def reply(body: Any = None, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    if status >= 400 and isinstance(body, dict):
        return httpx.Response(
            status,
            content=json.dumps(body),
            headers={"Content-Type": "application/problem+json", **(headers or {})},
        )
    return httpx.Response(status, json=body, headers=headers)


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "status": status, "detail": detail, **extra}


def sequence(*replies: Reply) -> Handler:
    """Answers the calls in order; the last reply repeats forever."""
    pending = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        item = pending.pop(0) if len(pending) > 1 else pending[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def assert_key_absent(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for text in (str(current), repr(current), *map(str, current.args)):
            assert API_KEY not in text
        for attribute in ("route", "field"):
            assert API_KEY not in str(getattr(current, attribute, ""))
        current = current.__cause__ or current.__context__


async def expect_error(exc_type: type[E], awaitable: Awaitable[Any]) -> E:
    """Await, require ``exc_type``, and check that the key appears nowhere in it or its causes."""
    with pytest.raises(exc_type) as info:
        await awaitable
    assert_key_absent(info.value)
    return info.value


# ---------------------------------------------------------------------- OpenAPI examples


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = OPENAPI
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def synthesize(schema: dict[str, Any]) -> Any:
    """A value built from the schema's own ``examples``/``enum``/``default`` (for routes without a full example)."""
    schema = resolve(schema)
    if "examples" in schema:
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(synthesize(part))
        for key, sub in schema.get("properties", {}).items():
            merged.setdefault(key, synthesize(sub))
        return merged
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return synthesize(schema[union][0])
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]: the non-null type
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {key: synthesize(sub) for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [synthesize(schema["items"])]
    return {"string": "x", "integer": 1, "number": 1.0, "boolean": False}.get(str(kind))


def response_content(path: str, method: str = "get") -> dict[str, Any]:
    content: dict[str, Any] = OPENAPI["paths"][path][method]["responses"]["200"]["content"][
        "application/json"
    ]
    return content


def documented_example(path: str, method: str = "get") -> Any:
    content = response_content(path, method)
    examples = content.get("examples") or {}
    if examples:
        return next(iter(examples.values()))["value"]
    if "example" in content:
        return content["example"]
    return synthesize(content["schema"])


def schema_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": OPENAPI["components"]})


ROUTES_USED = [
    ("/v2/serverless", "get"),
    ("/v2/serverless/{id}", "get"),
    ("/v2/serverless/{id}", "patch"),
    ("/v2/serverless/{id}/workers", "get"),
    ("/v2/billing/serverless", "get"),
]


@pytest.mark.parametrize(("path", "method"), ROUTES_USED)
def test_synthesized_examples_are_valid_against_the_schema(path: str, method: str) -> None:
    """Guards the synthesizer used below, so the schema-built bodies really are documented shapes."""
    content = response_content(path, method)
    schema_validator(content["schema"]).validate(synthesize(content["schema"]))
    schema_validator(content["schema"]).validate(documented_example(path, method))


def serve(path_to_body: dict[str, Any]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        if key not in path_to_body:
            return reply(problem(404, "Not Found", f"no fake for {key}"), 404)
        return reply(path_to_body[key])

    return handler


async def test_list_endpoints_parses_the_documented_example(make: Callable[..., Harness]) -> None:
    harness = make(serve({"GET /v2/serverless": documented_example("/v2/serverless")}))
    [endpoint] = await harness.client.list_endpoints()
    assert endpoint.id == "4m7x2k9q"
    assert endpoint.name == "image-generator"
    assert (endpoint.workers_min, endpoint.workers_max, endpoint.idle_timeout_s) == (0, 5, 5)
    assert endpoint.execution_timeout_ms == 300000
    assert endpoint.gpu_pools == ("ADA_24",)
    assert endpoint.gpu_count == 1
    assert (endpoint.scaler_type, endpoint.scaler_value) == ("QUEUE_DELAY", 4.0)
    assert endpoint.flashboot == "OFF"
    assert endpoint.endpoint_type == "QUEUE"
    assert endpoint.created_at == from_iso("2026-06-01T12:00:00Z")
    assert endpoint.workers_standby == 0


async def test_get_endpoint_parses_the_documented_load_balancer_example(make: Callable[..., Harness]) -> None:
    harness = make(serve({"GET /v2/serverless/4m7x2k9q": documented_example("/v2/serverless/{id}")}))
    endpoint = await harness.client.get_endpoint("4m7x2k9q")
    assert endpoint.endpoint_type == "LOAD_BALANCER"
    assert (endpoint.scaler_type, endpoint.scaler_value) == ("REQUEST_COUNT", 4.0)
    assert (endpoint.workers_min, endpoint.workers_max) == (0, 5)
    assert harness.calls[0][:2] == ("GET /v2/serverless/{endpoint_id}", 200)


async def test_patch_endpoint_parses_the_documented_response(make: Callable[..., Harness]) -> None:
    body = documented_example("/v2/serverless/{id}", "patch")
    harness = make(serve({"PATCH /v2/serverless/4m7x2k9q": body}))
    endpoint = await harness.client.patch_endpoint(
        "4m7x2k9q", workers_min=1, workers_max=10, idle_timeout_s=10
    )
    assert (endpoint.workers_min, endpoint.workers_max, endpoint.idle_timeout_s) == (1, 10, 10)
    assert (endpoint.scaler_type, endpoint.scaler_value) == ("QUEUE_DELAY", 8.0)


async def test_list_workers_parses_the_documented_example(make: Callable[..., Harness]) -> None:
    harness = make(
        serve({"GET /v2/serverless/4m7x2k9q/workers": documented_example("/v2/serverless/{id}/workers")})
    )
    result = await harness.client.list_workers("4m7x2k9q")
    assert result.endpoint_version == 4
    assert (result.summary.running, result.summary.idle, result.summary.total) == (1, 1, 2)
    [worker] = result.workers
    assert worker.id == "8g3n5t6r"
    assert worker.status is WorkerStatus.RUNNING
    assert worker.is_stale is False
    assert (worker.version, worker.gpu_count, worker.uptime_s) == (4, 1, 3600.0)
    assert worker.gpu_type_id == "NVIDIA GeForce RTX 4090"
    assert worker.data_center_id == "US-KS-2"
    assert worker.started_at == from_iso("2026-06-01T12:05:00Z")


async def test_serverless_billing_parses_the_documented_example(make: Callable[..., Harness]) -> None:
    harness = make(serve({"GET /v2/billing/serverless": documented_example("/v2/billing/serverless")}))
    report = await harness.client.serverless_billing(start=from_iso("2026-06-01T00:00:00Z"))
    [record] = report.records
    assert record.start == from_iso("2026-06-01T00:00:00Z")
    assert record.end == from_iso("2026-06-02T00:00:00Z")
    assert record.endpoint_id == "4m7x2k9q"
    assert (record.total_usd, record.gpu_usd, record.cpu_usd, record.disk_usd, record.fee_usd) == (
        8.9,
        7.5,
        0.0,
        0.4,
        1.0,
    )
    assert (report.total_usd, report.record_count) == (8.9, 1)


@pytest.mark.parametrize(
    ("fake_path", "path", "method", "call"),
    [
        ("GET /v2/serverless", "/v2/serverless", "get", lambda c: c.list_endpoints()),
        ("GET /v2/serverless/ep1", "/v2/serverless/{id}", "get", lambda c: c.get_endpoint("ep1")),
        (
            "PATCH /v2/serverless/ep1",
            "/v2/serverless/{id}",
            "patch",
            lambda c: c.patch_endpoint("ep1", workers_max=0),
        ),
        (
            "GET /v2/serverless/ep1/workers",
            "/v2/serverless/{id}/workers",
            "get",
            lambda c: c.list_workers("ep1"),
        ),
        (
            "GET /v2/billing/serverless",
            "/v2/billing/serverless",
            "get",
            lambda c: c.serverless_billing(last_n=1),
        ),
    ],
)
async def test_every_rest_route_accepts_a_body_built_from_the_schema_examples(
    make: Callable[..., Harness], fake_path: str, path: str, method: str, call: Callable[[RunPodClient], Any]
) -> None:
    body = synthesize(response_content(path, method)["schema"])
    harness = make(serve({fake_path: body}))
    result = await call(harness.client)
    assert result  # a model (or non-empty list) came back, parsed from the schema-shaped body
    assert harness.calls[0][1] == 200


# ---------------------------------------------------------------------- runtime and GraphQL parsing


async def test_health_counts_missing_keys_as_zero(make: Callable[..., Harness]) -> None:
    harness = make(
        serve({"GET /v2/ep1/health": {"jobs": {"inQueue": 2}, "workers": {"idle": 0, "running": 1}}})
    )
    health = await harness.client.health("ep1")
    assert health.jobs_in_queue == 2
    assert health.workers_running == 1
    assert (health.jobs_completed, health.jobs_failed, health.jobs_in_progress, health.jobs_retried) == (
        0,
        0,
        0,
        0,
    )
    assert (health.workers_ready, health.workers_throttled, health.workers_unhealthy) == (0, 0, 0)
    assert harness.calls[0][:2] == ("GET /v2/{endpoint_id}/health", 200)


async def test_health_reads_every_documented_key_and_survives_an_empty_object(
    make: Callable[..., Harness],
) -> None:
    full = {
        "jobs": {"completed": 1, "failed": 5, "inProgress": 3, "inQueue": 2, "retried": 4},
        "workers": {"idle": 4, "initializing": 6, "ready": 4, "running": 1, "throttled": 7, "unhealthy": 8},
    }
    harness = make(sequence(reply(full), reply({})))
    health = await harness.client.health("ep1")
    assert (health.jobs_completed, health.jobs_failed, health.jobs_in_progress) == (1, 5, 3)
    assert (health.jobs_in_queue, health.jobs_retried) == (2, 4)
    assert (health.workers_idle, health.workers_initializing, health.workers_ready) == (4, 6, 4)
    assert (health.workers_running, health.workers_throttled, health.workers_unhealthy) == (1, 7, 8)
    empty = await harness.client.health("ep1")
    assert empty.jobs_in_queue == 0 and empty.workers_running == 0


async def test_job_status_cancel_and_purge_parse_the_documented_runtime_examples(
    make: Callable[..., Harness],
) -> None:
    harness = make(
        serve(
            {
                "GET /v2/ep1/status/abc-u1": {
                    "delayTime": 31618,
                    "executionTime": 1437,
                    "id": "abc-u1",
                    "output": {"text": "hi"},
                    "status": "COMPLETED",
                    "workerId": "w1",
                },
                "GET /v2/ep1/status/bad-u1": {
                    "id": "bad-u1",
                    "status": "FAILED",
                    "error": "Invalid parameter: x",
                },
                "POST /v2/ep1/cancel/abc-u1": {"id": "abc-u1", "status": "CANCELLED"},
                "POST /v2/ep1/purge-queue": {"removed": 2, "status": "completed"},
            }
        )
    )
    job = await harness.client.job_status("ep1", "abc-u1")
    assert job.status is JobStatus.COMPLETED
    assert (job.delay_time_ms, job.execution_time_ms, job.worker_id, job.has_output) == (
        31618,
        1437,
        "w1",
        True,
    )
    failed = await harness.client.job_status("ep1", "bad-u1")
    assert (
        failed.status is JobStatus.FAILED and failed.error == "Invalid parameter: x" and not failed.has_output
    )
    cancelled = await harness.client.cancel_job("ep1", "abc-u1")
    assert cancelled.status is JobStatus.CANCELLED and cancelled.status.terminal
    purged = await harness.client.purge_queue("ep1")
    assert (purged.removed, purged.status) == (2, "completed")
    assert [r.method for r in harness.requests] == ["GET", "GET", "POST", "POST"]
    assert [c[0] for c in harness.calls] == [
        "GET /v2/{endpoint_id}/status/{job_id}",
        "GET /v2/{endpoint_id}/status/{job_id}",
        "POST /v2/{endpoint_id}/cancel/{job_id}",
        "POST /v2/{endpoint_id}/purge-queue",
    ]
    assert all(r.url.host == "localhost" for r in harness.requests)  # the runtime host, not REST's


async def test_account_spend_sends_the_query_and_parses_myself(make: Callable[..., Harness]) -> None:
    body = {
        "data": {
            "myself": {
                "clientBalance": 12.5,
                "currentSpendPerHr": 0.69,
                "spendLimit": 80,
                "endpoints": [{"id": "ep1", "workersStandby": 1}, {"id": "ep2", "workersStandby": None}],
            }
        }
    }
    harness = make(serve({"POST /graphql": body}))
    spend = await harness.client.account_spend()
    assert (spend.client_balance_usd, spend.current_spend_per_hr_usd, spend.spend_limit_usd) == (
        12.5,
        0.69,
        80.0,
    )
    assert spend.workers_standby == {"ep1": 1, "ep2": 0}
    assert harness.bodies() == [{"query": ACCOUNT_SPEND_QUERY}]
    assert harness.calls[0][:2] == ("POST /graphql", 200)


@pytest.mark.parametrize(
    "body",
    [
        {"errors": [{"message": "Something went wrong"}], "data": None},
        {
            "errors": [{"message": "Something went wrong", "path": ["myself"]}],
            "data": {"myself": {"clientBalance": 1}},
        },
    ],
)
async def test_graphql_errors_with_http_200_are_a_failure(
    make: Callable[..., Harness], body: dict[str, Any]
) -> None:
    harness = make(serve({"POST /graphql": body}))
    exc = await expect_error(RunPodRejected, harness.client.account_spend())
    assert "Something went wrong" in str(exc)
    assert exc.route == "POST /graphql"
    assert len(harness.requests) == 1


# ---------------------------------------------------------------------- sparse PATCH


@pytest.mark.parametrize(
    ("kwargs", "expected_body"),
    [
        ({"workers_max": 0}, {"workers": {"max": 0}}),
        ({"workers_min": 0}, {"workers": {"min": 0}}),
        ({"execution_timeout_ms": 0}, {"timeout": 0}),
        ({"execution_timeout_ms": 600_000}, {"timeout": 600_000}),
        ({"idle_timeout_s": 5, "workers_min": 0}, {"workers": {"min": 0, "idleTimeout": 5}}),
        (
            {"workers_min": 0, "workers_max": 2, "idle_timeout_s": 1, "execution_timeout_ms": 300_000},
            {"workers": {"min": 0, "max": 2, "idleTimeout": 1}, "timeout": 300_000},
        ),
        ({"flashboot": "FLASHBOOT"}, {"flashboot": "FLASHBOOT"}),
        (
            {"scaler_type": "REQUEST_COUNT", "scaler_value": 3},
            {"scaling": {"type": "REQUEST_COUNT", "requestCount": 3}},
        ),
        (
            {"scaler_type": "QUEUE_DELAY", "scaler_value": 0.5},
            {"scaling": {"type": "QUEUE_DELAY", "queueDelay": 0.5}},
        ),
    ],
)
async def test_patch_sends_exactly_the_given_fields_and_an_explicit_zero(
    make: Callable[..., Harness], kwargs: dict[str, Any], expected_body: dict[str, Any]
) -> None:
    harness = make(serve({"PATCH /v2/serverless/ep1": documented_example("/v2/serverless/{id}", "patch")}))
    await harness.client.patch_endpoint("ep1", **kwargs)
    [request] = harness.requests
    assert request.method == "PATCH"
    assert request.url.path == "/v2/serverless/ep1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == expected_body
    update_schema = OPENAPI["paths"]["/v2/serverless/{id}"]["patch"]["requestBody"]["content"][
        "application/json"
    ]
    schema_validator(update_schema["schema"]).validate(json.loads(request.content))  # no unknown keys (422)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"workers_max": -1},
        {"workers_max": True},
        {"workers_min": 1.5},
        {"idle_timeout_s": 0},
        {"idle_timeout_s": 3601},
        {"workers_min": 3, "workers_max": 2},
        {"scaler_type": "QUEUE_DELAY"},
        {"scaler_type": "QUEUE_DELAY", "scaler_value": 0.1},
        {"scaler_type": "REQUEST_COUNT", "scaler_value": 1.5},
        {"flashboot": "ON"},
    ],
)
async def test_patch_refuses_values_runpod_would_reject_without_sending(
    make: Callable[..., Harness], kwargs: dict[str, Any]
) -> None:
    harness = make(serve({}))
    with pytest.raises(ValueError):
        await harness.client.patch_endpoint("ep1", **kwargs)
    assert harness.requests == []


async def test_patch_is_retried_on_5xx_because_it_sets_absolute_values(make: Callable[..., Harness]) -> None:
    body = documented_example("/v2/serverless/{id}", "patch")
    harness = make(
        sequence(reply(problem(502, "Bad Gateway", "upstream"), 502), reply(body)), rng=AlwaysOne()
    )
    await harness.client.patch_endpoint("ep1", workers_max=0)
    assert [r.method for r in harness.requests] == ["PATCH", "PATCH"]
    assert harness.bodies() == [{"workers": {"max": 0}}, {"workers": {"max": 0}}]
    assert harness.sleeps == [0.5]


# ---------------------------------------------------------------------- retries and backoff


async def test_503_is_retried_with_backoff_then_succeeds(make: Callable[..., Harness]) -> None:
    unavailable = reply(problem(503, "Service Unavailable", "try later"), 503)
    ok = reply({"endpoints": []})
    harness = make(sequence(unavailable, unavailable, ok), rng=AlwaysOne())
    assert await harness.client.list_endpoints() == []
    assert len(harness.requests) == 3
    assert harness.sleeps == [0.5, 1.0]  # base * 2**attempt, jitter at its ceiling
    assert [(route, status) for route, status, _ in harness.calls] == [
        ("GET /v2/serverless", 503),
        ("GET /v2/serverless", 503),
        ("GET /v2/serverless", 200),
    ]
    assert all(seconds >= 0 for _, _, seconds in harness.calls)


async def test_backoff_is_capped_and_jittered(make: Callable[..., Harness]) -> None:
    unavailable = reply(problem(500, "Internal Server Error", "boom"), 500)
    capped = make(sequence(unavailable), rng=AlwaysOne(), max_retries=6, backoff_max_s=2)
    await expect_error(RunPodUnavailable, capped.client.list_endpoints())
    assert capped.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]

    jittered = make(sequence(unavailable), rng=random.Random(7), max_retries=6, backoff_max_s=2)
    await expect_error(RunPodUnavailable, jittered.client.list_endpoints())
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert len(jittered.sleeps) == 6
    assert all(0 <= slept <= ceiling for slept, ceiling in zip(jittered.sleeps, ceilings, strict=True))
    assert len(set(jittered.sleeps)) == 6 and jittered.sleeps != ceilings  # really random, not the ceiling


async def test_exhausted_retries_raise_unavailable_with_the_last_cause(make: Callable[..., Harness]) -> None:
    harness = make(
        sequence(reply(problem(503, "Service Unavailable", "maintenance window"), 503)), max_retries=2
    )
    exc = await expect_error(RunPodUnavailable, harness.client.get_endpoint("ep1"))
    assert len(harness.requests) == 3
    assert exc.status == 503
    assert exc.route == "GET /v2/serverless/ep1"
    assert "gave up after 3 attempts" in str(exc) and "maintenance window" in str(exc)


async def test_connect_errors_are_retried_then_raise_unavailable(make: Callable[..., Harness]) -> None:
    harness = make(sequence(httpx.ConnectError("[Errno 111] Connection refused")), rng=AlwaysOne())
    exc = await expect_error(RunPodUnavailable, harness.client.health("ep1"))
    assert len(harness.requests) == 5  # 1 + max_retries (4)
    assert harness.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert [status for _, status, _ in harness.calls] == [None] * 5
    assert exc.status is None
    assert "could not connect to localhost:8402 (ConnectError: [Errno 111] Connection refused)" in str(exc)
    assert isinstance(exc.__cause__, httpx.ConnectError)


async def test_connect_error_is_retried_even_for_purge_because_nothing_was_sent(
    make: Callable[..., Harness],
) -> None:
    harness = make(sequence(httpx.ConnectError("refused"), reply({"removed": 0, "status": "completed"})))
    result = await harness.client.purge_queue("ep1")
    assert result.removed == 0
    assert len(harness.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        reply(problem(500, "Internal Server Error", "boom"), 500),
    ],
)
async def test_purge_is_not_repeated_when_the_first_one_may_have_run(
    make: Callable[..., Harness], failure: Reply
) -> None:
    harness = make(sequence(failure, reply({"removed": 5, "status": "completed"})))
    exc = await expect_error(RunPodUnavailable, harness.client.purge_queue("ep1"))
    assert len(harness.requests) == 1
    assert harness.sleeps == []
    assert "not retried" in str(exc)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("read timed out"), reply(problem(503, "Service Unavailable", "later"), 503)],
)
async def test_cancel_is_repeated_because_cancelling_twice_is_harmless(
    make: Callable[..., Harness], failure: Reply
) -> None:
    harness = make(sequence(failure, reply({"id": "j1", "status": "CANCELLED"})))
    job = await harness.client.cancel_job("ep1", "j1")
    assert job.status is JobStatus.CANCELLED
    assert len(harness.requests) == 2


async def test_every_attempt_has_a_timeout(make: Callable[..., Harness]) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return reply({})

    harness = make(hang, timeout_s=0.05, max_retries=1)
    started = time.monotonic()
    exc = await expect_error(RunPodUnavailable, harness.client.health("ep1"))
    assert time.monotonic() - started < 5
    assert len(harness.requests) == 2
    assert "no answer within 0.05s" in str(exc)


# ---------------------------------------------------------------------- 429 and RateLimit


@pytest.mark.parametrize(("retry_after", "expected_sleep"), [("7", 7.0), ("10000", 60.0), ("0", 0.0)])
async def test_429_honours_retry_after_up_to_the_cap(
    make: Callable[..., Harness], retry_after: str, expected_sleep: float
) -> None:
    limited = reply(
        problem(429, "Too Many Requests", "rate limit exceeded for the minute window"),
        429,
        headers={"Retry-After": retry_after},
    )
    harness = make(sequence(limited, reply({"endpoints": []})))
    await harness.client.list_endpoints()
    assert harness.sleeps == [expected_sleep]
    assert [status for _, status, _ in harness.calls] == [429, 200]


async def test_429_retry_after_as_an_http_date(make: Callable[..., Harness]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    limited = reply(problem(429, "Too Many Requests", "slow down"), 429, headers={"Retry-After": when})
    harness = make(sequence(limited, reply({"endpoints": []})))
    await harness.client.list_endpoints()
    [slept] = harness.sleeps
    assert 27 <= slept <= 30


async def test_429_is_retried_even_for_purge_because_it_was_not_processed(
    make: Callable[..., Harness],
) -> None:
    limited = reply(problem(429, "Too Many Requests", "slow down"), 429, headers={"Retry-After": "10"})
    harness = make(sequence(limited, reply({"removed": 1, "status": "completed"})))
    assert (await harness.client.purge_queue("ep1")).removed == 1
    assert harness.sleeps == [10.0]


async def test_ratelimit_header_with_no_requests_left_delays_the_next_call(
    make: Callable[..., Harness],
) -> None:
    exhausted = {"RateLimit": '"minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012'}
    harness = make(
        sequence(
            reply({"endpoints": []}, headers=exhausted), reply({"endpoints": []}), reply({"endpoints": []})
        )
    )
    await harness.client.list_endpoints()
    assert harness.sleeps == []
    await harness.client.list_endpoints()
    [slept] = harness.sleeps
    assert 11 < slept <= 12
    assert [kind for kind, _ in harness.events] == ["request", "sleep", "request"]  # waited BEFORE calling
    await harness.client.list_endpoints()
    assert len(harness.sleeps) == 1  # the quota was replenished; no further wait


async def test_ratelimit_wait_applies_per_api_and_is_capped(make: Callable[..., Harness]) -> None:
    day_exhausted = {"RateLimit": '"minute";r=3;t=12, "day";r=0;t=45012'}
    handler = serve(
        {
            "GET /v2/serverless": {"endpoints": []},
            "GET /v2/ep1/health": {},
        }
    )

    def with_header(request: httpx.Request) -> httpx.Response:
        response = handler(request)
        assert isinstance(response, httpx.Response)
        if request.url.host == "127.0.0.1":
            response.headers.update(day_exhausted)
        return response

    harness = make(with_header, retry_after_cap_s=60)
    await harness.client.list_endpoints()
    await harness.client.health("ep1")  # the runtime has its own quota
    assert harness.sleeps == []
    await harness.client.list_endpoints()
    [slept] = harness.sleeps
    assert 59 < slept <= 60


async def test_ratelimit_with_requests_left_does_not_wait(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply({"endpoints": []}, headers={"RateLimit": '"minute";r=59;t=60'})))
    await harness.client.list_endpoints()
    await harness.client.list_endpoints()
    assert harness.sleeps == []


async def test_429_retry_after_and_ratelimit_are_not_waited_twice(make: Callable[..., Harness]) -> None:
    limited = reply(
        problem(429, "Too Many Requests", "slow down"),
        429,
        headers={"Retry-After": "12", "RateLimit": '"minute";r=0;t=12'},
    )
    harness = make(sequence(limited, reply({"endpoints": []})))
    await harness.client.list_endpoints()
    assert len(harness.sleeps) == 1 and 11 < harness.sleeps[0] <= 12


# ---------------------------------------------------------------------- auth, 404, 4xx, secrets


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_fatal_and_never_retried(make: Callable[..., Harness], status: int) -> None:
    body = problem(status, "Unauthorized" if status == 401 else "Forbidden", f"bad token {API_KEY}")
    harness = make(sequence(reply(body, status)))
    exc = await expect_error(RunPodAuthError, harness.client.list_endpoints())
    assert len(harness.requests) == 1
    assert harness.sleeps == []
    assert exc.status == status
    assert exc.route == "GET /v2/serverless"
    assert f"({status}) on GET /v2/serverless" in str(exc)
    assert "check RUNPOD_API_KEY" in str(exc)
    assert API_KEY not in repr(harness.client)


async def test_401_message_names_the_route_and_the_variable(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply(problem(401, "Unauthorized", "missing bearer token"), 401)))
    exc = await expect_error(RunPodAuthError, harness.client.list_endpoints())
    assert str(exc) == "RunPod rejected the API key (401) on GET /v2/serverless: check RUNPOD_API_KEY"


async def test_graphql_401_is_an_auth_error(make: Callable[..., Harness]) -> None:
    harness = make(sequence(httpx.Response(401, text="unauthorized")))
    exc = await expect_error(RunPodAuthError, harness.client.account_spend())
    assert "POST /graphql" in str(exc)


async def test_bearer_key_user_agent_on_every_host(make: Callable[..., Harness]) -> None:
    harness = make(
        serve(
            {
                "GET /v2/serverless": {"endpoints": []},
                "GET /v2/ep1/health": {},
                "POST /graphql": {"data": {"myself": {}}},
            }
        ),
        user_agent="runpod-watchdog/test",
    )
    await harness.client.list_endpoints()
    await harness.client.health("ep1")
    await harness.client.account_spend()
    assert {r.url.host for r in harness.requests} == {"127.0.0.1", "localhost"}
    for request in harness.requests:
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        assert request.headers["User-Agent"] == "runpod-watchdog/test"
        assert API_KEY not in str(request.url)


async def test_404_is_not_found_with_the_problem_detail(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply(problem(404, "Not Found", "endpoint ep9 not found"), 404)))
    exc = await expect_error(RunPodNotFound, harness.client.get_endpoint("ep9"))
    assert exc.route == "GET /v2/serverless/ep9"
    assert "endpoint ep9 not found" in str(exc)
    assert "rest_url" not in str(exc)  # the configured base ends in /v2: a genuine "not found"
    assert len(harness.requests) == 1


async def test_422_is_rejected_with_detail_and_errors(make: Callable[..., Harness]) -> None:
    body = problem(
        422,
        "Unprocessable Entity",
        "Request validation failed.",
        errors=["$: additional properties 'bogus' not allowed"],
    )
    harness = make(sequence(reply(body, 422)))
    exc = await expect_error(RunPodRejected, harness.client.patch_endpoint("ep1", workers_max=1))
    assert exc.status == 422
    assert "Request validation failed." in str(exc) and "additional properties 'bogus'" in str(exc)
    assert len(harness.requests) == 1


async def test_a_key_echoed_by_the_server_is_redacted_everywhere(
    make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    echo = reply(problem(503, "Service Unavailable", f"token {API_KEY} is throttled"), 503)
    harness = make(sequence(echo), max_retries=2)
    with caplog.at_level(logging.DEBUG):
        exc = await expect_error(RunPodUnavailable, harness.client.list_endpoints())
        bad_request = make(sequence(reply(problem(400, "Bad Request", f"unknown key {API_KEY}"), 400)))
        rejected = await expect_error(RunPodRejected, bad_request.client.list_endpoints())
    assert "<redacted>" in str(exc) and "<redacted>" in str(rejected)
    assert "token <redacted> is throttled" in caplog.text  # the retry was logged, redacted
    assert API_KEY not in caplog.text
    for route, _, _ in harness.calls + bad_request.calls:
        assert API_KEY not in route


async def test_a_key_echoed_inside_a_long_value_is_redacted_before_anything_is_shortened(
    make: Callable[..., Harness],
) -> None:
    """Messages shorten long values (to 40 characters in a protocol error): redacting only the finished
    message would miss a key cut in half. The body is redacted as it is read, so models hold no key either."""
    echoed = "x" * 30 + API_KEY
    harness = make(
        serve(
            {
                "GET /v2/ep1/status/j1": {"id": "j1", "status": echoed},
                "GET /v2/ep1/status/j2": {"id": "j2", "status": "FAILED", "error": f"bad key {API_KEY}"},
            }
        )
    )
    exc = await expect_error(RunPodProtocolError, harness.client.job_status("ep1", "j1"))
    assert API_KEY[:12] not in str(exc) and "xxx" in str(exc)
    job = await harness.client.job_status("ep1", "j2")
    assert job.error == "bad key <redacted>"
    bad = await expect_error(InvalidIdentifier, harness.client.job_status("ep1", "a b " + API_KEY))
    assert API_KEY[:12] not in str(bad)


def test_repr_never_shows_the_key() -> None:
    client = RunPodClient(
        api_key=API_KEY, graphql_url=GRAPHQL_URL, rest_url=REST_URL, runtime_url=RUNTIME_URL
    )
    text = repr(client)
    assert API_KEY not in text and API_KEY not in str(client)
    assert "<redacted>" in text and REST_URL in text


@pytest.mark.parametrize("bad_key", ["", " ", "rpa key", "rpa\nkey"])
def test_an_unusable_key_is_a_config_error_that_does_not_echo_it(bad_key: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunPodClient(api_key=bad_key, graphql_url=GRAPHQL_URL, rest_url=REST_URL, runtime_url=RUNTIME_URL)
    assert "RUNPOD_API_KEY" in str(info.value)
    if bad_key.strip():
        assert bad_key not in str(info.value)


@pytest.mark.parametrize("bad_id", ["", "../serverless", "a/b", "ep?x=1", "..", "é"])
async def test_ids_that_would_change_the_url_are_refused(make: Callable[..., Harness], bad_id: str) -> None:
    harness = make(serve({}))
    with pytest.raises(ValueError):
        await harness.client.get_endpoint(bad_id)
    with pytest.raises(ValueError):
        await harness.client.job_status("ep1", bad_id)
    assert harness.requests == []


# ---------------------------------------------------------------------- malformed bodies


def endpoint_body(endpoint_id: str, **changes: Any) -> dict[str, Any]:
    body = {"id": endpoint_id, "name": endpoint_id, "workers": {"min": 0, "max": 1, "idleTimeout": 5}}
    body.update(changes)
    return body


MALFORMED = [
    pytest.param(
        lambda c: c.list_endpoints(),
        {
            "endpoints": [
                endpoint_body("a"),
                endpoint_body("b"),
                endpoint_body("c", workers={"min": 0, "max": "five"}),
            ]
        },
        "GET /v2/serverless",
        "endpoints[2].workers.max",
        id="wrong-type-deep",
    ),
    pytest.param(
        lambda c: c.list_endpoints(),
        {"endpoints": [{"name": "no id", "workers": {"min": 0, "max": 1}}]},
        "GET /v2/serverless",
        "endpoints[0].id",
        id="missing-id",
    ),
    pytest.param(
        lambda c: c.list_endpoints(),
        {"endpoints": [endpoint_body("a"), {"id": "b", "name": "b"}]},
        "GET /v2/serverless",
        "endpoints[1].workers",
        id="missing-workers",
    ),
    pytest.param(
        lambda c: c.list_endpoints(),
        {"endpoints": [endpoint_body("a", workers={"min": 0, "max": True})]},
        "GET /v2/serverless",
        "endpoints[0].workers.max",
        id="bool-is-not-int",
    ),
    pytest.param(
        lambda c: c.list_endpoints(),
        {"endpoints": {"id": "a"}},
        "GET /v2/serverless",
        "endpoints",
        id="object-instead-of-array",
    ),
    pytest.param(
        lambda c: c.list_endpoints(), [endpoint_body("a")], "GET /v2/serverless", "$", id="bare-array"
    ),
    pytest.param(
        lambda c: c.get_endpoint("ep1"),
        endpoint_body("ep1", createdAt="last tuesday"),
        "GET /v2/serverless/ep1",
        "createdAt",
        id="bad-date",
    ),
    pytest.param(
        lambda c: c.get_endpoint("ep1"),
        endpoint_body("ep1", gpu={"pools": ["ADA_24", 7]}),
        "GET /v2/serverless/ep1",
        "gpu.pools[1]",
        id="bad-pool",
    ),
    pytest.param(
        lambda c: c.list_workers("ep1"),
        {"workers": [{"id": "w1", "status": "ZOMBIE", "gpuCount": 1, "isStale": False}]},
        "GET /v2/serverless/ep1/workers",
        "workers[0].status",
        id="status-not-in-enum",
    ),
    pytest.param(
        lambda c: c.list_workers("ep1"),
        {"workers": [{"id": "w1", "status": "IDLE", "gpuCount": 1, "isStale": "no"}]},
        "GET /v2/serverless/ep1/workers",
        "workers[0].isStale",
        id="stale-not-bool",
    ),
    pytest.param(
        lambda c: c.list_workers("ep1"),
        {"summary": {"running": 0}},
        "GET /v2/serverless/ep1/workers",
        "workers",
        id="workers-missing",
    ),
    pytest.param(
        lambda c: c.serverless_billing(last_n=2),
        {"records": [{"startTime": "2026-06-01T00:00:00Z", "endTime": "2026-06-02T00:00:00Z"}]},
        "GET /v2/billing/serverless",
        "records[0].totalAmount",
        id="billing-amount-missing",
    ),
    pytest.param(
        lambda c: c.serverless_billing(last_n=2),
        {"records": [{"startTime": "yesterday", "endTime": "2026-06-02T00:00:00Z", "totalAmount": 1}]},
        "GET /v2/billing/serverless",
        "records[0].startTime",
        id="billing-bad-time",
    ),
    pytest.param(
        lambda c: c.health("ep1"),
        {"jobs": {"inQueue": "2"}},
        "GET /v2/ep1/health",
        "jobs.inQueue",
        id="health-string-count",
    ),
    pytest.param(
        lambda c: c.health("ep1"), {"jobs": [1, 2]}, "GET /v2/ep1/health", "jobs", id="health-jobs-array"
    ),
    pytest.param(
        lambda c: c.job_status("ep1", "j1"),
        {"id": "j1", "status": "WEIRD"},
        "GET /v2/ep1/status/j1",
        "status",
        id="job-status-unknown",
    ),
    pytest.param(
        lambda c: c.purge_queue("ep1"),
        {"status": "completed"},
        "POST /v2/ep1/purge-queue",
        "removed",
        id="purge-removed-missing",
    ),
    pytest.param(
        lambda c: c.account_spend(),
        {"data": {"myself": None}},
        "POST /graphql",
        "data.myself",
        id="graphql-myself-null",
    ),
    pytest.param(
        lambda c: c.account_spend(),
        {"data": {"myself": {"clientBalance": "lots"}}},
        "POST /graphql",
        "data.myself.clientBalance",
        id="graphql-balance-string",
    ),
]


@pytest.mark.parametrize(("call", "body", "route", "field_path"), MALFORMED)
async def test_malformed_bodies_raise_protocol_errors_naming_route_and_field(
    make: Callable[..., Harness],
    call: Callable[[RunPodClient], Awaitable[Any]],
    body: Any,
    route: str,
    field_path: str,
) -> None:
    harness = make(sequence(reply(body)))
    exc = await expect_error(RunPodProtocolError, call(harness.client))
    assert exc.route == route
    assert exc.field == field_path
    assert str(exc).startswith(f"{route}: field {field_path!r}: ")
    assert len(harness.requests) == 1  # a bad body is not retried: asking again would not fix the shape


@pytest.mark.parametrize(
    "raw",
    [b"<html>502 Bad Gateway</html>", b"", b'{"endpoints": [', b"\xff\xfe"],
    ids=["html", "empty", "cut", "bin"],
)
async def test_a_body_that_is_not_json_is_a_protocol_error(make: Callable[..., Harness], raw: bytes) -> None:
    harness = make(sequence(httpx.Response(200, content=raw)))
    exc = await expect_error(RunPodProtocolError, harness.client.list_endpoints())
    assert exc.route == "GET /v2/serverless"
    assert "JSON" in str(exc)
    assert not isinstance(exc, KeyError | TypeError | ValueError)


async def test_optional_fields_get_their_defaults(make: Callable[..., Harness]) -> None:
    minimal = {
        "id": "ep1",
        "workers": {"min": 0, "max": 2},
        "timeout": 0,
        "gpu": None,
        "unknownField": {"x": 1},
    }
    workers = {"workers": [{"id": "w1", "status": "INITIALIZING"}, {"id": "w2", "status": "IDLE"}]}
    harness = make(serve({"GET /v2/serverless/ep1": minimal, "GET /v2/serverless/ep1/workers": workers}))
    endpoint = await harness.client.get_endpoint("ep1")
    assert endpoint.name == ""
    assert endpoint.execution_timeout_ms is None  # 0 means "no limit"
    assert endpoint.idle_timeout_s == 0  # not reported (RunPod omits it for REQUEST_COUNT scaling)
    assert (endpoint.gpu_pools, endpoint.gpu_count) == ((), 0)
    assert (endpoint.scaler_type, endpoint.scaler_value, endpoint.flashboot) == ("QUEUE_DELAY", 4.0, "OFF")
    assert endpoint.created_at is None
    listed = await harness.client.list_workers("ep1")
    assert listed.endpoint_version is None
    assert (listed.summary.initializing, listed.summary.idle, listed.summary.total) == (1, 1, 2)  # derived
    assert listed.workers[0].gpu_count == 1 and listed.workers[0].started_at is None


# ---------------------------------------------------------------------- billing query and lifecycle


async def test_billing_sends_the_window_bucket_and_filter(make: Callable[..., Harness]) -> None:
    harness = make(
        sequence(reply({"records": [], "metadata": {"recordCount": 0, "totals": {"totalAmount": 0}}}))
    )
    report = await harness.client.serverless_billing(
        start=from_iso("2026-06-01T00:00:00Z"), end=from_iso("2026-06-02T00:00:00Z"), endpoint_id="ep1"
    )
    assert (report.records, report.total_usd, report.record_count) == ((), 0.0, 0)
    await harness.client.serverless_billing(last_n=3, bucket_size="day")
    first, second = (dict(r.url.params) for r in harness.requests)
    assert first == {
        "bucketSize": "hour",
        "startTime": "2026-06-01T00:00:00Z",
        "endTime": "2026-06-02T00:00:00Z",
        "serverlessId": "ep1",
    }
    assert second == {"bucketSize": "day", "lastN": "3"}
    assert {c[0] for c in harness.calls} == {"GET /v2/billing/serverless"}  # no query string in the route


@pytest.mark.parametrize(
    "kwargs",
    [{"start": 0.0, "last_n": 3}, {"end": 10.0, "last_n": 1}, {"bucket_size": "minute"}, {"last_n": 0}],
)
async def test_billing_refuses_contradictory_arguments(
    make: Callable[..., Harness], kwargs: dict[str, Any]
) -> None:
    harness = make(serve({}))
    with pytest.raises(ValueError):
        await harness.client.serverless_billing(**kwargs)
    assert harness.requests == []


async def test_billing_total_falls_back_to_the_sum_of_records(make: Callable[..., Harness]) -> None:
    records = [
        {"startTime": "2026-06-01T00:00:00Z", "endTime": "2026-06-01T01:00:00Z", "totalAmount": 0.25},
        {"startTime": "2026-06-01T01:00:00Z", "endTime": "2026-06-01T02:00:00Z", "totalAmount": 0.5},
    ]
    harness = make(sequence(reply({"records": records})))
    report = await harness.client.serverless_billing(last_n=2)
    assert (report.total_usd, report.record_count) == (0.75, 2)
    assert report.records[0].endpoint_id is None


async def test_on_call_failures_do_not_break_calls(make: Callable[..., Harness]) -> None:
    def broken_hook(route: str, status: int | None, seconds: float) -> None:
        raise RuntimeError("metrics bug")

    harness = make(sequence(reply({"endpoints": []})), on_call=broken_hook)
    assert await harness.client.list_endpoints() == []


async def test_context_manager_closes_the_connection_pool() -> None:
    transport = httpx.MockTransport(lambda request: reply({"endpoints": []}))
    async with RunPodClient(
        api_key=API_KEY,
        graphql_url=GRAPHQL_URL,
        rest_url=REST_URL,
        runtime_url=RUNTIME_URL,
        transport=transport,
    ) as client:
        assert await client.list_endpoints() == []
    with pytest.raises(RuntimeError):  # httpx refuses to send on a closed client
        await client.list_endpoints()


def test_every_command_builds_the_client_with_every_retry_setting() -> None:
    """``RunPodClient.from_config`` is the one way to build the client: the snapshot command used to drop
    the backoff ceiling and the Retry-After cap."""
    from watchdog.config import RunPodConfig, Secret

    runpod = RunPodConfig(max_retries=7, backoff_max_s=3.5, retry_after_cap_s=9.0, request_timeout_s=4.0)
    client = RunPodClient.from_config(runpod, Secret("rpa_" + "k" * 20))
    assert (client._max_retries, client._backoff_max_s, client._retry_after_cap_s, client._timeout_s) == (
        7,
        3.5,
        9.0,
        4.0,
    )
    assert "k" * 20 not in repr(client)


# ---------------------------------------------------------------------- deadlines: no call outlives its budget


def limited(retry_after: str | None = None, **headers: str) -> httpx.Response:
    extra = dict(headers)
    if retry_after is not None:
        extra["Retry-After"] = retry_after
    return reply(
        problem(429, "Too Many Requests", "rate limit exceeded for the minute window"), 429, headers=extra
    )


async def test_a_429_storm_with_huge_max_retries_stops_at_the_deadline(make: Callable[..., Harness]) -> None:
    """The adversarial tester's case: Retry-After 30 forever, max_retries 10**9. The tick's deadline (100 s)
    ends it: three waits fit, the fourth would pass the deadline and is not started."""
    harness = make(sequence(limited("30")), max_retries=10**9)
    started = harness.clock()
    with harness.client.deadline(100) as scope:
        exc = await expect_error(RunPodDeadlineReached, harness.client.list_endpoints())
    assert isinstance(exc, RunPodUnavailable)
    assert harness.sleeps == [30.0, 30.0, 30.0]
    assert len(harness.requests) == 4
    assert harness.clock() - started == 90.0
    assert str(exc) == (
        "GET /v2/serverless: deadline reached: the wait the 429's Retry-After asks for (30.0s) would end "
        "after it, 10.0s left; 4 attempts, last answer: HTTP 429: Too Many Requests - rate limit exceeded "
        "for the minute window"
    )
    assert exc.status == 429 and exc.quota_starved
    assert scope.quota_starved and scope.deadline_reached and scope.quota_wait_s == 90.0
    assert scope.starved_routes == ["GET /v2/serverless"]
    assert harness.client.last_call_starved


async def test_a_retry_after_beyond_the_time_left_means_give_up_now(make: Callable[..., Harness]) -> None:
    harness = make(sequence(limited("45"), reply({"endpoints": []})))
    with harness.client.deadline(10) as scope:
        exc = await expect_error(RunPodDeadlineReached, harness.client.list_endpoints())
    assert harness.sleeps == []  # the wait that would pass the deadline is never started
    assert len(harness.requests) == 1
    assert "Retry-After asks for (45.0s) would end after it, 10.0s left" in str(exc)
    assert "; 1 attempt, last answer: HTTP 429" in str(exc)
    assert scope.quota_starved and exc.quota_starved


async def test_without_a_deadline_the_call_budget_bounds_any_max_retries(
    make: Callable[..., Harness],
) -> None:
    unavailable = reply(problem(503, "Service Unavailable", "maintenance"), 503)
    harness = make(sequence(unavailable), rng=AlwaysOne(), max_retries=10**9)
    exc = await expect_error(RunPodDeadlineReached, harness.client.list_endpoints())
    assert harness.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # 91.5 s; 30 more would pass 120
    assert sum(harness.sleeps) <= 120
    assert str(exc).startswith(
        "GET /v2/serverless: call budget of 120s reached: the backoff before the next attempt (30.0s) would "
        "end after it, 28.5s left"
    )
    assert "9 attempts, last answer: HTTP 503: Service Unavailable - maintenance" in str(exc)
    assert not exc.quota_starved and not harness.client.last_call_starved
    budget = make(sequence(unavailable), rng=AlwaysOne(), max_retries=10**9, call_budget_s=5)
    await expect_error(RunPodDeadlineReached, budget.client.list_endpoints())
    assert budget.sleeps == [0.5, 1.0, 2.0]


async def test_a_deadline_already_passed_sends_nothing(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply({"endpoints": []})))
    with harness.client.deadline(0):
        exc = await expect_error(RunPodDeadlineReached, harness.client.list_endpoints())
    assert harness.requests == []
    assert str(exc) == "GET /v2/serverless: deadline reached: no time left for an attempt; no attempt made"


async def test_each_attempt_is_cut_to_the_time_left(make: Callable[..., Harness]) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return reply({})

    harness = make(hang, timeout_s=10, clock=time.monotonic, rng=AlwaysOne())
    started = time.monotonic()
    with harness.client.deadline(0.2):
        exc = await expect_error(RunPodDeadlineReached, harness.client.health("ep1"))
    assert time.monotonic() - started < 2  # not the 10 s attempt timeout
    assert len(harness.requests) == 1
    assert re.search(r"1 attempt, last answer: no answer within 0\.\d+s \(the call's deadline\)$", str(exc))


async def test_nested_deadlines_never_extend_the_outer_one(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply({"endpoints": []})))
    with harness.client.deadline(10) as outer, harness.client.deadline(500) as inner:
        assert inner.at == outer.at == harness.clock() + 10
        with harness.client.deadline(at=harness.clock() + 3) as innermost:
            assert innermost.remaining_s() == 3
    with harness.client.deadline() as unbounded:
        assert unbounded.at is None and unbounded.remaining_s() is None
        assert await harness.client.list_endpoints() == []
    assert not unbounded.quota_starved


@pytest.mark.parametrize("kwargs", [{"seconds": -1}, {"seconds": float("nan")}, {"at": float("inf")}])
def test_a_nonsense_deadline_is_refused(kwargs: dict[str, float]) -> None:
    client = RunPodClient(
        api_key=API_KEY, graphql_url=GRAPHQL_URL, rest_url=REST_URL, runtime_url=RUNTIME_URL
    )
    with pytest.raises(ValueError), client.deadline(**kwargs):
        pass


async def test_a_deadline_block_covers_the_tasks_it_starts(make: Callable[..., Harness]) -> None:
    """The daemon reads workers and /health with asyncio.gather: those tasks share the block's scope."""
    health_then_ok = sequence(limited("2"), reply({}))

    def handler(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if request.url.path.endswith("/health"):
            return health_then_ok(request)
        return reply({"workers": []})

    harness = make(handler)
    with harness.client.deadline(60) as scope:
        workers, health = await asyncio.gather(
            harness.client.list_workers("ep1"), harness.client.health("ep1")
        )
    assert workers.workers == () and health.jobs_in_queue == 0
    assert scope.quota_starved and scope.quota_wait_s == 2.0  # the read succeeded, but under quota pressure
    assert scope.starved_routes == ["GET /v2/ep1/health"]
    assert not scope.deadline_reached


async def test_cancelling_a_call_in_a_long_retry_after_wait_is_prompt_and_harmless(
    make: Callable[..., Harness],
) -> None:
    """SIGTERM cancels the tick's task: a call asleep in a Retry-After wait must stop at once, and the
    client must keep working (the daemon's final actions still go through it)."""
    answers = [limited("50")]
    answered = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        answered.set()
        return answers[0]

    harness = make(handler, sleep=asyncio.sleep, clock=time.monotonic)
    task = asyncio.create_task(harness.client.list_endpoints())
    await asyncio.wait_for(answered.wait(), 5)
    await asyncio.sleep(0.05)  # now inside the 50 s wait
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    assert harness.client.last_call_starved
    answers[0] = reply({"endpoints": []})
    assert await harness.client.list_endpoints() == []
    assert len(harness.requests) == 2
    assert not harness.client.last_call_starved


# ---------------------------------------------------------------------- quota awareness


async def test_quota_reports_every_window_per_api(make: Callable[..., Harness]) -> None:
    headers = {
        "RateLimit": '"minute";r=0;t=12, "hour";r=2800;t=1812',
        "RateLimit-Policy": '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400',
    }
    harness = make(sequence(reply({"endpoints": []}, headers=headers), reply({"endpoints": []})))
    assert harness.client.quota() == {}
    await harness.client.list_endpoints()
    harness.clock.advance(2)
    quota = harness.client.quota()
    assert set(quota) == {"rest:minute", "rest:hour"}
    assert quota["rest:minute"] == QuotaWindow(
        api="rest", name="minute", remaining=0, reset_in_s=10.0, age_s=2.0, limit=60, window_s=60.0
    )
    assert quota["rest:minute"].exhausted and not quota["rest:hour"].exhausted
    assert (quota["rest:hour"].remaining, quota["rest:hour"].limit) == (2800, 3000)
    assert [harness.client.last_call_starved] == [False]  # seeing r=0 is not starving; waiting for it is
    with harness.client.deadline(30) as scope:
        await harness.client.list_endpoints()
    assert harness.sleeps == [10.0]
    assert scope.quota_starved and scope.quota_wait_s == 10.0 and harness.client.last_call_starved
    harness.clock.advance(20)
    assert not harness.client.quota()["rest:minute"].exhausted  # reset since: no longer a reason to wait


async def test_a_used_up_window_beyond_the_deadline_gives_up_without_calling(
    make: Callable[..., Harness],
) -> None:
    exhausted = {"RateLimit": '"minute";r=0;t=40'}
    harness = make(sequence(reply({"endpoints": []}, headers=exhausted), reply({"endpoints": []})))
    await harness.client.list_endpoints()
    with harness.client.deadline(5) as scope:
        exc = await expect_error(RunPodDeadlineReached, harness.client.list_endpoints())
    assert len(harness.requests) == 1 and harness.sleeps == []
    assert str(exc) == (
        "GET /v2/serverless: deadline reached: the wait for the rest API's RateLimit quota to reset (40.0s) "
        "would end after it, 5.0s left; no attempt made"
    )
    assert exc.quota_starved and scope.quota_starved and harness.client.last_call_starved
    harness.clock.advance(40)
    assert await harness.client.list_endpoints() == []


def test_the_new_api_is_exported() -> None:
    for name in ("DeadlineScope", "InvalidIdentifier", "QuotaWindow", "RunPodDeadlineReached"):
        assert name in client_module.__all__
    assert issubclass(RunPodDeadlineReached, RunPodUnavailable)
    assert issubclass(InvalidIdentifier, RunPodRejected) and issubclass(InvalidIdentifier, ValueError)
    assert DeadlineScope(at=None).remaining_s() is None


# ---------------------------------------------------------------------- ids the client puts in URL paths


@pytest.mark.parametrize("bad_id", ["job 1", "a/b", "../x", "", ".", "x" * 201, "é"])
async def test_regression_a_bad_job_id_is_a_typed_error_the_tick_can_catch_per_record(
    make: Callable[..., Harness], bad_id: str
) -> None:
    """The daemon's tick died on the ValueError a job id with a space raised; now it is a RunPodError
    (InvalidIdentifier, a RunPodRejected) raised before anything is sent, and still a ValueError."""
    harness = make(serve({}))
    for call in (harness.client.job_status("ep1", bad_id), harness.client.cancel_job("ep1", bad_id)):
        exc = await expect_error(InvalidIdentifier, call)
        assert isinstance(exc, RunPodRejected) and isinstance(exc, ValueError)
        assert exc.status is None and "job_id must be 1-200 letters" in str(exc)
        assert exc.route in {"GET /{endpoint_id}/status/{job_id}", "POST /{endpoint_id}/cancel/{job_id}"}
    assert harness.requests == []


async def test_an_id_containing_the_api_key_is_refused_without_echoing_it(
    make: Callable[..., Harness],
) -> None:
    harness = make(serve({}))
    exc = await expect_error(InvalidIdentifier, harness.client.job_status("ep1", f"x-{API_KEY}"))
    assert "must not contain the API key" in str(exc)
    assert harness.requests == []


# ---------------------------------------------------------------------- bugs found by tests/test_fuzz_client.py


def deep_list(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


async def test_regression_a_huge_integer_in_a_number_field_is_a_protocol_error(
    make: Callable[..., Harness],
) -> None:
    """``math.isfinite(10**400)`` raised OverflowError out of the number check (scaling.queueDelay)."""
    body = endpoint_body("ep1", scaling={"type": "QUEUE_DELAY", "queueDelay": 10**400})
    harness = make(sequence(reply(body)))
    exc = await expect_error(RunPodProtocolError, harness.client.get_endpoint("ep1"))
    assert exc.field == "scaling.queueDelay"
    assert str(exc).endswith("expected a number, got an integer of 401 digits")
    node = client_module._Node.root(body, "GET /x")  # the Python int itself, as the fuzzer fed it
    with pytest.raises(
        RunPodProtocolError, match=r"expected a number in 0..1e\+09, got an integer of about 401"
    ):
        client_module._parse_endpoint(node)


async def test_regression_a_body_nested_too_deeply_is_a_protocol_error(make: Callable[..., Harness]) -> None:
    """``json.loads`` raised RecursionError, which escaped the client, for a 200 and for an error body."""
    for status in (200, 400, 429, 503):
        harness = make(sequence(httpx.Response(status, content=b"[" * 100_000)), max_retries=0)
        with pytest.raises(RunPodError) as info:
            await harness.client.list_endpoints()
        assert_key_absent(info.value)
        if status == 200:
            assert isinstance(info.value, RunPodProtocolError) and "nested too deeply" in str(info.value)


def test_regression_a_deep_job_error_is_kept_as_bounded_text() -> None:
    """``json.dumps`` of a deeply nested ``error`` raised RecursionError."""
    job = client_module._parse_job(
        client_module._Node.root({"id": "j1", "status": "FAILED", "error": deep_list(5000)}, "GET /x")
    )
    assert job.error is not None and job.error.startswith("[[[[") and len(job.error) <= 2000


def test_regression_a_deep_graphql_error_item_is_a_rejection_not_a_crash() -> None:
    """The GraphQL error path ran ``json.dumps`` on each non-message item: RecursionError."""
    with pytest.raises(RunPodRejected) as info:
        client_module._parse_account_spend({"errors": [deep_list(5000), "plain"]}, "POST /graphql")
    assert "GraphQL errors: [[[" in str(info.value) and "plain" in str(info.value)
    assert len(str(info.value)) < 400


def test_regression_retry_after_with_an_absurd_date_is_ignored() -> None:
    """``email.utils.parsedate_to_datetime`` raised OverflowError for a day of 2,200,000,000."""
    assert client_module._retry_after_s("2200000000 JAN 0 0:0 GMT", time.time()) is None
    assert client_module._retry_after_s("Fri, 31 Dec 9999 23:59:59 GMT", time.time()) is not None


async def test_regression_a_body_that_fails_to_decompress_is_a_protocol_error(
    make: Callable[..., Harness],
) -> None:
    """httpx.DecodingError (not a TransportError) escaped the client for ``Content-Encoding: gzip`` garbage."""
    garbage = httpx.ByteStream(b"not gzip")  # a stream: httpx decodes it in the client, as off a socket
    harness = make(sequence(httpx.Response(200, stream=garbage, headers={"Content-Encoding": "gzip"})))
    exc = await expect_error(RunPodProtocolError, harness.client.list_endpoints())
    assert "could not be decoded" in str(exc)
    assert len(harness.requests) == 1


def test_regression_a_5000_digit_integer_never_reaches_int_or_repr() -> None:
    """A 5,000-digit int was accepted as a count, and describing one in a message raised ValueError
    (Python refuses to print ints beyond 4,300 digits)."""
    with pytest.raises(RunPodProtocolError) as info:
        client_module._parse_purge({"removed": 10**5000}, "POST /x")
    assert info.value.field == "removed" and "digits" in str(info.value)
    with pytest.raises(RunPodProtocolError) as info:
        client_module._parse_purge({"removed": 1, "status": 10**5000}, "POST /x")
    assert info.value.field == "status"


async def test_regression_a_5000_digit_integer_in_json_names_its_field(make: Callable[..., Harness]) -> None:
    """It used to be "body is not JSON" (json.loads refused it); now the field is named."""
    harness = make(sequence(httpx.Response(200, content=b'{"removed": ' + b"9" * 5000 + b"}")))
    exc = await expect_error(RunPodProtocolError, harness.client.purge_queue("ep1"))
    assert exc.field == "removed" and "an integer of 5000 digits" in str(exc)


BOUNDS = [
    pytest.param(lambda c: c.purge_queue("ep1"), {"removed": -3}, "removed", id="negative-count"),
    pytest.param(
        lambda c: c.health("ep1"), {"workers": {"running": -1}}, "workers.running", id="negative-health"
    ),
    pytest.param(
        lambda c: c.health("ep1"), {"jobs": {"inQueue": 2**63}}, "jobs.inQueue", id="count-above-2**53"
    ),
    pytest.param(
        lambda c: c.get_endpoint("ep1"),
        endpoint_body("ep1", workers={"min": 0, "max": 1e300}),
        "workers.max",
        id="float-integer-too-big",
    ),
    pytest.param(
        lambda c: c.job_status("ep1", "j1"),
        {"id": "j1", "status": "FAILED", "delayTime": 1e308},
        "delayTime",
        id="duration-too-big",
    ),
    pytest.param(
        lambda c: c.job_status("ep1", "j1"),
        {"id": "j1", "status": "FAILED", "executionTime": -5},
        "executionTime",
        id="negative-duration",
    ),
    pytest.param(
        lambda c: c.serverless_billing(last_n=1),
        {
            "records": [
                {"startTime": "2026-06-01T00:00:00Z", "endTime": "2026-06-01T01:00:00Z", "totalAmount": -5}
            ]
        },
        "records[0].totalAmount",
        id="negative-amount-hides-spend",
    ),
    pytest.param(
        lambda c: c.serverless_billing(last_n=1),
        {
            "records": [
                {"startTime": "0001-01-01T00:00:00Z", "endTime": "2026-06-01T01:00:00Z", "totalAmount": 1}
            ]
        },
        "records[0].startTime",
        id="date-out-of-range",
    ),
    pytest.param(
        lambda c: c.account_spend(),
        {"data": {"myself": {"currentSpendPerHr": -1}}},
        "data.myself.currentSpendPerHr",
        id="negative-spend-rate",
    ),
    pytest.param(
        lambda c: c.get_endpoint("ep1"),
        endpoint_body("ep1", name="x" * 5000),
        "name",
        id="string-too-long",
    ),
    pytest.param(
        lambda c: c.list_endpoints(),
        {"endpoints": [endpoint_body("a/b c")]},
        "endpoints[0].id",
        id="endpoint-id-not-usable-in-a-url",
    ),
    pytest.param(
        lambda c: c.job_status("ep1", "j1"),
        {"id": "j1", "status": "FAILED", "workerId": "w/1"},
        "workerId",
        id="worker-id-not-an-id",
    ),
]


@pytest.mark.parametrize(("call", "body", "field_path"), BOUNDS)
async def test_regression_numbers_dates_strings_and_ids_are_bounded(
    make: Callable[..., Harness], call: Callable[[RunPodClient], Awaitable[Any]], body: Any, field_path: str
) -> None:
    """These used to come through as models (a negative count, an amount of -5 USD, a date in year 1, a
    5,000-character name, an endpoint id the daemon then failed to put in a URL)."""
    harness = make(sequence(reply(body)))
    exc = await expect_error(RunPodProtocolError, call(harness.client))
    assert exc.field == field_path


async def test_regression_infinity_nan_and_1e400_are_protocol_errors(make: Callable[..., Harness]) -> None:
    for literal in (b"1e400", b"NaN", b"-Infinity"):
        harness = make(sequence(httpx.Response(200, content=b'{"jobs": {"inQueue": ' + literal + b"}}")))
        exc = await expect_error(RunPodProtocolError, harness.client.health("ep1"))
        assert exc.field == "jobs.inQueue"


async def test_regression_lone_surrogates_become_replacement_characters(make: Callable[..., Harness]) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); such a str cannot be encoded as UTF-8, so writing
    the model to the ledger would fail later. Strings in models are always encodable."""
    body = (
        rb'{"id": "ep1", "name": "GPU \ud800", "workers": {"min": 0, "max": 1}, "gpu": {"pools": ["\udfff"]}}'
    )
    harness = make(sequence(httpx.Response(200, content=body)))
    endpoint = await harness.client.get_endpoint("ep1")
    assert endpoint.name == "GPU \ufffd" and endpoint.gpu_pools == ("\ufffd",)
    endpoint.name.encode("utf-8")


async def test_a_long_job_error_is_cut_not_refused(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply({"id": "j1", "status": "FAILED", "error": "Traceback\n" + "x" * 10_000})))
    job = await harness.client.job_status("ep1", "j1")
    assert job.error is not None and len(job.error) == 2000 and job.error.startswith("Traceback\n")


async def test_a_body_larger_than_max_body_bytes_is_a_protocol_error(make: Callable[..., Harness]) -> None:
    harness = make(sequence(reply({"endpoints": [], "padding": "x" * 5000})), max_body_bytes=1000)
    exc = await expect_error(RunPodProtocolError, harness.client.list_endpoints())
    assert "larger than 1000 bytes" in str(exc)
    assert len(harness.requests) == 1
