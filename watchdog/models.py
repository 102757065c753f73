"""Typed, immutable views of what RunPod tells us, as the client parses them.

These are the daemon's vocabulary: the client turns JSON into these, policies and money logic read them,
the ledger stores them. Times are UTC epoch seconds (float); durations carry their unit in the name.
Unknown fields in RunPod's answers are ignored; missing optional fields get the documented default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from watchdog.vocabulary import WorkerStatus

_RUNPOD_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def is_runpod_id(value: object) -> bool:
    """An endpoint, worker or job id as RunPod makes them, and safe to put in a URL path as it is: 1-200
    letters, digits, ``_``, ``-`` or ``.`` (not only dots). Anything else read from a log is not an id."""
    return isinstance(value, str) and bool(_RUNPOD_ID.fullmatch(value)) and set(value) != {"."}


class JobStatus(StrEnum):
    """Runtime job status (runpod-api.md §4.2)."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT}


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """A serverless endpoint as REST v2 describes it (``GET /v2/serverless/{id}``).

    ``execution_timeout_ms`` is REST v2 ``timeout``; ``None`` or 0 means the endpoint never times a job out,
    which is the incident's condition.
    """

    id: str
    name: str
    workers_min: int
    workers_max: int
    idle_timeout_s: int
    execution_timeout_ms: int | None
    gpu_pools: tuple[str, ...] = ()
    gpu_count: int = 1
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: float = 4
    flashboot: str = "OFF"
    endpoint_type: str = "QUEUE"
    created_at: float | None = None
    workers_standby: int = 0
    """Only GraphQL reports it; REST v2 endpoints leave it 0 unless merged from GraphQL."""


@dataclass(frozen=True, slots=True)
class Worker:
    """One live worker of an endpoint (``GET /v2/serverless/{id}/workers``)."""

    id: str
    status: WorkerStatus
    is_stale: bool = False
    gpu_count: int = 1
    gpu_type_id: str | None = None
    version: int | None = None
    uptime_s: float | None = None
    started_at: float | None = None
    data_center_id: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    running: int = 0
    idle: int = 0
    initializing: int = 0
    throttled: int = 0
    unhealthy: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class EndpointWorkers:
    endpoint_version: int | None
    summary: WorkerSummary
    workers: tuple[Worker, ...]


@dataclass(frozen=True, slots=True)
class Health:
    """``GET {runtime}/{id}/health``; every missing key counts as 0 (runpod-api.md §4.1)."""

    jobs_completed: int = 0
    jobs_failed: int = 0
    jobs_in_progress: int = 0
    jobs_in_queue: int = 0
    jobs_retried: int = 0
    workers_idle: int = 0
    workers_initializing: int = 0
    workers_ready: int = 0
    workers_running: int = 0
    workers_throttled: int = 0
    workers_unhealthy: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    """``GET {runtime}/{id}/status/{job_id}``."""

    id: str
    status: JobStatus
    delay_time_ms: int | None = None
    execution_time_ms: int | None = None
    worker_id: str | None = None
    error: str | None = None
    has_output: bool = False


@dataclass(frozen=True, slots=True)
class BillingRecord:
    """One bucket of ``GET /v2/billing/serverless`` (USD)."""

    start: float
    end: float
    endpoint_id: str | None
    total_usd: float
    gpu_usd: float = 0.0
    cpu_usd: float = 0.0
    disk_usd: float = 0.0
    fee_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class BillingReport:
    records: tuple[BillingRecord, ...]
    total_usd: float
    record_count: int


@dataclass(frozen=True, slots=True)
class PurgeResult:
    removed: int
    status: str


@dataclass(frozen=True, slots=True)
class AccountSpend:
    """GraphQL ``myself { clientBalance currentSpendPerHr spendLimit }`` (the only thing REST v2 lacks)."""

    client_balance_usd: float | None
    current_spend_per_hr_usd: float | None
    spend_limit_usd: float | None
    workers_standby: dict[str, int] = field(default_factory=dict)
    """``endpoints { id workersStandby }``: REST v2 does not expose workersStandby."""


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """REST v2 ``GET /v2/account/limits`` (runpod-api.md §9 "Additions"). Every field is None when RunPod
    did not say.

    UNCERTAIN shape: RunPod's page names two required members, ``spendRate`` and ``serverlessWorkers``, and
    says each is an object without giving its fields; this reads ``{"limit": ..., "current": ...}`` (the
    simulator's reading, tests/contracts/runpod-rest-v2.additions.json) and also a bare number, taken as
    what the page says the member *is*: the spend-rate cap, and the sum of ``workersMax``.
    """

    spend_rate_limit_usd_per_hr: float | None = None
    """The hourly cap RunPod checks only when a Pod or serverless worker *starts* (a start is refused when
    the running ones plus the new one would cost more per hour): it never stops a running worker. None: no
    cap, or not reported."""
    spend_rate_current_usd_per_hr: float | None = None
    """What the running Pods and serverless workers cost per hour now, as RunPod counts it for the cap."""
    serverless_workers_limit: int | None = None
    """The account's serverless worker quota."""
    serverless_workers_current: int | None = None
    """The sum of ``workersMax`` across the account's serverless endpoints."""


class LogStreamEnd(StrEnum):
    """Why :meth:`watchdog.client.RunPodClient.worker_logs` stopped reading the stream."""

    CLOSED = "closed"
    """The server ended the stream: everything it had was read (the simulator ends it once the worker is
    gone; whether RunPod does is UNCERTAIN)."""
    MAX_LINES = "max_lines"
    """``max_lines`` events were read; more may be waiting: read again soon."""
    MAX_SECONDS = "max_seconds"
    """``max_seconds`` passed (or the server was silent for the client's ``timeout_s``): the normal end of
    a read of a live stream, which never ends by itself."""
    MAX_BYTES = "max_bytes"
    """The byte bound of one read (``LOG_STREAM_MAX_BYTES``, or the client's ``max_body_bytes`` if smaller)
    was reached; more may be waiting."""
    DEADLINE = "deadline"
    """The enclosing ``client.deadline()`` came before ``max_seconds``."""
    BROKEN = "broken"
    """The connection failed after the stream had started (``WorkerLogBatch.problem`` says how); the
    events read before that are good."""


@dataclass(frozen=True, slots=True)
class WorkerLogEvent:
    """One event of a worker's log stream (REST v2 ``getWorkerLogs``: SSE ``id`` + ``data: {ts, source,
    line}``)."""

    id: str
    """The SSE event id (``<RFC 3339>/<seq>`` at RunPod and in the simulator); "" when the server gave none.
    Pass the batch's ``last_event_id`` (not this) to resume."""
    ts: float
    """When the worker printed the line, epoch seconds."""
    source: str
    """``"container"`` (the worker's stdout/stderr) or ``"system"`` (the host's lifecycle notes)."""
    line: str
    """The line as printed, cut at 4,000 characters (ending in "…" when cut). The runpod SDK prints its job
    lines as JSON on RunPod: ``{"requestId": "<job id>", "message": "Started.", "level": "INFO"}``."""


@dataclass(frozen=True, slots=True)
class WorkerLogBatch:
    """What one :meth:`watchdog.client.RunPodClient.worker_logs` call read of a worker's log stream."""

    endpoint_id: str
    worker_id: str
    events: tuple[WorkerLogEvent, ...]
    """Oldest first; well-formed events only."""
    last_event_id: str | None
    """Where the next call resumes (its ``last_event_id``): the id of the last event read, bad ones
    included, or the one this call was given when it read none. None: nothing to resume from yet."""
    end: LogStreamEnd
    skipped: int = 0
    """Events dropped as malformed: bad framing, data that is not the ``{ts, source, line}`` JSON object, a
    ``ts`` that is not a date in 2000-2199, an id that cannot be sent back, an event over 256 KiB."""
    bytes_read: int = 0
    """Bytes of the stream read (after decompression)."""
    problem: str | None = None
    """With ``end`` BROKEN: what failed (short; never the API key)."""

    @property
    def cut(self) -> bool:
        """The read stopped before the server ended the stream (a bound, the deadline or a failure): the
        stream may hold more after ``last_event_id``."""
        return self.end is not LogStreamEnd.CLOSED
