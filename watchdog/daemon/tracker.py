"""What RunPod's API only shows as a snapshot, turned into durations, and what the daemon itself did.

RunPod answers "what is it now"; the policies need "since when". :class:`Tracker` keeps, per worker, the
time the daemon first saw it in its current status (``state_since``); per job, when it started (or was
first seen in progress: from heartbeat pings in the logs, or a status poll); per endpoint, the previous
``/health`` answer so counters become deltas (new requests, retries, completions for the crash window),
cold-start samples, and the request and ping counts of the logs. :class:`OwnActions` remembers what the
daemon did: its actions (for the hourly cap and the cool-down) and the jobs it cancelled (to verify and
escalate).

Both are parts of :class:`~watchdog.daemon.state.DaemonState`. Nothing here does I/O or reads a clock:
``now`` comes in. Methods named as verbs (``observe_*``, ``note_*``, ``forget_*``, ``prune``) update the
memory; the others only read it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from watchdog.clock import DAY_S, HOUR_S
from watchdog.ledger import DecisionRow
from watchdog.logwatch import LogEvent
from watchdog.models import Health, JobStatus, Worker
from watchdog.policy import ActionRecord, CancelledJob, CrashWindow, JobInProgress, WorkerView
from watchdog.traffic import TrafficCounter, requests_from_health
from watchdog.vocabulary import NOTIFY_ONLY_ACTIONS, Action, Mode, Outcome, WorkerStatus

JOB_PING_RECENT_S = 300.0
"""A job id counts as in progress while a heartbeat reported it within this many seconds."""
CRASH_WINDOW_S = 600.0
"""How far back the crash-loop window sums /health deltas. In time, not ticks: a crash loop turns over
once per cold start plus health-check failure (tens of seconds), so a window of a few ticks at the
default 5 s poll could never hold the retries that betray it."""
COLD_START_KEEP_S = 32 * DAY_S
MAX_UNCONFIRMED_JOBS = 32
BUSY_KEEP_MINUTES = 60
"""Minutes of /health busy samples kept per endpoint (one bucket a minute): the keep-warm detector's busy
ratio averages at most the last hour of them."""
"""Job ids per endpoint the daemon tracks before RunPod has confirmed them in progress. Heartbeats are
not proof (a log line can be forged): past this bound, ids whose worker RunPod does not list are dropped
first, so a flood of forged ids cannot crowd out the real job of a live worker."""
TRAFFIC_KEEP_S = 8 * DAY_S
"""Traffic counts are kept 8 days: the jump detector's baseline is the same hour of the last 7."""


@dataclass
class WorkerTrack:
    endpoint_id: str
    status: WorkerStatus
    since: float
    """When the daemon first saw the worker in ``status``."""
    first_seen: float
    gpu_type_id: str | None = None


START_EVIDENCE = ("worker_log", "status", "worker_running", "heartbeat", "first_seen")
"""How a job's start is known, most precise first: the SDK's "Started." line in the worker's log stream
(RunPod's own record, to the second); ``now − executionTime`` from the job's status; the time its worker
was first seen RUNNING (at tick resolution, and only when nothing else ran on that worker since); the first
heartbeat that named it (the SDK pings every 10 s, so up to 10 s late); when the daemon first saw it."""


@dataclass
class JobTrack:
    job_id: str
    endpoint_id: str
    worker_id: str | None
    since: float
    """The job's start: the earliest trustworthy evidence of it (see ``evidence``)."""
    evidence: str
    """What ``since`` rests on: one of :data:`START_EVIDENCE` (recorded with the job in the ledger)."""
    status: JobStatus = JobStatus.IN_PROGRESS
    confirmed_at: float | None = None
    """When RunPod's status answer last said the job is in progress (None: only a heartbeat named it).
    Only confirmed jobs are judged by the runaway rule."""
    finished_at: float | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None

    def start_evidence(self, since: float, evidence: str) -> None:
        """An earlier start from another piece of evidence wins (a worker-log start is never overridden:
        it is RunPod's own record of the start)."""
        if self.evidence != "worker_log" and since < self.since:
            self.since, self.evidence = since, evidence


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
    """Cross-tick memory of what RunPod and the logs showed."""

    crash_window_s: float = CRASH_WINDOW_S
    workers: dict[str, WorkerTrack] = field(default_factory=dict)
    jobs: dict[str, JobTrack] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    crash: dict[str, deque[tuple[float, int, int]]] = field(default_factory=dict)
    """Per endpoint (when, retries delta, completed delta) of the successive /health answers."""
    cold_starts: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    """Per endpoint (when, seconds) of each cold start seen."""
    last_progress: dict[str, float] = field(default_factory=dict)
    """Endpoint → when /health last showed jobs finishing (completed or failed counters rising)."""
    held_at: dict[str, float] = field(default_factory=dict)
    """Endpoint → last time the daemon held it down (a brake): jobs queued then waited for the brake, not
    for a cold start, so their delay is not a cold-start sample."""
    traffic: TrafficCounter = field(default_factory=TrafficCounter)
    log_cursors: dict[str, str] = field(default_factory=dict)
    """Worker → the id of the last event read from its log stream (forgotten with the worker)."""
    busy: dict[str, deque[list[float]]] = field(default_factory=dict)
    """Per endpoint, one bucket a minute of the /health answers that showed warm workers: [minute, Σ
    running, Σ running + idle] (at most :data:`BUSY_KEEP_MINUTES`)."""

    # -- logs -----------------------------------------------------------------------------------------

    def observe_logs(self, events: Sequence[LogEvent], now: float) -> int:
        """Count the new log lines, and make the job ids heartbeats report in progress tracked jobs
        (``since`` = the first ping that named them). Returns how many ids were dropped (not ids, too many
        in one ping, or beyond ``MAX_UNCONFIRMED_JOBS`` on an endpoint)."""
        rejected_before = self.traffic.rejected_job_ids
        self.traffic.add_events(events)
        dropped = self.traffic.rejected_job_ids - rejected_before
        for endpoint_id, jobs in self.traffic.jobs_in_pings(now - JOB_PING_RECENT_S).items():
            for job_id, seen in jobs.items():
                track = self.jobs.get(job_id)
                if track is None:
                    track = self.jobs[job_id] = JobTrack(
                        job_id, endpoint_id, seen.worker_id, seen.first_seen, "heartbeat"
                    )
                elif track.finished_at is None:
                    track.worker_id = seen.worker_id or track.worker_id
                    track.start_evidence(seen.first_seen, "heartbeat")
            dropped += self._bound_unconfirmed(endpoint_id)
        return dropped

    def _bound_unconfirmed(self, endpoint_id: str) -> int:
        unconfirmed = [
            t
            for t in self.jobs.values()
            if t.endpoint_id == endpoint_id and t.confirmed_at is None and t.finished_at is None
        ]
        excess = len(unconfirmed) - MAX_UNCONFIRMED_JOBS
        if excess <= 0:
            return 0
        # Keep the ids of workers RunPod lists, then the oldest; drop the rest.
        unconfirmed.sort(key=lambda t: (t.worker_id in self.workers, -t.since), reverse=False)
        for track in unconfirmed[:excess]:
            del self.jobs[track.job_id]
        return excess

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
        """Drop memory of the workers of endpoints no longer listed (deleted, or no longer watched)."""
        keep = set(keep)
        for worker_id in [w for w, t in self.workers.items() if t.endpoint_id not in keep]:
            del self.workers[worker_id]
        for worker_id in [w for w in self.log_cursors if w not in self.workers]:
            del self.log_cursors[worker_id]

    def running_since(self, endpoint_id: str) -> list[float]:
        """When each of the endpoint's RUNNING workers was first seen running."""
        return [
            track.since
            for track in self.workers.values()
            if track.endpoint_id == endpoint_id and track.status == WorkerStatus.RUNNING
        ]

    # -- health ---------------------------------------------------------------------------------------

    def observe_health(self, endpoint_id: str, health: Health, now: float) -> tuple[int, CrashWindow]:
        """New requests since the previous /health answer, and the crash window including this tick."""
        previous = self.health.get(endpoint_id)
        self.health[endpoint_id] = health
        self._sample_busy(endpoint_id, health, now)
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
        return requests, self.crash_window(endpoint_id, now)

    def crash_window(self, endpoint_id: str, now: float) -> CrashWindow:
        """The sums of the /health deltas observed within the last ``crash_window_s``."""
        recent = [
            (retries, completed)
            for at, retries, completed in self.crash.get(endpoint_id, ())
            if now - at <= self.crash_window_s
        ]
        return CrashWindow(
            retries_delta=sum(r for r, _ in recent),
            completed_delta=sum(c for _, c in recent),
            ticks=len(recent),
        )

    def _sample_busy(self, endpoint_id: str, health: Health, now: float) -> None:
        warm = health.workers_running + health.workers_idle
        if warm <= 0:
            return
        minute = now - now % 60.0
        buckets = self.busy.setdefault(endpoint_id, deque(maxlen=BUSY_KEEP_MINUTES))
        if buckets and buckets[-1][0] == minute:
            buckets[-1][1] += health.workers_running
            buckets[-1][2] += warm
        else:
            buckets.append([minute, float(health.workers_running), float(warm)])

    def busy_ratio(self, endpoint_id: str, since: float) -> float | None:
        """The share of warm workers /health showed running, over its answers since ``since`` (at most
        the last hour): how busy the workers kept warm were. One answer is a single instant, and a bot
        whose tiny jobs happen to fall on the daemon's reads would look fully busy; the average over many
        reads is the duty cycle. None when no answer in that time showed a warm worker."""
        running = warm = 0.0
        for minute, busy, total in self.busy.get(endpoint_id, ()):
            if minute + 60.0 > since:
                running += busy
                warm += total
        return running / warm if warm > 0 else None

    # -- jobs -----------------------------------------------------------------------------------------

    def open_job_ids(self) -> list[tuple[str, str]]:
        """(endpoint, job) of the jobs not known to be finished, in the order their status is worth reading:
        jobs RunPod confirmed (still running?), then jobs of workers RunPod lists as RUNNING, then the
        others; oldest first within each."""
        live = {w for w, t in self.workers.items() if t.status == WorkerStatus.RUNNING}

        def priority(track: JobTrack) -> tuple[int, float, str]:
            rank = 0 if track.confirmed_at is not None else 1 if track.worker_id in live else 2
            return rank, track.since, track.job_id

        open_jobs = sorted((t for t in self.jobs.values() if t.finished_at is None), key=priority)
        return [(t.endpoint_id, t.job_id) for t in open_jobs]

    def observe_job(
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
            track = self.jobs[job_id] = JobTrack(job_id, endpoint_id, worker_id, now, "first_seen")
        track.status = status
        track.worker_id = worker_id or track.worker_id
        track.delay_ms = delay_ms if delay_ms is not None else track.delay_ms
        track.execution_ms = execution_ms if execution_ms is not None else track.execution_ms
        in_progress = status in (JobStatus.IN_PROGRESS, JobStatus.RUNNING)
        track.confirmed_at = now if in_progress else None
        if in_progress and execution_ms:
            track.start_evidence(now - execution_ms / 1000.0, "status")
        if in_progress:
            self._worker_running_evidence(track)
        if status.terminal and track.finished_at is None:
            track.finished_at = now
            submitted_at = now - ((delay_ms or 0) + (execution_ms or 0)) / 1000.0
            if delay_ms is not None and self.held_at.get(endpoint_id, float("-inf")) < submitted_at:
                self.cold_starts[endpoint_id].append((now, delay_ms / 1000.0))
        return track

    def _worker_running_evidence(self, track: JobTrack) -> None:
        """The job started no later than its worker was first seen RUNNING, provided nothing else ran on
        that worker since (a worker serving back-to-back jobs stays RUNNING: its "since" belongs to an
        earlier job) and the endpoint showed no completion since."""
        worker = self.workers.get(track.worker_id or "")
        if worker is None or worker.status != WorkerStatus.RUNNING:
            return
        finished_since = any(
            other.worker_id == track.worker_id
            and other.job_id != track.job_id
            and other.finished_at is not None
            and other.finished_at >= worker.since
            for other in self.jobs.values()
        )
        progress = self.last_progress.get(track.endpoint_id)
        if not finished_since and (progress is None or progress < worker.since):
            track.start_evidence(worker.since, "worker_running")

    def known_busy_workers(self) -> frozenset[str]:
        """Workers running a job RunPod confirmed in progress (nothing to learn from their log streams)."""
        return frozenset(
            t.worker_id
            for t in self.jobs.values()
            if t.worker_id is not None and t.finished_at is None and t.confirmed_at is not None
        )

    def note_job_started(self, endpoint_id: str, job_id: str, worker_id: str | None, at: float) -> None:
        """RunPod's worker log said the job started at ``at`` (the most precise evidence there is)."""
        track = self.jobs.get(job_id)
        if track is None:
            self.jobs[job_id] = JobTrack(job_id, endpoint_id, worker_id, at, "worker_log")
            return
        track.worker_id = worker_id or track.worker_id
        track.since, track.evidence = at, "worker_log"

    def note_held(self, endpoint_id: str, now: float) -> None:
        """The daemon holds this endpoint down at ``now`` (see ``held_at``)."""
        self.held_at[endpoint_id] = now

    def forget_job(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def jobs_in_progress(self, endpoint_id: str) -> tuple[JobInProgress, ...]:
        """The endpoint's jobs RunPod confirmed in progress (a heartbeat alone is not proof)."""
        return tuple(
            sorted(
                (
                    JobInProgress(t.job_id, t.worker_id, t.since)
                    for t in self.jobs.values()
                    if t.endpoint_id == endpoint_id
                    and t.finished_at is None
                    and t.confirmed_at is not None
                    and t.status in (JobStatus.IN_PROGRESS, JobStatus.RUNNING)
                ),
                key=lambda job: job.job_id,
            )
        )

    # -- cold starts ----------------------------------------------------------------------------------

    def cold_start_samples(self, endpoint_id: str, since: float) -> list[float]:
        return [seconds for at, seconds in self.cold_starts.get(endpoint_id, ()) if at >= since]

    # -- housekeeping ---------------------------------------------------------------------------------

    def shift_times(self, delta: float) -> None:
        """The system clock jumped by ``delta`` seconds: move every remembered time with it, so a duration
        (how long a job has run, how long a worker idled) stays what it really is. Log timestamps are the
        writers' own clocks and stay as written."""
        for worker in self.workers.values():
            worker.since += delta
            worker.first_seen += delta
        for job in self.jobs.values():
            job.since += delta
            if job.finished_at is not None:
                job.finished_at += delta
            if job.confirmed_at is not None:
                job.confirmed_at += delta
        for endpoint_id, window in self.crash.items():
            self.crash[endpoint_id] = deque((at + delta, r, c) for at, r, c in window)
        for samples in self.cold_starts.values():
            samples[:] = [(at + delta, seconds) for at, seconds in samples]
        self.last_progress = {e: at + delta for e, at in self.last_progress.items()}
        self.held_at = {e: at + delta for e, at in self.held_at.items()}

    def prune(self, now: float) -> None:
        """Forget finished jobs after a day, traffic after 8 days, cold starts after 32 days."""
        for job_id in [
            j for j, t in self.jobs.items() if t.finished_at is not None and now - t.finished_at > DAY_S
        ]:
            del self.jobs[job_id]
        self.traffic.prune(now - TRAFFIC_KEEP_S)
        for endpoint_id in [
            e for e, b in self.busy.items() if not b or now - b[-1][0] > BUSY_KEEP_MINUTES * 60
        ]:
            del self.busy[endpoint_id]
        for samples in self.cold_starts.values():
            samples[:] = [s for s in samples if now - s[0] <= COLD_START_KEEP_S]


@dataclass
class CancelTrack:
    job_id: str
    endpoint_id: str
    worker_id: str | None
    cancelled_at: float
    ticks_since: int = 0


@dataclass
class OwnActions:
    """What the daemon did: its enforced actions (the hourly cap, the cool-down) and its cancels (verified,
    and escalated when a worker outlives its job's cancel)."""

    actions: list[ActionRecord] = field(default_factory=list)
    cancelled: dict[str, CancelTrack] = field(default_factory=dict)

    def note_action(self, record: ActionRecord) -> None:
        if record.action not in NOTIFY_ONLY_ACTIONS:
            self.actions.append(record)

    def note_cancel(self, endpoint_id: str, job_id: str, worker_id: str | None, at: float) -> None:
        self.cancelled[job_id] = CancelTrack(job_id, endpoint_id, worker_id, at)

    def cancelled_ids(self) -> list[tuple[str, str]]:
        """(endpoint, job) of the cancelled jobs still under watch."""
        return sorted((c.endpoint_id, c.job_id) for c in self.cancelled.values())

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

    def shift_times(self, delta: float) -> None:
        """See :meth:`Tracker.shift_times`."""
        self.actions = [replace(a, at=a.at + delta) for a in self.actions]
        for cancel in self.cancelled.values():
            cancel.cancelled_at += delta

    def prune(self, now: float) -> None:
        """Keep a day of actions (the cap looks back an hour, the cool-down minutes)."""
        self.actions = [a for a in self.actions if now - a.at <= DAY_S]

    @classmethod
    def from_ledger(cls, decisions: Sequence[DecisionRow], now: float) -> OwnActions:
        """Rebuild from the ledger's audit log after a restart: enforced actions of the last two hours and
        the jobs cancelled in the last hour."""
        own = cls()
        for row in sorted(decisions, key=lambda r: r.id):
            attempted = row.outcome in (Outcome.APPLIED, Outcome.FAILED)
            if row.mode == Mode.ENFORCE and attempted and now - row.at < 2 * HOUR_S:
                applied = row.outcome == Outcome.APPLIED
                own.note_action(ActionRecord(row.at, row.endpoint_id, row.rule, row.action, applied))
            if (
                row.action == Action.CANCEL_JOB
                and row.outcome == Outcome.APPLIED
                and row.job_id
                and row.endpoint_id
                and now - row.at < HOUR_S
            ):
                own.note_cancel(row.endpoint_id, row.job_id, row.worker_id, row.at)
        return own
