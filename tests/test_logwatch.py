"""LogTailer against real files: appends, partial lines, both rotation styles, bad lines, resume."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
import unicodedata
from pathlib import Path

import pytest

from watchdog.config import LogSource
from watchdog.errors import ConfigError
from watchdog.logwatch import (
    DEFAULT_MAX_READ_BYTES,
    MAX_ERROR_CHARS,
    MAX_PROBLEM_CHARS,
    LogEvent,
    LogPosition,
    LogTailer,
    ReadResult,
    parse_timestamp,
)


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
    with LogTailer(
        LogSource(name="noisy", path=str(path), start_at="start"), max_errors_per_read=3
    ) as tailer:
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
    spec = LogSource(name="nginx", path=str(path), format="regex", regex=regex, start_at="start")
    with LogTailer(spec) as tailer:
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
        worker_field="pod", start_at="start",
    )  # fmt: skip
    with LogTailer(spec) as tailer:
        assert tailer.read_new().events == [LogEvent(1000.0, "epZ", "ping", worker_id="w9")]


def test_resume_from_saved_position(log_path: Path) -> None:
    append(log_path, line(1) + line(2) + line(3)[:10])
    spec = LogSource(name="gateway", path=str(log_path), start_at="start")
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
    with LogTailer(
        LogSource(name="big", path=str(path), start_at="start"), max_read_bytes=16 * 1024
    ) as tailer:
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
    with LogTailer(LogSource(name="sim", path=str(log), start_at="start")) as tailer:
        result = tailer.read_new()
    assert [event.kind for event in result.events] == ["request"]
    assert len(result.errors) == 1 and ":3:" in result.errors[0] and "requets" in result.errors[0]


# ------------------------------------------------------------------------------------------------------------
# Robustness: what an adversarial tester did to the daemon through its logs (one test per problem).

NOW = 1_780_000_000.0  # 2026-05-28


def sim_line(ts: float, index: int = 0) -> str:
    """A line of the simulator's access-log format (~250 bytes)."""
    record = {
        "ts": ts, "kind": "request" if index % 3 else "ping", "endpoint_id": "ep-abcdef123456",
        "route": "/v2/ep-abcdef123456/run", "method": "POST", "status": 200, "source": "translate-app",
        "worker_id": "w-0123456789", "job_id": f"job-{index:016d}", "tier": "free", "duration_ms": 12,
    }  # fmt: skip
    return json.dumps(record, separators=(",", ":")) + "\n"


def test_a_20_mb_backlog_is_read_in_bounded_steps_with_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Problem 1: 1,000,000 appended lines took the daemon from 50 to 440 MB. One call now reads at most
    its byte budget (1 MiB by default) and holds no more than that call's events."""
    path = tmp_path / "backlog.log"
    template = (
        sim_line(NOW, 1).replace("{", "{{").replace("}", "}}").replace(f"{NOW}", "{ts:.2f}")
        .replace("job-0000000000000001", "job-{n:016d}")
    )  # fmt: skip
    with open(path, "w", encoding="utf-8") as handle:
        lines = 0
        while handle.tell() < 20 * 1024 * 1024:
            handle.write(
                "".join(template.format(ts=NOW - 3600 + n * 0.01, n=n) for n in range(lines, lines + 1000))
            )
            lines += 1000
    size = path.stat().st_size
    read_bytes = [0]
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        read_bytes[0] += len(data)
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    timestamps: list[float] = []
    calls = 0
    with LogTailer(LogSource(name="big", path=str(path), start_at="start")) as tailer:
        assert tailer.max_read_bytes == DEFAULT_MAX_READ_BYTES <= 1024 * 1024
        before = 0
        while True:
            calls += 1
            read_bytes[0] = 0
            traced = calls % 7 == 1  # tracemalloc triples the cost of a call: measure a few
            if traced:
                tracemalloc.start()
            try:
                result = tailer.read_new(now=NOW)
                peak = tracemalloc.get_traced_memory()[1] if traced else 0
            finally:
                tracemalloc.stop()
            assert read_bytes[0] <= tailer.max_read_bytes  # the budget
            assert peak < 6 * 1024 * 1024, f"call {calls} peaked at {peak / 2**20:.1f} MiB"
            position = tailer.position()
            assert position is not None and position.offset > before  # and progress
            before = position.offset
            assert result.errors == []
            timestamps.extend(event.ts for event in result.events)
            if position.offset == size:
                assert not result.more_pending
                break
            assert result.more_pending
            assert calls < 100
    assert len(timestamps) == lines
    assert timestamps == sorted(timestamps)
    assert calls >= 20


def test_start_at_end_skips_the_existing_log_start_reads_it_and_restore_wins(tmp_path: Path) -> None:
    """Problem 1: a new source started at byte 0, so a 1 GB access log was replayed (4 GB of RSS)."""
    path = tmp_path / "access.log"
    append(path, line(1) + line(2) + line(3)[:12])  # the last line is still being written
    with LogTailer(LogSource(name="end", path=str(path))) as at_end:  # start_at = "end" is the default
        append(path, line(3)[12:] + line(4))
        result = at_end.read_new()
        assert [event.ts for event in result.events] == [3.0, 4.0]  # the unfinished line is read whole
        saved = at_end.position()
    with LogTailer(LogSource(name="start", path=str(path), start_at="start")) as at_start:
        assert [event.ts for event in at_start.read_new().events] == [1.0, 2.0, 3.0, 4.0]
    after_first = LogPosition(os.stat(path).st_ino, len(line(1)), line_no=1)
    for start_at in ("end", "start"):
        with LogTailer(LogSource(name="restored", path=str(path), start_at=start_at)) as restored:  # type: ignore[arg-type]
            restored.restore(after_first)
            assert [event.ts for event in restored.read_new().events] == [2.0, 3.0, 4.0]
    assert saved == LogPosition(os.stat(path).st_ino, len(line(1) + line(2) + line(3) + line(4)), line_no=-1)
    # a file that appears after the tailer started is new: all of it is read, whatever start_at says
    later = tmp_path / "later.log"
    with LogTailer(LogSource(name="later", path=str(later))) as tailer:
        assert tailer.read_new().events == []
        append(later, line(7) + "junk\n")
        result = tailer.read_new()
        assert [event.ts for event in result.events] == [7.0]
        assert result.errors == [f"{later}:2: not JSON (Expecting value at column 1)"]
    # started at the end, line numbers are unknown: a bad line is located by its byte offset
    with LogTailer(LogSource(name="end", path=str(path))) as at_end:
        append(path, "junk\n")
        assert at_end.read_new().errors == [
            f"{path}: line at byte {path.stat().st_size - 5}: not JSON (Expecting value at column 1)"
        ]


def _read_in_thread(tailer: LogTailer, unblock: Path | None) -> ReadResult:
    """``tailer.read_new()`` in a thread that must finish within 5 s; a FIFO left blocking is unblocked."""
    outcome: list[ReadResult | BaseException] = []

    def target() -> None:
        try:
            outcome.append(tailer.read_new())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=5)
    if thread.is_alive():
        if unblock is not None:  # a writer end lets the blocked open() return, so the thread can end
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_new() blocked on a log source that is not a regular file")
    assert outcome, "no result"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_a_fifo_never_blocks_is_reported_once_and_a_regular_file_is_read_when_it_replaces_it(
    tmp_path: Path,
) -> None:
    """Problem 2: open() on a FIFO waits for a writer: the daemon froze before its first tick.

    The FIFO appears after the tailer is made: the configuration's check may refuse a path that is already
    a FIFO, but only the tailer sees one that comes later."""
    fifo = tmp_path / "access.log"
    with LogTailer(LogSource(name="fifo", path=str(fifo))) as tailer:
        os.mkfifo(fifo)
        first = _read_in_thread(tailer, fifo)
        assert first.events == []
        assert first.errors == [
            f"{fifo}: is not a regular file but a FIFO (named pipe); only regular files are read "
            "(watching for one)"
        ]
        assert _read_in_thread(tailer, fifo).errors == []  # reported once, still watched
        fifo.unlink()
        append(fifo, line(5))
        result = tailer.read_new()
        assert [event.ts for event in result.events] == [5.0]
        assert result.errors == []


@pytest.mark.parametrize(
    ("target", "kind"),
    [("/dev/null", "a character device"), ("/dev/zero", "a character device"), (None, "a directory")],
)
def test_a_device_or_a_directory_is_reported_not_read(tmp_path: Path, target: str | None, kind: str) -> None:
    """Problem 2: /dev/zero was read as an endless line, /dev/null silently as an empty log (here behind a
    symlink that appears after the tailer was made, which no configuration check can see)."""
    path = tmp_path / "access.log"
    with LogTailer(LogSource(name="dev", path=str(path), start_at="start")) as tailer:
        if target is None:
            path.mkdir()
        else:
            path.symlink_to(target)
        result = _read_in_thread(tailer, None)
    assert result.events == []
    assert result.malformed_lines == 0
    assert result.errors == [
        f"{path}: is not a regular file but {kind}; only regular files are read (watching for one)"
    ]


@pytest.mark.parametrize(("name", "chars"), [("*.log", "'*'"), ("access.log.?", "'?'"), ("a[1].log", "'['")])
def test_a_glob_path_is_refused_naming_its_glob_characters(tmp_path: Path, name: str, chars: str) -> None:
    """Problem 2: a glob was silently treated as a literal file name (watched for forever)."""
    (tmp_path / name).write_text(line(1))  # even a file literally named so
    with pytest.raises(ConfigError) as refused:
        LogTailer(LogSource(name="glob", path=str(tmp_path / name)))
    assert refused.value.problems == [
        f"log source 'glob': path: contains glob character(s) {chars}: a log source is one file, "
        "patterns are not expanded"
    ]


def test_hostile_json_makes_only_its_own_line_malformed(tmp_path: Path) -> None:
    """Problem 3: valid but hostile JSON raised out of read_new and the good lines read with it were lost."""
    path = tmp_path / "hostile.log"
    base = '{"endpoint_id": "ep1", "kind": "request", '
    hostile = [
        base + '"ts": 1, "n": ' + "7" * 5000 + "}",  # int beyond Python's 4300-digit conversion limit
        base + '"ts": ' + "9" * 4000 + "}",  # parses, but no float can hold it
        "[" * 100_000 + "]" * 100_000,  # deeper than json.loads can recurse
        '{"a": ' * 50 + "1" + "}" * 50,  # merely deeper than any access log
        base + '"ts": 1e20}',  # epoch "milliseconds" in the year 3 million
        base + '"ts": NaN}',
        base + '"ts": Infinity}',
        base + '"ts": "0001-01-01T00:00:00+14:00"}',  # before the epoch
        '{"endpoint_id": "' + "e" * 300_000 + '", "kind": "request", "ts": 2}',  # a huge string
        base + '"ts": 2, "job_id": [' + ",".join(["1"] * 1000) + "]}",  # too many job ids
    ]
    good = [line(i + 10) for i in range(len(hostile) + 1)]
    append(path, "".join(g + h + "\n" for g, h in zip(good, hostile, strict=False)) + good[-1])
    spec = LogSource(name="hostile", path=str(path), start_at="start")
    with LogTailer(spec, max_line_bytes=1024 * 1024, max_errors_per_read=20) as tailer:  # the old line limit
        result = tailer.read_new()
    assert [event.ts for event in result.events] == [float(i + 10) for i in range(len(good))]
    assert result.malformed_lines == len(hostile)
    problems = [error.split(": ", 1)[1] for error in result.errors]
    assert problems == [
        "cannot be parsed (ValueError: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 d…)",
        "timestamp is a number too large to be a time",
        "JSON nested deeper than 32 levels",
        "JSON nested deeper than 32 levels",
        "timestamp 1e+20 is after the year 9999",
        "timestamp nan is not a valid epoch time",
        "timestamp inf is not a valid epoch time",
        "timestamp '0001-01-01T00:00:00+14:00' is before 1970",
        "endpoint id longer than 256 characters",
        "job id has more than 256 items",
    ]
    # and with the default line limit (64 KiB) the deepest and the longest lines stop at the size check
    with LogTailer(spec, max_errors_per_read=20) as tailer:
        result = tailer.read_new()
    assert len(result.events) == len(good)
    assert sum("line longer than 65536 bytes" in error for error in result.errors) == 2


def test_timestamps_far_from_now_and_overlong_or_unprintable_fields_are_malformed(tmp_path: Path) -> None:
    """Problem 3: a forged year-3000 or year-1970 event, a 100 KB source or a source with terminal escapes
    would have reached the rates, the ledger, Slack and the dashboard."""
    path = tmp_path / "window.log"
    append(
        path,
        line(NOW - 8 * 86400 + 60)  # 8 days minus a minute: counted
        + line(NOW - 8 * 86400 - 60)
        + line(NOW + 9 * 60)  # a clock 9 minutes ahead: tolerated
        + line(NOW + 11 * 60)
        + line((NOW - 30) * 1000)  # epoch milliseconds
        + line(NOW, source="s" * 256)
        + line(NOW, source="s" * 257)
        + line(NOW, source="\x1b[31mred")
        + line(NOW, worker_id="w\u2028x")
        + line(NOW, tier={"free": True}),
    )
    with LogTailer(LogSource(name="w", path=str(path), start_at="start"), max_errors_per_read=10) as tailer:
        result = tailer.read_new(now=NOW)
    assert [event.ts for event in result.events] == [NOW - 8 * 86400 + 60, NOW + 9 * 60, NOW - 30, NOW]
    assert result.errors == [
        f"{path}:2: timestamp 2026-05-20T20:25:40Z is more than 8 days before now (2026-05-28T20:26:40Z): "
        "too old to count",
        f"{path}:4: timestamp 2026-05-28T20:37:40Z is more than 10 minutes after now (2026-05-28T20:26:40Z): "
        "a wrong clock or a forged line",
        f"{path}:7: source longer than 256 characters",
        f"{path}:8: source contains control or invisible characters",
        f"{path}:9: worker id contains control or invisible characters",
        f"{path}:10: tier must be text, not an object",
    ]
    # without ``now`` (a caller that does not know it) only impossible times are refused
    with LogTailer(LogSource(name="w", path=str(path), start_at="start")) as tailer:
        assert len(tailer.read_new().events) == 6


def test_problem_descriptions_are_bounded_and_free_of_control_characters(tmp_path: Path) -> None:
    """Problem 4: a hostile line's content must not reach a terminal or Slack as escapes or at length."""
    path = tmp_path / "evil.log"
    evil = "\x1b[2J\x1b]0;pwned\x07\u2028\u202e\x00" * 2000
    append(
        path,
        json.dumps({"ts": 1, "endpoint_id": "ep", "kind": evil[:200]})
        + "\n"
        + json.dumps({"ts": evil[:500], "endpoint_id": "ep", "kind": "ping"})
        + "\n"
        + json.dumps({"ts": 1, "endpoint_id": "ep", "kind": "pong" + "x" * 250})
        + "\n"
        + evil.replace("\x00", "")
        + "\n",
    )
    with LogTailer(LogSource(name="evil", path=str(path), start_at="start")) as tailer:
        result = tailer.read_new()
    assert result.malformed_lines == 4
    assert len(result.errors) == 4
    for error in result.errors:
        assert len(error) <= MAX_ERROR_CHARS
        assert len(error.split(": ", 1)[1]) <= MAX_PROBLEM_CHARS
        unsafe = [char for char in error if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs")]
        assert unsafe == [], error
    assert result.errors[0] == f"{path}:1: kind contains control or invisible characters"
    assert result.errors[1].startswith(f"{path}:2: timestamp '\\x1b[2J\\x1b]0;pwned\\x07\\u2028\\u202e")
    assert (
        result.errors[2]
        == f"{path}:3: kind must be 'request' or 'ping', not 'pongxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"
    )
    assert result.errors[3] == f"{path}:4: not JSON (Expecting value at column 1)"


def test_no_exception_escapes_read_new_whatever_the_bytes(tmp_path: Path) -> None:
    """Problem 3: every line is contained, including invalid UTF-8, NUL bytes and lone surrogates."""
    path = tmp_path / "bytes.log"
    append(
        path,
        b"\x00\x00\n\xff\n"
        + b'{"ts": 1, "endpoint_id": "\\ud800", "kind": "request"}\n'
        + b'{"ts": 1, "endpoint_id": "ep", "kind": "request", "source": "\\udfff"}\n'
        + b'{"ts": 1, "endpoint_id": "ep", "kind": "request"}\r\n',
    )
    with LogTailer(LogSource(name="b", path=str(path), start_at="start")) as tailer:
        result = tailer.read_new()
    assert [event.ts for event in result.events] == [1.0]
    assert result.malformed_lines == 4
