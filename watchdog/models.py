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
