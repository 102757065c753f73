"""Stage 1, fetch: what the logs and RunPod say now.

:func:`read_logs` reads each configured log source once per tick, at most its read budget (1 MiB by
default): a backlog is worked off over several ticks, in bounded memory. :func:`read_runpod` reads, in
order: the endpoints (+ GraphQL ``workersStandby``), each watched endpoint's workers and ``/health``, the
log stream of each RUNNING worker on which no confirmed job is known (the SDK's "Started." lines name the
job and its start: no log file is needed to cancel a hung job by id), the status of the jobs the daemon
knows to be open and of the jobs those logs just named (at most ``MAX_JOB_POLLS_PER_TICK``), and, when
due, the month's hourly billing.

Any failed read makes the reading *blind* (``error`` set), except those that only add to what the tick
already knows: a worker's log stream, GraphQL ``workersStandby`` and the billing (which lags by hours
anyway; on failure the month to date keeps the live estimate and the billed hours already in the ledger,
and billing is retried after ``billing_interval_s``). One job whose status cannot be read is left out,
never the whole reading.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from watchdog.client import DeadlineScope, InvalidIdentifier
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
from watchdog.models import (
    AccountLimits,
    AccountSpend,
    BillingReport,
    EndpointConfig,
    EndpointWorkers,
    Health,
    Job,
    Worker,
    WorkerLogBatch,
)
from watchdog.sdk_lines import JobMark, parse_job_line
from watchdog.vocabulary import WorkerStatus

log = logging.getLogger(__name__)

MAX_JOB_POLLS_PER_TICK = 20
"""Job status calls per tick, oldest jobs first (the runtime allows thousands per 10 s; we need few)."""

MAX_WORKER_LOG_READS_PER_TICK = 10
"""Worker log streams read per tick (REST v2 quota): only RUNNING workers with no confirmed job need one."""
WORKER_LOG_TAIL = 200
"""Lines of backlog asked for the first time a worker's log is read (later reads resume after the last)."""
WORKER_LOG_READ_S = 1.0
"""How long one read of a live log stream lasts: the stream never ends by itself; the next tick resumes."""
MIN_READ_BUDGET_S = 10.0
"""The shortest time a tick may spend reading RunPod, whatever the poll interval (the demo's is short)."""


class RunPodReads(Protocol):
    """What the fetch stage needs of :class:`watchdog.client.RunPodClient`."""

    async def list_endpoints(self) -> list[EndpointConfig]: ...
    async def account_spend(self) -> AccountSpend: ...
    async def account_limits(self) -> AccountLimits: ...
    async def list_workers(self, endpoint_id: str) -> EndpointWorkers: ...
    async def health(self, endpoint_id: str) -> Health: ...
    async def job_status(self, endpoint_id: str, job_id: str) -> Job: ...
    async def serverless_billing(
        self, *, start: float, end: float | None = None, bucket_size: str = "hour"
    ) -> BillingReport: ...
    def deadline(
        self, seconds: float | None = None, *, at: float | None = None
    ) -> contextlib.AbstractContextManager[DeadlineScope]: ...
    async def worker_logs(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        last_event_id: str | None = None,
        tail: int | None = None,
        source: str | None = "container",
        max_lines: int = 2000,
        max_seconds: float = 2.0,
    ) -> WorkerLogBatch: ...


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
    known_busy_workers: frozenset[str] = frozenset()
    """Workers running a job RunPod confirmed: their log stream has nothing the daemon needs."""
    log_cursors: Mapping[str, str] = field(default_factory=dict)
    """Worker → the id of the last log event read (the next read resumes after it)."""
    limits_due: bool = False
    """Read the account's limits (REST v2 ``/account/limits``: the spend-rate cap) this tick."""


@dataclass(frozen=True, slots=True)
class JobStart:
    """A worker's log said a job started (the SDK's "Started." line), at the stream's timestamp."""

    endpoint_id: str
    job_id: str
    worker_id: str
    at: float


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
    account: AccountSpend | None = None
    """GraphQL ``myself``: balance, spend per hour, standby workers. Optional: GraphQL retires in 2027."""
    account_problem: str | None = None
    """Why ``account`` could not be read (the balance is then unknown; nothing else depends on it)."""
    limits: AccountLimits | None = None
    limits_failed: bool = False
    job_starts: list[JobStart] = field(default_factory=list)
    log_cursors: dict[str, str | None] = field(default_factory=dict)
    """Worker → where its log stream was read up to (None: the worker is gone, forget its cursor)."""
    worker_log_failures: int = 0
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
            reading.account = await client.account_spend()
            standby = reading.account.workers_standby
        except RunPodAuthError:
            raise
        except RunPodError as exc:  # GraphQL adds the balance and workersStandby only: degrade, never blind
            reading.account_problem = f"{exc.title}: {exc}"[:300]
        if plan.limits_due:
            try:
                reading.limits = await client.account_limits()
            except RunPodAuthError:
                raise
            except (
                RunPodError
            ) as exc:  # a cap RunPod checks at worker start: worth showing, not worth blinding
                reading.limits_failed = True
                log.warning(
                    "account limits could not be read (the spend-rate cap stays as last read): %s", exc
                )
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
        await _read_worker_logs(client, reading, plan)
        known = {e.id for e in reading.endpoints}
        named = [(start.endpoint_id, start.job_id) for start in reading.job_starts]
        polls = [
            (endpoint_id, job_id)
            for endpoint_id, job_id in dict.fromkeys([*named, *plan.jobs])
            if endpoint_id in known
        ]
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


async def _read_worker_logs(client: RunPodReads, reading: Reading, plan: ReadPlan) -> None:
    """Read the log stream of each RUNNING worker with no confirmed job (at most
    ``MAX_WORKER_LOG_READS_PER_TICK``, the longest-running first) and note the jobs the SDK said started.
    A stream that cannot be read is skipped: the job's heartbeat, status or worker still tell its start,
    later."""
    candidates = sorted(
        (
            (worker.started_at or 0.0, endpoint_id, worker)
            for endpoint_id, workers in reading.workers.items()
            for worker in workers
            if worker.status == WorkerStatus.RUNNING and worker.id not in plan.known_busy_workers
        ),
        key=lambda item: (item[0], item[2].id),
    )[:MAX_WORKER_LOG_READS_PER_TICK]

    async def one(endpoint_id: str, worker: Worker) -> None:
        cursor = plan.log_cursors.get(worker.id)
        try:
            batch = await client.worker_logs(
                endpoint_id,
                worker.id,
                last_event_id=cursor,
                tail=None if cursor else WORKER_LOG_TAIL,
                max_seconds=WORKER_LOG_READ_S,
            )
        except (RunPodNotFound, InvalidIdentifier):  # the worker is gone, or its stored cursor is unusable
            reading.log_cursors[worker.id] = None
            return
        except RunPodAuthError:
            raise
        except RunPodError as exc:
            reading.worker_log_failures += 1
            log.warning("worker %s: its log stream could not be read: %s", worker.id, exc)
            return
        if batch.last_event_id:
            reading.log_cursors[worker.id] = batch.last_event_id
        for event in batch.events:
            job_line = parse_job_line(event.line)
            if job_line is not None and job_line.mark == JobMark.STARTED:
                reading.job_starts.append(JobStart(endpoint_id, job_line.job_id, worker.id, event.ts))

    await asyncio.gather(*(one(endpoint_id, worker) for _, endpoint_id, worker in candidates))
