"""LogTailer against real files: appends, partial lines, both rotation styles, bad lines, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from watchdog.config import LogSource
from watchdog.errors import ConfigError
from watchdog.logwatch import LogEvent, LogPosition, LogTailer, parse_timestamp


def line(ts: float | str, kind: str = "request", **extra: object) -> str:
    return json.dumps({"ts": ts, "endpoint_id": "ep1", "kind": kind, **extra}) + "\n"


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.log"


@pytest.fixture
def tailer(log_path: Path) -> LogTailer:
    with LogTailer(LogSource(name="gateway", path=str(log_path))) as t:
        yield t


def test_reads_only_new_lines_on_each_call(log_path: Path, tailer: LogTailer) -> None:
    append(
        log_path, line(100, source="1.2.3.4", job_id="j1") + line(101, "ping", worker_id="w1", job_id="a,b")
    )
    first = tailer.read_new()
    assert first.errors == []
    assert first.events == [
        LogEvent(100.0, "ep1", "request", source="1.2.3.4", job_id="j1"),
        LogEvent(101.0, "ep1", "ping", worker_id="w1", job_id="a,b"),
    ]
    assert first.events[1].job_ids == ("a", "b")
    assert tailer.read_new().events == []
    append(log_path, line(102))
    assert [event.ts for event in tailer.read_new().events] == [102.0]


def test_partial_last_line_waits_for_its_newline(log_path: Path, tailer: LogTailer) -> None:
    whole = line(200, source="x")
    append(log_path, line(199) + whole[:15])
    result = tailer.read_new()
    assert [event.ts for event in result.events] == [199.0]
    assert result.errors == []
    append(log_path, whole[15:])
    assert [(event.ts, event.source) for event in tailer.read_new().events] == [(200.0, "x")]


def test_rename_rotation_drains_old_file_then_reads_new_from_start(log_path: Path, tailer: LogTailer) -> None:
    append(log_path, line(1))
    assert len(tailer.read_new().events) == 1
    append(log_path, line(2))  # written just before rotation, not read yet
    log_path.rename(log_path.with_name("gateway.log.1"))
    append(log_path, line(3) + line(4))  # the new file (new inode)
    assert [event.ts for event in tailer.read_new().events] == [2.0, 3.0, 4.0]
    append(log_path, line(5))
    assert [event.ts for event in tailer.read_new().events] == [5.0]


def test_copytruncate_starts_again_from_zero(log_path: Path, tailer: LogTailer) -> None:
    append(log_path, line(1) + line(2) + line(3))
    assert len(tailer.read_new().events) == 3
    with open(log_path, "r+b") as handle:  # what logrotate's copytruncate does after copying
        handle.truncate(0)
    append(log_path, line(10))
    assert [event.ts for event in tailer.read_new().events] == [10.0]


def test_malformed_lines_are_reported_with_file_and_line_and_cost_nothing_else(
    log_path: Path, tailer: LogTailer
) -> None:
    append(
        log_path,
        line(1)
        + "not json at all\n"
        + line(2, kind="pong")
        + json.dumps({"ts": 3, "kind": "ping"})
        + "\n"
        + line("yesterday")
        + "\n"  # blank lines are not errors
        + line("2026-03-01T12:00:00Z"),
    )
    append(log_path, b"\xff\xfe\n")
    result = tailer.read_new()
    assert [event.ts for event in result.events] == [1.0, 1772366400.0]
    assert result.malformed_lines == 5
    assert result.errors[0].startswith(f"{log_path}:2: not JSON")
    assert result.errors[1] == f"{log_path}:3: kind must be 'request' or 'ping', not 'pong'"
    assert result.errors[2] == f"{log_path}:4: missing endpoint id"
    assert result.errors[3].startswith(f"{log_path}:5: timestamp 'yesterday'")
    assert result.errors[4] == f"{log_path}:8: not valid UTF-8"


def test_error_list_is_bounded_per_call(tmp_path: Path) -> None:
    path = tmp_path / "noisy.log"
    append(path, "garbage\n" * 50 + line(7))
    with LogTailer(LogSource(name="noisy", path=str(path)), max_errors_per_read=3) as tailer:
        result = tailer.read_new()
    assert result.malformed_lines == 50
    assert len(result.errors) == 4
    assert result.errors[-1] == f"{path}: 47 more malformed line(s) not shown"
    assert [event.ts for event in result.events] == [7.0]


def test_missing_file_is_reported_once_then_read_when_it_appears(log_path: Path, tailer: LogTailer) -> None:
    first = tailer.read_new()
    assert first.events == []
    assert first.errors == [f"{log_path}: does not exist (yet); watching for it"]
    assert tailer.read_new().errors == []
    append(log_path, line(42))
    assert [event.ts for event in tailer.read_new().events] == [42.0]


def test_regex_format_with_named_groups(tmp_path: Path) -> None:
    path = tmp_path / "nginx.log"
    regex = (
        r"^(?P<ts>\S+) (?P<source>\S+) (?P<kind>request|ping) /v2/(?P<endpoint_id>[^/]+)/\S*"
        r"(?: job=(?P<job_id>\S+))?(?: worker=(?P<worker_id>\S+))?$"
    )
    append(
        path,
        "2026-03-01T00:00:00Z 10.0.0.7 request /v2/epA/run\n"
        "1772323205.5 - ping /v2/epA/ping job=j9 worker=w3\n"
        "this line is not in the format\n",
    )
    with LogTailer(LogSource(name="nginx", path=str(path), format="regex", regex=regex)) as tailer:
        result = tailer.read_new()
    assert result.events == [
        LogEvent(1772323200.0, "epA", "request", source="10.0.0.7"),
        LogEvent(1772323205.5, "epA", "ping", source="-", job_id="j9", worker_id="w3"),
    ]
    assert result.errors == [f"{path}:3: does not match the configured regex"]


def test_regex_without_required_groups_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs named groups for"):
        LogTailer(LogSource(name="bad", path=str(tmp_path / "x"), format="regex", regex=r"(?P<ts>\S+)"))


def test_custom_json_field_names_including_nested(tmp_path: Path) -> None:
    path = tmp_path / "custom.log"
    append(path, json.dumps({"time": 1000, "ctx": {"endpoint": "epZ"}, "type": "PING", "pod": "w9"}) + "\n")
    spec = LogSource(
        name="custom", path=str(path), time_field="time", endpoint_field="ctx.endpoint", kind_field="type",
        worker_field="pod",
    )  # fmt: skip
    with LogTailer(spec) as tailer:
        assert tailer.read_new().events == [LogEvent(1000.0, "epZ", "ping", worker_id="w9")]


def test_resume_from_saved_position(log_path: Path) -> None:
    append(log_path, line(1) + line(2) + line(3)[:10])
    spec = LogSource(name="gateway", path=str(log_path))
    with LogTailer(spec) as first:
        assert len(first.read_new().events) == 2
        saved = first.position()
    assert saved == LogPosition(os.stat(log_path).st_ino, len(line(1) + line(2)), line_no=2)
    append(log_path, line(3)[10:] + "oops\n")
    with LogTailer(spec) as second:
        second.restore(saved)
        result = second.read_new()
    assert [event.ts for event in result.events] == [3.0]
    assert result.errors == [f"{log_path}:4: not JSON (Expecting value at column 1)"]


def test_resume_after_rotation_while_down_reads_new_file_from_start(log_path: Path) -> None:
    append(log_path, line(1))
    spec = LogSource(name="gateway", path=str(log_path))
    with LogTailer(spec) as first:
        first.read_new()
        saved = first.position()
    log_path.rename(log_path.with_name("gateway.log.1"))
    append(log_path, line(9))
    with LogTailer(spec) as second:
        second.restore(saved)
        assert [event.ts for event in second.read_new().events] == [9.0]


def test_bounded_read_works_off_a_backlog_over_several_calls(tmp_path: Path) -> None:
    path = tmp_path / "backlog.log"
    append(path, "".join(line(i) for i in range(2000)))
    with LogTailer(LogSource(name="big", path=str(path)), max_read_bytes=16 * 1024) as tailer:
        seen: list[float] = []
        calls = 0
        while True:
            result = tailer.read_new()
            calls += 1
            seen.extend(event.ts for event in result.events)
            assert result.errors == []
            if not result.more_pending:
                break
    assert seen == [float(i) for i in range(2000)]
    assert calls >= 4


def test_overlong_line_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    with LogTailer(LogSource(name="long", path=str(path)), max_line_bytes=100) as tailer:
        append(path, line(1) + "x" * 150)
        first = tailer.read_new()
        append(path, "y" * 150 + "\n" + line(2))
        second = tailer.read_new()
    assert [event.ts for event in first.events + second.events] == [1.0, 2.0]
    assert first.errors + second.errors == [f"{path}:2: line longer than 100 bytes"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-01T00:00:00Z", 1772323200.0),
        ("2026-03-01T01:00:00+01:00", 1772323200.0),
        (1772323200, 1772323200.0),
        ("1772323200.25", 1772323200.25),
        (1772323200123, 1772323200.123),  # epoch milliseconds
    ],
)
def test_timestamps(raw: object, expected: float) -> None:
    assert parse_timestamp(raw) == pytest.approx(expected)


def test_management_calls_are_skipped_not_reported(tmp_path: Path) -> None:
    """The runtime's management calls (kind "api") are neither traffic nor errors; a typo'd kind is an error."""
    log = tmp_path / "access.log"
    log.write_text(
        '{"ts": 1764000000, "endpoint_id": "ep", "kind": "api", "route": "/v2/ep/health"}\n'
        '{"ts": 1764000001, "endpoint_id": "ep", "kind": "request", "source": "app"}\n'
        '{"ts": 1764000002, "endpoint_id": "ep", "kind": "requets"}\n'
    )
    result = LogTailer(LogSource(name="sim", path=str(log))).read_new()
    assert [event.kind for event in result.events] == ["request"]
    assert len(result.errors) == 1 and ":3:" in result.errors[0] and "requets" in result.errors[0]
