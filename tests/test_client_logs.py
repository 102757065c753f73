"""``RunPodClient.worker_logs``: a worker's REST v2 log stream (server-sent events) against fake transports.

WHY: the daemon reads a RUNNING worker's log each tick to learn which job it started (the runpod SDK's
"Started." line), because ``/status`` has no start time. A live stream never ends, so the call must come
back by itself (``max_lines``, ``max_seconds``, a byte bound, the tick's deadline) with a cursor to resume
from, and whatever the stream holds (bad framing, non-JSON, huge lines, dates that are not dates, the key
echoed back) must end in a bounded batch with the bad events counted, never in an exception from deep
inside. Opening the stream is an ordinary GET: retried, typed errors, key never shown.
Tests against the simulator (in-process and on a real socket) are in tests/test_client_simulator.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from watchdog import client as client_module
from watchdog.client import (
    LOG_STREAM_MAX_BYTES,
    InvalidIdentifier,
    RunPodClient,
    _LogStreamReader,
)
from watchdog.clock import from_iso
from watchdog.errors import (
    RunPodAuthError,
    RunPodError,
    RunPodNotFound,
    RunPodProtocolError,
    RunPodUnavailable,
)
from watchdog.models import LogStreamEnd, WorkerLogBatch

API_KEY = "rpa_LOGSECRET_5b2e8d1c9a7f4e36"
REST_URL = "http://127.0.0.1:8401/v2"
ROUTE = "GET /v2/serverless/ep1/workers/w1/logs"
SSE = {"Content-Type": "text/event-stream"}
OPENAPI: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "contracts" / "runpod-rest-v2.openapi.json").read_text()
)


# ---------------------------------------------------------------------- harness


class Wire:
    """Records what the client sent and the sleeps it asked for."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.calls: list[tuple[str, int | None]] = []


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., tuple[RunPodClient, Wire]]]:
    clients: list[RunPodClient] = []

    def build(handler: Handler, **overrides: Any) -> tuple[RunPodClient, Wire]:
        wire = Wire()

        def record(request: httpx.Request) -> httpx.Response:
            wire.requests.append(request)
            return handler(request)

        async def fake_sleep(seconds: float) -> None:
            wire.sleeps.append(seconds)

        options: dict[str, Any] = {
            "api_key": API_KEY,
            "graphql_url": "http://127.0.0.1:8403/graphql",
            "rest_url": REST_URL,
            "runtime_url": "http://127.0.0.1:8402/v2",
            "transport": httpx.MockTransport(record),
            "sleep": fake_sleep,
            "rng": random.Random(3),
            "on_call": lambda template, status, _s: wire.calls.append((template, status)),
        }
        options.update(overrides)
        client = RunPodClient(**options)
        clients.append(client)
        return client, wire

    yield build
    for client in clients:
        await client.aclose()


def event_id(n: int) -> str:
    return f"2026-06-01T12:05:{n % 60:02d}Z/{n:012d}"


def event(
    n: int, line: str = "", *, source: str = "container", ts: Any = None, eid: str | None = None
) -> str:
    """One event as RunPod's OAS2 example writes it: ``id: <ts>/<seq>`` and compact JSON data."""
    data = {"ts": f"2026-06-01T12:05:{n % 60:02d}Z" if ts is None else ts, "source": source, "line": line}
    return f"id: {event_id(n) if eid is None else eid}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def stream(body: bytes | str, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    content = body.encode() if isinstance(body, str) else body

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, stream=httpx.ByteStream(content), headers=SSE if headers is None else headers
        )

    return handler


def read(
    data: bytes, chunk: int | None = None, *, max_lines: int = 10_000, max_bytes: int = 1 << 30
) -> WorkerLogBatch:
    """The pure reader on ``data``, fed in chunks of ``chunk`` bytes (None: one chunk), to the stream's end."""
    reader = _LogStreamReader(
        endpoint_id="ep1",
        worker_id="w1",
        last_event_id=None,
        max_lines=max_lines,
        max_bytes=max_bytes,
        api_key=API_KEY,
    )
    size = chunk or max(1, len(data))
    for start in range(0, max(1, len(data)), size):
        end = reader.feed(data[start : start + size])
        if end is not None:
            return reader.batch(end)
    return reader.batch(reader.finish())


def assert_key_absent(value: object) -> None:
    assert API_KEY not in repr(value)
    if isinstance(value, BaseException):
        current: BaseException | None = value
        while current is not None:
            assert API_KEY not in str(current) and API_KEY not in repr(current)
            current = current.__cause__ or current.__context__


# ---------------------------------------------------------------------- the documented stream


def documented_log_examples() -> list[tuple[str, str]]:
    """Every ``text/event-stream`` example in RunPod's OAS2 (the worker log and the pod log)."""
    found = []
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            for name, example in content.get("text/event-stream", {}).get("examples", {}).items():
                found.append((f"{method.upper()} {path} {name}", example["value"]))
    return found


@pytest.mark.parametrize(("where", "text"), documented_log_examples())
async def test_every_documented_log_stream_example_parses(
    make: Callable[..., tuple[RunPodClient, Wire]], where: str, text: str
) -> None:
    """OAS2's examples end their one event with a single newline (no blank line): it still counts."""
    api, _ = make(stream(text))
    batch = await api.worker_logs("ep1", "w1")
    id_line, data_line, *_ = text.split("\n")
    expected_id, data = id_line.removeprefix("id: "), json.loads(data_line.removeprefix("data: "))
    assert [(e.id, e.ts, e.source, e.line) for e in batch.events] == [
        (expected_id, from_iso(data["ts"]), data["source"], data["line"])
    ]
    assert batch.last_event_id == expected_id and batch.end is LogStreamEnd.CLOSED and not batch.cut
    assert batch.skipped == 0 and batch.bytes_read == len(text.encode())


def test_the_worker_log_route_has_a_documented_example() -> None:
    assert any(
        "/v2/serverless/{id}/workers/{workerId}/logs" in where for where, _ in documented_log_examples()
    )


async def test_the_request_is_a_bearer_get_with_the_sse_headers_and_the_cursor(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    api, wire = make(stream(event(1, "a")))
    await api.worker_logs("ep1", "w1")
    await api.worker_logs("ep1", "w1", source=None, tail=0, last_event_id=event_id(7))
    await api.worker_logs("ep1", "w1", source="system", tail=5000)
    first, second, third = wire.requests
    assert first.method == "GET" and first.url.path == "/v2/serverless/ep1/workers/w1/logs"
    assert dict(first.url.params) == {"source": "container"}
    assert dict(second.url.params) == {"tail": "0"} and dict(third.url.params) == {
        "source": "system",
        "tail": "5000",
    }
    for request in (first, second, third):
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        assert request.headers["Accept"] == "text/event-stream"
        assert request.headers["Accept-Encoding"] == "identity"
        assert request.content == b""
    assert "Last-Event-ID" not in first.headers and second.headers["Last-Event-ID"] == event_id(7)
    assert wire.calls == [("GET /v2/serverless/{endpoint_id}/workers/{worker_id}/logs", 200)] * 3


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"endpoint_id": "a/b"}, InvalidIdentifier),
        ({"worker_id": "../w"}, InvalidIdentifier),
        ({"worker_id": ""}, InvalidIdentifier),
        ({"worker_id": f"w-{API_KEY}"}, InvalidIdentifier),
        ({"last_event_id": ""}, InvalidIdentifier),
        ({"last_event_id": " 2026"}, InvalidIdentifier),
        ({"last_event_id": "a\r\nX-Injected: 1"}, InvalidIdentifier),
        ({"last_event_id": "é"}, InvalidIdentifier),
        ({"last_event_id": "x" * 257}, InvalidIdentifier),
        ({"last_event_id": f"2026/{API_KEY}"}, InvalidIdentifier),
        ({"tail": -1}, ValueError),
        ({"tail": 5001}, ValueError),
        ({"tail": True}, ValueError),
        ({"source": "stdout"}, ValueError),
        ({"max_lines": 0}, ValueError),
        ({"max_lines": 1.5}, ValueError),
        ({"max_seconds": 0}, ValueError),
        ({"max_seconds": float("nan")}, ValueError),
        ({"max_seconds": float("inf")}, ValueError),
    ],
)
async def test_arguments_that_cannot_be_sent_are_refused_before_sending(
    make: Callable[..., tuple[RunPodClient, Wire]], kwargs: dict[str, Any], problem: type[Exception]
) -> None:
    api, wire = make(stream(event(1)))
    arguments: dict[str, Any] = {"endpoint_id": "ep1", "worker_id": "w1", **kwargs}
    with pytest.raises(problem) as caught:
        await api.worker_logs(**arguments)
    assert_key_absent(caught.value)
    assert wire.requests == []
    if problem is InvalidIdentifier:
        assert caught.value.route == "GET /serverless/{endpoint_id}/workers/{worker_id}/logs"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- hostile framing and data

FIRST, SECOND = event(1, "one"), event(2, "two")
DATA_2 = json.dumps({"ts": "2026-06-01T12:05:02Z", "source": "container", "line": "two"})
PRETTY = json.dumps({"ts": "2026-06-01T12:05:02Z", "source": "container", "line": "two"}, indent=1)

# name: (stream text or bytes, lines read, skipped, last event id)
FRAMINGS: dict[str, tuple[str | bytes, list[str], int, str | None]] = {
    "lf": (FIRST + SECOND, ["one", "two"], 0, event_id(2)),
    "crlf": ((FIRST + SECOND).replace("\n", "\r\n"), ["one", "two"], 0, event_id(2)),
    "cr only": ((FIRST + SECOND).replace("\n", "\r"), ["one", "two"], 0, event_id(2)),
    "no space after the colon": (
        FIRST + f"id:{event_id(2)}\ndata:{DATA_2}\n\n",
        ["one", "two"],
        0,
        event_id(2),
    ),
    "comments and keep-alives": (
        ": keep-alive\n\n" + FIRST + ": x\n" + SECOND + ":\n\n",
        ["one", "two"],
        0,
        event_id(2),
    ),
    "event, retry, unknown and colon-less fields": (
        f"event: log\nretry: 10\nfoo: bar\nid: {event_id(2)}\ndata\ndata: {DATA_2}\nbogus\n\n",
        ["two"],  # the empty data line adds a leading newline, which JSON ignores
        0,
        event_id(2),
    ),
    "data over several lines": (
        f"id: {event_id(2)}\n" + "".join(f"data: {part}\n" for part in PRETTY.split("\n")) + "\n",
        ["two"],
        0,
        event_id(2),
    ),
    "data over several lines, CRLF": (
        f"id: {event_id(2)}\r\n" + "".join(f"data: {part}\r\n" for part in PRETTY.split("\n")) + "\r\n",
        ["two"],
        0,
        event_id(2),
    ),
    "a byte order mark": ("\ufeff" + FIRST, ["one"], 0, event_id(1)),
    "the id carries over to an event without one": (
        FIRST + f"data: {DATA_2}\n\n",
        ["one", "two"],
        0,
        event_id(1),
    ),
    "an id holding NUL is ignored": (
        FIRST + f"id: 9\x009\ndata: {DATA_2}\n\n",
        ["one", "two"],
        0,
        event_id(1),
    ),
    "an event with only an id moves the cursor": (FIRST + f"id: {event_id(5)}\n\n", ["one"], 0, event_id(5)),
    "the last event without its blank line": (
        FIRST + SECOND.rstrip("\n") + "\n",
        ["one", "two"],
        0,
        event_id(2),
    ),
    "a last line cut short is dropped": (FIRST + f'id: {event_id(2)}\ndata: {{"ts"', ["one"], 0, event_id(1)),
    "a stream ending mid-line leaves its last event": (
        FIRST + f"id: {event_id(2)}\ndata: {DATA_2}\ndata",
        ["one"],
        0,
        event_id(1),
    ),
    "a last event with an id but no data yet": (FIRST + f"id: {event_id(2)}\n", ["one"], 0, event_id(1)),
    "blank lines only": ("\n\n\r\n\r\r\n", [], 0, None),
    "an HTML page": ("<html>\n<body>oops</body>\n</html>\n", [], 0, None),
    "data that is not JSON": (
        FIRST + f"id: {event_id(2)}\ndata: not json\n\n" + event(3, "c"),
        ["one", "c"],
        1,
        event_id(3),
    ),
    "JSON that is not an object": (f"id: {event_id(2)}\ndata: [1, 2]\n\n", [], 1, event_id(2)),
    "JSON nested too deeply": (f"id: {event_id(2)}\ndata: {'[' * 100_000}\n\n", [], 1, event_id(2)),
    "a 5,000-digit integer": (f'id: {event_id(2)}\ndata: {{"ts": {"9" * 5000}}}\n\n', [], 1, event_id(2)),
    "NaN and Infinity": (f'id: {event_id(2)}\ndata: {{"ts": NaN, "line": Infinity}}\n\n', [], 1, event_id(2)),
    "empty data": (f"id: {event_id(2)}\ndata:\n\n", [], 1, event_id(2)),
    "ts not a date": (event(2, "x", ts="yesterday"), [], 1, event_id(2)),
    "ts a number": (event(2, "x", ts=1780000000), [], 1, event_id(2)),
    "ts before 2000": (event(2, "x", ts="1999-12-31T23:59:59Z"), [], 1, event_id(2)),
    "ts after 2199": (event(2, "x", ts="9999-12-31T23:59:59-23:59"), [], 1, event_id(2)),
    "ts very long": (event(2, "x", ts="2026-06-01T12:05:02" + "0" * 100 + "Z"), [], 1, event_id(2)),
    "source not a string": (event(2, "x", source=7), [], 1, event_id(2)),  # type: ignore[arg-type]
    "source empty": (event(2, "x", source=""), [], 1, event_id(2)),
    "source too long": (event(2, "x", source="s" * 65), [], 1, event_id(2)),
    "line null": (event(2, None), [], 1, event_id(2)),  # type: ignore[arg-type]
    "line missing": (
        f'id: {event_id(2)}\ndata: {{"ts": "2026-06-01T12:05:02Z", "source": "system"}}\n\n',
        [],
        1,
        event_id(2),
    ),
    "an id too long to send back": (FIRST + event(2, "x", eid="9" * 257), ["one"], 1, event_id(1)),
    "an id that is not ASCII": (FIRST + event(2, "x", eid="2026-06-01T12:05:02Z/é"), ["one"], 1, event_id(1)),
    "an id holding the key": (FIRST + event(2, "x", eid=f"{API_KEY}/2"), ["one"], 1, event_id(1)),
    "an event over 256 KiB is skipped, the next one read": (
        event(2, "x" * 300_000) + event(3, "after"),
        ["after"],
        1,
        event_id(3),
    ),
    "a comment over 256 KiB is harmless": (":" + "c" * 300_000 + "\n" + FIRST, ["one"], 0, event_id(1)),
    "invalid UTF-8": (
        (FIRST.replace("one", "o@e")).encode().replace(b"@", b"\xff\xfe"),
        ["o\ufffd\ufffde"],
        0,
        event_id(1),
    ),
    "a lone surrogate escape": (event(1, "\ud800"), ["\ufffd"], 0, event_id(1)),
    "the key echoed in a line": (event(1, f"token={API_KEY}"), ["token=<redacted>"], 0, event_id(1)),
    "the key escaped in JSON": (
        FIRST.replace('"one"', '"' + "".join(f"\\u{ord(c):04x}" for c in API_KEY) + '"'),
        ["<redacted>"],
        0,
        event_id(1),
    ),
}


@pytest.mark.parametrize("name", sorted(FRAMINGS))
@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_hostile_framing_in_any_chunking(name: str, chunk: int | None) -> None:
    """Each stream gives the same batch however the bytes are split (CRLF across chunks, UTF-8 across
    chunks, a line across many chunks)."""
    text, lines, skipped, last = FRAMINGS[name]
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if chunk == 1 and len(data) > 20_000:
        chunk = 997  # the same splitting behaviour, without half a million calls
    batch = read(data, chunk)
    assert [e.line for e in batch.events] == lines
    assert (batch.skipped, batch.last_event_id, batch.end) == (skipped, last, LogStreamEnd.CLOSED)
    assert batch.bytes_read == len(data)
    assert_key_absent(batch)
    for item in batch.events:
        item.line.encode("utf-8")  # what the ledger needs


@pytest.mark.parametrize(
    "name", ["crlf", "data that is not JSON", "the key echoed in a line", "invalid UTF-8"]
)
async def test_hostile_framing_through_the_client(
    make: Callable[..., tuple[RunPodClient, Wire]], name: str
) -> None:
    text, lines, skipped, last = FRAMINGS[name]
    api, _ = make(stream(text))
    batch = await api.worker_logs("ep1", "w1")
    assert ([e.line for e in batch.events], batch.skipped, batch.last_event_id) == (lines, skipped, last)


def test_a_long_line_is_cut_at_4000_characters() -> None:
    batch = read(event(1, "é" * 10_000).encode())
    (only,) = batch.events
    assert len(only.line) == 4000 and only.line == "é" * 3999 + "…"


def test_the_events_carry_id_time_source_and_line() -> None:
    batch = read(
        (
            event(1, "Worker ready.", source="system")
            + event(2, '{"requestId": "j1", "message": "Started."}')
        ).encode()
    )
    first, second = batch.events
    assert (first.id, first.ts, first.source, first.line) == (
        event_id(1),
        from_iso("2026-06-01T12:05:01Z"),
        "system",
        "Worker ready.",
    )
    assert json.loads(second.line)["message"] == "Started." and second.source == "container"


# ---------------------------------------------------------------------- the bounds of one read


async def test_max_lines_stops_at_that_event_and_resumes_after_it(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    api, _ = make(stream("".join(event(n, f"line {n}") for n in range(1, 11))))
    batch = await api.worker_logs("ep1", "w1", max_lines=3)
    assert [e.line for e in batch.events] == ["line 1", "line 2", "line 3"]
    assert batch.end is LogStreamEnd.MAX_LINES and batch.cut and batch.last_event_id == event_id(3)


async def test_skipped_events_do_not_count_against_max_lines(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    api, _ = make(stream(event(1, "a") + "data: junk\n\n" * 5 + event(2, "b") + event(3, "c")))
    batch = await api.worker_logs("ep1", "w1", max_lines=2)
    assert [e.line for e in batch.events] == ["a", "b"] and batch.skipped == 5
    assert batch.end is LogStreamEnd.MAX_LINES and batch.last_event_id == event_id(2)


async def test_a_stream_larger_than_the_byte_bound_is_read_in_several_calls(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    """4 MiB per call by default: what is over it is left for the next call (``last_event_id``)."""
    events = [event(n, "x" * 3000) for n in range(1, 2001)]  # ~6 MB
    api, _ = make(stream("".join(events)))
    batch = await api.worker_logs("ep1", "w1", max_lines=5000)
    assert batch.end is LogStreamEnd.MAX_BYTES and batch.cut
    assert batch.bytes_read == LOG_STREAM_MAX_BYTES
    whole = LOG_STREAM_MAX_BYTES // len(events[0])
    assert len(batch.events) == whole and batch.last_event_id == event_id(whole)


async def test_the_clients_max_body_bytes_bounds_the_stream_when_smaller(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    one = event(1, "a")
    api, _ = make(stream(one * 2 + event(3, "c")), max_body_bytes=2 * len(one) + 10)
    batch = await api.worker_logs("ep1", "w1")
    assert [e.line for e in batch.events] == ["a", "a"] and batch.end is LogStreamEnd.MAX_BYTES
    assert batch.bytes_read == 2 * len(one) + 10


async def test_a_single_endless_line_ends_at_the_byte_bound(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    api, _ = make(stream(b"data: " + b"x" * (LOG_STREAM_MAX_BYTES + 100)))
    batch = await api.worker_logs("ep1", "w1", last_event_id=event_id(4))
    assert batch.events == () and batch.end is LogStreamEnd.MAX_BYTES and batch.last_event_id == event_id(4)


async def test_a_hostile_stream_in_one_big_chunk_neither_blocks_the_loop_nor_outlives_max_seconds(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    """4 MiB of tiny broken events take seconds of CPU to go through: they are parsed in slices, so the
    daemon's other tasks keep running and ``max_seconds`` still ends the read."""
    api, _ = make(stream(b"data: {\n\n" * (LOG_STREAM_MAX_BYTES // 9)))
    loop = asyncio.get_running_loop()
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(loop.time())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(heartbeat())
    started = loop.time()
    try:
        batch = await api.worker_logs("ep1", "w1", max_seconds=0.3)
    finally:
        ticker.cancel()
    assert loop.time() - started < 1.5
    assert batch.end is LogStreamEnd.MAX_SECONDS and batch.skipped > 0 and batch.events == ()
    gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
    assert len(beats) >= 2 and max(gaps) < 0.5  # parsed whole, it would hold the loop for seconds


def live(
    *chunks: str, then: Callable[[], Awaitable[None]] | None = None, closed: list[bool] | None = None
) -> Handler:
    """A stream that sends ``chunks`` and then, like a live worker's, stays open (``then``: what it does)."""

    async def body() -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk.encode()
            await (then() if then is not None else asyncio.sleep(3600))
        finally:
            if closed is not None:
                closed.append(True)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers=SSE)

    return handler


async def test_a_live_stream_is_read_for_max_seconds_then_closed(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    closed: list[bool] = []
    api, _ = make(live(FIRST, SECOND, closed=closed))
    loop = asyncio.get_running_loop()
    started = loop.time()
    batch = await api.worker_logs("ep1", "w1", max_seconds=0.2)
    assert 0.2 <= loop.time() - started < 1.5
    assert [e.line for e in batch.events] == ["one", "two"] and batch.last_event_id == event_id(2)
    assert batch.end is LogStreamEnd.MAX_SECONDS and batch.cut
    await asyncio.sleep(0)
    assert closed == [True]  # the response was closed: no connection left open for the next tick


async def test_the_enclosing_deadline_bounds_the_read(make: Callable[..., tuple[RunPodClient, Wire]]) -> None:
    import time

    api, _ = make(live(FIRST), clock=time.monotonic)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with api.deadline(0.2) as scope:
        batch = await api.worker_logs("ep1", "w1", max_seconds=30)
    assert loop.time() - started < 1.5
    assert [e.line for e in batch.events] == ["one"] and batch.end is LogStreamEnd.DEADLINE
    assert not scope.deadline_reached  # the call did not fail: it read what the time allowed


async def test_a_server_silent_for_the_read_timeout_ends_the_read(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    async def silent() -> None:
        raise httpx.ReadTimeout("no data")

    api, _ = make(live(FIRST, then=silent))
    batch = await api.worker_logs("ep1", "w1", max_seconds=30)
    assert [e.line for e in batch.events] == ["one"] and batch.end is LogStreamEnd.MAX_SECONDS


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadError(f"connection reset by peer {API_KEY}"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.DecodingError("bad gzip"),
    ],
)
async def test_a_stream_that_breaks_off_keeps_what_was_read(
    make: Callable[..., tuple[RunPodClient, Wire]], failure: Exception
) -> None:
    async def fail() -> None:
        raise failure

    api, _ = make(live(FIRST, SECOND, f"id: {event_id(3)}\ndata: {{", then=fail))
    batch = await api.worker_logs("ep1", "w1")
    assert [e.line for e in batch.events] == ["one", "two"] and batch.last_event_id == event_id(2)
    assert batch.end is LogStreamEnd.BROKEN and batch.cut
    assert batch.problem is not None and type(failure).__name__ in batch.problem
    assert_key_absent(batch)


async def test_cancelling_the_read_closes_the_stream_and_leaves_the_client_usable(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    closed: list[bool] = []
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return live(FIRST, closed=closed)(request) if calls == 1 else stream(SECOND)(request)

    api, _ = make(handler)
    task = asyncio.create_task(api.worker_logs("ep1", "w1", max_seconds=60))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert closed == [True]
    assert [e.line for e in (await api.worker_logs("ep1", "w1")).events] == ["two"]


# ---------------------------------------------------------------------- opening the stream: an ordinary GET


async def test_5xx_and_429_before_the_stream_opens_are_retried(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    answers = [
        httpx.Response(503, json={"title": "Service Unavailable"}),
        httpx.Response(429, json={"title": "Too Many Requests"}, headers={"Retry-After": "3"}),
        httpx.Response(200, content=FIRST.encode(), headers=SSE),
    ]
    api, wire = make(lambda request: answers.pop(0))
    batch = await api.worker_logs("ep1", "w1")
    assert [e.line for e in batch.events] == ["one"]
    assert [status for _, status in wire.calls] == [503, 429, 200]
    assert len(wire.sleeps) == 2 and wire.sleeps[1] == 3.0
    assert api.last_call_starved


async def test_connect_errors_are_retried_then_name_host_and_port(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    api, wire = make(refuse, max_retries=2)
    with pytest.raises(RunPodUnavailable) as caught:
        await api.worker_logs("ep1", "w1")
    assert len(wire.requests) == 3
    assert str(caught.value).startswith(
        f"{ROUTE}: gave up after 3 attempts; last: could not connect to 127.0.0.1:8401"
    )
    assert_key_absent(caught.value)


async def test_404_means_the_worker_is_gone(make: Callable[..., tuple[RunPodClient, Wire]]) -> None:
    body = {"title": "Not Found", "status": 404, "detail": "worker w1 not found"}
    api, wire = make(lambda request: httpx.Response(404, json=body))
    with pytest.raises(RunPodNotFound) as caught:
        await api.worker_logs("ep1", "w1")
    assert (
        caught.value.route == ROUTE
        and caught.value.status == 404
        and "worker w1 not found" in str(caught.value)
    )
    assert len(wire.requests) == 1


async def test_401_is_fatal_and_the_key_never_shows(make: Callable[..., tuple[RunPodClient, Wire]]) -> None:
    api, wire = make(lambda request: httpx.Response(401, json={"title": "Unauthorized", "detail": API_KEY}))
    with pytest.raises(RunPodAuthError) as caught:
        await api.worker_logs("ep1", "w1")
    assert len(wire.requests) == 1
    assert_key_absent(caught.value)


@pytest.mark.parametrize("content_type", ["application/json", "text/html; charset=utf-8"])
async def test_a_2xx_that_is_not_an_event_stream_is_a_protocol_error(
    make: Callable[..., tuple[RunPodClient, Wire]], content_type: str
) -> None:
    api, _ = make(stream('{"ok": true}', headers={"Content-Type": content_type}))
    with pytest.raises(RunPodProtocolError) as caught:
        await api.worker_logs("ep1", "w1")
    assert caught.value.route == ROUTE and "text/event-stream" in str(caught.value)


async def test_an_event_stream_with_a_charset_or_no_content_type_is_read(
    make: Callable[..., tuple[RunPodClient, Wire]],
) -> None:
    for headers in ({"Content-Type": "Text/Event-Stream; charset=utf-8"}, {}):
        api, _ = make(stream(FIRST, headers=headers))
        assert [e.line for e in (await api.worker_logs("ep1", "w1")).events] == ["one"]


async def test_a_204_is_an_empty_closed_batch(make: Callable[..., tuple[RunPodClient, Wire]]) -> None:
    api, _ = make(lambda request: httpx.Response(204))
    batch = await api.worker_logs("ep1", "w1", last_event_id=event_id(9))
    assert batch.events == () and batch.end is LogStreamEnd.CLOSED and batch.last_event_id == event_id(9)


def test_the_stream_api_is_exported() -> None:
    for name in ("LOG_STREAM_MAX_BYTES", "LOG_SOURCES", "LOG_TAIL_MAX"):
        assert name in client_module.__all__
    assert issubclass(RunPodNotFound, RunPodError)
