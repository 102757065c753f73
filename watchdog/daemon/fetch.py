"""Stage 1, fetch: what the logs and RunPod say now.

:func:`read_logs` reads each configured log source once per tick, at most its read budget (1 MiB by
default): a backlog is worked off over several ticks, in bounded memory. :func:`read_runpod` reads, in
order: the endpoints (+ GraphQL ``workersStandby``), each watched endpoint's workers and ``/health``, the
status of the jobs the daemon knows to be open (oldest first, at most ``MAX_JOB_POLLS_PER_TICK``), and,
when due, the month's hourly billing.

Any failed read makes the reading *blind* (``error`` set), except the two that only add to what the tick
already knows: GraphQL ``workersStandby`` and the billing (which lags by hours anyway; on failure the
month to date keeps the live estimate and the billed hours already in the ledger, and billing is retried
after ``billing_interval_s``). One job whose status cannot be read is left out, never the whole reading.

:func:`read_runpod_bounded` is how a tick reads: within :func:`read_budget_s` (a 429 storm or a hung
RunPod ends in a blind tick, never in a tick that outlives its interval, whatever ``max_retries`` says),
noting whether RunPod's quota made it wait (such a tick is never recorded as ok), and abandoned at once
when the daemon is told to stop (:class:`ReadInterrupted`: nothing of the tick is recorded, so its log
lines are read again at the next start).

This stage only reads: it returns what it saw and changes no state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from watchdog.client import DeadlineScope
from watchdog.clock import month_start
from watchdog.config import Config
from watchdog.errors import (
    RunPodAuthError,
    RunPodError,
    RunPodNotFound,
    RunPodProtocolError,
    RunPodRejected,
)
from watchdog.logwatch import LogEvent, LogTailer
from watchdog.models import AccountSpend, BillingReport, EndpointConfig, EndpointWorkers, Health, Job, Worker

log = logging.getLogger(__name__)

MAX_JOB_POLLS_PER_TICK = 20
"""Job status calls per tick, oldest jobs first (the runtime allows thousands per 10 s; we need few)."""

MIN_READ_BUDGET_S = 10.0
"""The shortest time a tick may spend reading RunPod, whatever the poll interval (the demo's is short)."""


class RunPodReads(Protocol):
    """What the fetch stage needs of :class:`watchdog.client.RunPodClient`."""

    async def list_endpoints(self) -> list[EndpointConfig]: ...
    async def account_spend(self) -> AccountSpend: ...
    async def list_workers(self, endpoint_id: str) -> EndpointWorkers: ...
    async def health(self, endpoint_id: str) -> Health: ...
    async def job_status(self, endpoint_id: str, job_id: str) -> Job: ...
    async def serverless_billing(
        self, *, start: float, end: float | None = None, bucket_size: str = "hour"
    ) -> BillingReport: ...
    def deadline(
        self, seconds: float | None = None, *, at: float | None = None
    ) -> contextlib.AbstractContextManager[DeadlineScope]: ...


class ReadInterrupted(Exception):
    """The daemon was told to stop while a tick was reading RunPod: the read was abandoned."""


@dataclass(frozen=True, slots=True)
class LogBatch:
    events: tuple[LogEvent, ...] = ()
    problems: tuple[str, ...] = ()
    """Malformed lines and unreadable files, each ``"source: problem"`` (already length-bounded)."""
    malformed: int = 0
    """Lines skipped as malformed (each source describes only a few per read; all are counted)."""


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What to read beyond the endpoints, workers and health."""

    jobs: tuple[tuple[str, str], ...] = ()
    """(endpoint, job) whose status to poll: open jobs and cancelled jobs under watch, oldest first."""
    billing_due: bool = False


@dataclass
class Reading:
    """What one tick read from RunPod."""

    endpoints: tuple[EndpointConfig, ...] = ()
    workers: dict[str, tuple[Worker, ...]] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    jobs: dict[str, tuple[str, Job]] = field(default_factory=dict)
    """Job id → (endpoint id, its status)."""
    gone_jobs: set[str] = field(default_factory=set)
    """Jobs RunPod answered 404 for: expired, so certainly not running."""
    bad_jobs: dict[str, str] = field(default_factory=dict)
    """Job id → why its status could not be read (not an id, a refused or unreadable answer): that one
    record is skipped and forgotten; it never makes the reading blind."""
    billing: BillingReport | None = None
    billing_failed: bool = False
    error: str | None = None
    """Why the reading is incomplete (the tick is then blind)."""
    auth_rejected: bool = False
    """The error is RunPod rejecting the API key."""
    quota_wait: str | None = None
    """How RunPod's quota held the reading up (it waited for, or gave up because of, a 429 or a used-up
    rate-limit window), or None. A reading held up is complete when ``error`` is None, but the tick that
    made it is not recorded as ok."""

    @property
    def ok(self) -> bool:
        return self.error is None


def read_budget_s(config: Config) -> float:
    """How long one tick may spend reading RunPod: one poll interval (at least ``MIN_READ_BUDGET_S``), so
    ticks never pile up behind a slow RunPod."""
    return max(MIN_READ_BUDGET_S, config.runpod.poll_interval_s)


def read_logs(tailers: Sequence[LogTailer], now: float | None = None) -> LogBatch:
    """What each source appended since the last tick, up to each tailer's read budget (a backlog is worked
    off over several ticks; a source that fails is reported and skipped, never the others)."""
    events: list[LogEvent] = []
    problems: list[str] = []
    malformed = 0
    for tailer in tailers:
        try:
            result = tailer.read_new(now)
        except Exception as exc:  # a tailer bug or an I/O surprise must not cost the other sources
            problems.append(f"log source {tailer.spec.name}: read failed: {type(exc).__name__}: {exc}"[:300])
            continue
        events.extend(result.events)
        malformed += result.malformed_lines
        problems.extend(f"log source {tailer.spec.name}: {problem}" for problem in result.errors)
    return LogBatch(tuple(events), tuple(problems), malformed)


async def read_runpod_bounded(
    client: RunPodReads, config: Config, plan: ReadPlan, now: float, stopping: asyncio.Event
) -> Reading:
    """:func:`read_runpod` within :func:`read_budget_s`, noting quota waits.

    Raises:
        ReadInterrupted: ``stopping`` was set before the read finished (the read is cancelled at once,
            even in the middle of a ``Retry-After`` wait).
    """
    with client.deadline(read_budget_s(config)) as scope:
        reading_task = asyncio.ensure_future(read_runpod(client, config, plan, now))
        stopped = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({reading_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not reading_task.done():
                reading_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading_task
        if reading_task.cancelled():
            raise ReadInterrupted("the daemon is stopping")
        reading = reading_task.result()
    if scope.quota_starved:
        routes = ", ".join(sorted(set(scope.starved_routes))[:5]) or "unknown routes"
        reading.quota_wait = f"RunPod's rate limit held the read up {scope.quota_wait_s:.0f} s ({routes})"
    return reading


async def read_runpod(client: RunPodReads, config: Config, plan: ReadPlan, now: float) -> Reading:
    """One complete reading, or one that says why it is not (``error``). Unbounded in time by itself:
    ticks use :func:`read_runpod_bounded`."""
    reading = Reading()
    try:
        listed = await client.list_endpoints()
        standby: dict[str, int] = {}
        try:
            standby = (await client.account_spend()).workers_standby
        except RunPodAuthError:
            raise
        except RunPodError as exc:  # GraphQL adds only workersStandby: degrade, do not go blind
            log.warning("GraphQL account read failed (workersStandby unknown): %s", exc)
        watched = [
            endpoint
            if endpoint.id not in standby
            else replace(endpoint, workers_standby=standby[endpoint.id])
            for endpoint in listed
            if config.policy_for(endpoint.id, endpoint.name).watched
        ]
        reading.endpoints = tuple(sorted(watched, key=lambda e: e.id))

        async def one(endpoint_id: str) -> None:
            workers, health = await asyncio.gather(
                client.list_workers(endpoint_id), client.health(endpoint_id)
            )
            reading.workers[endpoint_id] = workers.workers
            reading.health[endpoint_id] = health

        await asyncio.gather(*(one(e.id) for e in reading.endpoints))
        known = {e.id for e in reading.endpoints}
        polls = [(endpoint_id, job_id) for endpoint_id, job_id in plan.jobs if endpoint_id in known]
        for endpoint_id, job_id in polls[:MAX_JOB_POLLS_PER_TICK]:
            try:
                reading.jobs[job_id] = (endpoint_id, await client.job_status(endpoint_id, job_id))
            except RunPodNotFound:
                reading.gone_jobs.add(job_id)
            except (ValueError, RunPodRejected, RunPodProtocolError) as exc:
                reading.bad_jobs[job_id] = f"{type(exc).__name__}: {exc}"[:200]
        if plan.billing_due:
            try:
                reading.billing = await client.serverless_billing(start=month_start(now), bucket_size="hour")
            except RunPodAuthError:
                raise
            except RunPodError as exc:  # billing lags by hours anyway: degrade, do not go blind
                reading.billing_failed = True
                log.warning(
                    "billing read failed (month to date uses the live estimate and the billed hours already "
                    "in the ledger; retried in %.0f s): %s",
                    config.runpod.billing_interval_s,
                    exc,
                )
    except RunPodAuthError as exc:
        reading.error, reading.auth_rejected = f"{exc.title}: {exc}", True
    except RunPodError as exc:
        reading.error = f"{exc.title}: {exc}"
    return reading
