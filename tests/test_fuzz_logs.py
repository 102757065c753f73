"""Property-based fuzzing of the log parsers and the tailer: whatever a hostile log holds, a line becomes a
LogEvent or a typed refusal (LineError / NotTraffic), and ``read_new`` never raises, never returns an
unbounded or unprintable problem, and never gives events that break the daemon's assumptions."""

from __future__ import annotations

import json
import math
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.config import LogSource, compile_log_regex
from watchdog.logwatch import (
    MAX_EPOCH_S,
    MAX_ERROR_CHARS,
    MAX_EVENT_AGE_S,
    MAX_EVENT_AHEAD_S,
    MAX_FIELD_CHARS,
    LineError,
    LogEvent,
    LogTailer,
    NotTraffic,
    parse_json_line,
    parse_regex_line,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_780_000_000.0
FIELDS = LogSource(name="f", path="/x").field_names
REGEX_TEXT = (
    r"^(?P<ts>\S+) (?P<source>\S+) (?P<kind>\w+) /v2/(?P<endpoint_id>[^/\s]+)/\S*"
    r"(?: job=(?P<job_id>\S+))?(?: worker=(?P<worker_id>\S+))?(?: tier=(?P<tier>\S+))?$"
)
REGEX = compile_log_regex(REGEX_TEXT)  # RE2, as the daemon runs it
UNSAFE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Cs")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
timestamps = (
    st.floats(min_value=NOW - 10 * 86400, max_value=NOW + 3600)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.sampled_from(["2026-05-28T20:00:00Z", "2026-05-28T20:00:00+01:00", "yesterday", "1e400", "", " "])
    | json_values
)
records = st.fixed_dictionaries(
    {},
    optional={
        "ts": timestamps,
        "endpoint_id": st.text(min_size=1, max_size=300) | json_values,
        "kind": st.sampled_from(["request", "ping", "PING", "api", "worker", "pong"]) | json_values,
        "source": st.text(max_size=300) | json_values,
        "job_id": st.text(max_size=300) | st.lists(st.text(max_size=20), max_size=300) | json_values,
        "tier": st.sampled_from(["free", "paid"]) | json_values,
        "worker_id": st.text(max_size=300) | json_values,
    },
)
nows = st.none() | st.just(NOW)
_BASE = '{"endpoint_id": "ep", "kind": "request", '
HOSTILE = [
    _BASE + '"ts": 1, "n": ' + "7" * 5000 + "}",
    _BASE + '"ts": ' + "9" * 4000 + "}",
    "[" * 5000 + "]" * 5000,
    '{"a": ' * 2000 + "1" + "}" * 2000,
    _BASE + '"ts": 1e20}',
    _BASE + '"ts": NaN}',
    _BASE + '"ts": -Infinity}',
    _BASE + '"ts": "0001-01-01T00:00:00+14:00"}',
    _BASE + '"ts": "9999-12-31T23:59:59-14:00"}',
    _BASE + '"ts": 1, "source": "\\u001b[2J\\u2028"}',
    _BASE + '"ts": 1, "job_id": "\\ud800"}',
    '{"ts": 1, "kind": "ping", "endpoint_id": {"a": [1, {"b": null}]}}',
]
"""Lines that broke the daemon or could: hypothesis rarely invents them, so they are mixed in."""
hostile_lines = st.sampled_from(HOSTILE)


def check_event(event: LogEvent, now: float | None) -> None:
    """What the rest of the daemon may rely on for every event the parsers let through."""
    assert event.kind in ("request", "ping")
    assert math.isfinite(event.ts) and 0 <= event.ts <= MAX_EPOCH_S
    if now is not None:
        assert now - MAX_EVENT_AGE_S <= event.ts <= now + MAX_EVENT_AHEAD_S
    for text in (event.endpoint_id, event.source, event.job_id, event.tier, event.worker_id):
        if text is not None:
            assert 0 < len(text) <= MAX_FIELD_CHARS
            assert not any(unicodedata.category(char) in UNSAFE_CATEGORIES for char in text), text
            text.encode("utf-8")  # no lone surrogates: the ledger and Slack must be able to store it


def parse_or_refuse(parse: Any, *args: Any, now: float | None) -> None:
    try:
        event = parse(*args, now=now)
    except (LineError, NotTraffic):
        return
    check_event(event, now)


@FUZZ
@given(line=st.text(max_size=2000) | hostile_lines, now=nows)
def test_parse_json_line_on_any_text(line: str, now: float | None) -> None:
    parse_or_refuse(parse_json_line, line, FIELDS, now=now)


@FUZZ
@given(record=records, now=nows, nesting=st.integers(min_value=0, max_value=40))
def test_parse_json_line_on_any_record(record: dict[str, Any], now: float | None, nesting: int) -> None:
    line = json.dumps(record, allow_nan=True)
    parse_or_refuse(parse_json_line, line, FIELDS, now=now)
    parse_or_refuse(parse_json_line, '{"x": ' * nesting + line + "}" * nesting, FIELDS, now=now)


@FUZZ
@given(
    ts=st.sampled_from(["1780000000", "2026-05-28T20:00:00Z", "nan", "-1", "9" * 30]) | st.text(max_size=40),
    source=st.text(min_size=1, max_size=300).filter(lambda t: not re.search(r"\s", t)),
    kind=st.sampled_from(["request", "ping", "api", "x"]),
    tail=st.text(max_size=400),
    now=nows,
)
def test_parse_regex_line_on_any_text(ts: str, source: str, kind: str, tail: str, now: float | None) -> None:
    parse_or_refuse(parse_regex_line, f"{ts} {source} {kind} /v2/{tail}", REGEX, FIELDS, now=now)
    parse_or_refuse(parse_regex_line, tail, REGEX, FIELDS, now=now)


line_bytes = st.one_of(
    st.binary(max_size=300),
    records.map(lambda r: json.dumps(r).encode("utf-8", "surrogatepass")),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    hostile_lines.map(str.encode),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    appends=st.lists(st.lists(line_bytes, max_size=12).map(b"\n".join), min_size=1, max_size=6),
    budget=st.integers(min_value=1024, max_value=4096),
    max_line=st.integers(min_value=64, max_value=512) | st.just(64 * 1024),
    fmt=st.sampled_from(["json", "regex"]),
    now=nows,
)
def test_log_tailer_on_any_bytes_never_raises_and_reads_the_same_in_any_steps(
    appends: list[bytes], budget: int, max_line: int, fmt: str, now: float | None
) -> None:
    """Appended in pieces and read with a small budget, or read at once: the same events, bounded errors."""
    regex = REGEX_TEXT if fmt == "regex" else ""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.log"
        path.touch()
        spec = LogSource(name="fuzz", path=str(path), format=fmt, regex=regex, start_at="start")  # type: ignore[arg-type]
        stepwise: list[LogEvent] = []
        malformed = 0
        with LogTailer(spec, max_read_bytes=budget, max_line_bytes=max_line, max_errors_per_read=3) as tailer:
            for chunk in appends:
                with open(path, "ab") as handle:
                    handle.write(chunk)
                for _ in range(len(chunk) // budget + 2):
                    result = tailer.read_new(now=now)
                    stepwise.extend(result.events)
                    malformed += result.malformed_lines
                    assert len(result.errors) <= 4
                    for error in result.errors:
                        assert len(error) <= MAX_ERROR_CHARS
                        assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in error), error
                    for event in result.events:
                        check_event(event, now)
            assert not tailer.read_new(now=now).more_pending
        with LogTailer(spec, max_read_bytes=1024 * 1024, max_line_bytes=max_line) as whole:
            at_once = whole.read_new(now=now)
    assert stepwise == at_once.events
    assert malformed == at_once.malformed_lines
