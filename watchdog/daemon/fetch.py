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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from watchdog.client import DeadlineScope, InvalidIdentifier, QuotaWindow
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
DEFAULT_REST_QUOTA = (60, 60.0)
"""REST v2 calls per window (s) assumed until RunPod's ``RateLimit-Policy`` header says (OAS2's example)."""
QUOTA_SAFETY = 0.8
"""The share of the REST quota the planned reads may use: actions, deadline checks and other tools sharing
the key need the rest."""
RESERVED_REST_CALLS = 3
"""Calls kept in the current window for actions and deadline checks between ticks."""
MIN_READ_BUDGET_S = 10.0
"""The shortest time a tick may spend reading RunPod, whatever the poll interval (the demo's is short)."""
IDLE_HEALTH_READS_PER_TICK = 100
"""Idle endpoints (their last ``/health`` counted no worker and no job) whose ``/health`` is read every
tick. Beyond that many, idle endpoints are read in rotation, the longest unread first, just fast enough
that none is left older than ``stale_after_s``: each HTTP call costs about 1.5 ms of CPU, and 1,000
endpoints read every 5 s took 1.9 s of CPU a tick. An endpoint that is not idle is read every tick."""


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
    def quota(self) -> dict[str, QuotaWindow]: ...
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
    """Worker → the id of the last log event read (the next read resumes after it; "": read, no event
    yet). A RUNNING worker not in it has never been read."""
    limits_due: bool = False
    """Read the account's limits (REST v2 ``/account/limits``: the spend-rate cap) this tick."""
    rest_budget: int | None = None
    """REST v2 calls this tick may spend on reads that can wait (None: no limit). Reads that cannot wait
    (data about to outlive ``stale_after_s``, a due deadline, a worker count that changed) are made anyway."""
    stale_after_s: float = float("inf")
    """The policies' stale-data bound: no endpoint's data is left older than this."""
    poll_interval_s: float = 0.0
    known_endpoints: tuple[EndpointConfig, ...] = ()
    """The watched endpoints as last listed (used when listing them again can wait)."""
    endpoints_listed_at: float | None = None
    last_workers: Mapping[str, tuple[Worker, ...]] = field(default_factory=dict)
    """Endpoint → its workers as last read."""
    workers_read_at: Mapping[str, float] = field(default_factory=dict)
    urgent_endpoints: frozenset[str] = frozenset()
    """Endpoints with a runaway deadline or an action to verify soon: read first, and always."""
    last_health: Mapping[str, Health] = field(default_factory=dict)
    """Endpoint → its ``/health`` as last read."""
    health_read_at: Mapping[str, float] = field(default_factory=dict)


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
    log_cursors: dict[str, str] = field(default_factory=dict)
    """Worker → where its log stream was read up to ("": read, no event yet or no stream)."""
    worker_log_failures: int = 0
    rest_calls: int = 0
    """REST v2 calls this reading made (the quota the tick spent)."""
    listed: bool = False
    """The endpoints were listed this tick (else ``endpoints`` are the plan's ``known_endpoints``)."""
    workers_read: set[str] = field(default_factory=set)
    """Endpoints whose workers were read this tick; the others' are the last read (``deferred``) or known
    to be none (``/health`` counts no worker)."""
    deferred: dict[str, float] = field(default_factory=dict)
    """Endpoint → age of the workers it carries: /health showed the same worker counts as last read, and
    reading them again could wait for the quota."""
    health_carried: dict[str, float] = field(default_factory=dict)
    """Endpoint → age of the ``/health`` it carries: idle at its last read, and its turn in the rotation
    of idle endpoints (:func:`health_reads`) has not come."""
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

    def data_age(self, endpoint_id: str) -> float:
        """How old what this reading says of the endpoint is: 0 when read this tick, else the age of the
        older of its carried ``/health`` and workers."""
        return max(self.health_carried.get(endpoint_id, 0.0), self.deferred.get(endpoint_id, 0.0))


def rest_quota(windows: Mapping[str, QuotaWindow]) -> QuotaWindow | None:
    """The most restrictive REST v2 window RunPod reported (the fewest calls per second), if any."""
    rest = [w for w in windows.values() if w.api == "rest"]
    rest.sort(key=lambda w: (w.limit / w.window_s) if w.limit and w.window_s else float("inf"))
    return rest[0] if rest else None


def rest_rate(quota: QuotaWindow | None) -> float:
    """RunPod's REST v2 quota in calls a second: what its ``RateLimit-Policy`` says, else
    ``DEFAULT_REST_QUOTA``."""
    limit, window_s = (
        (quota.limit, quota.window_s)
        if quota is not None and quota.limit and quota.window_s
        else DEFAULT_REST_QUOTA
    )
    return limit / window_s


def refill_rest_tokens(
    tokens: float | None,
    refilled_at: float | None,
    now: float,
    quota: QuotaWindow | None,
    poll_interval_s: float,
) -> float:
    """The REST calls the planner may spend now: a token bucket filled at ``QUOTA_SAFETY`` of RunPod's
    rate (:func:`rest_rate`), holding three ticks' worth."""
    rate = rest_rate(quota) * QUOTA_SAFETY
    cap = max(3.0, rate * poll_interval_s * 3)
    if tokens is None or refilled_at is None:
        return cap
    return min(cap, tokens + rate * max(0.0, now - refilled_at))


def rest_budget(tokens: float, quota: QuotaWindow | None) -> int:
    """Calls this tick may spend on reads that can wait: the tokens, and never more than the current
    window has left beyond ``RESERVED_REST_CALLS``."""
    budget = int(tokens)
    if quota is not None and quota.reset_in_s > 0:
        budget = min(budget, quota.remaining - RESERVED_REST_CALLS)
    return max(0, budget)


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
    ticks use :func:`read_runpod_bounded`.

    Reads are scheduled within RunPod's REST quota (``plan.rest_budget``): ``/health`` (the job runtime's
    own, far larger quota) is read for every watched endpoint that is not idle, and for idle ones in
    turns beyond ``IDLE_HEALTH_READS_PER_TICK`` (:func:`health_reads`); an endpoint's workers (REST v2) only
    when ``/health`` counts any: an endpoint with none needs no call, and one whose counts are what the
    last read showed can wait, up to the stale-data bound. Listing the endpoints, worker logs, billing and
    account limits take what the budget leaves, in that order."""
    reading = Reading()
    budget = _Budget(plan.rest_budget)
    try:
        listing_due = (
            plan.endpoints_listed_at is None
            or not plan.known_endpoints
            or now - plan.endpoints_listed_at + plan.poll_interval_s > plan.stale_after_s
        )
        if listing_due or budget.take():
            listed = await client.list_endpoints()
            reading.rest_calls += 1
            reading.listed = True
        else:
            listed = list(plan.known_endpoints)
        standby: dict[str, int] = {}
        try:
            reading.account = await client.account_spend()
            standby = reading.account.workers_standby
        except RunPodAuthError:
            raise
        except RunPodError as exc:  # GraphQL adds the balance and workersStandby only: degrade, never blind
            reading.account_problem = f"{exc.title}: {exc}"[:300]
        watched = [
            endpoint
            if endpoint.id not in standby
            else replace(endpoint, workers_standby=standby[endpoint.id])
            for endpoint in listed
            if config.policy_for(endpoint.id, endpoint.name).watched
        ]
        reading.endpoints = tuple(sorted(watched, key=lambda e: e.id))
        await _read_health_and_workers(client, reading, plan, budget, now)
        await _read_worker_logs(client, reading, plan, budget)
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
        if plan.billing_due and budget.take():
            reading.rest_calls += 1
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
        if plan.limits_due and budget.take():
            reading.rest_calls += 1
            try:
                reading.limits = await client.account_limits()
            except RunPodAuthError:
                raise
            except RunPodError as exc:  # a cap checked at worker start: worth showing, never blinding
                reading.limits_failed = True
                log.warning("account limits unread (the spend-rate cap stays as last read): %s", exc)
    except RunPodAuthError as exc:
        reading.error, reading.auth_rejected = f"{exc.title}: {exc}", True
    except RunPodError as exc:
        reading.error = f"{exc.title}: {exc}"
    return reading


class _Budget:
    """REST v2 calls left for reads that can wait (None: no limit)."""

    def __init__(self, calls: int | None) -> None:
        self.left = calls

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


HEALTH_CONCURRENCY = 16
"""Concurrent ``/health`` and worker-list calls: well under the connection pool, so 1,000 endpoints never
start 2,000 requests at once (httpcore rescans its queue on every request event)."""


def worker_counts(workers: Sequence[Worker]) -> tuple[int, int, int, int, int]:
    """(running, idle, initializing, throttled, unhealthy), as ``/health`` counts them."""
    statuses = [w.status for w in workers]
    return (
        statuses.count(WorkerStatus.RUNNING),
        statuses.count(WorkerStatus.IDLE),
        statuses.count(WorkerStatus.INITIALIZING),
        statuses.count(WorkerStatus.THROTTLED),
        statuses.count(WorkerStatus.UNHEALTHY),
    )


def health_counts(health: Health) -> tuple[int, int, int, int, int]:
    return (
        health.workers_running,
        health.workers_idle + health.workers_ready,
        health.workers_initializing,
        health.workers_throttled,
        health.workers_unhealthy,
    )


def is_idle(health: Health) -> bool:
    """``/health`` counts no worker in any state and no job queued or in progress."""
    return not any(health_counts(health)) and health.jobs_in_queue == 0 and health.jobs_in_progress == 0


def idle_health_turns(idle: int, poll_interval_s: float, stale_after_s: float) -> int:
    """How many of ``idle`` idle endpoints have their ``/health`` read this tick: all of them up to
    ``IDLE_HEALTH_READS_PER_TICK``, else enough that a rotation reads each within ``stale_after_s``
    (one read per ``stale_after_s - poll_interval_s``, since the next look is a poll interval later)."""
    if idle <= IDLE_HEALTH_READS_PER_TICK:
        return idle
    cycle_s = stale_after_s - poll_interval_s
    if cycle_s <= 0:
        return idle
    return min(idle, max(IDLE_HEALTH_READS_PER_TICK, math.ceil(idle * poll_interval_s / cycle_s)))


def health_reads(
    endpoint_ids: Sequence[str], plan: ReadPlan, now: float
) -> tuple[list[str], dict[str, float]]:
    """The endpoints whose ``/health`` this tick reads, and those whose last one it carries (→ its age).

    Read every tick: an endpoint never read, one whose last ``/health`` or workers showed any worker or
    job, and an urgent one. Idle endpoints take turns (:func:`idle_health_turns`), the longest unread
    first; one whose data would outlive ``stale_after_s`` by the next tick is read whatever the turns.
    A worker that starts on an idle endpoint between two of its reads is seen at the next one: its first
    seconds are then missing from the live estimate (RunPod's hourly bill, reconciled per hour, has
    them), so a small fleet, up to ``IDLE_HEALTH_READS_PER_TICK`` idle endpoints, never waits."""
    read: list[str] = []
    idle: list[tuple[float, str]] = []
    for endpoint_id in endpoint_ids:
        last = plan.last_health.get(endpoint_id)
        read_at = plan.health_read_at.get(endpoint_id)
        if (
            last is None
            or read_at is None
            or not is_idle(last)
            or plan.last_workers.get(endpoint_id)
            or endpoint_id in plan.urgent_endpoints
        ):
            read.append(endpoint_id)
        else:
            idle.append((read_at, endpoint_id))
    idle.sort()
    ageing = sum(1 for read_at, _ in idle if now - read_at + plan.poll_interval_s > plan.stale_after_s)
    turns = max(ageing, idle_health_turns(len(idle), plan.poll_interval_s, plan.stale_after_s))
    read.extend(endpoint_id for _, endpoint_id in idle[:turns])
    return read, {endpoint_id: now - read_at for read_at, endpoint_id in idle[turns:]}


async def _read_health_and_workers(
    client: RunPodReads, reading: Reading, plan: ReadPlan, budget: _Budget, now: float
) -> None:
    """``/health`` of the endpoints whose turn it is (:func:`health_reads`), then the workers of those that
    have any: urgent ones first, then those whose counts changed, then the ones read longest ago; one whose
    counts are unchanged waits when the budget is spent, unless its data would outlive the stale-data
    bound by the next tick."""
    gate = asyncio.Semaphore(HEALTH_CONCURRENCY)

    async def health(endpoint_id: str) -> None:
        async with gate:
            reading.health[endpoint_id] = await client.health(endpoint_id)

    to_read, carried = health_reads([e.id for e in reading.endpoints], plan, now)
    await asyncio.gather(*(health(endpoint_id) for endpoint_id in to_read))
    for endpoint_id, age in carried.items():
        reading.health[endpoint_id] = plan.last_health[endpoint_id]
        reading.health_carried[endpoint_id] = age
    must: list[str] = []
    may: list[tuple[float, str]] = []
    for endpoint in reading.endpoints:
        counts = health_counts(reading.health[endpoint.id])
        last = plan.last_workers.get(endpoint.id)
        read_at = plan.workers_read_at.get(endpoint.id)
        if not any(counts) and not last and endpoint.id not in plan.urgent_endpoints:
            reading.workers[endpoint.id] = ()  # /health counts no worker, and none was seen: nothing to read
            continue
        ageing = read_at is None or now - read_at + plan.poll_interval_s > plan.stale_after_s
        if endpoint.id in plan.urgent_endpoints or last is None or ageing or worker_counts(last) != counts:
            must.append(endpoint.id)
        else:
            may.append((read_at if read_at is not None else 0.0, endpoint.id))
    chosen = list(must)
    if budget.left is not None:  # what cannot wait is read anyway, and spends the budget first
        budget.left = max(0, budget.left - len(must))
    for read_at, endpoint_id in sorted(may):
        if budget.take():
            chosen.append(endpoint_id)
        else:
            reading.workers[endpoint_id] = plan.last_workers.get(endpoint_id, ())
            reading.deferred[endpoint_id] = now - read_at

    async def workers(endpoint_id: str) -> None:
        async with gate:
            listed = await client.list_workers(endpoint_id)
        reading.workers[endpoint_id] = listed.workers
        reading.workers_read.add(endpoint_id)

    reading.rest_calls += len(chosen)
    await asyncio.gather(*(workers(endpoint_id) for endpoint_id in chosen))


async def _read_worker_logs(client: RunPodReads, reading: Reading, plan: ReadPlan, budget: _Budget) -> None:
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
    # A worker whose log was never read runs work nobody has identified: without the SDK's "Started." line
    # the runaway rule could only stop the whole endpoint at the deadline, so its first read cannot wait
    # for the quota (one call per new worker, within the bucket's 20 % headroom). Later reads can.
    first = [c for c in candidates if c[2].id not in plan.log_cursors]
    if budget.left is not None:
        budget.left = max(0, budget.left - len(first))
    candidates = [*first, *(c for c in candidates if c[2].id in plan.log_cursors and budget.take())]
    reading.rest_calls += len(candidates)

    async def one(endpoint_id: str, worker: Worker) -> None:
        cursor = plan.log_cursors.get(worker.id) or None
        reading.log_cursors[worker.id] = cursor or ""  # tried: later reads wait for the quota
        try:
            batch = await client.worker_logs(
                endpoint_id,
                worker.id,
                last_event_id=cursor,
                tail=None if cursor else WORKER_LOG_TAIL,
                max_seconds=WORKER_LOG_READ_S,
            )
        except (RunPodNotFound, InvalidIdentifier):
            # No stream for this listed worker, or a stored cursor it refuses: read its tail again later,
            # within the quota (the cursor goes with the worker when it leaves the listing).
            reading.log_cursors[worker.id] = ""
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
