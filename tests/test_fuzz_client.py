"""Property-based tests: no answer RunPod (or anything posing as RunPod) gives can crash the client.

WHY: the daemon's tick must end in a recorded reading, blind or not, whatever comes back over the wire.
Every parser therefore has one contract: any input yields a model or a typed ``RunPodError`` (a
``RunPodProtocolError`` naming the field for a bad shape; ``RunPodRejected`` for GraphQL ``errors``),
never a ``KeyError``/``TypeError``/``ValueError``/``OverflowError``/``RecursionError`` from deep inside.
The same holds end to end through ``httpx.MockTransport`` for random bytes, statuses and headers, and no
exception ever carries the API key. The worker log stream has its own contract, as it is read rather
than parsed whole: any bytes, split anyhow, give a bounded batch (never an exception, never the key), the
same batch however they are split, and well-formed events come back exactly. Regression tests for what
these properties found live in tests/test_client.py (``test_regression_*``) and tests/test_client_logs.py,
so a failure there names the bug without hypothesis.

Examples run with ``deadline=None`` (the first example pays for imports) and bounded ``max_examples`` so the
whole file stays well under 30 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import itertools
import json
import math
import random
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog import client as client_module
from watchdog.client import (
    LOG_SOURCES,
    InvalidIdentifier,
    RunPodClient,
    _LogStreamReader,
    _Node,
    _parse_account_limits,
    _parse_account_spend,
    _parse_billing,
    _parse_endpoint,
    _parse_endpoint_list,
    _parse_health,
    _parse_job,
    _parse_purge,
    _parse_workers,
    _ratelimit_wait_s,
    _retry_after_s,
)
from watchdog.clock import from_iso
from watchdog.errors import RunPodError, RunPodProtocolError, RunPodRejected, RunPodUnavailable
from watchdog.models import LogStreamEnd, WorkerLogBatch

API_KEY = "rpa_FUZZSECRET_0d9c8b7a6f5e4d3c"
ROUTE = "GET /v2/fuzz"

FUZZ = settings(
    max_examples=75,
    deadline=None,
    database=None,  # write nothing into the repository; a failure prints how to reproduce it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_E2E = settings(FUZZ, max_examples=40)
"""Through httpx: each example builds a client and runs an event loop, so fewer of them."""

# ---------------------------------------------------------------------- hostile JSON-like values


class Deep(dict[str, Any]):
    """A deeply nested value that hypothesis can still print (its own repr would recurse too deep)."""

    def __repr__(self) -> str:
        return f"<{self.get('depth')} levels deep>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@functools.cache
def deep(depth: int, leaf: Any = 1) -> Deep:
    value: Any = leaf
    for index in range(depth):
        value = [value] if index % 2 else {"a": value}
    return Deep(depth=depth, a=value)


HUGE_INT = 10**4000
"""Under Python's 4,300-digit ``int``/``str`` limit so hypothesis can print it; 5,000-digit ints arrive as JSON
text below (and tests/test_client.py has a direct regression test for one)."""
SPECIAL_VALUES: list[Any] = [
    HUGE_INT,
    -HUGE_INT,
    2**64,
    2**53 + 1,
    -1,
    -(2**63),
    0,
    1e400,  # inf once parsed
    float("inf"),
    float("-inf"),
    float("nan"),
    1e308,
    -1e308,
    5e-324,
    -0.0,
    1.5,
    True,
    False,
    None,
    "",
    " ",
    "x" * 100_000,
    "\x00",
    "\ud800",
    "é/../?#",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2026-06-01T12:00:00Z",
    "RUNNING",
    "COMPLETED",
    API_KEY,
    f"token {API_KEY} leaked",
    [],
    {},
]


def special(index: int) -> Any:
    """``SPECIAL_VALUES[index]``: drawn by index so hypothesis never prints the whole list."""
    return SPECIAL_VALUES[index]


FIELD_NAMES = [
    "endpoints",
    "id",
    "name",
    "workers",
    "min",
    "max",
    "idleTimeout",
    "timeout",
    "gpu",
    "pools",
    "count",
    "scaling",
    "type",
    "queueDelay",
    "requestCount",
    "value",
    "flashboot",
    "createdAt",
    "status",
    "isStale",
    "gpuCount",
    "gpuTypeId",
    "version",
    "uptimeSeconds",
    "startedAt",
    "dataCenterId",
    "summary",
    "running",
    "idle",
    "initializing",
    "throttled",
    "unhealthy",
    "total",
    "endpointVersion",
    "jobs",
    "completed",
    "failed",
    "inProgress",
    "inQueue",
    "retried",
    "ready",
    "delayTime",
    "executionTime",
    "workerId",
    "error",
    "output",
    "removed",
    "records",
    "startTime",
    "endTime",
    "serverlessId",
    "totalAmount",
    "gpuAmount",
    "cpuAmount",
    "diskAmount",
    "feeAmount",
    "metadata",
    "totals",
    "recordCount",
    "errors",
    "message",
    "data",
    "myself",
    "clientBalance",
    "currentSpendPerHr",
    "spendLimit",
    "workersStandby",
    "spendRate",
    "serverlessWorkers",
    "limit",
    "current",
    "ts",
    "source",
    "line",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=15, max_value=4200).map(lambda digits: 10**digits),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.integers(min_value=0, max_value=len(SPECIAL_VALUES) - 1).map(special),
    st.sampled_from([1_100, 5_000, 30_000]).map(deep),
    st.sampled_from([1_100, 3_000]).map(lambda depth: deep(depth, API_KEY)),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=8)),
    max_leaves=40,
)

# Valid bodies, one per parser, so that a mutation reaches deep fields instead of failing at the root.
ENDPOINT = {
    "id": "ep1",
    "name": "n",
    "type": "QUEUE",
    "workers": {"min": 0, "max": 1, "idleTimeout": 5},
    "gpu": {"pools": ["ADA_24"], "count": 1},
    "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    "timeout": 600000,
    "flashboot": "OFF",
    "createdAt": "2026-06-01T12:00:00Z",
}
VALID: dict[str, Any] = {
    "endpoint_list": {"endpoints": [ENDPOINT, ENDPOINT]},
    "endpoint": ENDPOINT,
    "workers": {
        "endpointVersion": 4,
        "summary": {"running": 1, "idle": 1, "initializing": 0, "throttled": 0, "unhealthy": 0, "total": 2},
        "workers": [
            {
                "id": "w1",
                "status": "RUNNING",
                "isStale": False,
                "version": 4,
                "gpuCount": 1,
                "uptimeSeconds": 3600,
                "gpuTypeId": "NVIDIA GeForce RTX 4090",
                "dataCenterId": "US-KS-2",
                "startedAt": "2026-06-01T12:05:00Z",
            }
        ],
    },
    "health": {
        "jobs": {"completed": 1, "failed": 5, "inProgress": 0, "inQueue": 2, "retried": 0},
        "workers": {"idle": 0, "running": 1, "ready": 1, "initializing": 0, "throttled": 0, "unhealthy": 0},
    },
    "job": {
        "id": "j1-u1",
        "status": "FAILED",
        "delayTime": 31618,
        "executionTime": 1437,
        "workerId": "w1",
        "error": {"trace": ["x"]},
        "output": {"text": "hi"},
    },
    "purge": {"removed": 2, "status": "completed"},
    "billing": {
        "records": [
            {
                "startTime": "2026-06-01T00:00:00Z",
                "endTime": "2026-06-01T01:00:00Z",
                "serverlessId": "ep1",
                "totalAmount": 0.5,
                "gpuAmount": 0.4,
                "cpuAmount": 0,
                "diskAmount": 0.05,
                "feeAmount": 0.05,
            }
        ],
        "metadata": {"recordCount": 1, "totals": {"totalAmount": 0.5}},
    },
    "account_spend": {
        "data": {
            "myself": {
                "clientBalance": 12.5,
                "currentSpendPerHr": 0.69,
                "spendLimit": 80,
                "endpoints": [{"id": "ep1", "workersStandby": 1}],
            }
        }
    },
    "graphql_errors": {"errors": [{"message": "boom", "path": ["myself"]}, "plain", {"x": 1}], "data": None},
    "account_limits": {
        "spendRate": {"limit": 80, "current": 1.224},
        "serverlessWorkers": {"limit": 5, "current": 6},
    },
}

PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "endpoint_list": _parse_endpoint_list,
    "endpoint": lambda body, route: _parse_endpoint(_Node.root(body, route)),
    "workers": _parse_workers,
    "health": _parse_health,
    "job": lambda body, route: _parse_job(_Node.root(body, route)),
    "purge": _parse_purge,
    "billing": _parse_billing,
    "account_spend": _parse_account_spend,
    "graphql_errors": _parse_account_spend,
    "account_limits": _parse_account_limits,
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of ``value`` (the root included)."""
    found = [prefix]
    if isinstance(value, Deep):
        return found
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


def _copy(value: Any) -> Any:
    if isinstance(value, Deep):
        return value
    if isinstance(value, dict):
        return {key: _copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy(child) for child in value]
    return value


_DELETE = object()


@st.composite
def mutated(draw: st.DrawFn, name: str) -> Any:
    """A valid body with one to three nodes replaced by hostile values, or deleted."""
    body = _copy(VALID[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        replacement = draw(st.one_of(json_values, st.just(_DELETE)))
        if not path:
            body = None if replacement is _DELETE else replacement
            continue
        parent = body
        try:
            for step in path[:-1]:
                parent = parent[step]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape under this path
        if not isinstance(parent, dict | list):
            continue
        try:
            if replacement is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = replacement
        except (KeyError, IndexError, TypeError):
            continue
    return body


def assert_bounded(value: Any, path: str = "$", max_text: int = 2_000) -> None:
    """What a model may hold: integers in 0..2**53-1, finite floats, strings of at most ``max_text``
    characters (2,000; a log line 4,000) that UTF-8 can encode (so the ledger can store them), and
    containers/dataclasses of those."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, StrEnum):
        return
    if isinstance(value, int):
        assert 0 <= value <= 2**53 - 1, f"{path}: {value!r} out of range"
    elif isinstance(value, float):
        assert math.isfinite(value) and abs(value) <= 1e15, f"{path}: {value!r} out of range"
    elif isinstance(value, str):
        assert len(value) <= max_text, f"{path}: {len(value)} characters"
        value.encode("utf-8")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            assert_bounded(item, f"{path}[{index}]", max_text)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_bounded(key, f"{path} key", max_text)
            assert_bounded(item, f"{path}.{key}", max_text)
    else:
        assert dataclasses.is_dataclass(value), f"{path}: unexpected {type(value).__name__}"
        for item in dataclasses.fields(value):
            assert_bounded(getattr(value, item.name), f"{path}.{item.name}", max_text)


def check_outcome(run: Callable[[], Any]) -> Any:
    """Run a parser: a bounded model, or a typed RunPodError whose message is printable and short."""
    try:
        result = run()
    except RunPodError as exc:
        assert isinstance(exc, RunPodProtocolError | RunPodRejected), type(exc)
        text = str(exc)
        assert len(text) < 2_000, "messages stay bounded"
        repr(exc)
        return exc
    assert_bounded(result)
    return result


# ---------------------------------------------------------------------- the parsers, one by one


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_the_valid_seed_bodies_parse(name: str) -> None:
    """The mutation seeds are themselves valid (except the GraphQL errors one, which must be rejected)."""
    outcome = check_outcome(lambda: PARSERS[name](_copy(VALID[name]), ROUTE))
    assert isinstance(outcome, RunPodRejected) == (name == "graphql_errors")


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_every_parser_survives_hostile_bodies(name: str, data: st.DataObject) -> None:
    """Mutated valid bodies (deep fields get hostile values) and arbitrary JSON-like values."""
    body = data.draw(st.one_of(mutated(name), json_values))
    check_outcome(lambda: PARSERS[name](body, ROUTE))


# ---------------------------------------------------------------------- header parsers

HEADER_SPECIALS = [
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-5",
    "1" * 5000,
    "0x10",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 01 Jan 0001 00:00:00 +2359",
    "Thu, 01 Jan 1970 00:00:00 -0000",
    "Sun, 06 Nov 1994 08:49:37",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "99999999999999999999 Jan 2026 00:00:00 GMT",
    '"minute";r=0;t=12, "hour";r=2800;t=1812',
    '"minute";r=0;t=1e400',
    '"minute";r=-1;t=nan',
    f'"minute";r={"9" * 5000};t=1',
    '"minute";r=0;t=' + "9" * 400,
    ";;;,,,==",
]
header_text = st.one_of(
    st.text(max_size=60),
    st.integers(min_value=0, max_value=len(HEADER_SPECIALS) - 1).map(HEADER_SPECIALS.__getitem__),
)


@FUZZ
@given(value=st.one_of(st.none(), header_text), now=st.floats(allow_nan=True, allow_infinity=True))
def test_retry_after_is_none_or_a_finite_non_negative_number(value: str | None, now: float) -> None:
    seconds = _retry_after_s(value, now)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@FUZZ
@given(value=st.one_of(st.none(), header_text))
def test_ratelimit_wait_is_none_or_a_finite_positive_number(value: str | None) -> None:
    seconds = _ratelimit_wait_s(value)
    assert seconds is None or (math.isfinite(seconds) and seconds > 0)


# ---------------------------------------------------------------------- end to end, through httpx

CALLS: dict[str, Callable[[RunPodClient], Awaitable[Any]]] = {
    "list_endpoints": lambda c: c.list_endpoints(),
    "get_endpoint": lambda c: c.get_endpoint("ep1"),
    "patch_endpoint": lambda c: c.patch_endpoint("ep1", workers_max=0),
    "list_workers": lambda c: c.list_workers("ep1"),
    "serverless_billing": lambda c: c.serverless_billing(last_n=2),
    "health": lambda c: c.health("ep1"),
    "job_status": lambda c: c.job_status("ep1", "j1-u1"),
    "cancel_job": lambda c: c.cancel_job("ep1", "j1-u1"),
    "purge_queue": lambda c: c.purge_queue("ep1"),
    "account_spend": lambda c: c.account_spend(),
    "account_limits": lambda c: c.account_limits(),
    "worker_logs": lambda c: c.worker_logs(
        "ep1", "w1", last_event_id="2026-06-01T12:05:04Z/1", max_seconds=5
    ),
}

statuses = st.one_of(
    st.just(200), st.sampled_from([201, 204, 302, 400, 404, 408, 409, 422, 429, 500, 502, 503, 599, 999])
)
header_maps = st.dictionaries(
    st.sampled_from(["Retry-After", "RateLimit", "RateLimit-Policy", "Content-Type", "Content-Encoding"]),
    st.one_of(
        header_text,
        st.sampled_from(
            [
                "application/json; charset=bogus-xyz",
                "text/html; charset=utf-32",
                "gzip",
                "br",
                "deflate, gzip",
                "text/event-stream",
            ]
        ),
    ),
    max_size=4,
)


def _as_header(value: str) -> str:
    """Printable ASCII: httpx refuses CR, LF and NUL in header values and encodes ``str`` values as ASCII."""
    return "".join(ch if " " <= ch < "\x7f" else "?" for ch in value)


BODY_SPECIALS = [
    b"",
    b"[" * 100_000,
    b'{"endpoints": [' * 20_000,
    b"1" * 5000,
    b'{"removed": ' + b"9" * 5000 + b"}",
    b'{"removed": 1e400}',
    b'{"removed": -3, "status": "completed"}',
    b'{"removed": NaN}',
    b'{"id": "j1", "status": "FAILED", "error": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"errors": [' + b"[" * 3000 + b"]" * 3000 + b"]}",
    b'{"title": "x", "detail": "token ' + API_KEY.encode() + b'"}',
    API_KEY.encode(),
    b"\xff\xfe\x00\x00",
]


def _dumps(value: Any) -> bytes:
    """JSON text of a hostile value (non-finite floats as NaN/Infinity, which Python's json reads back)."""
    try:
        return json.dumps(value).encode()
    except (RecursionError, ValueError):  # the 5,000+-level values: JSON nested deeper than json can write
        return b"[" * 2000


bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(min_value=0, max_value=len(BODY_SPECIALS) - 1).map(BODY_SPECIALS.__getitem__),
    json_values.map(_dumps),
    st.sampled_from(sorted(VALID)).flatmap(mutated).map(_dumps),
)


async def _no_sleep(seconds: float) -> None:
    return None


def _client(handler: Callable[[httpx.Request], httpx.Response], **overrides: Any) -> RunPodClient:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "graphql_url": "http://127.0.0.1:9/graphql",
        "rest_url": "http://127.0.0.1:9/v2",
        "runtime_url": "http://127.0.0.1:9/v2",
        "transport": httpx.MockTransport(handler),
        "sleep": _no_sleep,
        "max_retries": 2,
        "rng": random.Random(0),
    }
    options.update(overrides)
    return RunPodClient(**options)


def assert_no_key(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for text in (str(current), repr(current), *map(str, current.args)):
            assert API_KEY not in text
        current = current.__cause__ or current.__context__


@pytest.mark.parametrize("call", sorted(CALLS))
@FUZZ_E2E
@given(
    replies=st.lists(st.tuples(statuses, bodies, header_maps), min_size=1, max_size=4),
)
def test_every_public_method_survives_any_answer(
    call: str, replies: list[tuple[int, bytes, dict[str, str]]]
) -> None:
    pending = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        status, content, headers = pending.pop(0) if len(pending) > 1 else pending[0]
        return httpx.Response(  # a stream: the client reads (and decompresses) it, as off a socket
            status,
            stream=httpx.ByteStream(content),
            headers={key: _as_header(value) for key, value in headers.items()},
        )

    async def main() -> None:
        async with _client(handler) as api:
            try:
                result = await CALLS[call](api)
            except RunPodError as exc:
                assert_no_key(exc)
                assert len(str(exc)) < 2_000
            else:
                assert_bounded(result, max_text=4_000 if call == "worker_logs" else 2_000)
            quota = api.quota()  # whatever the RateLimit headers said, what is kept stays small and sane
            assert len(quota) <= 16
            for window in quota.values():
                assert len(window.name) <= 64 and 0 <= window.remaining <= 2**53 - 1
                assert math.isfinite(window.reset_in_s) and window.reset_in_s >= 0

    asyncio.run(main())


# ---------------------------------------------------------------------- identifiers and the key

ids = st.one_of(st.text(max_size=40), st.sampled_from(["", ".", "..", "a/b", "j 1", "ep?x", "é", "x" * 201]))


@FUZZ_E2E
@given(endpoint_id=ids, job_id=ids)
def test_any_id_is_sent_as_it_is_or_refused_with_a_typed_error(endpoint_id: str, job_id: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"id": job_id or "x", "status": "IN_QUEUE"})

    async def main() -> None:
        async with _client(handler) as api:
            for method in (api.job_status, api.cancel_job):
                try:
                    await method(endpoint_id, job_id)
                except InvalidIdentifier as exc:
                    assert isinstance(exc, RunPodRejected) and isinstance(exc, ValueError)
                    assert_no_key(exc)
                except RunPodError as exc:
                    assert_no_key(exc)

    asyncio.run(main())
    for request in sent:
        assert request.url.path.split("/")[2] == endpoint_id
        assert request.url.path.split("/")[-1] == job_id


@settings(FUZZ, max_examples=20)
@given(prefix=st.text(max_size=50), suffix=st.text(max_size=50), status=statuses)
def test_the_key_echoed_anywhere_never_reaches_an_exception(prefix: str, suffix: str, status: int) -> None:
    echoed = f"{prefix}{API_KEY}{suffix}"
    documents = [
        {"title": echoed, "detail": echoed, "errors": [echoed, {"message": echoed}]},
        {"errors": [{"message": echoed}], "data": None},
        {"endpoints": [{"id": echoed, "workers": {"min": echoed, "max": 1}}]},
        {"id": echoed, "status": echoed, "removed": echoed},
        echoed,
    ]

    async def main() -> None:
        for document in documents:
            content = json.dumps(document).encode("utf-8", "surrogatepass")

            def echo(request: httpx.Request, c: bytes = content) -> httpx.Response:
                return httpx.Response(status, content=c)

            api = _client(echo)
            async with api:
                for call in CALLS.values():
                    try:
                        await call(api)
                    except RunPodError as exc:
                        assert_no_key(exc)
                assert API_KEY not in repr(api)

    asyncio.run(main())


# ---------------------------------------------------------------------- bounded time, whatever RunPod says

LATENCY_S = 1.0
"""Fake seconds each exchange takes in the time-bound tests."""


@FUZZ_E2E
@given(
    max_retries=st.sampled_from([0, 1, 4, 50, 10**6, 10**9]),
    replies=st.lists(
        st.tuples(
            st.sampled_from([429, 500, 503, 408]),
            st.dictionaries(
                st.sampled_from(["Retry-After", "RateLimit"]),
                st.sampled_from(["0", "1", "30", "59", "61", "3600", "1e9", '"minute";r=0;t=45']),
                max_size=2,
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    budget=st.one_of(st.none(), st.floats(min_value=0, max_value=300)),
)
def test_a_call_never_outlives_its_deadline_or_the_default_ceiling(
    max_retries: int, replies: list[tuple[int, dict[str, str]]], budget: float | None
) -> None:
    clock = [1000.0]
    pending = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        clock[0] += LATENCY_S  # every exchange takes time, as on a real network
        status, headers = pending.pop(0) if len(pending) > 1 else pending[0]
        return httpx.Response(status, json={"title": "busy"}, headers=headers)

    async def fake_sleep(seconds: float) -> None:
        assert seconds >= 0
        clock[0] += seconds

    async def main() -> None:
        api = _client(
            handler, max_retries=max_retries, sleep=fake_sleep, clock=lambda: clock[0], call_budget_s=120
        )
        async with api:
            started = clock[0]
            limit = 120.0 if budget is None else min(120.0, budget)
            with api.deadline(budget), pytest.raises(RunPodUnavailable):
                await api.list_endpoints()
            assert clock[0] - started <= limit + LATENCY_S  # an exchange under way is not cut short here

    asyncio.run(main())


def test_module_exports_the_new_api() -> None:
    for name in ("InvalidIdentifier", "QuotaWindow", "DeadlineScope", "RunPodClient"):
        assert name in client_module.__all__


# ---------------------------------------------------------------------- the worker log stream (SSE)

SSE_FRAGMENTS = [
    "id: ",
    "id:",
    "data: ",
    "data:",
    "event: log",
    "retry: 5",
    ": keep-alive",
    ":",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    "\x00",
    "\ufeff",
    "é",
    "\ud83d\ude00",
    "2026-06-01T12:05:04Z/000000000042",
    '{"ts":"2026-06-01T12:05:04Z","source":"container","line":"Worker ready."}',
    '{"ts":"yesterday","source":"container","line":"x"}',
    '{"ts":"2026-06-01T12:05:04Z","source":"system","line":' + "[" * 50 + "]" * 50 + "}",
    '{"ts":"2026-06-01T12:05:04Z","source":"container","line":"\\ud800"}',
    '{"ts":"2026-06-01T12:05:04Z","source":"container","line":"' + API_KEY + '"}',
    API_KEY,
    "x" * 5000,
    "[" * 3000,
]
stream_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(SSE_FRAGMENTS), max_size=40).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
    st.lists(
        st.one_of(
            st.sampled_from(SSE_FRAGMENTS), json_values.map(lambda v: _dumps(v).decode("utf-8", "replace"))
        ),
        max_size=12,
    ).map(
        lambda parts: "\n".join(f"data: {p}" if i % 2 else p for i, p in enumerate(parts)).encode(
            "utf-8", "surrogatepass"
        )
    ),
)


def _read_stream(
    data: bytes, cuts: list[int], *, max_lines: int = 10**6, max_bytes: int = 1 << 30, last: str | None = None
) -> WorkerLogBatch:
    """The pure stream reader over ``data`` split at ``cuts``, to the stream's end or a bound."""
    reader = _LogStreamReader(
        endpoint_id="ep1",
        worker_id="w1",
        last_event_id=last,
        max_lines=max_lines,
        max_bytes=max_bytes,
        api_key=API_KEY,
    )
    bounds = [0, *sorted({min(max(cut, 0), len(data)) for cut in cuts}), len(data)]
    for start, end in itertools.pairwise(bounds):
        stop = reader.feed(data[start:end])
        if stop is not None:
            return reader.batch(stop)
    return reader.batch(reader.finish())


def assert_sane_batch(batch: WorkerLogBatch, *, max_lines: int, max_bytes: int, given: str | None) -> None:
    assert_bounded(batch, max_text=4_000)
    assert API_KEY not in repr(batch)
    assert len(batch.events) <= max_lines and batch.bytes_read <= max_bytes
    assert batch.end in (LogStreamEnd.CLOSED, LogStreamEnd.MAX_LINES, LogStreamEnd.MAX_BYTES)
    resume = batch.last_event_id
    if resume != given:  # a cursor the reader chose can always be sent back as Last-Event-ID
        assert resume is not None and 0 < len(resume) <= 256 and resume.isascii() and resume.isprintable()
        assert resume == resume.strip()
    for event in batch.events:
        assert 946_684_800 <= event.ts < 7_258_118_400 and 0 < len(event.source) <= 64


@FUZZ
@given(
    data=stream_bytes,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    max_lines=st.integers(min_value=1, max_value=5),
    max_bytes=st.sampled_from([1, 17, 100, 1 << 20]),
    last=st.sampled_from([None, "2026-06-01T12:05:00Z/1"]),
)
def test_the_log_stream_reader_survives_any_bytes_split_anyhow(
    data: bytes, cuts: list[int], max_lines: int, max_bytes: int, last: str | None
) -> None:
    batch = _read_stream(data, cuts, max_lines=max_lines, max_bytes=max_bytes, last=last)
    assert_sane_batch(batch, max_lines=max_lines, max_bytes=max_bytes, given=last)


@FUZZ
@given(data=stream_bytes, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_the_log_stream_reader_does_not_depend_on_how_bytes_arrive(data: bytes, cuts: list[int]) -> None:
    """TCP splits a stream anywhere (inside a UTF-8 character, between CR and LF): same batch every time."""
    whole = _read_stream(data, [])
    assert _read_stream(data, cuts) == whole
    assert _read_stream(data, list(range(1, len(data)))) == whole  # one byte at a time


log_lines = st.one_of(st.text(max_size=60), st.text(min_size=3990, max_size=4100, alphabet="aé\n\r\u2028:"))
log_events = st.lists(
    st.tuples(
        log_lines,
        st.sampled_from(LOG_SOURCES),
        st.integers(min_value=946_684_800_000, max_value=7_258_118_399_999),
    ),
    max_size=6,
)


@FUZZ
@given(
    events=log_events,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    pretty=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=5),
)
def test_well_formed_events_come_back_exactly(
    events: list[tuple[str, str, int]], newline: str, comments: bool, pretty: bool, cuts: list[int]
) -> None:
    """Events as a server writes them, with any line ending, comments between them, and the JSON over
    one ``data:`` line or several (``pretty``): each comes back as it was, however the bytes are split."""
    text = ": hello\n\n" if comments else ""
    for seq, (line, source, ms) in enumerate(events, start=1):
        stamp = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).isoformat(timespec="milliseconds")
        stamp = stamp.replace("+00:00", "Z")
        data = json.dumps(
            {"ts": stamp, "source": source, "line": line}, ensure_ascii=False, indent=pretty or None
        )
        data_lines = "".join(f"data: {part}{newline}" for part in data.split("\n"))
        text += f"id: {stamp}/{seq:012d}{newline}{data_lines}{newline}"
        if comments:
            text += f": keep-alive{newline}"
    encoded = text.encode()
    batch = _read_stream(encoded, cuts)
    assert _read_stream(encoded, list(range(1, len(encoded), 1 if len(encoded) < 20_000 else 3))) == batch
    expected = [(line if len(line) <= 4000 else line[:3999] + "…", source) for line, source, _ in events]
    assert [(e.line, e.source) for e in batch.events] == expected
    assert [round(e.ts * 1000) for e in batch.events] == [ms for _, _, ms in events]
    assert [from_iso(e.id.split("/")[0]) for e in batch.events] == [e.ts for e in batch.events]
    assert batch.skipped == 0 and batch.end is LogStreamEnd.CLOSED
    assert batch.last_event_id == (batch.events[-1].id if events else None)


@FUZZ_E2E
@given(
    last_event_id=st.one_of(
        st.text(max_size=40), st.sampled_from(["", " x", "a\r\nb", "é", "x" * 257, API_KEY])
    )
)
def test_any_last_event_id_is_sent_as_it_is_or_refused_with_a_typed_error(last_event_id: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"", headers={"Content-Type": "text/event-stream"})

    async def main() -> None:
        async with _client(handler) as api:
            try:
                batch = await api.worker_logs("ep1", "w1", last_event_id=last_event_id)
            except InvalidIdentifier as exc:
                assert_no_key(exc)
                assert sent == []
            else:
                assert batch.last_event_id == last_event_id
                assert sent[0].headers["Last-Event-ID"] == last_event_id

    asyncio.run(main())
