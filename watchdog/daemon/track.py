"""Stage 2, track: this tick's reading compared with what the daemon remembers, turned into durations and
ledger rows.

:func:`track` updates the :class:`~watchdog.daemon.tracker.Tracker` (the memory it is given, and nothing
else) with the workers, ``/health`` answers and job statuses just read, and returns what that means: each
worker with the time it entered its status, the crash window of each endpoint, the requests each endpoint
received this tick, and the rows the ledger records (configurations, jobs, traffic).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.daemon.fetch import Reading
from watchdog.daemon.state import HEALTH_SOURCE
from watchdog.daemon.tracker import Tracker
from watchdog.ledger import ConfigObservation, JobUpdate, TrafficCount
from watchdog.logwatch import LogEvent
from watchdog.models import EndpointConfig
from watchdog.policy import CrashWindow, WorkerView
from watchdog.traffic import UNKNOWN_SOURCE, minute_of

SKEW_RESOLUTION_S = 3.0
"""``startedAt`` and ``uptimeSeconds`` are whole seconds and ``now`` is taken before the read: a skew
estimate this small is noise (a smaller real skew is left uncorrected, a larger one is corrected)."""
START_SLACK_S = 5.0
"""How much earlier than its worker's start a job's "Started." line may be dated (rounding on RunPod's
side), and how far after the daemon's now."""


@dataclass(frozen=True, slots=True)
class Tracked:
    """What this tick's reading means once compared with the daemon's memory."""

    workers: Mapping[str, tuple[WorkerView, ...]] = field(default_factory=dict)
    """Endpoint → its workers, each with the time the daemon first saw it in its current status."""
    crash: Mapping[str, CrashWindow] = field(default_factory=dict)
    requests: Mapping[str, int] = field(default_factory=dict)
    """Endpoint → new requests this tick: the larger of what the logs and /health counters showed."""
    free_requests: int = 0
    tiered_requests: int = 0
    traffic: tuple[TrafficCount, ...] = ()
    configs: tuple[ConfigObservation, ...] = ()
    jobs: tuple[JobUpdate, ...] = ()


def track(
    tracker: Tracker, reading: Reading, events: Sequence[LogEvent], *, held: Iterable[str], now: float
) -> Tracked:
    """Fold ``reading`` (when it is complete) and the log ``events`` into ``tracker``; ``held`` are the
    endpoints the daemon holds down (their queued jobs wait for the daemon, not for a cold start)."""
    traffic = _traffic_rows(events)
    log_requests: dict[str, int] = defaultdict(int)
    free = tiered = 0
    for event in events:
        if event.kind == "request":
            log_requests[event.endpoint_id] += 1
            if event.tier:
                tiered += 1
                free += event.tier.strip().lower() == "free"
    if not reading.ok:
        return Tracked(
            requests=dict(log_requests), free_requests=free, tiered_requests=tiered, traffic=tuple(traffic)
        )

    tracker.forget_endpoints(e.id for e in reading.endpoints)
    tracker.traffic.set_idle_timeouts({e.id: e.idle_timeout_s for e in reading.endpoints})
    for endpoint_id in held:
        tracker.note_held(endpoint_id, now)
    crash: dict[str, CrashWindow] = {}
    health_requests: dict[str, int] = {}
    workers = {}
    for endpoint in reading.endpoints:
        if endpoint.id in reading.health_carried:  # idle, not its turn: nothing new to observe
            health_requests[endpoint.id], crash[endpoint.id] = 0, tracker.crash_window(endpoint.id, now)
        else:
            health_requests[endpoint.id], crash[endpoint.id] = tracker.observe_health(
                endpoint.id, reading.health[endpoint.id], now
            )
        if health_requests[endpoint.id]:
            traffic.append(
                TrafficCount(
                    endpoint.id, HEALTH_SOURCE, float(minute_of(now)), health_requests[endpoint.id], 0
                )
            )
        workers[endpoint.id] = tracker.observe_workers(endpoint.id, reading.workers[endpoint.id], now).views
    _note_job_starts(tracker, reading, now)
    jobs: list[JobUpdate] = []
    for job_id, (endpoint_id, job) in reading.jobs.items():
        seen = tracker.observe_job(
            endpoint_id,
            job_id,
            job.status,
            now,
            worker_id=job.worker_id,
            delay_ms=job.delay_time_ms,
            execution_ms=job.execution_time_ms,
        )
        jobs.append(
            JobUpdate(
                job_id=job_id,
                endpoint_id=endpoint_id,
                status=job.status.value,
                source=seen.evidence,
                worker_id=seen.worker_id,
                started_at=seen.since,
                finished_at=seen.finished_at,
                delay_ms=job.delay_time_ms,
                execution_ms=job.execution_time_ms,
            )
        )
    for job_id in (*reading.gone_jobs, *reading.bad_jobs):
        tracker.forget_job(job_id)
    requests = {
        endpoint.id: max(log_requests.get(endpoint.id, 0), health_requests.get(endpoint.id, 0))
        for endpoint in reading.endpoints
    }
    return Tracked(
        workers=workers,
        crash=crash,
        requests=requests,
        free_requests=free,
        tiered_requests=tiered,
        traffic=tuple(traffic),
        configs=tuple(config_observation(e) for e in reading.endpoints),
        jobs=tuple(jobs),
    )


def _note_job_starts(tracker: Tracker, reading: Reading, now: float) -> None:
    """The jobs workers' logs said started (before their statuses are folded in, which confirm them), and
    where each log stream was read up to.

    A log line's time is RunPod's clock, not the daemon's: the two are put on one clock through the same
    worker's ``startedAt`` and ``uptimeSeconds`` (RunPod's "now" when it answered is their sum), so a
    skewed or stepped system clock neither ages a job nor rejuvenates it. A start is believed only between
    the worker's own start and now (a line cannot predate the worker that printed it)."""
    tracker.log_cursors.update(reading.log_cursors)  # forgotten with their workers (Tracker.forget_endpoints)
    workers = {w.id: w for listed in reading.workers.values() for w in listed}
    for start in reading.job_starts:
        worker = workers.get(start.worker_id)
        if worker is None or worker.started_at is None or worker.uptime_s is None:
            continue  # no way to put the line on the daemon's clock: the status and heartbeat still will
        skew = now - (worker.started_at + worker.uptime_s)
        if abs(skew) <= SKEW_RESOLUTION_S:
            skew = 0.0  # within what whole-second fields and the read's own duration can tell apart
        at, worker_start = start.at + skew, worker.started_at + skew
        if worker_start - START_SLACK_S <= at <= now + START_SLACK_S:
            tracker.note_job_started(start.endpoint_id, start.job_id, start.worker_id, min(at, now))


def config_observation(endpoint: EndpointConfig) -> ConfigObservation:
    return ConfigObservation(
        endpoint_id=endpoint.id,
        name=endpoint.name,
        workers_min=endpoint.workers_min,
        workers_max=endpoint.workers_max,
        idle_timeout_s=endpoint.idle_timeout_s,
        execution_timeout_ms=endpoint.execution_timeout_ms,
        gpu_pools=endpoint.gpu_pools,
        scaler_type=endpoint.scaler_type,
        scaler_value=endpoint.scaler_value,
        workers_standby=endpoint.workers_standby,
    )


def _traffic_rows(events: Sequence[LogEvent]) -> list[TrafficCount]:
    counts: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        cell = counts[(event.endpoint_id, event.source or UNKNOWN_SOURCE, minute_of(event.ts))]
        cell[0 if event.kind == "request" else 1] += 1
    return [TrafficCount(e, s, float(m), r, p) for (e, s, m), (r, p) in sorted(counts.items())]
