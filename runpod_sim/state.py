"""The simulator's mutable state records. Internal to the simulator: the HTTP layer serialises these into
each API's wire shape (serialize.py); the daemon never sees them.

Field names follow RunPod's GraphQL ``Endpoint`` (runpod-api.md §2.1) so ``saveEndpoint`` maps 1:1.
Times are epoch seconds of the simulator's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

WorkerState = Literal["INITIALIZING", "IDLE", "RUNNING", "THROTTLED", "UNHEALTHY"]
JobState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]
WorkerKind = Literal["simulated", "external"]


@dataclass
class SimEndpoint:
    id: str
    name: str
    template_id: str = "tpl-sim"
    gpu_ids: str = "AMPERE_48"
    """Comma-separated pool ids (GraphQL ``gpuIds``); REST v2 shows them as ``gpu.pools``."""
    gpu_count: int = 1
    workers_min: int = 0
    workers_max: int = 3
    workers_standby: int = 0
    idle_timeout: int = 5
    """Seconds a warm worker lingers (billed) after its last job."""
    execution_timeout_ms: int | None = 600_000
    """``None`` or 0: jobs are never timed out (the incident's condition)."""
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: float = 4
    flashboot: str = "OFF"
    type: str = "QUEUE"
    locations: str = ""
    network_volume_id: str = ""
    user_id: str = "user-sim"
    version: int = 1
    env: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    # --- model parameters (not visible through the APIs) ---
    worker_kind: WorkerKind = "simulated"
    """``simulated``: the engine runs jobs itself; ``external``: real processes (the runpod SDK) take jobs."""
    gpu_type_ids: tuple[str, ...] = ("NVIDIA RTX A6000",)
    """GPU types workers get, in priority order (price is per worker's actual type)."""
    cold_start_s: float = 12.0
    capacity: int | None = None
    """Workers the platform can place at once; more are THROTTLED (unbilled). None = unlimited."""
    crash_loop: bool = False
    """Workers fail their health checks after initializing: UNHEALTHY, jobs stay queued, retries climb."""
    default_duration_s: float = 8.5
    """Service time of a simulated job whose input carries no ``sim.duration_s``."""


@dataclass
class BilledSession:
    """One worker's life, start (signalled to wake) to stop. Billed seconds = ceil(stop - start)."""

    worker_id: str
    endpoint_id: str
    gpu_type_id: str
    active: bool
    """Kept alive by workersMin (billed at the active rate)."""
    started_at: float
    stopped_at: float | None = None
    initializing_s: float = 0.0
    busy_s: float = 0.0
    idle_s: float = 0.0
    unbilled: bool = False
    """A warm standby worker under ``standby_billing="free"``: tracked, priced at zero."""


@dataclass
class SimWorker:
    id: str
    endpoint_id: str
    state: WorkerState
    gpu_type_id: str | None
    version: int
    started_at: float
    state_since: float
    active: bool = False
    job_ids: list[str] = field(default_factory=list)
    """Jobs it runs now, in the order it took them. A simulated worker runs one at a time; a real SDK worker
    whose ``concurrency_modifier`` allows more takes several (``job-take`` with ``job_in_progress=1``,
    ``job-take-batch``), runpod-api.md §5.4."""
    last_ping_at: float | None = None
    runpod_version: str | None = None
    external: bool = False
    session: BilledSession | None = None
    role: Literal["flex", "active", "standby"] = "flex"
    """Why it exists: ``active`` (workersMin) and ``standby`` stay warm; ``flex`` scales down when idle."""
    generation: int = 0
    """Bumped on every state change, so a scheduled event can tell it went stale."""
    incarnation: int = 0
    """Bumped on every (re)start; a heartbeat chain belongs to one incarnation."""
    accounted_at: float = 0.0
    """Up to when this worker's time has been credited to its session's breakdown."""
    run_credited_s: float = 0.0
    """Busy seconds already credited for the current job (lets a finished job credit its exact duration)."""

    @property
    def current_job_id(self) -> str | None:
        """The first job it runs now (None when it runs none); ``job_ids`` has them all."""
        return self.job_ids[0] if self.job_ids else None


@dataclass
class JobPolicy:
    execution_timeout_ms: int | None = None
    """Overrides the endpoint's for this job only (min 5000)."""
    ttl_ms: int = 86_400_000
    low_priority: bool = False


@dataclass
class SimJob:
    id: str
    endpoint_id: str
    input: Any
    status: JobState
    submitted_at: float
    policy: JobPolicy = field(default_factory=JobPolicy)
    sync: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    output: Any = None
    error: str | None = None
    stream: list[Any] = field(default_factory=list)
    """Chunks not yet drained by /stream."""
    retries: int = 0
    tier: str | None = None
    source: str | None = None
    """Who sent it (client address or scenario actor); recorded in the access log."""
    queued_at: float | None = None
    """When it last entered the queue (submission, or a retry): QUEUE_DELAY scaling counts from here."""
    webhook: str | None = None
    """``webhook`` of /run: a loopback URL POSTed the /status body when the job ends (see webhooks.py)."""

    @property
    def delay_time_ms(self) -> int | None:
        if self.started_at is None:
            return None
        return int((self.started_at - self.submitted_at) * 1000)

    @property
    def execution_time_ms(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else None
        return None if end is None else int((end - self.started_at) * 1000)


@dataclass
class HealthCounts:
    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0
    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0


@dataclass
class BillingBucket:
    start: float
    end: float
    endpoint_id: str
    gpu_usd: float
    billed_s: float
    disk_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        return self.gpu_usd + self.disk_usd


@dataclass
class SimAccount:
    client_balance_usd: float = 50.0
    spend_limit_usd: float = 80.0
    """GraphQL ``myself.spendLimit`` as the simulator shows it (informational; the cap the simulator
    enforces is REST v2's ``spendRate``, ``SimOptions.spend_rate_usd_per_hr``)."""


@dataclass(frozen=True)
class AccountLimits:
    """REST v2 ``GET /v2/account/limits`` (runpod-api.md "Additions (2026-11-30)")."""

    spend_rate_usd_per_hr: float | None
    """The hourly cap checked when a worker starts; None = no cap."""
    current_spend_per_hr: float
    """What the running workers cost per hour now (the figure a new worker's cost is added to)."""
    serverless_workers_limit: int
    """The account's worker quota (RunPod's "max workers by account balance"; reported, not enforced)."""
    serverless_workers_max_total: int
    """Sum of workersMax across the account's serverless endpoints."""


class WorkerLogLine(NamedTuple):
    """One line of a worker's log (REST v2 worker log stream). ``seq`` orders lines account-wide.
    (A tuple: a steady month writes some 15,000 of them.)"""

    seq: int
    ts: float
    source: Literal["container", "system"]
    message: str
    job_id: str | None = None
    level: str = "INFO"
