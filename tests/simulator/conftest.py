"""Fixtures for the simulator's HTTP face (tests/simulator/test_app_*.py).

Every test talks real HTTP to ``create_app(sim)`` in-process through ``httpx.ASGITransport`` (one test file
also uses a real loopback uvicorn server). The simulator runs on a ManualClock, so time only moves when a
test says so. REST v2 answers are checked against RunPod's own OpenAPI 3.1 document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from runpod_sim.app import DEFAULT_API_KEY, RateLimits, create_app
from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.faults import Faults
from runpod_sim.state import SimEndpoint
from watchdog.clock import ManualClock, from_iso

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "tests" / "contracts" / "runpod-rest-v2.openapi.json"
"""RunPod's published REST v2 OpenAPI document, vendored unchanged (see tests/contracts/README.md)."""
START = from_iso("2026-06-15T12:00:00Z")
KEY = DEFAULT_API_KEY
AUTH = {"Authorization": f"Bearer {KEY}"}
BASE_URL = "http://127.0.0.1:8787"


ADDITIONS = REPO / "tests" / "contracts" / "runpod-rest-v2.additions.json"
"""Our schemas for what that document lacks (account limits, the log event payload): see its README."""


@cache
def _contract() -> dict[str, Any]:
    # Vendored in the repository: a missing contract is a failure, never a silent skip.
    return json.loads(CONTRACT.read_text())


@cache
def _additions() -> dict[str, Any]:
    return json.loads(ADDITIONS.read_text())


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    """RunPod's schema ``schema_name``; only a name RunPod's document lacks is taken from the additions."""
    registry = Registry().with_resources(
        [
            ("urn:runpod-rest-v2", Resource.from_contents(_contract(), default_specification=DRAFT202012)),
            ("urn:additions", Resource.from_contents(_additions(), default_specification=DRAFT202012)),
        ]
    )
    document = "runpod-rest-v2" if schema_name in _contract()["components"]["schemas"] else "additions"
    return Draft202012Validator(
        {"$ref": f"urn:{document}#/components/schemas/{schema_name}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


class OpenApiContract:
    """RunPod's REST v2 OpenAPI document as a test oracle (JSON Schema 2020-12, #/components refs)."""

    def check(self, instance: Any, schema_name: str) -> None:
        """Fail with every violation of OAS2 ``components/schemas/<schema_name>``."""
        errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, f"{schema_name} violations: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )

    def accepts(self, instance: Any, schema_name: str) -> bool:
        return _validator(schema_name).is_valid(instance)

    def problem(self, response: httpx.Response, status: int) -> dict[str, Any]:
        """Assert an RFC 9457 problem+json answer with ``status``; returns its body."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        self.check(body, "ErrorResponse")
        assert body["status"] == status
        return body


@pytest.fixture
def oas() -> OpenApiContract:
    _contract()
    return OpenApiContract()


@pytest.fixture
def base_url() -> str:
    return BASE_URL


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def options() -> SimOptions:
    return SimOptions()


@pytest.fixture
def sim(clock: ManualClock, options: SimOptions, tmp_path: Path) -> Simulator:
    simulator = Simulator(clock=clock, options=options, access_log_path=str(tmp_path / "access.jsonl"))
    simulator.add_endpoint(
        SimEndpoint(
            id="ep-alpha",
            name="alpha",
            gpu_ids="AMPERE_48",
            created_at=START - 86_400,
            cold_start_s=2.0,
            env={"MODEL": "sannu"},
        )
    )
    simulator.add_endpoint(
        SimEndpoint(
            id="ep-ext", name="external", worker_kind="external", created_at=START - 3600, cold_start_s=0
        )
    )
    return simulator


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def rate_limits() -> RateLimits:
    return RateLimits()


@pytest.fixture
def app(sim: Simulator, faults: Faults, rate_limits: RateLimits) -> Any:
    return create_app(sim, faults=faults, rate_limits=rate_limits, long_poll_s=0.3, runsync_max_wait_s=1.0)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=AUTH, timeout=10) as http:
        yield http


@pytest.fixture
def access_log(tmp_path: Path) -> Callable[[], list[dict[str, Any]]]:
    def read() -> list[dict[str, Any]]:
        path = tmp_path / "access.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    return read
