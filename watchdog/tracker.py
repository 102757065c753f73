"""The daemon's memory across ticks: what RunPod's API only shows as a snapshot, turned into durations.

RunPod answers "what is it now"; the policies need "since when". The tracker keeps, per worker, the time the
daemon first saw it in its current status (``state_since``); per job, when it was first seen in progress
(from heartbeat pings in the logs, or a status poll); per endpoint, the previous ``/health`` answer so
counters become deltas (new requests, retries, completions for the crash window); cold-start samples (how
long workers stayed INITIALIZING, and finished jobs' delay times); and what the daemon itself did (actions
for the hourly cap and the cool-down, jobs it cancelled, budget thresholds already alerted this month).

Everything here is in memory and cheap; what must survive a restart is restored from the ledger by
:meth:`Tracker.restore` (actions, cancelled jobs, alerted thresholds) or rebuilt within a tick or two.
Nothing here does I/O or reads a clock: ``now`` comes in.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from watchdog.clock import month_start
from watchdog.ledger import DecisionRow, WorkerSessionRow
from watchdog.models import Health, JobStatus, Worker, WorkerStatus
from watchdog.policy import (
    NOTIFY_ONLY_ACTIONS,
    ActionRecord,
    CancelledJob,
    CrashWindow,
    JobInProgress,
    WorkerView,
)
from watchdog.traffic import TrafficCounter, requests_from_health

HOUR_S = 3600.0
DAY_S = 86400.0
JOB_PING_RECENT_S = 300.0
"""A job id counts as in progress while a heartbeat reported it within this many seconds."""
CRASH_WINDOW_S = 600.0
"""How far back the crash-loop window sums /health deltas. In time, not ticks: a crash loop turns over
once per cold start plus health-check failure (tens of seconds), so a window of a few ticks at the
default 5 s poll could never hold the retries that betray it."""
COLD_START_KEEP_S = 32 * DAY_S


@dataclass
class WorkerTrack:
    endpoint_id: str
    status: WorkerStatus
    since: float
    """When the daemon first saw the worker in ``status``."""
    first_seen: float
    gpu_type_id: str | None = None


@dataclass
class JobTrack:
    job_id: str
    endpoint_id: str
    worker_id: str | None
    since: float
    """Start of the job if known, else when it was first seen in progress."""
    source: str
    status: str = JobStatus.IN_PROGRESS.value
    finished_at: float | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None


@dataclass
class CancelTrack:
    job_id: str
    endpoint_id: str
    worker_id: str | None
    cancelled_at: float
    ticks_since: int = 0


@dataclass(frozen=True, slots=True)
class WorkerObservation:
    """What one endpoint's worker list means once compared with the previous tick's."""

    views: tuple[WorkerView, ...]
    ended: tuple[str, ...]
    """Workers seen before and gone now."""
    cold_starts_s: tuple[float, ...]
    """INITIALIZING durations that ended this tick (upper bounds: the tick interval is the resolution)."""


@dataclass
class Tracker:
    """Cross-tick memory. One per daemon; :meth:`restore` seeds it from the ledger on start."""

    crash_window_s: float = CRASH_WINDOW_S
    workers: dict[str, WorkerTrack] = field(default_factory=dict)
    snapshot: dict[str, tuple[Worker, ...]] = field(default_factory=dict)
    """The previous successful poll's workers per endpoint: what the next interval is accrued from."""
    snapshot_at: float | None = None
    jobs: dict[str, JobTrack] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    crash: dict[str, deque[tuple[float, int, int]]] = field(default_factory=dict)
    """Per endpoint (when, retries delta, completed delta) of the successive /health answers."""
    cold_starts: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    last_progress: dict[str, float] = field(default_factory=dict)
    """Endpoint → when /health last showed jobs finishing (completed or failed counters rising)."""
    held_at: dict[str, float] = field(default_factory=dict)
    """Endpoint → last time the daemon held it down (a brake): jobs queued then waited for the brake, not
    for a cold start, so their delay is not a cold-start sample."""
    """Per endpoint (when, seconds)."""
    traffic: TrafficCounter = field(default_factory=TrafficCounter)
    alerted_thresholds: dict[float, set[float]] = field(default_factory=lambda: defaultdict(set))
    """Month start → budget thresholds alerted in that month."""
    actions: list[ActionRecord] = field(default_factory=list)
    cancelled: dict[str, CancelTrack] = field(default_factory=dict)
    last_ok: float | None = None
    """When the last tick read RunPod completely."""
    blind_since: float | None = None
    billing_failed_at: float | None = None
    """When the last billing read failed (None once one succeeds): it is retried a billing interval later."""
    """Start of the current blind episode (None while the daemon sees)."""
    last_recorded: dict[str, float] = field(default_factory=dict)
    """Decision dedupe key → when it was last written, so a repeated proposal is not logged every tick."""
    gpu_seconds: dict[str, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    """Endpoint → GPU type → billed GPU seconds this month (from the live estimate)."""
    gpu_seconds_today: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gpu_month: float | None = None
    gpu_day: float | None = None

    # -- workers --------------------------------------------------------------------------------------

    def observe_workers(self, endpoint_id: str, workers: Sequence[Worker], now: float) -> WorkerObservation:
        views: list[WorkerView] = []
        samples: list[float] = []
        seen: set[str] = set()
        for worker in workers:
            seen.add(worker.id)
            track = self.workers.get(worker.id)
            if track is None:
                track = WorkerTrack(endpoint_id, worker.status, now, now, worker.gpu_type_id)
                self.workers[worker.id] = track
            elif track.status != worker.status:
                if track.status == WorkerStatus.INITIALIZING:
                    samples.append(max(0.0, now - track.since))
                track.status, track.since = worker.status, now
            track.gpu_type_id = worker.gpu_type_id or track.gpu_type_id
            views.append(WorkerView(worker, track.since))
        ended = tuple(
            sorted(
                worker_id
                for worker_id, track in self.workers.items()
                if track.endpoint_id == endpoint_id and worker_id not in seen
            )
        )
        for worker_id in ended:
            del self.workers[worker_id]
        for sample in samples:
            self.cold_starts[endpoint_id].append((now, sample))
        return WorkerObservation(tuple(views), ended, tuple(samples))

    def forget_endpoints(self, keep: Iterable[str]) -> None:
        """Drop memory of endpoints no longer listed (deleted, or no longer watched)."""
        keep = set(keep)
        for worker_id in [w for w, t in self.workers.items() if t.endpoint_id not in keep]:
            del self.workers[worker_id]
        for endpoint_id in [e for e in self.snapshot if e not in keep]:
            del self.snapshot[endpoint_id]

    # -- health -----------------------------------------------------------------------------------------

    def observe_health(self, endpoint_id: str, health: Health, now: float) -> tuple[int, CrashWindow]:
        """New requests since the previous /health answer, and the crash window including this tick."""
        previous = self.health.get(endpoint_id)
        self.health[endpoint_id] = health
        window = self.crash.setdefault(endpoint_id, deque())
        requests = 0
        if previous is not None:
            requests = requests_from_health(previous, health)
            window.append(
                (
                    now,
                    max(0, health.jobs_retried - previous.jobs_retried),
                    max(0, health.jobs_completed - previous.jobs_completed),
                )
            )
            finished = (health.jobs_completed + health.jobs_failed) - (
                previous.jobs_completed + previous.jobs_failed
            )
            if finished > 0:
                self.last_progress[endpoint_id] = now
            self.traffic.add_health_delta(endpoint_id, now, requests=requests)
        while window and now - window[0][0] > self.crash_window_s:
            window.popleft()
        return requests, CrashWindow(
            retries_delta=sum(r for _, r, _ in window),
            completed_delta=sum(c for _, _, c in window),
            ticks=len(window),
        )

    # -- jobs ---------------------------------------------------------------------------------------------

    def learn_jobs_from_pings(self, now: float) -> None:
        """Job ids that heartbeats report as in progress become tracked jobs (``since`` = first ping)."""
        for endpoint_id, jobs in self.traffic.jobs_in_pings(now - JOB_PING_RECENT_S).items():
            for job_id, seen in jobs.items():
                track = self.jobs.get(job_id)
                if track is None:
                    self.jobs[job_id] = JobTrack(job_id, endpoint_id, seen.worker_id, seen.first_seen, "log")
                    continue
                if track.finished_at is None:
                    track.since = min(track.since, seen.first_seen)
                    track.worker_id = seen.worker_id or track.worker_id

    def open_job_ids(self) -> list[tuple[str, str]]:
        """(endpoint, job) of jobs not known to be finished, plus cancelled jobs still under watch."""
        ids = {(t.endpoint_id, t.job_id) for t in self.jobs.values() if t.finished_at is None}
        ids |= {(c.endpoint_id, c.job_id) for c in self.cancelled.values()}
        return sorted(ids)

    def update_job(
        self,
        endpoint_id: str,
        job_id: str,
        status: JobStatus,
        now: float,
        *,
        worker_id: str | None,
        delay_ms: int | None,
        execution_ms: int | None,
    ) -> JobTrack:
        track = self.jobs.get(job_id)
        if track is None:
            track = self.jobs[job_id] = JobTrack(job_id, endpoint_id, worker_id, now, "status")
        track.status = status.value
        track.worker_id = worker_id or track.worker_id
        track.delay_ms = delay_ms if delay_ms is not None else track.delay_ms
        track.execution_ms = execution_ms if execution_ms is not None else track.execution_ms
        if status in (JobStatus.IN_PROGRESS, JobStatus.RUNNING) and execution_ms:
            track.since = min(track.since, now - execution_ms / 1000.0)
        if status.terminal and track.finished_at is None:
            track.finished_at = now
            submitted_at = now - ((delay_ms or 0) + (execution_ms or 0)) / 1000.0
            if delay_ms is not None and self.held_at.get(endpoint_id, float("-inf")) < submitted_at:
                self.cold_starts[endpoint_id].append((now, delay_ms / 1000.0))
        return track

    def note_held(self, endpoint_id: str, now: float) -> None:
        """The daemon holds this endpoint down at ``now`` (see ``held_at``)."""
        self.held_at[endpoint_id] = now

    def forget_job(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def jobs_in_progress(self, endpoint_id: str) -> tuple[JobInProgress, ...]:
        return tuple(
            JobInProgress(t.job_id, t.worker_id, t.since)
            for t in sorted(self.jobs.values(), key=lambda t: t.job_id)
            if t.endpoint_id == endpoint_id
            and t.finished_at is None
            and t.status in (JobStatus.IN_PROGRESS.value, JobStatus.RUNNING.value)
        )

    def prune(self, now: float) -> None:
        """Forget finished jobs after a day and traffic older than 8 days (the jump baseline is 7)."""
        for job_id in [
            j for j, t in self.jobs.items() if t.finished_at is not None and now - t.finished_at > DAY_S
        ]:
            del self.jobs[job_id]
        self.traffic.prune(now - 8 * DAY_S)
        for samples in self.cold_starts.values():
            samples[:] = [s for s in samples if now - s[0] <= COLD_START_KEEP_S]
        hour_ago = now - HOUR_S
        self.actions = [a for a in self.actions if a.at >= hour_ago - 86400.0]
        self.last_recorded = {k: t for k, t in self.last_recorded.items() if now - t < DAY_S}

    # -- cold starts ----------------------------------------------------------------------------------

    def cold_start_samples(self, endpoint_id: str, since: float) -> list[float]:
        return [seconds for at, seconds in self.cold_starts.get(endpoint_id, ()) if at >= since]

    # -- the daemon's own actions ---------------------------------------------------------------------

    def note_action(self, record: ActionRecord) -> None:
        if record.action not in NOTIFY_ONLY_ACTIONS:
            self.actions.append(record)

    def note_cancel(self, endpoint_id: str, job_id: str, worker_id: str | None, at: float) -> None:
        self.cancelled[job_id] = CancelTrack(job_id, endpoint_id, worker_id, at)

    def cancelled_jobs(self, endpoint_id: str) -> tuple[CancelledJob, ...]:
        return tuple(
            CancelledJob(c.job_id, c.worker_id, c.cancelled_at, c.ticks_since)
            for c in sorted(self.cancelled.values(), key=lambda c: c.job_id)
            if c.endpoint_id == endpoint_id
        )

    def age_cancels(self, live_worker_ids: set[str], now: float) -> None:
        """One more tick for each cancelled job; forget it once its worker is gone (or after a day)."""
        for job_id, cancel in list(self.cancelled.items()):
            cancel.ticks_since += 1
            gone = cancel.worker_id is None or cancel.worker_id not in live_worker_ids
            if (gone and cancel.ticks_since > 1) or now - cancel.cancelled_at > DAY_S:
                del self.cancelled[job_id]

    def thresholds_alerted(self, now: float) -> frozenset[float]:
        return frozenset(self.alerted_thresholds.get(month_start(now), set()))

    # -- restart --------------------------------------------------------------------------------------

    def restore(
        self,
        decisions: Sequence[DecisionRow],
        open_sessions: Sequence[WorkerSessionRow],
        now: float,
        *,
        snapshot_at: float | None,
    ) -> None:
        """Seed from the ledger: recent enforced actions (cap, cool-down), jobs cancelled in the last hour,
        budget thresholds alerted this month, and the workers of the last recorded tick (``snapshot_at``:
        when they were seen) so a quick restart keeps accruing what was running."""
        month = month_start(now)
        for row in sorted(decisions, key=lambda r: r.id):
            if row.mode == "enforce" and row.outcome in ("applied", "failed") and now - row.at < 2 * HOUR_S:
                self.note_action(ActionRecord(row.at, row.endpoint_id, row.rule, row.action))
            if (
                row.action == "cancel_job"
                and row.outcome == "applied"
                and row.job_id
                and row.endpoint_id
                and now - row.at < HOUR_S
            ):
                self.note_cancel(row.endpoint_id, row.job_id, row.worker_id, row.at)
            if row.rule == "budget_brake" and row.action == "alert" and row.dedupe_key:
                threshold = threshold_of(row.dedupe_key)
                if threshold is not None and month_start(row.at) == month:
                    self.alerted_thresholds[month].add(threshold)
            if row.dedupe_key:
                self.last_recorded[row.dedupe_key] = max(row.at, self.last_recorded.get(row.dedupe_key, 0.0))
        if snapshot_at is not None:
            by_endpoint: dict[str, list[Worker]] = defaultdict(list)
            for session in open_sessions:
                try:
                    status = WorkerStatus(session.last_status)
                except ValueError:
                    continue
                by_endpoint[session.endpoint_id].append(
                    Worker(id=session.worker_id, status=status, gpu_type_id=session.gpu_type_id)
                )
                self.workers[session.worker_id] = WorkerTrack(
                    session.endpoint_id,
                    status,
                    session.last_seen_at,
                    session.first_seen_at,
                    session.gpu_type_id,
                )
            self.snapshot = {endpoint: tuple(workers) for endpoint, workers in by_endpoint.items()}
            self.snapshot_at = snapshot_at


def threshold_of(dedupe_key: str) -> float | None:
    """The threshold of a budget alert decision key ``budget_brake:alert:{month}:{threshold}``."""
    parts = dedupe_key.split(":")
    if len(parts) != 4 or parts[:2] != ["budget_brake", "alert"]:
        return None
    try:
        return float(parts[3])
    except ValueError:
        return None
