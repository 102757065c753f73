"""Tail the gateway's and workers' log files and turn each line into a ``LogEvent``.

Why: the incident that cost real money was a hung job whose heartbeat kept a worker alive for days; RunPod's
API shows a busy worker, but only the logs show *who* keeps calling and *how often* the heartbeat fires. The
rule we were given is "watch the ping rate in the logs and cut suspicious traffic", so the logs are a primary
input, and reading them must never stall the daemon's tick or lose lines:

- only complete lines are parsed; a half-written last line waits for its newline;
- one call reads at most ``max_read_bytes`` so a huge backlog is worked off over several ticks;
- logrotate's two styles both work: *rename + create* (the inode changes: the old file is drained through
  the descriptor we still hold, then the new file is read from its start) and *copytruncate* (the size
  drops below our offset: start again from 0);
- a file that does not exist yet is reported once and then watched for;
- a malformed line is counted and reported as ``"{path}:{line_no}: {problem}"`` and never costs other lines;
- ``position()``/``restore()`` let the daemon persist (inode, offset) and resume after a restart.

Parsing is separated from file handling (``parse_json_line``/``parse_regex_line`` are pure) so both can be
tested on their own.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from watchdog.clock import from_iso
from watchdog.config import LogSource
from watchdog.errors import ConfigError

EventKind = Literal["request", "ping"]
EVENT_KINDS: frozenset[str] = frozenset({"request", "ping"})

DEFAULT_MAX_READ_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_MAX_ERRORS_PER_READ = 5

_EPOCH_MILLIS_THRESHOLD = 1e11
"""Epoch numbers above this are milliseconds: 1e11 seconds would be the year 5138."""

NON_TRAFFIC_KINDS = frozenset({"api", "worker"})
"""Kinds a log may carry that are neither user requests nor heartbeats: management calls on the runtime
(status, health, cancel, the daemon's own polling) and the worker protocol (job-take, job-done). They are
skipped without complaint; any other unknown kind is reported as a malformed line."""


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One request to an endpoint or one worker heartbeat, as a log line recorded it.

    ``job_id`` is kept as written; heartbeat pings carry a comma-separated list of the worker's in-progress
    jobs (runpod-api.md §5.4), which ``job_ids`` splits.
    """

    ts: float
    endpoint_id: str
    kind: EventKind
    source: str | None = None
    job_id: str | None = None
    tier: str | None = None
    worker_id: str | None = None

    @property
    def job_ids(self) -> tuple[str, ...]:
        if not self.job_id:
            return ()
        return tuple(part.strip() for part in self.job_id.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a tailer stopped: the file's inode and the byte offset of the first unconsumed line.

    ``line_no`` is only used to number malformed lines after a resume.
    """

    inode: int
    offset: int
    line_no: int = 0


@dataclass(frozen=True, slots=True)
class ReadResult:
    events: list[LogEvent]
    errors: list[str]
    """Plain-text problems, ``"{path}:{line_no}: {problem}"`` for bad lines; bounded per call."""
    malformed_lines: int = 0
    """Every malformed line of this call, including those not described in ``errors``."""
    more_pending: bool = False
    """The read budget ran out before the end of the file; call again soon."""


class NotTraffic(Exception):
    """A well-formed line of a kind that is not traffic (see ``NON_TRAFFIC_KINDS``): skipped on purpose."""


class LineError(ValueError):
    """A line that cannot become a LogEvent; the message says why in plain words."""


# --------------------------------------------------------------------------------------------------------
# Pure parsing


def parse_timestamp(value: Any) -> float:
    """RFC 3339 text or an epoch number (seconds, or milliseconds above 1e11) → epoch seconds."""
    if isinstance(value, bool):
        raise LineError(f"timestamp must be a number or RFC 3339 text, not {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                return from_iso(text)
            except ValueError:
                raise LineError(f"timestamp {text[:40]!r} is neither RFC 3339 nor an epoch number") from None
    else:
        raise LineError(f"timestamp must be a number or RFC 3339 text, not {type(value).__name__}")
    if not math.isfinite(number) or number < 0:
        raise LineError(f"timestamp {value!r} is not a valid epoch time")
    return number / 1000.0 if number > _EPOCH_MILLIS_THRESHOLD else number


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    text = str(value).strip()
    return text or None


def _lookup(record: Mapping[str, Any], key: str) -> Any:
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def event_from_values(values: Mapping[str, Any]) -> LogEvent:
    """Build a LogEvent from canonical field names (``ts``, ``endpoint_id``, ``kind``, ...)."""
    if values.get("ts") in (None, ""):
        raise LineError("missing timestamp")
    ts = parse_timestamp(values["ts"])
    endpoint_id = _text_or_none(values.get("endpoint_id"))
    if endpoint_id is None:
        raise LineError("missing endpoint id")
    kind = (_text_or_none(values.get("kind")) or "").lower()
    if kind in NON_TRAFFIC_KINDS:
        raise NotTraffic(kind)
    if kind not in EVENT_KINDS:
        raise LineError(f"kind must be 'request' or 'ping', not {values.get('kind')!r}")
    return LogEvent(
        ts=ts,
        endpoint_id=endpoint_id,
        kind=kind,  # type: ignore[arg-type]  # checked against EVENT_KINDS just above
        source=_text_or_none(values.get("source")),
        job_id=_text_or_none(values.get("job_id")),
        tier=_text_or_none(values.get("tier")),
        worker_id=_text_or_none(values.get("worker_id")),
    )


def parse_json_line(line: str, field_names: Mapping[str, str]) -> LogEvent:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise LineError(f"expected a JSON object, got {type(record).__name__}")
    return event_from_values({field: _lookup(record, key) for field, key in field_names.items()})


def parse_regex_line(line: str, pattern: re.Pattern[str], field_names: Mapping[str, str]) -> LogEvent:
    """``field_names``: event field → the regex group holding it (:attr:`LogSource.field_names`)."""
    match = pattern.search(line)
    if match is None:
        raise LineError("does not match the configured regex")
    groups = match.groupdict()
    return event_from_values({field: groups.get(group) for field, group in field_names.items()})


# --------------------------------------------------------------------------------------------------------
# The file-handling shell


class LogTailer:
    """Reads what was appended to one log file since the last call.

    Holds the file open between calls so that, after a rename-style rotation, the rest of the old file can
    still be read through the old descriptor. Call ``close()`` (or use it as a context manager) when done.
    """

    def __init__(
        self,
        spec: LogSource,
        *,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_errors_per_read: int = DEFAULT_MAX_ERRORS_PER_READ,
    ) -> None:
        """Raises ConfigError when ``spec`` is not usable (the same check as the configuration's)."""
        problems = spec.problems()
        if max_read_bytes < 1024:
            problems.append("max_read_bytes must be at least 1024")
        if max_line_bytes < 64:
            problems.append("max_line_bytes must be at least 64")
        if problems:
            raise ConfigError([f"log source {spec.name!r}: {problem}" for problem in problems])
        self.spec = spec
        self.path = Path(spec.path).expanduser()
        self.max_read_bytes = max_read_bytes
        """Upper bound on bytes read per ``read_new()`` call, so a backlog cannot stall a tick."""
        self.max_line_bytes = max_line_bytes
        """A line longer than this is reported and skipped instead of being buffered without end."""
        self.max_errors_per_read = max_errors_per_read
        """How many malformed lines are described per call; the rest are only counted."""
        self._pattern = re.compile(spec.regex) if spec.format == "regex" and spec.regex else None
        self._field_names = spec.field_names
        self._file: IO[bytes] | None = None
        self._inode: int | None = None
        self._offset = 0  # bytes of the current file consumed into complete lines or ``_partial``
        self._partial = b""
        self._skipping_long_line = False
        self._line_no = 0
        self._restored: LogPosition | None = None
        self._reported_missing = False

    def __enter__(self) -> LogTailer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LogTailer({self.spec.name!r}, {str(self.path)!r}, offset={self._offset})"

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def position(self) -> LogPosition | None:
        """Where to resume: the start of the first line not yet turned into an event (or None)."""
        if self._inode is None:
            return self._restored
        return LogPosition(self._inode, self._offset - len(self._partial), self._line_no)

    def restore(self, position: LogPosition | None) -> None:
        """Resume from a saved position at the next read (before any read; a later call resets state).

        If the file at ``path`` has another inode by then (it was rotated while we were down) or is shorter
        than the offset (truncated), reading starts from its beginning.
        """
        self.close()
        self._inode = None
        self._offset = 0
        self._partial = b""
        self._skipping_long_line = False
        self._line_no = 0
        self._restored = position

    def read_new(self) -> ReadResult:
        collector = _Collector(self.path, self.max_errors_per_read)
        budget = self.max_read_bytes
        try:
            path_stat: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            path_stat = None
        except OSError as exc:
            collector.problem(f"{self.path}: cannot read: {exc.strerror or exc}")
            path_stat = None

        if self._file is None:
            if path_stat is None:
                if not self._reported_missing:
                    self._reported_missing = True
                    collector.problem(f"{self.path}: does not exist (yet); watching for it")
                return collector.result(more_pending=False)
            if not self._open_current(collector):
                return collector.result(more_pending=False)
        self._reported_missing = False

        assert self._file is not None
        if path_stat is not None and path_stat.st_ino != self._inode:
            # Rotated by rename: drain the old file (our descriptor still points at it), then switch.
            budget = self._read_available(budget, collector, final=True)
            if budget <= 0:
                return collector.result(more_pending=True)
            self.close()
            if not self._open_current(collector):
                return collector.result(more_pending=False)

        size = os.fstat(self._file.fileno()).st_size
        if size < self._offset:
            # copytruncate: the file was emptied under us; whatever is there now is new.
            self._rewind()
        budget = self._read_available(budget, collector, final=False)
        more = budget <= 0 and os.fstat(self._file.fileno()).st_size > self._offset
        return collector.result(more_pending=more)

    # -- internals ------------------------------------------------------------------------------------

    def _open_current(self, collector: _Collector) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115  # held open across calls on purpose
        except FileNotFoundError:
            return False
        except OSError as exc:
            collector.problem(f"{self.path}: cannot open: {exc.strerror or exc}")
            return False
        stat = os.fstat(handle.fileno())
        self._file = handle
        self._inode = stat.st_ino
        self._rewind()
        restored, self._restored = self._restored, None
        if restored is not None and restored.inode == stat.st_ino and restored.offset <= stat.st_size:
            self._offset = restored.offset
            self._line_no = restored.line_no
        return True

    def _rewind(self) -> None:
        self._offset = 0
        self._partial = b""
        self._skipping_long_line = False
        self._line_no = 0

    def _read_available(self, budget: int, collector: _Collector, *, final: bool) -> int:
        """Read complete lines up to ``budget`` bytes; returns the budget left.

        ``final``: the file will never grow again (rotated away), so a last line without newline counts.
        """
        assert self._file is not None
        self._file.seek(self._offset)
        while budget > 0:
            chunk = self._file.read(min(budget, 1024 * 1024))
            if not chunk:
                break
            budget -= len(chunk)
            self._offset += len(chunk)
            self._consume(chunk, collector)
        if final and budget > 0 and (self._partial or self._skipping_long_line):
            if not self._skipping_long_line:
                self._handle_line(self._partial, collector)
            self._partial = b""
            self._skipping_long_line = False
        return budget

    def _consume(self, chunk: bytes, collector: _Collector) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            if self._skipping_long_line:
                # the tail of an over-long line already reported: drop it, it is not a line of its own
                self._skipping_long_line = False
                self._line_no += 1
                continue
            self._handle_line(raw, collector)
        if len(self._partial) > self.max_line_bytes and not self._skipping_long_line:
            collector.malformed(self._line_no + 1, f"line longer than {self.max_line_bytes} bytes")
            self._partial = b""
            self._skipping_long_line = True
        elif self._skipping_long_line:
            self._partial = b""

    def _handle_line(self, raw: bytes, collector: _Collector) -> None:
        self._line_no += 1
        if len(raw) > self.max_line_bytes:
            collector.malformed(self._line_no, f"line longer than {self.max_line_bytes} bytes")
            return
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            collector.malformed(self._line_no, "not valid UTF-8")
            return
        if not line.strip():
            return
        try:
            if self._pattern is not None:
                event = parse_regex_line(line, self._pattern, self._field_names)
            else:
                event = parse_json_line(line, self._field_names)
        except NotTraffic:
            return
        except LineError as exc:
            collector.malformed(self._line_no, str(exc))
            return
        collector.events.append(event)


class _Collector:
    """Accumulates one call's events and a bounded list of problems."""

    def __init__(self, path: Path, max_errors: int) -> None:
        self.path = path
        self.max_errors = max_errors
        self.events: list[LogEvent] = []
        self.errors: list[str] = []
        self.malformed_count = 0
        self._described = 0

    def problem(self, text: str) -> None:
        self.errors.append(text)

    def malformed(self, line_no: int, problem: str) -> None:
        self.malformed_count += 1
        if self._described < self.max_errors:
            self._described += 1
            self.errors.append(f"{self.path}:{line_no}: {problem}")

    def result(self, *, more_pending: bool) -> ReadResult:
        errors = list(self.errors)
        hidden = self.malformed_count - self._described
        if hidden > 0:
            errors.append(f"{self.path}: {hidden} more malformed line(s) not shown")
        return ReadResult(self.events, errors, self.malformed_count, more_pending)
