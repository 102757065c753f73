"""Count requests and heartbeat pings per endpoint, source and minute, and flag traffic that burns money.

Why: on RunPod Serverless every second a worker is up is billed, and two kinds of traffic keep workers up
without doing useful work. A *hung job* keeps its worker alive while the SDK's heartbeat reports the job id
every ``RUNPOD_PING_INTERVAL`` (10 s by default; runpod-api.md §5.4) - the incident that prompted this code
sent thousands of pings for one job over days. A *keep-warm bot* sends a tiny request just often enough that
the idle timeout never expires. Both are visible in the logs; neither is visible in the bill until too late.

Everything here except ``DenyList`` is pure: events and ``now`` come in, findings go out, nothing reads the
clock or does I/O. The detectors are conservative on purpose, because the consequence of a finding can be
cutting a source off at the gateway (``DenyList``): each one states its numbers in ``detail`` so a human can
check the reasoning. Volumes are tiny (tens of requests a day), so the jump test is a count-based Poisson tail
rather than a z-score, which would be meaningless at these counts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from watchdog.logwatch import LogEvent
from watchdog.models import Health, is_runpod_id

UNKNOWN_SOURCE = "(unknown)"
OTHER_SOURCES = "(other sources)"
MAX_SOURCES_PER_MINUTE = 1_000
"""Distinct sources counted per endpoint and minute; the rest are counted together as ``OTHER_SOURCES``."""
DEFAULT_RUN_GAP_S = 10.0
"""The gap that ends a run of requests on an endpoint whose idle timeout is not known yet (the policy's
default highest idle timeout)."""
MAX_JOB_IDS_PER_PING = 8
"""Job ids taken from one heartbeat: a worker runs a handful of jobs at once at most (its concurrency);
a ping naming more is forged or broken, and its extra ids are counted, not tracked."""
"""Stands in for events whose log line named no source."""

FindingKind = Literal["rate", "ping_rate", "keep_warm", "jump"]

_MINUTE = 60
_V = TypeVar("_V")
_HOUR = 3600
_DAY = 86400


def minute_of(ts: float) -> int:
    """Start (epoch seconds) of the minute containing ``ts``."""
    return int(ts // _MINUTE) * _MINUTE


# --------------------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True, slots=True)
class MinuteCount:
    requests: int = 0
    pings: int = 0


class JobSeenInPings(NamedTuple):
    """A job id that heartbeat pings reported as in progress on ``worker_id``."""

    worker_id: str | None
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class TrafficFinding:
    """Something in the traffic worth a human's attention (and maybe a deny-list entry).

    ``source`` is who to cut off when that makes sense (None when the finding is about a worker or job);
    ``since`` is when the suspicious pattern started, as far as the data shows.
    """

    endpoint_id: str
    source: str | None
    kind: FindingKind
    detail: str
    since: float
    job_id: str | None = None
    worker_id: str | None = None

    @property
    def key(self) -> str:
        """Stable identity for de-duplicating alerts about the same thing."""
        parts = [self.kind, self.endpoint_id, self.source or "", self.worker_id or "", self.job_id or ""]
        return "traffic:" + ":".join(parts)


@dataclass(frozen=True, slots=True)
class TrafficThresholds:
    """Limits for the detectors. The first six come from ``[pings]`` (built by
    :func:`watchdog.daemon.evaluate.traffic_thresholds`; the configuration is their one source of defaults);
    the others are the detectors' own constants."""

    max_requests_per_min: int
    """Requests per endpoint per minute, all sources together (``pings.max_requests_per_min``)."""
    max_pings_per_min: int
    """Heartbeat pings per endpoint per minute (``pings.max_pings_per_min``; 6/min per worker is normal)."""
    keep_warm_min_minutes: float
    """How long arrivals must keep an endpoint warm before it is called a keep-warm pattern
    (``pings.keep_warm_window_min``)."""
    keep_warm_max_busy_ratio: float
    """Below this share of useful work over the warm period, the requests count as "little work"
    (``pings.keep_warm_max_busy_ratio``)."""
    jump_min_count: int
    """Never call fewer requests than this in an hour a jump, however quiet the baseline
    (``pings.jump_min_count``)."""
    jump_factor: float
    """Nor an hour with fewer than this many times the baseline's hourly rate (``pings.jump_factor``):
    on a busy endpoint a small rise is statistically certain and still not worth an alert."""
    max_pings_per_worker_per_min: int = 20
    """Faster than one ping per 3 s means a broken ``RUNPOD_PING_INTERVAL`` (below 1000 ms: a busy loop)."""
    rate_sustain_minutes: int = 1
    """Each of the last this-many full minutes must be above the limit."""
    max_pings_per_job: int = 720
    """Pings reporting one job id; 720 is two hours of heartbeats at the default 10 s interval."""
    job_ping_recent_s: float = 300.0
    """A job counts as still running if a ping reported it within this many seconds."""
    jump_p_value: float = 0.001
    """One-sided Poisson tail probability below which the last hour counts as a jump."""
    jump_baseline_days: float = 7.0
    jump_min_baseline_hours: float = 24.0
    """Without at least this much observed history there is no baseline to compare with."""
    jump_min_baseline_rate_per_hour: float = 0.1
    """Floor for the baseline rate so a silent week does not make every request "impossible"."""


@dataclass(frozen=True, slots=True)
class EndpointContext:
    """What the caller knows about an endpoint's economics, for the keep-warm detector.

    ``busy_ratio`` (share of the warm time spent running jobs) wins over ``mean_execution_s``; with neither,
    the detector cannot tell keep-warm from real work and stays silent.
    """

    idle_timeout_s: float
    mean_execution_s: float | None = None
    busy_ratio: float | None = None


# --------------------------------------------------------------------------------------------------------
# Aggregation


class WarmRun(NamedTuple):
    """A run of requests from one source with no gap as long as the endpoint's idle timeout."""

    first: float
    last: float
    requests: int


@dataclass(slots=True)
class _JobTrack:
    worker_id: str | None
    first_seen: float
    last_seen: float
    pings: int


def _window(per_minute: Mapping[int, _V], start: float, end: float) -> Iterator[tuple[int, _V]]:
    """The entries of minutes in [start, end): walks the window's minutes or the stored ones, whichever
    is fewer, so a one-minute query on a week of history is a lookup, not a scan."""
    first = math.ceil(start / _MINUTE) * _MINUTE
    if (end - first) / _MINUTE <= len(per_minute):
        for minute in range(int(first), math.ceil(end), int(_MINUTE)):
            if minute in per_minute:
                yield minute, per_minute[minute]
    else:
        for minute, value in per_minute.items():
            if start <= minute < end:
                yield minute, value


class TrafficCounter:
    """Aggregates LogEvents (and /health deltas) into what the detectors need.

    Kept: per (endpoint, source, minute) request and ping counts; per (endpoint, worker, minute) ping counts;
    per (endpoint, source) the newest run of requests (three numbers, for the keep-warm gaps); per
    (endpoint, job id) the worker and first/last ping that reported it. ``prune(before)`` drops what is older.
    """

    def __init__(self) -> None:
        # Indexed endpoint → minute → ..., so a query costs the minutes of its window, not the history.
        self._counts: dict[str, dict[int, dict[str, list[int]]]] = defaultdict(dict)
        """endpoint → minute → source → [requests, pings]"""
        self._worker_pings: dict[str, dict[int, dict[str, int]]] = defaultdict(dict)
        """endpoint → minute → worker → pings"""
        self._health_requests: dict[str, dict[int, int]] = defaultdict(dict)
        """endpoint → minute → new jobs seen in /health counters"""
        self._runs: dict[tuple[str, str], WarmRun] = {}
        """(endpoint, source) → its newest run of requests: three numbers, whatever the traffic."""
        self._run_gaps: dict[str, float] = {}
        self._jobs: dict[str, dict[str, _JobTrack]] = defaultdict(dict)
        self.first_seen: float | None = None
        """Earliest time any data arrived: the start of the observed history."""
        self.rejected_job_ids = 0
        """Job ids in pings that were not taken: not an id RunPod could have made, or beyond
        ``MAX_JOB_IDS_PER_PING`` in one ping (a forged ping must not flood the daemon with jobs to poll)."""
        self.folded_sources = 0
        """Requests and pings counted under ``OTHER_SOURCES`` because their endpoint already had
        ``MAX_SOURCES_PER_MINUTE`` sources that minute (a flood from many addresses stays bounded)."""

    def set_idle_timeouts(self, idle_timeouts: Mapping[str, float]) -> None:
        """Each endpoint's idle timeout, as RunPod last reported it: a run of requests ends at the first gap
        at least that long (``DEFAULT_RUN_GAP_S`` for an endpoint not read yet)."""
        self._run_gaps = {endpoint_id: float(t) for endpoint_id, t in idle_timeouts.items() if t > 0}

    # -- ingestion ------------------------------------------------------------------------------------

    def add(self, event: LogEvent) -> None:
        self._observe(event.ts)
        source = event.source or UNKNOWN_SOURCE
        minute = minute_of(event.ts)
        per_source = self._counts[event.endpoint_id].setdefault(minute, {})
        if source not in per_source and len(per_source) >= MAX_SOURCES_PER_MINUTE:
            self.folded_sources += 1
            source = OTHER_SOURCES
        cell = per_source.setdefault(source, [0, 0])
        if event.kind == "request":
            cell[0] += 1
            self._add_arrival((event.endpoint_id, source), event.ts)
            return
        cell[1] += 1
        if event.worker_id:
            per_worker = self._worker_pings[event.endpoint_id].setdefault(minute, {})
            per_worker[event.worker_id] = per_worker.get(event.worker_id, 0) + 1
        jobs = self._jobs[event.endpoint_id]
        named = event.job_ids
        self.rejected_job_ids += max(0, len(named) - MAX_JOB_IDS_PER_PING)
        worker_ok = event.worker_id is None or is_runpod_id(event.worker_id)
        for job_id in named[:MAX_JOB_IDS_PER_PING]:
            if not (worker_ok and is_runpod_id(job_id)):
                self.rejected_job_ids += 1
                continue
            track = jobs.get(job_id)
            if track is None:
                jobs[job_id] = _JobTrack(event.worker_id, event.ts, event.ts, 1)
                continue
            track.pings += 1
            track.first_seen = min(track.first_seen, event.ts)
            if event.ts >= track.last_seen:
                track.last_seen = event.ts
                track.worker_id = event.worker_id or track.worker_id

    def _add_arrival(self, key: tuple[str, str], ts: float) -> None:
        run = self._runs.get(key)
        gap = self._run_gaps.get(key[0], DEFAULT_RUN_GAP_S)
        if run is None or ts - run.last >= gap:
            self._runs[key] = WarmRun(ts, ts, 1)
        elif ts >= run.last:
            self._runs[key] = WarmRun(run.first, ts, run.requests + 1)
        elif ts > run.first - gap:  # lines from several files interleave slightly out of order
            self._runs[key] = WarmRun(min(run.first, ts), run.last, run.requests + 1)

    def add_events(self, events: Iterable[LogEvent]) -> None:
        for event in events:
            self.add(event)

    def add_health_delta(self, endpoint_id: str, minute: float, *, requests: int) -> None:
        """Record ``requests`` new jobs that /health counters showed during ``minute`` (any ts inside it)."""
        if requests <= 0:
            return
        self._observe(minute)
        per_minute = self._health_requests[endpoint_id]
        per_minute[minute_of(minute)] = per_minute.get(minute_of(minute), 0) + requests

    def _observe(self, ts: float) -> None:
        if self.first_seen is None or ts < self.first_seen:
            self.first_seen = ts

    def prune(self, before: float) -> None:
        """Forget counts and arrivals older than ``before`` and jobs last pinged before it."""
        cutoff = minute_of(before)
        indexes: tuple[dict[str, dict[int, Any]], ...] = (
            self._counts,
            self._worker_pings,
            self._health_requests,
        )
        for index in indexes:
            for endpoint_id, per_minute in list(index.items()):
                for minute in [minute for minute in per_minute if minute < cutoff]:
                    del per_minute[minute]
                if not per_minute:
                    del index[endpoint_id]
        for key in [key for key, run in self._runs.items() if run.last < before]:
            del self._runs[key]
        for endpoint_id, jobs in list(self._jobs.items()):
            for job_id in [job_id for job_id, track in jobs.items() if track.last_seen < before]:
                del jobs[job_id]
            if not jobs:
                del self._jobs[endpoint_id]
        if self.first_seen is not None and self.first_seen < before:
            self.first_seen = before

    # -- queries --------------------------------------------------------------------------------------

    def endpoints(self) -> set[str]:
        return set(self._counts) | set(self._health_requests) | set(self._jobs)

    def count(self, endpoint_id: str, source: str, minute: float) -> MinuteCount:
        cell = self._counts.get(endpoint_id, {}).get(minute_of(minute), {}).get(source)
        return MinuteCount(cell[0], cell[1]) if cell else MinuteCount()

    def by_source(self, endpoint_id: str, start: float, end: float) -> dict[str, MinuteCount]:
        """Per-source totals over the minutes starting in [start, end)."""
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for _minute, sources in _window(self._counts.get(endpoint_id, {}), start, end):
            for source, (requests, pings) in sources.items():
                totals[source][0] += requests
                totals[source][1] += pings
        return {source: MinuteCount(r, p) for source, (r, p) in totals.items()}

    def endpoint_requests(self, endpoint_id: str, start: float, end: float) -> int:
        """Requests over [start, end): per minute the larger of the log count and the /health count.

        Logs and /health measure the same arrivals; whichever saw more in a minute is the better witness
        (logs may miss a path, /health has no source). Summing them would count everything twice.
        """
        log_minutes = {
            minute: sum(requests for requests, _pings in sources.values())
            for minute, sources in _window(self._counts.get(endpoint_id, {}), start, end)
        }
        health_minutes = dict(_window(self._health_requests.get(endpoint_id, {}), start, end))
        minutes = set(log_minutes) | set(health_minutes)
        return sum(max(log_minutes.get(m, 0), health_minutes.get(m, 0)) for m in minutes)

    def endpoint_pings(self, endpoint_id: str, start: float, end: float) -> int:
        return sum(
            pings
            for _minute, sources in _window(self._counts.get(endpoint_id, {}), start, end)
            for _requests, pings in sources.values()
        )

    def per_minute(self, endpoint_id: str, first_minute: int, minutes: int) -> tuple[int, ...]:
        """Requests (the larger of logs and /health, as :meth:`endpoint_requests`) + pings of each minute
        from ``first_minute`` on: the dashboard's sparkline, in one pass instead of a query per minute."""
        counts = self._counts.get(endpoint_id, {})
        health = self._health_requests.get(endpoint_id, {})
        if not counts and not health:  # most endpoints of a large fleet: nothing to look up
            return (0,) * minutes
        series = []
        for minute in range(first_minute, first_minute + minutes * _MINUTE, _MINUTE):
            sources = counts.get(minute)
            requests = pings = 0
            if sources:
                for source_requests, source_pings in sources.values():
                    requests += source_requests
                    pings += source_pings
            series.append(max(requests, health.get(minute, 0)) + pings)
        return tuple(series)

    def worker_pings(self, endpoint_id: str, start: float, end: float) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for _minute, workers in _window(self._worker_pings.get(endpoint_id, {}), start, end):
            for worker_id, pings in workers.items():
                totals[worker_id] += pings
        return dict(totals)

    def warm_run(self, endpoint_id: str, source: str) -> WarmRun | None:
        """The newest run of requests from ``source`` in which no gap reached the endpoint's idle timeout."""
        return self._runs.get((endpoint_id, source))

    def sources_with_arrivals(self) -> list[tuple[str, str]]:
        return sorted(self._runs)

    def jobs_in_pings(self, since: float) -> dict[str, dict[str, JobSeenInPings]]:
        """Job ids heartbeats reported at or after ``since``: {endpoint: {job_id: (worker, first, last)}}.

        This is how the daemon learns the ids of in-progress jobs, which RunPod's API does not list.
        """
        result: dict[str, dict[str, JobSeenInPings]] = {}
        for endpoint_id, jobs in self._jobs.items():
            recent = {
                job_id: JobSeenInPings(track.worker_id, track.first_seen, track.last_seen)
                for job_id, track in jobs.items()
                if track.last_seen >= since
            }
            if recent:
                result[endpoint_id] = recent
        return result

    def pings_for_job(self, endpoint_id: str, job_id: str) -> int:
        track = self._jobs.get(endpoint_id, {}).get(job_id)
        return track.pings if track else 0


def requests_from_health(previous: Health, current: Health) -> int:
    """New jobs between two /health readings: the growth of completed+failed+in_progress+in_queue.

    Every job is in exactly one of these states, so the sum only grows by arrivals. It can shrink when
    RunPod's rolling completed/failed counters age out; that is reported as 0, not as negative traffic.
    """

    def total(health: Health) -> int:
        return health.jobs_completed + health.jobs_failed + health.jobs_in_progress + health.jobs_in_queue

    return max(0, total(current) - total(previous))


# --------------------------------------------------------------------------------------------------------
# Detectors


def _last_full_minutes(now: float, minutes: int) -> list[int]:
    current = minute_of(now)
    return [current - _MINUTE * back for back in range(minutes, 0, -1)]


def _top_source(counts: TrafficCounter, endpoint_id: str, start: float, end: float, *, pings: bool) -> str:
    totals = counts.by_source(endpoint_id, start, end)
    if not totals:
        return UNKNOWN_SOURCE
    return max(totals.items(), key=lambda item: (item[1].pings if pings else item[1].requests, item[0]))[0]


def detect_rate(counts: TrafficCounter, now: float, thresholds: TrafficThresholds) -> list[TrafficFinding]:
    """Requests or pings per endpoint above a fixed per-minute limit, sustained.

    Math: for each of the last ``rate_sustain_minutes`` *full* minutes m (the running minute is incomplete
    and would under-count), take the endpoint's total n(m) (requests: per minute the larger of log and
    /health counts; pings: log counts). Flag when min over those minutes of n(m) > limit. A fixed limit is
    right here because a flood is obvious in absolute terms, and the minimum makes one burst not enough.
    The finding names the source with most of the traffic in the last minute, the one to cut off.
    """
    minutes = _last_full_minutes(now, max(1, thresholds.rate_sustain_minutes))
    start, end = minutes[0], minutes[-1] + _MINUTE
    findings: list[TrafficFinding] = []
    for endpoint_id in sorted(counts.endpoints()):
        request_counts = [counts.endpoint_requests(endpoint_id, m, m + _MINUTE) for m in minutes]
        if min(request_counts) > thresholds.max_requests_per_min:
            source = _top_source(counts, endpoint_id, minutes[-1], end, pings=False)
            findings.append(
                TrafficFinding(
                    endpoint_id,
                    source,
                    "rate",
                    f"{request_counts[-1]} requests in the last full minute (limit "
                    f"{thresholds.max_requests_per_min}/min), above the limit for {len(minutes)} minute(s); "
                    f"most came from {source}",
                    since=start,
                )
            )
        ping_counts = [counts.endpoint_pings(endpoint_id, m, m + _MINUTE) for m in minutes]
        if min(ping_counts) > thresholds.max_pings_per_min:
            source = _top_source(counts, endpoint_id, minutes[-1], end, pings=True)
            findings.append(
                TrafficFinding(
                    endpoint_id,
                    source,
                    "ping_rate",
                    f"{ping_counts[-1]} heartbeat pings in the last full minute (limit "
                    f"{thresholds.max_pings_per_min}/min), above the limit for {len(minutes)} minute(s)",
                    since=start,
                )
            )
    return findings


def detect_ping_rate(
    counts: TrafficCounter, now: float, thresholds: TrafficThresholds
) -> list[TrafficFinding]:
    """Heartbeats that betray a broken worker: too fast, or reporting one job for too long.

    Math, per worker: p = pings in each of the last ``rate_sustain_minutes`` full minutes; flag if
    min(p) > ``max_pings_per_worker_per_min``. The SDK pings every ``RUNPOD_PING_INTERVAL`` (10 s → 6/min),
    so 20/min means an interval under 3 s, e.g. a value below 1000 ms that the SDK turns into a busy loop.

    Per job: c = number of pings that listed the job id, counting from the first one seen. Each ping means
    "this job is still running one interval later", so c × interval approximates its run time (5000 pings at
    10 s ≈ 14 h). Flag if c ≥ ``max_pings_per_job`` and the job was reported within ``job_ping_recent_s``
    (it is still burning money). A steady 10 s heartbeat with short or no jobs never trips either test.
    """
    findings: list[TrafficFinding] = []
    minutes = _last_full_minutes(now, max(1, thresholds.rate_sustain_minutes))
    for endpoint_id in sorted(counts.endpoints()):
        per_minute = [counts.worker_pings(endpoint_id, m, m + _MINUTE) for m in minutes]
        workers = set().union(*per_minute)
        for worker_id in sorted(workers):
            series = [minute.get(worker_id, 0) for minute in per_minute]
            if min(series) > thresholds.max_pings_per_worker_per_min:
                findings.append(
                    TrafficFinding(
                        endpoint_id,
                        None,
                        "ping_rate",
                        f"worker {worker_id} sent {series[-1]} heartbeat pings in the last full minute "
                        f"(one every {60 / series[-1]:.1f} s; normal is one every 10 s, limit "
                        f"{thresholds.max_pings_per_worker_per_min}/min)",
                        since=minutes[0],
                        worker_id=worker_id,
                    )
                )
        recent = counts.jobs_in_pings(now - thresholds.job_ping_recent_s).get(endpoint_id, {})
        for job_id, seen in sorted(recent.items()):
            pings = counts.pings_for_job(endpoint_id, job_id)
            if pings < thresholds.max_pings_per_job:
                continue
            hours = (seen.last_seen - seen.first_seen) / _HOUR
            findings.append(
                TrafficFinding(
                    endpoint_id,
                    None,
                    "ping_rate",
                    f"job {job_id} on worker {seen.worker_id or '?'} was reported in progress by {pings} "
                    f"heartbeat pings over {hours:.1f} h (limit {thresholds.max_pings_per_job}); "
                    f"it looks hung and keeps its worker billed",
                    since=seen.first_seen,
                    job_id=job_id,
                    worker_id=seen.worker_id,
                )
            )
    return findings


def detect_keep_warm(
    counts: TrafficCounter,
    now: float,
    thresholds: TrafficThresholds,
    endpoints: Mapping[str, EndpointContext],
) -> list[TrafficFinding]:
    """A source whose requests keep a worker warm while asking it for almost no work.

    Math, per (endpoint, source) with idle timeout T: take the newest run of arrivals t_1 < ... < t_n in
    which every gap t_{i+1} - t_i < T (so the worker never reached its idle timeout) and which is still
    going (now - t_n < T); the counter keeps only (t_1, t_n, n) of it, split at the idle timeout RunPod
    last reported (:meth:`TrafficCounter.set_idle_timeouts`). Its warm time is D = t_n - t_1. With mean
    execution e, busy ratio b = min(1, n·e / D); a caller-supplied busy ratio replaces it. Flag if
    D ≥ ``keep_warm_min_minutes`` and b < ``keep_warm_max_busy_ratio``: the endpoint paid for D seconds of
    worker time to do n·e seconds of work. Example: a request every 3 s with 0.2 s jobs and T = 5 s gives
    b = 0.2/3 ≈ 7 %. Endpoints without context, or without e or b, are skipped: we cannot tell keep-warm
    from real load.
    """
    findings: list[TrafficFinding] = []
    for endpoint_id, source in counts.sources_with_arrivals():
        context = endpoints.get(endpoint_id)
        if context is None or context.idle_timeout_s <= 0:
            continue
        if context.busy_ratio is None and context.mean_execution_s is None:
            continue
        run = counts.warm_run(endpoint_id, source)
        if run is None or now - run.last >= context.idle_timeout_s or run.requests < 2:
            continue
        warm_s = run.last - run.first
        if warm_s < thresholds.keep_warm_min_minutes * _MINUTE:
            continue
        if context.busy_ratio is not None:
            busy = context.busy_ratio
            work = f"a busy ratio of {busy:.1%}"
        else:
            assert context.mean_execution_s is not None
            busy = min(1.0, run.requests * context.mean_execution_s / warm_s)
            work = f"jobs of about {context.mean_execution_s:g} s each, so the worker was busy {busy:.1%}"
        if busy >= thresholds.keep_warm_max_busy_ratio:
            continue
        mean_gap = warm_s / (run.requests - 1)
        findings.append(
            TrafficFinding(
                endpoint_id,
                source,
                "keep_warm",
                f"{source} sent {run.requests} requests over {warm_s / _MINUTE:.0f} min, one every "
                f"{mean_gap:.1f} s on average and never {context.idle_timeout_s:g} s (the idle timeout) "
                f"apart, with {work} of the time: the worker never got to scale down",
                since=run.first,
            )
        )
    return findings


def poisson_tail(k: int, lam: float) -> float:
    """P(X ≥ k) for X ~ Poisson(lam), computed in log space so large k or lam neither over- nor underflow.

    For k > lam the terms after k shrink geometrically (ratio lam/(i+1) < 1), so we sum upwards from
    p(k) = exp(k·ln lam − lam − ln k!). Otherwise the tail is large and we return 1 − P(X ≤ k−1), summing
    downwards from p(k−1) with p(i−1) = p(i)·i/lam.
    """
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0

    def log_pmf(i: int) -> float:
        return i * math.log(lam) - lam - math.lgamma(i + 1)

    if k > lam:
        term = math.exp(log_pmf(k))
        total = term
        i = k
        while term > total * 1e-17 and term > 0:
            i += 1
            term *= lam / i
            total += term
        return min(1.0, total)
    term = math.exp(log_pmf(k - 1))
    lower = term
    for i in range(k - 1, 0, -1):
        term *= i / lam
        lower += term
        if term < lower * 1e-17:
            break
    return max(0.0, min(1.0, 1.0 - lower))


def detect_jump(counts: TrafficCounter, now: float, thresholds: TrafficThresholds) -> list[TrafficFinding]:
    """The last hour's request count is implausibly high against the endpoint's own recent past.

    Math: k = requests in the 60 full minutes before now; the baseline is the window of up to
    ``jump_baseline_days`` before that hour (shortened to the observed history, and skipped if that is under
    ``jump_min_baseline_hours``). λ = baseline count / baseline hours, floored at
    ``jump_min_baseline_rate_per_hour``. Under "nothing changed", k ~ Poisson(λ); flag if
    P(X ≥ k | λ) < ``jump_p_value``, k ≥ ``jump_min_count`` and k ≥ ``jump_factor`` × λ. The Poisson test
    is exact at tiny counts where a normal approximation would cry wolf, and the factor keeps a busy
    endpoint's small, statistically certain rise quiet. Example: 100 requests/day gives λ ≈ 4.2/h; 40 in an
    hour has P ≈ 1e-20 (flag), 6 has P ≈ 0.24 (no flag).
    """
    findings: list[TrafficFinding] = []
    hour_end = minute_of(now)
    hour_start = hour_end - _HOUR
    observed_from = counts.first_seen
    if observed_from is None:
        return findings
    baseline_start = max(hour_start - thresholds.jump_baseline_days * _DAY, minute_of(observed_from))
    baseline_hours = (hour_start - baseline_start) / _HOUR
    if baseline_hours < thresholds.jump_min_baseline_hours:
        return findings
    for endpoint_id in sorted(counts.endpoints()):
        k = counts.endpoint_requests(endpoint_id, hour_start, hour_end)
        if k < thresholds.jump_min_count:
            continue
        baseline = counts.endpoint_requests(endpoint_id, baseline_start, hour_start)
        lam = max(baseline / baseline_hours, thresholds.jump_min_baseline_rate_per_hour)
        if k < thresholds.jump_factor * lam:
            continue
        p_value = poisson_tail(k, lam)
        if p_value >= thresholds.jump_p_value:
            continue
        source = _top_source(counts, endpoint_id, hour_start, hour_end, pings=False)
        findings.append(
            TrafficFinding(
                endpoint_id,
                source,
                "jump",
                f"{k} requests in the last hour against a usual {lam:.1f} per hour (over the previous "
                f"{baseline_hours / 24:.1f} days); by chance alone that would happen with probability "
                f"{p_value:.1g}; most came from {source}",
                since=hour_start,
            )
        )
    return findings


# --------------------------------------------------------------------------------------------------------
# The deny list the gateway reads


DENY_LIST_HEADER = (
    "# runpod-watchdog deny list: one source per line; lines starting with # are comments.\n"
    "# Written by the watchdog; manual edits are kept only if they add sources (it merges, never drops).\n"
)


class DenyList:
    """A text file of sources the team's gateway refuses, rewritten atomically.

    Atomic: the new content goes to a temporary file in the same directory, is fsynced, then
    ``os.replace``-d over the old one, so the gateway never reads half a file. Idempotent: if the sorted set
    of sources is unchanged, the file is not touched at all (its mtime stays, watchers don't fire).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DenyList({str(self.path)!r})"

    def read(self) -> set[str]:
        """The entries as written, one per ``\\n``-terminated line (never split on other Unicode line
        breaks: a U+2028 inside a line is that line's, and makes it an invalid entry, not two entries)."""
        try:
            text = self._read()
        except FileNotFoundError:
            return set()
        return {line for line in (raw.strip(" \t\r") for raw in text.split("\n")) if line and line[0] != "#"}

    def write(self, sources: Iterable[str]) -> bool:
        """Make the file list exactly ``sources``; returns whether the file changed.

        Raises ValueError when a source is not a usable entry (see :func:`deny_entry`)."""
        return self._write_lines(sorted({deny_entry(source) for source in sources}))

    def add(self, sources: Iterable[str]) -> bool:
        """Add ``sources`` to those already listed; returns whether it changed. Entries already in the file
        (manual additions) are kept as they are, valid or not: the watchdog only adds what it checked."""
        new = {deny_entry(source) for source in sources}
        current = self.read()
        if new <= current:
            return False
        return self._write_lines(sorted(current | new))

    def _read(self) -> str:
        with open(self.path, encoding="utf-8", newline="") as handle:  # no newline translation
            return handle.read()

    def _write_lines(self, entries: list[str]) -> bool:
        content = DENY_LIST_HEADER + "".join(f"{entry}\n" for entry in entries)
        try:
            if self._read() == content:
                return False
        except FileNotFoundError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as temp:
                temp.write(content)
                temp.flush()
                os.fsync(temp.fileno())
            os.chmod(temp_name, 0o640)
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return True


MIN_DENY_PREFIX = {4: 24, 6: 48}
"""The widest networks the watchdog may deny: an IPv4 /24, an IPv6 /48. A log claiming ``0.0.0.0/0`` as
its caller must not get the whole internet denied."""
MAX_DENY_ENTRY = 128
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def deny_entry(source: str) -> str:
    """The deny-list entry for a traffic source named in a log, or ValueError saying why it is not one.

    A source is an IP address, a network no wider than :data:`MIN_DENY_PREFIX`, or a client id (ASCII
    letters, digits and ``._:@-``, at most 128 characters). Logs are hostile: anything else (spaces,
    control or look-alike characters, wildcards, ``#``) is refused rather than written for a gateway to
    interpret."""
    if not isinstance(source, str) or not source or len(source) > MAX_DENY_ENTRY:
        raise ValueError(f"not a deny-list entry (empty or longer than {MAX_DENY_ENTRY}): {source[:40]!r}")
    if source == UNKNOWN_SOURCE:
        raise ValueError("cannot deny the unknown source: the log lines did not name one")
    if "/" in source:
        try:
            network = ipaddress.ip_network(source, strict=False)
        except ValueError:
            raise ValueError(f"not an address or network: {source!r}") from None
        widest = MIN_DENY_PREFIX[network.version]
        if network.prefixlen < widest:
            raise ValueError(f"{source} is wider than /{widest}: the watchdog denies callers, not networks")
        return str(network)
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(source))
    if not _CLIENT_ID.fullmatch(source):
        raise ValueError(f"not an address, a network or a client id: {source!r}")
    return source


def is_protected(source: str, protected: Iterable[str]) -> bool:
    """Whether ``source`` is one of the ``pings.never_cut`` sources (an exact entry, or an address inside
    a listed network)."""
    address = None
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(source)
    for entry in protected:
        if entry == source:
            return True
        if address is not None and "/" in entry:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
    return False
