"""The simulator's model of a RunPod account: the contract between the engine and its HTTP face.

CONTRACT (the HTTP layer in app.py relies on exactly these names; the engine may add, never rename):

* Every public method first calls ``self.sync()`` so the model is current at ``clock.now()``.
* Unknown endpoint or job → ``SimNotFound``; a value RunPod would refuse → ``SimInvalid(message, field)``.
* Methods are synchronous and fast; the async ``wait_*`` helpers poll the model in *real* time
  (``poll_s`` real seconds between looks, bounded by ``timeout_s`` real seconds) so they work with a
  ``ScaledClock`` (speed X) and with a ``ManualClock`` (tests advance it while a wait is pending).

THIS FILE IS A SKELETON TO BE FILLED IN (see the engine task); signatures are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from watchdog.clock import Clock
from watchdog.prices import DEFAULT_PRICES, PriceTable
from watchdog.simulator.state import (
    BillingBucket,
    HealthCounts,
    JobPolicy,
    SimAccount,
    SimEndpoint,
    SimJob,
    SimWorker,
)


class SimError(Exception):
    pass


class SimNotFound(SimError):
    """The endpoint, job or worker does not exist (or its result expired)."""


class SimInvalid(SimError):
    def __init__(self, message: str, field: str = "") -> None:
        self.field = field
        super().__init__(message)


@dataclass
class SimOptions:
    """Behaviours the sources leave uncertain (runpod-api.md 'Open questions'), as documented switches."""

    bill_initializing: bool = True
    """2025 docs: cold start is billed; 2026 table says Initializing is not. Conservative default: billed."""
    timeout_status: Literal["FAILED", "TIMED_OUT"] = "TIMED_OUT"
    """Final status of a job that exceeds its execution timeout."""
    standby_billing: Literal["active", "flex", "free"] = "active"
    """How ``workersStandby`` warm workers are billed (flash issue #364 leaves it open)."""
    health_omit_zero: bool = False
    """Omit zero-valued keys from /health (the current docs' example shows only idle and running)."""
    saveendpoint_defaults: dict[str, Any] = field(
        default_factory=lambda: {"workers_max": 3, "idle_timeout": 5, "scaler_value": 4, "workers_standby": 1}
    )
    """GraphQL saveEndpoint resets these fields to these values when an update omits them."""
    run_result_retention_s: float = 30 * 60
    runsync_result_retention_s: float = 60
    missed_pings_to_lose_worker: int = 0
    """0 = disabled; N = an external worker silent for N × ping interval is lost and its job TIMED_OUT."""
    ping_interval_s: float = 10.0
    """Heartbeat interval of simulated workers (recorded in the access log as pings)."""
    billing_delay_s: float = 0.0
    """Billing records only include usage older than this (RunPod's billing lags)."""
    disk_gb: int = 0
    """Container disk per worker, billed in 5-minute blocks at $0.000011574/GB (0 = ignore)."""
    extra_worker_ids: bool = False


class Simulator:
    """A RunPod account. Construct with a clock and a price table; add endpoints; optionally a scenario."""

    def __init__(
        self,
        *,
        clock: Clock,
        prices: PriceTable = DEFAULT_PRICES,
        options: SimOptions | None = None,
        seed: int = 0,
        access_log_path: str | None = None,
    ) -> None:
        raise NotImplementedError

    # ----- time -----
    def sync(self) -> None:
        """Advance the model to ``clock.now()``, processing due events in time order."""
        raise NotImplementedError

    # ----- account / control plane -----
    @property
    def account(self) -> SimAccount:
        raise NotImplementedError

    def current_spend_per_hr(self) -> float:
        """USD/h of the workers alive now (GraphQL ``currentSpendPerHr``)."""
        raise NotImplementedError

    def add_endpoint(self, endpoint: SimEndpoint) -> SimEndpoint:
        raise NotImplementedError

    def endpoints(self) -> list[SimEndpoint]:
        raise NotImplementedError

    def endpoint(self, endpoint_id: str) -> SimEndpoint:
        raise NotImplementedError

    def update_endpoint(self, endpoint_id: str, changes: dict[str, Any]) -> SimEndpoint:
        """Sparse update (REST v2 PATCH): only the given SimEndpoint fields change. Validates ranges
        (workers_min/max >= 0, min <= max, 1 <= idle_timeout <= 3600, timeout >= 0). Takes effect at once
        (autoscaler re-evaluated: workers_max 0 stops every worker)."""
        raise NotImplementedError

    def save_endpoint(self, fields: dict[str, Any]) -> SimEndpoint:
        """GraphQL saveEndpoint: create (no id) or full-replace update (id): omitted fields listed in
        ``options.saveendpoint_defaults`` are reset to those defaults."""
        raise NotImplementedError

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Refuses (SimInvalid) unless workers_min == workers_max == 0."""
        raise NotImplementedError

    def workers(self, endpoint_id: str) -> list[SimWorker]:
        """Live workers only (scaled-down ones are gone)."""
        raise NotImplementedError

    def billing(
        self, *, start: float, end: float, bucket_s: int, endpoint_id: str | None = None
    ) -> list[BillingBucket]:
        """Buckets [start, end) of ``bucket_s`` seconds (already snapped by the caller), one per endpoint
        with usage. The sum over all buckets equals the sum over sessions of ceil(seconds) × price."""
        raise NotImplementedError

    def billed_usd_total(self, endpoint_id: str | None = None) -> float:
        """Ground truth: sum over sessions (closed and open) of billed seconds × price."""
        raise NotImplementedError

    # ----- job runtime -----
    def submit(
        self,
        endpoint_id: str,
        job_input: Any,
        *,
        policy: JobPolicy | None = None,
        sync: bool = False,
        source: str | None = None,
        tier: str | None = None,
    ) -> SimJob:
        raise NotImplementedError

    def job(self, endpoint_id: str, job_id: str) -> SimJob:
        """SimNotFound when unknown, TTL-expired or past result retention."""
        raise NotImplementedError

    def drain_stream(self, endpoint_id: str, job_id: str) -> tuple[SimJob, list[Any]]:
        raise NotImplementedError

    def cancel(self, endpoint_id: str, job_id: str) -> SimJob:
        """Queued: removed. In progress: CANCELLED and a stop signal queued for its worker."""
        raise NotImplementedError

    def retry(self, endpoint_id: str, job_id: str) -> SimJob:
        """Only FAILED or TIMED_OUT (else SimInvalid); same id back to IN_QUEUE; retried counter +1."""
        raise NotImplementedError

    def purge_queue(self, endpoint_id: str) -> int:
        raise NotImplementedError

    def health(self, endpoint_id: str) -> HealthCounts:
        raise NotImplementedError

    async def wait_for_job(self, endpoint_id: str, job_id: str, timeout_s: float, poll_s: float = 0.02) -> SimJob:
        """Until the job is terminal or ``timeout_s`` real seconds pass; returns the job as it stands."""
        raise NotImplementedError

    # ----- worker side (external workers: the real runpod SDK) -----
    def take_job(self, endpoint_id: str, worker_id: str, *, gpu: str | None = None) -> SimJob | None:
        """Registers the worker on first contact (external kind), hands it the oldest queued job if the
        autoscaler allows a worker to run, else None."""
        raise NotImplementedError

    async def wait_take_job(
        self, endpoint_id: str, worker_id: str, timeout_s: float, *, gpu: str | None = None, poll_s: float = 0.05
    ) -> SimJob | None:
        raise NotImplementedError

    def job_done(self, endpoint_id: str, worker_id: str, job_id: str, body: Any, *, is_stream: bool) -> None:
        """``{"output": ...}`` → COMPLETED; ``{"error": ...}`` or an error-report JSON string → FAILED;
        ``{"status": "IN_PROGRESS", ...}`` is a progress update. A job already CANCELLED stays so."""
        raise NotImplementedError

    def job_stream(self, endpoint_id: str, worker_id: str, job_id: str, body: Any) -> None:
        raise NotImplementedError

    def ping(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        job_ids: list[str],
        runpod_version: str | None = None,
        status: str | None = None,
        reason: str | None = None,
    ) -> None:
        """A heartbeat. ``status="unhealthy"`` marks the worker UNHEALTHY."""
        raise NotImplementedError

    def stop_signals(self, endpoint_id: str, worker_id: str) -> list[str]:
        """Job ids the worker must stop (drains them)."""
        raise NotImplementedError

    async def wait_stop_signals(
        self, endpoint_id: str, worker_id: str, timeout_s: float, poll_s: float = 0.05
    ) -> list[str]:
        raise NotImplementedError

    def worker_stopped(self, worker_id: str) -> bool:
        """True once the platform has stopped the worker (billing closed): the SDK process should exit."""
        raise NotImplementedError

    # ----- access log ("our logs" for the ping watch) -----
    def log_access(self, **record: Any) -> None:
        """Append one JSON line: ts (RFC 3339), kind ("request" | "ping" | "worker"), endpoint_id, route,
        method, status, source, worker_id, job_id, tier, duration_ms. Also used by the HTTP layer."""
        raise NotImplementedError
