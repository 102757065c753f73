"""Tail the gateway's and workers' log files and turn each line into a ``LogEvent``.

Why: the incident that cost real money was a hung job whose heartbeat kept a worker alive for days; RunPod's
API shows a busy worker, but only the logs show *who* keeps calling and *how often* the heartbeat fires. The
rule we were given is "watch the ping rate in the logs and cut suspicious traffic", so the logs are a primary
input. They are also written by whoever sends traffic, so they are treated as hostile input: reading them
must never stall or crash the daemon's tick, grow its memory, or lose the good lines around a bad one.

- only complete lines are parsed; a half-written last line waits for its newline;
- one ``read_new()`` call reads at most ``max_read_bytes`` (default 1 MiB: about 4,000 access-log lines,
  ~50 ms of CPU and ~2.5 MiB of memory on the reference machine, see ``bench/log_backlog.py``); the daemon
  calls it once per source per tick, so a huge backlog is worked off over several ticks and never holds
  more than one call's events and one partial line (``max_line_bytes``) in memory;
- a file the tailer has never read starts where ``LogSource.start_at`` says: ``"end"`` (the default: the end
  of the file as it was when the tailer was created, so an existing multi-gigabyte log is not replayed) or
  ``"start"`` (byte 0); a file that appears later, or the new file after a rotation, is read from byte 0; a
  position given to ``restore()`` always wins;
- only regular files are read: the file is opened with ``O_NONBLOCK`` (opening a FIFO without it blocks
  until a writer comes, which froze the daemon before its first tick) and checked with ``fstat``; a FIFO, a
  device, a directory is reported, closed and watched for again later; a path with glob characters
  (``*?[``) is refused at construction (one source is one file; patterns are not expanded);
- logrotate's two styles both work: *rename + create* (the inode changes: the old file is drained through
  the descriptor we still hold, then the new file is read from its start) and *copytruncate* (the size
  drops below our offset: start again from 0);
- a file that does not exist yet is reported once and then watched for;
- a malformed line is counted and reported as ``"{path}:{line_no}: {problem}"`` (``"{path}: line at byte
  {offset}: {problem}"`` when reading did not start at byte 0, so line numbers are unknown) and never costs
  other lines: ANY exception while parsing one line (hostile JSON: 5,000-digit numbers, deep nesting, NaN,
  absurd timestamps, huge fields) makes that line malformed, never an exception out of ``read_new``; lines
  are at most ``max_line_bytes`` (64 KiB), JSON at most ``MAX_JSON_DEPTH`` deep (checked before
  ``json.loads`` recurses), every text field at most ``MAX_FIELD_CHARS`` with no control characters, and
  timestamps within ``MAX_EVENT_AGE_S`` before / ``MAX_EVENT_AHEAD_S`` after ``now`` when it is given;
- every problem text is length-capped, and control and invisible characters in it (ANSI escapes, U+2028,
  bidi overrides, lone surrogates) are escaped as ``\\u001b``, before it reaches a log, an alert or a
  terminal;
- ``position()``/``restore()`` let the daemon persist (inode, offset) and resume after a restart.

What it may touch: the configured files (read only), ``watchdog.clock``, ``watchdog.config`` (the source's
spec and :func:`~watchdog.config.compile_log_regex`: log regexes run on RE2, linear-time, so a hostile line
cannot make one backtrack) and ``watchdog.errors``. Parsing is separated from file handling
(``parse_json_line``/``parse_regex_line`` are pure, with ``now`` passed in) so both can be tested on their
own.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from watchdog.clock import from_iso, to_iso
from watchdog.config import LogPattern, LogSource, compile_log_regex, file_kind
from watchdog.errors import ConfigError

EventKind = Literal["request", "ping"]
EVENT_KINDS: frozenset[str] = frozenset({"request", "ping"})

DEFAULT_MAX_READ_BYTES = 1024 * 1024
"""Bytes one ``read_new()`` call reads at most. 1 MiB of access log is ~4,000 lines of ~260 bytes (the
simulator's format): ~50 ms of CPU to parse and a ~2.5 MiB peak on the reference machine (8 MiB, the old
default: ~0.4 s and 15 MiB), and at one call per 5 s tick it keeps up with ~800 lines a second, hundreds of
times the traffic this daemon watches (bench/log_backlog.py measures the whole daemon)."""
DEFAULT_MAX_LINE_BYTES = 64 * 1024
"""Longest line parsed (longer ones are reported and skipped, never buffered). An access-log line is
200-500 bytes; nginx refuses request lines over 8 KiB by default (``large_client_header_buffers``), so 64 KiB
is 8x the longest a gateway writes while it bounds what one line can cost to parse and to hold."""
DEFAULT_MAX_ERRORS_PER_READ = 5

READ_CHUNK_BYTES = 256 * 1024
"""One ``pread``: bounds the bytes split into lines at a time inside one call's budget."""

MAX_JSON_DEPTH = 32
"""Deepest JSON nesting accepted; an access-log record is two or three levels deep. Checked before
``json.loads``, whose recursion a 100,000-deep line would exhaust."""
MAX_FIELD_CHARS = 256
"""Longest endpoint id, source, job id(s), tier or worker id (RunPod ids are ~14-40 characters)."""
MAX_EVENT_AGE_S = 8 * 86400.0
"""Events older than this before ``now`` are refused: the traffic checks look back at most 7 days (the jump
baseline) plus the current hour, so older lines could only distort the rates."""
MAX_EVENT_AHEAD_S = 600.0
"""Events more than this after ``now`` are refused (a clock a few minutes off is tolerated)."""
MAX_EPOCH_S = 253402300799.0
"""9999-12-31T23:59:59Z: later timestamps cannot even be represented as a date."""
MAX_PROBLEM_CHARS = 200
"""Longest description of one line's problem (quoted line content is shorter still)."""
MAX_ERROR_CHARS = 1000
"""Longest error text of a ``ReadResult``, path included."""
_QUOTE_CHARS = 40

_EPOCH_MILLIS_THRESHOLD = 1e11
"""Epoch numbers above this are milliseconds: 1e11 seconds would be the year 5138."""

GLOB_CHARACTERS = "*?["

NON_TRAFFIC_KINDS = frozenset({"api", "worker"})
"""Kinds a log may carry that are neither user requests nor heartbeats: management calls on the runtime
(status, health, cancel, the daemon's own polling) and the worker protocol (job-take, job-done). They are
skipped without complaint; any other unknown kind is reported as a malformed line."""

_UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
"""C0/C1 controls (ANSI escapes start with ESC), DEL, zero-width and bidirectional marks, line/paragraph
separators, BOM, interlinear annotations and lone surrogates: nothing a log field or a message may carry."""
_JSON_ESCAPE = re.compile(r"\\.", re.DOTALL)
_JSON_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


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

    ``line_no`` is only used to number malformed lines after a resume; -1 when line numbers are unknown
    (reading started after byte 0).
    """

    inode: int
    offset: int
    line_no: int = 0


@dataclass(frozen=True, slots=True)
class ReadResult:
    events: list[LogEvent]
    errors: list[str]
    """Plain-text problems, ``"{path}:{line_no}: {problem}"`` for bad lines; bounded per call, each at most
    ``MAX_ERROR_CHARS`` characters with no control characters."""
    malformed_lines: int = 0
    """Every malformed line of this call, including those not described in ``errors``."""
    more_pending: bool = False
    """The read budget ran out before the end of the file; the next call continues."""


class NotTraffic(Exception):
    """A well-formed line of a kind that is not traffic (see ``NON_TRAFFIC_KINDS``): skipped on purpose."""


class LineError(ValueError):
    """A line that cannot become a LogEvent; the message says why in plain words."""


# --------------------------------------------------------------------------------------------------------
# Safe text


def printable(text: str, limit: int) -> str:
    """``text`` with control and invisible characters escaped (``\\u001b``), cut to ``limit`` characters."""
    cleaned = _UNSAFE_CHARACTERS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    if len(cleaned) <= limit:
        return cleaned
    return cleaned[: max(0, limit - 1)] + "…"


def _quote(value: Any) -> str:
    """A short, safe ``repr`` of a value taken from a line, for a problem description."""
    if isinstance(value, str):
        shown: Any = value[: _QUOTE_CHARS + 1]
    elif isinstance(value, int | float | bool) or value is None:
        shown = value
    else:
        return type(value).__name__
    try:
        text = repr(shown)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        return "a huge number"
    return printable(text, _QUOTE_CHARS)


def path_problems(path: str) -> list[str]:
    """What is wrong with a log source's ``path`` itself, in the words ``LogSource.problems()`` uses."""
    found = sorted({char for char in path if char in GLOB_CHARACTERS})
    if found:
        chars = " ".join(repr(char) for char in found)
        return [
            f"path: contains glob character(s) {chars}: a log source is one file, patterns are not expanded"
        ]
    return []


# --------------------------------------------------------------------------------------------------------
# Pure parsing


def parse_timestamp(value: Any) -> float:
    """RFC 3339 text or an epoch number (seconds, or milliseconds above 1e11) → epoch seconds.

    Raises LineError for anything else, and for times before 1970 or after the year 9999."""
    if isinstance(value, bool):
        raise LineError(f"timestamp must be a number or RFC 3339 text, not {value!r}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise LineError("timestamp is a number too large to be a time") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                seconds = from_iso(text)
            except (ValueError, OverflowError, OSError):
                raise LineError(f"timestamp {_quote(text)} is neither RFC 3339 nor an epoch number") from None
            if not 0 <= seconds <= MAX_EPOCH_S:
                raise LineError(f"timestamp {_quote(text)} is before 1970") from None
            return seconds
    else:
        raise LineError(f"timestamp must be a number or RFC 3339 text, not {type(value).__name__}")
    if not math.isfinite(number) or number < 0:
        raise LineError(f"timestamp {_quote(value)} is not a valid epoch time")
    seconds = number / 1000.0 if number > _EPOCH_MILLIS_THRESHOLD else number
    if seconds > MAX_EPOCH_S:
        raise LineError(f"timestamp {_quote(value)} is after the year 9999")
    return seconds


def check_recent(ts: float, now: float) -> None:
    """Raise LineError unless ``ts`` lies within ``MAX_EVENT_AGE_S`` before / ``MAX_EVENT_AHEAD_S`` after
    ``now``."""
    if ts < now - MAX_EVENT_AGE_S:
        raise LineError(
            f"timestamp {to_iso(ts)} is more than {MAX_EVENT_AGE_S / 86400:g} days before now "
            f"({to_iso(now)}): too old to count"
        )
    if ts > now + MAX_EVENT_AHEAD_S:
        raise LineError(
            f"timestamp {to_iso(ts)} is more than {MAX_EVENT_AHEAD_S / 60:g} minutes after now "
            f"({to_iso(now)}): a wrong clock or a forged line"
        )


def _text_or_none(value: Any, label: str) -> str | None:
    """A field's text (stripped), bounded to ``MAX_FIELD_CHARS`` and free of control characters."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        if len(value) > MAX_FIELD_CHARS:
            raise LineError(f"{label} has more than {MAX_FIELD_CHARS} items")
        value = ",".join(str(item) for item in value)
    elif isinstance(value, Mapping):
        raise LineError(f"{label} must be text, not an object")
    text = str(value).strip()
    if len(text) > MAX_FIELD_CHARS:
        raise LineError(f"{label} longer than {MAX_FIELD_CHARS} characters")
    if _UNSAFE_CHARACTERS.search(text):
        raise LineError(f"{label} contains control or invisible characters")
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


def event_from_values(values: Mapping[str, Any], *, now: float | None = None) -> LogEvent:
    """Build a LogEvent from canonical field names (``ts``, ``endpoint_id``, ``kind``, ...).

    With ``now``, a timestamp outside the window around it (:func:`check_recent`) is a LineError."""
    kind = (_text_or_none(values.get("kind"), "kind") or "").lower()
    if kind in NON_TRAFFIC_KINDS:
        raise NotTraffic(kind)
    if values.get("ts") in (None, ""):
        raise LineError("missing timestamp")
    ts = parse_timestamp(values["ts"])
    endpoint_id = _text_or_none(values.get("endpoint_id"), "endpoint id")
    if endpoint_id is None:
        raise LineError("missing endpoint id")
    if kind not in EVENT_KINDS:
        raise LineError(f"kind must be 'request' or 'ping', not {_quote(values.get('kind'))}")
    if now is not None:
        check_recent(ts, now)
    return LogEvent(
        ts=ts,
        endpoint_id=endpoint_id,
        kind=kind,  # type: ignore[arg-type]  # checked against EVENT_KINDS just above
        source=_text_or_none(values.get("source"), "source"),
        job_id=_text_or_none(values.get("job_id"), "job id"),
        tier=_text_or_none(values.get("tier"), "tier"),
        worker_id=_text_or_none(values.get("worker_id"), "worker id"),
    )


def json_too_deep(line: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``line`` nests arrays/objects deeper than ``limit`` (brackets inside strings do not count).

    Linear time: escapes and then strings are removed by regexes that cannot backtrack, and only the
    remaining brackets are walked, and only when there are more than ``limit`` of them."""
    if line.count("[") + line.count("{") <= limit:
        return False
    bare = _JSON_STRING.sub("", _JSON_ESCAPE.sub("", line))
    depth = 0
    for char in _NOT_BRACKET.sub("", bare):
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_json_line(line: str, field_names: Mapping[str, str], *, now: float | None = None) -> LogEvent:
    """One JSON object per line → LogEvent; raises LineError (or NotTraffic), never anything else."""
    try:
        if json_too_deep(line):
            raise LineError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LineError(f"not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise LineError(f"expected a JSON object, got {type(record).__name__}")
        return event_from_values({field: _lookup(record, key) for field, key in field_names.items()}, now=now)
    except (LineError, NotTraffic):
        raise
    except Exception as exc:  # hostile input: any failure is this line's problem only
        raise LineError(_unexpected(exc)) from None


def parse_regex_line(
    line: str, pattern: LogPattern, field_names: Mapping[str, str], *, now: float | None = None
) -> LogEvent:
    """``field_names``: event field → the regex group holding it (:attr:`LogSource.field_names`);
    ``pattern`` from :func:`watchdog.config.compile_log_regex` (RE2: linear in the line, whatever the regex).

    Raises LineError (or NotTraffic), never anything else."""
    try:
        match = pattern.search(line)
        if match is None:
            raise LineError("does not match the configured regex")
        groups = match.groupdict()
        return event_from_values({field: groups.get(group) for field, group in field_names.items()}, now=now)
    except (LineError, NotTraffic):
        raise
    except Exception as exc:  # hostile input: any failure is this line's problem only
        raise LineError(_unexpected(exc)) from None


def _unexpected(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply to parse"
    detail = printable(str(exc), 80)
    return f"cannot be parsed ({type(exc).__name__}: {detail})" if detail else type(exc).__name__


# --------------------------------------------------------------------------------------------------------
# The file-handling shell


class LogTailer:
    """Reads what was appended to one regular log file since the last call.

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
        """Raises ConfigError when ``spec`` is not usable (the configuration's check, plus the path's own:
        :func:`path_problems`)."""
        problems = spec.problems()
        for problem in path_problems(spec.path):
            if problem not in problems:
                problems.append(problem)
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
        """A line longer than this is reported and skipped instead of being buffered."""
        self.max_errors_per_read = max_errors_per_read
        """How many malformed lines are described per call; the rest are only counted."""
        self._pattern = compile_log_regex(spec.regex) if spec.format == "regex" and spec.regex else None
        self._field_names = spec.field_names
        self._fd: int | None = None
        self._inode: int | None = None
        self._offset = 0  # bytes of the current file consumed into complete lines or ``_partial``
        self._line_start = 0  # offset of the first byte of the line in progress (``_partial``/skipped)
        self._partial = b""
        self._skipping_long_line = False
        self._line_no = 0
        self._lines_known = True  # reading started at byte 0, so ``_line_no`` is the file's line number
        self._restored: LogPosition | None = None
        self._start: tuple[int, int] | None = None  # (inode, size) to start at, for start_at = "end"
        self._reported: str | None = None  # the path's problem already reported (missing, not regular...)
        self._note_start()

    def __enter__(self) -> LogTailer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LogTailer({self.spec.name!r}, {str(self.path)!r}, offset={self._offset})"

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def position(self) -> LogPosition | None:
        """Where to resume: the start of the first line not yet turned into an event (or None)."""
        if self._inode is None:
            return self._restored
        return LogPosition(self._inode, self._line_start, self._line_no if self._lines_known else -1)

    def restore(self, position: LogPosition | None) -> None:
        """Resume from a saved position at the next read (before any read; a later call resets state).

        If the file at ``path`` has another inode by then (it was rotated while we were down) or is shorter
        than the offset (truncated), reading starts from its beginning. ``None`` forgets any position: the
        file is treated as never read (``start_at`` applies, as of now).
        """
        self.close()
        self._inode = None
        self._rewind()
        self._restored = position
        self._note_start()

    def read_new(self, now: float | None = None) -> ReadResult:
        """The events appended since the last call, at most ``max_read_bytes`` of the file.

        ``now`` (epoch seconds), when given, refuses events outside the window around it
        (:func:`check_recent`) as malformed lines. Never raises: unreadable files and bad lines are in the
        result's ``errors``."""
        collector = _Collector(self.path, self.max_errors_per_read)
        try:
            more = self._read(collector, now)
            if self._fd is not None:
                self._reported = None  # read fine: the next problem is news again
        except OSError as exc:
            self._report(collector, f"cannot read: {exc.strerror or exc}")
            more = False
        except Exception as exc:  # a bug here must not cost the tick; it is reported
            self._report(collector, f"read failed ({type(exc).__name__}: {exc})")
            more = False
        return collector.result(more_pending=more)

    # -- internals ------------------------------------------------------------------------------------

    def _note_start(self) -> None:
        """Remember where a never-read file starts: its current end for ``start_at = "end"``."""
        self._start = None
        if self._restored is not None or self.spec.start_at != "end":
            return
        try:
            found = os.stat(self.path)
        except OSError:
            return  # not there yet: when it appears, all of it is new
        if stat.S_ISREG(found.st_mode):
            self._start = (found.st_ino, found.st_size)

    def _report(self, collector: _Collector, problem: str) -> None:
        """Report a problem of the path itself once, until it changes or the file is read again."""
        if problem != self._reported:
            self._reported = problem
            collector.problem(f"{self.path}: {problem}")

    def _read(self, collector: _Collector, now: float | None) -> bool:
        """Returns whether more is pending."""
        budget = self.max_read_bytes
        try:
            path_stat: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            path_stat = None
        except OSError as exc:
            if self._fd is None:
                self._report(collector, f"cannot read: {exc.strerror or exc}")
                return False
            path_stat = None  # keep reading what we hold

        if self._fd is None:
            if path_stat is None:
                self._report(collector, "does not exist (yet); watching for it")
                return False
            if not self._open_current(collector):
                return False

        if path_stat is not None and path_stat.st_ino != self._inode:
            # Rotated by rename: drain the old file (our descriptor still points at it), then switch.
            budget = self._read_available(budget, collector, now, final=True)
            if budget <= 0:
                return True
            self.close()
            self._start = None  # the new file is new: read all of it
            if not self._open_current(collector):
                return False

        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            # copytruncate: the file was emptied under us; whatever is there now is new.
            self._rewind()
        budget = self._read_available(budget, collector, now, final=False)
        return budget <= 0 and os.fstat(self._fd).st_size > self._offset

    def _open_current(self, collector: _Collector) -> bool:
        try:
            # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._report(collector, "does not exist (yet); watching for it")
            return False
        except OSError as exc:
            self._report(collector, f"cannot open: {exc.strerror or exc}")
            return False
        try:
            found = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self._report(collector, f"cannot read: {exc.strerror or exc}")
            return False
        if not stat.S_ISREG(found.st_mode):
            os.close(fd)
            self._report(
                collector,
                f"is not a regular file but {file_kind(found.st_mode)}; only regular files are read "
                "(watching for one)",
            )
            return False
        self._fd = fd
        self._inode = found.st_ino
        self._rewind()
        restored, self._restored = self._restored, None
        start, self._start = self._start, None
        if restored is not None:
            if restored.inode == found.st_ino and 0 <= restored.offset <= found.st_size:
                self._offset = self._line_start = restored.offset
                self._line_no = max(0, restored.line_no)
                self._lines_known = restored.line_no >= 0
        elif start is not None and start[0] == found.st_ino and start[1] <= found.st_size:
            self._start_near(start[1])
        return True

    def _start_near(self, end: int) -> None:
        """Start at the beginning of the line that contains byte ``end`` (the file's end when it was first
        seen), so a line being written then is read whole, not from its middle."""
        assert self._fd is not None
        if end == 0:
            return
        tail = os.pread(self._fd, min(end, self.max_line_bytes), end - min(end, self.max_line_bytes))
        newline = tail.rfind(b"\n")
        if newline >= 0:
            self._offset = self._line_start = end - len(tail) + newline + 1
        elif len(tail) == end:
            return  # the whole file is one unfinished line: start at 0
        else:  # in the middle of a line already too long: drop its rest silently
            self._offset = self._line_start = end
            self._skipping_long_line = True
        self._lines_known = self._offset == 0

    def _rewind(self) -> None:
        self._offset = 0
        self._line_start = 0
        self._partial = b""
        self._skipping_long_line = False
        self._line_no = 0
        self._lines_known = True

    def _read_available(self, budget: int, collector: _Collector, now: float | None, *, final: bool) -> int:
        """Read complete lines up to ``budget`` bytes; returns the budget left.

        ``final``: the file will never grow again (rotated away), so a last line without newline counts.
        """
        assert self._fd is not None
        while budget > 0:
            chunk = os.pread(self._fd, min(budget, READ_CHUNK_BYTES), self._offset)
            if not chunk:
                break
            budget -= len(chunk)
            self._offset += len(chunk)
            self._consume(chunk, collector, now)
        if final and budget > 0 and (self._partial or self._skipping_long_line):
            if not self._skipping_long_line:
                self._handle_line(self._partial, collector, now)
            self._partial = b""
            self._skipping_long_line = False
            self._line_start = self._offset
        return budget

    def _consume(self, chunk: bytes, collector: _Collector, now: float | None) -> None:
        """Split the chunk just read (it ends at ``_offset``) into lines; keep the unfinished one."""
        lines = chunk.split(b"\n")
        rest = lines.pop()
        next_start = self._offset - len(chunk)  # where the chunk starts in the file
        for piece in lines:
            next_start += len(piece) + 1
            if self._skipping_long_line:
                # the tail of an over-long line already reported: drop it, it is not a line of its own
                self._skipping_long_line = False
                self._line_no += 1
            else:
                raw = self._partial + piece if self._partial else piece
                self._partial = b""
                self._handle_line(raw, collector, now)
            self._line_start = next_start
        if self._skipping_long_line:
            return
        if len(self._partial) + len(rest) > self.max_line_bytes:
            collector.malformed(self._where(), f"line longer than {self.max_line_bytes} bytes")
            self._partial = b""
            self._skipping_long_line = True
        else:
            self._partial += rest

    def _where(self) -> str:
        """The line in progress, for a problem description: ``:12`` or ``: line at byte 4096``."""
        if self._lines_known:
            return f":{self._line_no + 1}"
        return f": line at byte {self._line_start}"

    def _handle_line(self, raw: bytes, collector: _Collector, now: float | None) -> None:
        where = self._where()
        self._line_no += 1
        if len(raw) > self.max_line_bytes:
            collector.malformed(where, f"line longer than {self.max_line_bytes} bytes")
            return
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            collector.malformed(where, "not valid UTF-8")
            return
        if not line.strip():
            return
        try:
            if self._pattern is not None:
                event = parse_regex_line(line, self._pattern, self._field_names, now=now)
            else:
                event = parse_json_line(line, self._field_names, now=now)
        except NotTraffic:
            return
        except Exception as exc:  # LineError, or anything a hostile line provoked
            collector.malformed(where, str(exc) if isinstance(exc, LineError) else _unexpected(exc))
            return
        collector.events.append(event)


class _Collector:
    """Accumulates one call's events and a bounded list of bounded, printable problems."""

    def __init__(self, path: Path, max_errors: int) -> None:
        self.path = path
        self.max_errors = max_errors
        self.events: list[LogEvent] = []
        self.errors: list[str] = []
        self.malformed_count = 0
        self._described = 0

    def problem(self, text: str) -> None:
        self.errors.append(printable(text, MAX_ERROR_CHARS))

    def malformed(self, where: str, problem: str) -> None:
        self.malformed_count += 1
        if self._described < self.max_errors:
            self._described += 1
            self.errors.append(
                printable(f"{self.path}{where}: {printable(problem, MAX_PROBLEM_CHARS)}", MAX_ERROR_CHARS)
            )

    def result(self, *, more_pending: bool) -> ReadResult:
        errors = list(self.errors)
        hidden = self.malformed_count - self._described
        if hidden > 0:
            errors.append(
                printable(f"{self.path}: {hidden} more malformed line(s) not shown", MAX_ERROR_CHARS)
            )
        return ReadResult(self.events, errors, self.malformed_count, more_pending)
