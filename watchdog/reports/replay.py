"""A small discrete-event model of one RunPod Serverless endpoint, to replay recorded arrivals against
candidate settings (``runpod-watchdog whatif``).

What it models (runpod-api.md §5; the same semantics as the simulator, which validates it in the tests):

- **Flex workers** start when a job waits and no worker is coming for it: at once when the endpoint has no
  worker at all, otherwise once the job has waited ``scaler_delay_s`` (RunPod's QUEUE_DELAY scaler), up to
  ``workers_max`` workers. A start is a cold start of ``cold_start_s`` (INITIALIZING, billed), then the
  worker takes queued jobs one at a time, in arrival order, and stops after ``idle_timeout_s`` with no job
  (the idle tail, billed).
- **Active workers** (``workers_min``) are warm for the whole window and billed all of it at the active
  price, whether they work or not; they count against ``workers_max``.
- **Billing** is per worker session, from its start to its stop, rounded UP to the whole second, at the
  flex price (active workers: the whole window, rounded up, at the active price). Sessions still open at
  the window's end are billed up to it.

What it does not model: execution timeouts (recorded execution times are replayed as they were), the
REQUEST_COUNT scaler (treated like QUEUE_DELAY), throttling, GPU capacity, crash loops, disk. Everything here
is a pure function of its arguments: no clock, no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

BILLING_EPS_S = 1e-6
"""Float noise forgiven before a session is rounded up (epoch-sized times carry ~1e-7 s of error)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request: when the user sent it, how long it executes, and when it enters the queue."""

    at: float
    """When the request was sent (epoch seconds): waits are measured from here."""
    exec_s: float
    """Execution seconds on the GPU the replay prices."""
    free: bool = False
    """Offered free (a learner's request): the one that may be held for a batch."""
    release_at: float | None = None
    """When it enters the endpoint's queue, if later than ``at`` (held for a batch); None: at ``at``."""

    @property
    def queued_at(self) -> float:
        return self.at if self.release_at is None else max(self.at, self.release_at)


@dataclass(frozen=True, slots=True)
class EndpointModel:
    """The settings and prices one replay runs with."""

    idle_timeout_s: float
    cold_start_s: float
    flex_usd_per_s: float
    active_usd_per_s: float = 0.0
    workers_max: int = 1
    workers_min: int = 0
    """Active (always-on) workers; at most ``workers_max``."""
    scaler_delay_s: float = 4.0
    """QUEUE_DELAY: seconds a job waits before another worker is started for it (RunPod's default 4)."""

    def __post_init__(self) -> None:
        if self.idle_timeout_s < 0 or self.cold_start_s < 0 or self.scaler_delay_s < 0:
            raise ValueError("idle timeout, cold start and scaler delay must be >= 0")
        if self.workers_max < 1 and self.workers_min < 1:
            raise ValueError("an endpoint that serves requests needs workers_max >= 1")
        if self.workers_min < 0 or self.workers_min > max(self.workers_max, 1):
            raise ValueError("need 0 <= workers_min <= workers_max")


@dataclass(frozen=True, slots=True)
class Session:
    """One flex worker's billed life."""

    started_at: float
    stopped_at: float
    initializing_s: float
    busy_s: float
    idle_s: float

    @property
    def billed_s(self) -> int:
        return billed_seconds(self.stopped_at - self.started_at)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay costs and what the requests waited."""

    start: float
    end: float
    flex_usd: float
    active_usd: float
    sessions: tuple[Session, ...]
    waits_s: tuple[float, ...]
    """Per arrival (in the order given): start of execution − ``at``; ``math.inf`` if never served."""
    unserved: int
    """Arrivals still waiting when the window ended."""

    @property
    def usd(self) -> float:
        return self.flex_usd + self.active_usd

    @property
    def cold_starts(self) -> int:
        return len(self.sessions)

    @property
    def initializing_s(self) -> float:
        return sum(s.initializing_s for s in self.sessions)

    @property
    def busy_s(self) -> float:
        return sum(s.busy_s for s in self.sessions)

    @property
    def idle_s(self) -> float:
        return sum(s.idle_s for s in self.sessions)

    @property
    def rounding_s(self) -> float:
        return sum(s.billed_s - (s.stopped_at - s.started_at) for s in self.sessions)


def billed_seconds(raw_s: float) -> int:
    """Whole seconds billed for a session of ``raw_s`` seconds: rounded up, forgiving float noise."""
    if raw_s <= BILLING_EPS_S:
        return 0
    return math.ceil(raw_s - BILLING_EPS_S)


def nearest_rank(samples: Sequence[float], percentile: float) -> float | None:
    """Nearest-rank percentile (the convention of :func:`watchdog.money.cold_start_stats`); None if empty."""
    ordered = sorted(samples)
    if not ordered:
        return None
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class _Worker:
    number: int
    active: bool
    started_at: float
    state: str
    """``init``, ``idle`` or ``busy``."""
    since: float
    generation: int = 0
    initializing_s: float = 0.0
    busy_s: float = 0.0
    idle_s: float = 0.0

    def move(self, state: str, now: float) -> None:
        elapsed = now - self.since
        if self.state == "init":
            self.initializing_s += elapsed
        elif self.state == "busy":
            self.busy_s += elapsed
        else:
            self.idle_s += elapsed
        self.state, self.since = state, now
        self.generation += 1


@dataclass(slots=True)
class _Run:
    model: EndpointModel
    arrivals: Sequence[Arrival]
    now: float = 0.0
    heap: list[tuple[float, int, str, int, int]] = field(default_factory=list)
    seq: int = 0
    queue: deque[int] = field(default_factory=deque)
    workers: dict[int, _Worker] = field(default_factory=dict)
    next_worker: int = 0
    sessions: list[Session] = field(default_factory=list)
    started: dict[int, float] = field(default_factory=dict)

    def push(self, at: float, kind: str, a: int = 0, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (max(at, self.now), self.seq, kind, a, b))

    # -- workers ----------------------------------------------------------------------------------------

    def start_worker(self, *, active: bool, warm: bool) -> _Worker:
        number = self.next_worker
        self.next_worker += 1
        worker = _Worker(number, active, self.now, "idle" if warm else "init", self.now)
        self.workers[number] = worker
        if not warm:
            self.push(self.now + self.model.cold_start_s, "ready", number, worker.generation)
        return worker

    def become_idle(self, worker: _Worker) -> None:
        worker.move("idle", self.now)
        if not worker.active:
            self.push(self.now + self.model.idle_timeout_s, "idle_check", worker.number, worker.generation)

    def stop_worker(self, worker: _Worker) -> None:
        worker.move("stopped", self.now)
        del self.workers[worker.number]
        self.sessions.append(
            Session(worker.started_at, self.now, worker.initializing_s, worker.busy_s, worker.idle_s)
        )

    # -- the autoscaler (the simulator's order: dispatch, then scale for demand) --------------------------

    def reconcile(self) -> None:
        for worker in list(self.workers.values()):
            if not self.queue:
                break
            if worker.state == "idle":
                self.assign(self.queue.popleft(), worker)
        self.scale_for_demand()

    def assign(self, index: int, worker: _Worker) -> None:
        worker.move("busy", self.now)
        self.started[index] = self.now
        self.push(self.now + self.arrivals[index].exec_s, "finish", worker.number, worker.generation)

    def scale_for_demand(self) -> None:
        room = self.model.workers_max - len(self.workers)
        if room <= 0 or not self.queue:
            return
        coming = sum(1 for w in self.workers.values() if w.state == "init")
        delay = self.model.scaler_delay_s
        wanted = sum(
            1
            for index in list(self.queue)[coming:]
            if self.now - self.arrivals[index].queued_at >= delay - 1e-6
        )
        if not self.workers:
            wanted = max(wanted, 1)
        for _ in range(min(wanted, room)):
            self.start_worker(active=False, warm=False)

    # -- events -----------------------------------------------------------------------------------------

    def handle(self, kind: str, a: int, b: int) -> None:
        if kind == "arrival":
            self.queue.append(a)
            self.push(self.now + self.model.scaler_delay_s, "scale_check")
            self.reconcile()
            return
        if kind == "scale_check":
            self.reconcile()
            return
        worker = self.workers.get(a)
        if worker is None or worker.generation != b:
            return  # stale: the worker changed state since this event was scheduled
        if (kind == "ready" and worker.state == "init") or (kind == "finish" and worker.state == "busy"):
            self.become_idle(worker)
            self.reconcile()
        elif kind == "idle_check" and worker.state == "idle" and not worker.active:
            self.stop_worker(worker)
            self.reconcile()


def replay(arrivals: Sequence[Arrival], model: EndpointModel, *, start: float, end: float) -> ReplayResult:
    """Replay ``arrivals`` (any order; those outside [start, end) are ignored) against ``model``.

    The endpoint starts the window with its active workers warm and no flex worker. Returns the bill and
    each arrival's wait (in the order given).
    """
    if end < start:
        raise ValueError("end must be >= start")
    run = _Run(model, arrivals, now=start)
    for _ in range(min(model.workers_min, model.workers_max)):
        run.start_worker(active=True, warm=True)
    order = sorted(
        (i for i, a in enumerate(arrivals) if start <= a.queued_at < end),
        key=lambda i: (arrivals[i].queued_at, i),
    )
    for index in order:
        run.push(arrivals[index].queued_at, "arrival", index)
    while run.heap and run.heap[0][0] <= end:
        at, _, kind, a, b = heapq.heappop(run.heap)
        run.now = max(run.now, at)
        run.handle(kind, a, b)
    run.now = end
    active_s = 0.0
    for worker in list(run.workers.values()):
        if worker.active:
            worker.move("stopped", end)
            active_s += billed_seconds(end - worker.started_at)
        else:
            run.stop_worker(worker)
    flex_usd = sum(s.billed_s for s in run.sessions) * model.flex_usd_per_s
    waits = tuple(
        run.started[i] - a.at if i in run.started else (math.inf if start <= a.queued_at < end else math.nan)
        for i, a in enumerate(arrivals)
    )
    unserved = sum(1 for w in waits if math.isinf(w))
    sessions = tuple(sorted(run.sessions, key=lambda s: s.started_at))
    return ReplayResult(
        start=start,
        end=end,
        flex_usd=flex_usd,
        active_usd=active_s * model.active_usd_per_s,
        sessions=sessions,
        waits_s=waits,
        unserved=unserved,
    )


def hold_for_batches(
    arrivals: Sequence[Arrival], batch_times_s: Sequence[float], *, day_s: float = 86_400.0
) -> tuple[Arrival, ...]:
    """The free arrivals held until the next batch time of the (UTC) day; the others unchanged.

    ``batch_times_s`` are seconds after midnight (e.g. 0, 21600, 43200, 64800 for four a day). A request
    sent exactly at a batch time goes with that batch.
    """
    slots = sorted({t % day_s for t in batch_times_s})
    if not slots:
        return tuple(arrivals)
    held = []
    for arrival in arrivals:
        if not arrival.free:
            held.append(arrival)
            continue
        midnight = arrival.at - arrival.at % day_s
        offset = arrival.at - midnight
        later = [s for s in slots if s >= offset]
        release = midnight + (later[0] if later else day_s + slots[0])
        held.append(Arrival(arrival.at, arrival.exec_s, arrival.free, release))
    return tuple(held)
