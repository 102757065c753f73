"""Prometheus metrics: the exposition is rendered once per published status and served as ready bytes.

Why: rendered at scrape time by a prometheus_client collector, 1,000 endpoints made 39,355 series (3 MB)
and cost 319 ms a scrape; 200 back-to-back scrapes starved the tick loop until the daemon went blind. Now:

- **Few series per endpoint.** Per endpoint only what an operator alerts on: ``SERIES_PER_ENDPOINT`` (14)
  series, none with a label whose values grow (workers by state, the queue, cost per 1,000 requests over
  24 h, month spend, the oldest work's age, paused, suspicious traffic, cold starts and those over the
  target, the age of its data). Breakdowns nobody alerts on per endpoint are account-wide (cold-start
  histogram, GPU seconds by GPU type, requests and pings, endpoints out of policy per check, REST quota
  use) or only in the status (control socket, dashboard) and the ledger (job tallies, the work limit,
  the month's cost per 1,000 requests).
- **Rendered once, off the loop.** ``MetricsPublisher`` wakes in its own thread when ``StatusRef``
  changes (once a tick), renders the text exposition with prometheus_client's own ``generate_latest``
  (so the format is the client library's) and its gzip, and swaps them in whole.
- **Served as bytes, by a server that cannot be held.** ``MetricsServer`` runs its own asyncio loop in
  its own thread, never the daemon's: a scrape copies bytes and formats two lines. It serves at most
  ``max_connections`` at once (when full, the oldest connection that has not sent its request yet is
  dropped for the newcomer; if every one is being answered, the newcomer gets a 503), a request must be
  complete ``request_timeout_s`` after connecting, and an answer not taken within ``write_timeout_s``
  closes the connection. TLS is optional (loopback needs none).

What a scrape computes: ``runpod_watchdog_data_age_seconds`` (on the daemon's clock, so it keeps growing
while ticks stop) and, at most once a second, the process and platform metrics. The exporter guidelines
say to collect at scrape time; RunPod is slow and rate-limited, so the daemon's last tick is a deliberate,
documented exception, and staleness is itself a metric (``last_tick_timestamp_seconds``, ``blind``,
``data_age_seconds``). Labelled series are created at 0 for every known endpoint, rule and outcome so alert
expressions never meet a missing series.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import product
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_go_float

from watchdog import __version__
from watchdog.status import COLD_START_BUCKETS_S, DaemonStatus, EndpointView, StatusRef
from watchdog.vocabulary import RULE_ACTIONS, Mode, Outcome, SpendSource, WorkerStatus

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_go_float: Callable[[float], str] = _untyped_go_float
"""prometheus_client's own float formatting (untyped), so hand-formatted lines match generate_latest's."""

PREFIX = "runpod_watchdog_"
WORKER_STATES = tuple(WorkerStatus)
QUEUE_JOB_STATES = ("inQueue",)
"""The /health job counters exported per endpoint: the live backlog. The others (completed, failed,
inProgress, retried) are RunPod's windowed tallies, kept in the status and the dashboard."""
MODES = tuple(Mode)
OUTCOMES = tuple(o for o in Outcome if o != Outcome.INTENDED)
"""Outcomes counted in runpod_watchdog_actions_total (an intent is followed by its outcome: not counted)."""
SPEND_SOURCES = tuple(SpendSource)
COMPLIANCE_CHECKS = ("execution_timeout", "idle_timeout", "max_workers", "min_standby")
REQUEST_WINDOWS = ("month", "24h", "1h")
DEFAULT_COLD_START_TARGET_S = 15.0
"""``slack.cold_start_alert_s``'s default, for a status stored by a version that had no targets."""
SERIES_PER_ENDPOINT = len(WORKER_STATES) + len(QUEUE_JOB_STATES) + 8
"""Series each endpoint adds, whatever it does: workers by state, the queue, and 8 single series."""

MAX_CONNECTIONS = 32
"""Connections served at once; Prometheus uses one per scrape (two for an HA pair)."""
REQUEST_TIMEOUT_S = 5.0
"""The request head (and the TLS handshake) must be complete this long after the connection opens."""
WRITE_TIMEOUT_S = 10.0
"""An answer the client has not taken this long after it was started closes the connection."""
MAX_REQUEST_BYTES = 16 * 1024
"""The longest request head accepted (Prometheus sends ~300 bytes)."""
PROCESS_METRICS_MAX_AGE_S = 1.0
"""Process metrics (RSS, CPU, descriptors) are read at most this often, however many scrapes come."""
LISTEN_BACKLOG = 128
_CHUNK = 64 * 1024
_ACCEPT_RETRY_MIN_S = 0.05
_ACCEPT_RETRY_MAX_S = 1.0
_ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN})
_GZIP_LEVEL = 6
_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's gzip container: one gzip member, which every client decodes (httpx and curl read only one)."""


# --------------------------------------------------------------------------------------------------------
# The series


class StatusCollector(Collector):
    """Yields the metric families of the current DaemonStatus at ``collect()`` time: client_python's way.

    The daemon does not serve through it (``MetricsPublisher`` renders the same families once per status);
    it is the plain prometheus_client exporter the benchmark compares against, and what tests read with
    ``generate_latest``."""

    def __init__(self, status: StatusRef, *, clock: Clock = time.time) -> None:
        self._status = status
        self._clock = clock

    def describe(self) -> list[Metric]:
        # Defining describe() stops the registry from calling collect() at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        status = self._status.get()
        yield from status_families(status)
        if status is not None:
            yield data_age_family(status, self._clock())


def status_families(status: DaemonStatus | None) -> Iterator[Metric]:
    """Every family the status defines (``data_age_seconds`` aside: it depends on when it is read)."""
    info = InfoMetricFamily(PREFIX + "build", "Version of the watchdog.")
    info.add_metric([], {"version": __version__})
    yield info
    up = GaugeMetricFamily(PREFIX + "status_available", "1 once the daemon has completed its first tick.")
    up.add_metric([], 0 if status is None else 1)
    yield up
    if status is None:
        return
    yield from _daemon_metrics(status)
    yield from _target_metrics(status)
    yield from _budget_metrics(status)
    yield from _endpoint_metrics(status)
    yield from _account_metrics(status)
    yield from _activity_metrics(status)


DATA_AGE_NAME = PREFIX + "data_age_seconds"
DATA_AGE_HELP = "Seconds since the last complete read of RunPod (it keeps growing while the daemon is blind)."


def data_age(status: DaemonStatus, now: float) -> float:
    # Never read RunPod completely (since this exporter started): the data is as old as the daemon.
    read_at = status.last_ok_at if status.last_ok_at is not None else status.started_at
    return max(0.0, now - read_at)


def data_age_family(status: DaemonStatus, now: float) -> GaugeMetricFamily:
    return _gauge("data_age_seconds", DATA_AGE_HELP, data_age(status, now))


def _gauge(name: str, doc: str, value: float, unit: str = "") -> GaugeMetricFamily:
    family = GaugeMetricFamily(PREFIX + name, doc, unit=unit)
    family.add_metric([], value)
    return family


def _daemon_metrics(status: DaemonStatus) -> Iterator[Metric]:
    yield _gauge("started_timestamp_seconds", "When the daemon started (Unix time).", status.started_at)
    yield _gauge(
        "last_tick_timestamp_seconds",
        "When the last tick finished (Unix time); its age tells how stale everything else is.",
        status.last_tick_at or 0.0,
    )
    yield _gauge(
        "last_tick_ok", "1 if the last tick read RunPod completely.", 1.0 if status.last_tick_ok else 0.0
    )
    yield _gauge("last_tick_duration_seconds", "Duration of the last tick.", status.last_tick_duration_s)
    yield _gauge("tick_interval_seconds", "Configured seconds between ticks.", status.tick_interval_s)
    yield _gauge(
        "blind",
        "1 when the daemon's data is stale or missing, so it takes no action.",
        1.0 if status.blind else 0.0,
    )
    yield _gauge("ledger_size_bytes", "Size of the SQLite ledger (database + WAL).", status.ledger_bytes)
    yield _gauge(
        "rest_calls_last_minute",
        "RunPod REST v2 calls the daemon's reads made over the last minute (see rest_quota_per_minute).",
        status.rest_calls_last_minute,
    )
    yield _gauge(
        "rest_quota_per_minute",
        "RunPod's REST v2 quota in calls a minute (its RateLimit-Policy header, else the assumed 60).",
        status.rest_quota_per_minute,
    )
    enforce = GaugeMetricFamily(PREFIX + "enforce_mode", "1 in enforce mode, 0 in dry-run.")
    enforce.add_metric([], 1.0 if status.mode == "enforce" else 0.0)
    yield enforce


def _target_metrics(status: DaemonStatus) -> Iterator[Metric]:
    """The configured targets, so alert rules compare against the daemon's configuration (no copy)."""
    targets = status.targets
    if targets is None:
        return
    yield _gauge(
        "cost_per_1000_requests_target_usd",
        "Configured limit of the GPU cost per 1,000 requests, USD (slack.cost_per_1000_alert_usd).",
        targets.cost_per_1000_usd,
    )
    yield _gauge(
        "cold_start_target_seconds",
        "Configured limit of the p95 cold start, seconds (slack.cold_start_alert_s).",
        targets.cold_start_s,
    )
    yield _gauge(
        "budget_brake_ratio",
        "Share of the budget at which the brake pauses endpoints outside the allow-list (budget.brake_at).",
        targets.brake_at,
    )


def _budget_metrics(status: DaemonStatus) -> Iterator[Metric]:
    budget = status.budget
    if budget is None:
        return
    yield _gauge("budget_eur", "Monthly budget in EUR.", budget.monthly_eur)
    spend = GaugeMetricFamily(
        PREFIX + "month_spend_eur",
        "Month-to-date spend in EUR by source: live estimate, RunPod billing (lags), fixed monthly costs.",
        labels=["source"],
    )
    for source, value in zip(
        SPEND_SOURCES, (budget.estimate_eur, budget.billed_eur, budget.fixed_eur), strict=True
    ):
        spend.add_metric([source], value)
    yield spend
    yield _gauge(
        "month_spend_counted_eur",
        "Month-to-date spend counted against the budget: fixed + per hour the larger of estimate and billed.",
        budget.spent_eur,
    )
    yield _gauge("budget_used_ratio", "Share of the monthly budget spent (1 = all of it).", budget.used_ratio)
    yield _gauge("forecast_eur", "Forecast spend at the end of the month in EUR.", budget.forecast_eur)
    yield _gauge(
        "forecast_overrun", "1 when the forecast exceeds the budget.", 1.0 if budget.forecast_overrun else 0.0
    )
    yield _gauge("month_remaining_seconds", "Time left in the month.", budget.days_left * 86400)
    yield _gauge(
        "eur_per_day_allowed", "EUR per day still allowed until the month ends.", budget.eur_per_day_allowed
    )
    yield _gauge(
        "free_requests_cost_eur", "Month-to-date cost of the requests offered free.", budget.free_share_eur
    )
    yield _gauge("usd_per_eur", "Configured exchange rate (USD for one EUR).", budget.usd_per_eur)


def _endpoint_metrics(status: DaemonStatus) -> Iterator[Metric]:
    """Per endpoint: SERIES_PER_ENDPOINT series, each one an operator alerts on."""
    target_s = status.targets.cold_start_s if status.targets else DEFAULT_COLD_START_TARGET_S
    workers = GaugeMetricFamily(PREFIX + "workers", "Live workers by state.", labels=["endpoint", "state"])
    jobs = GaugeMetricFamily(
        PREFIX + "jobs", "Jobs waiting in the endpoint's queue, from /health.", labels=["endpoint", "state"]
    )
    cost = GaugeMetricFamily(
        PREFIX + "cost_per_1000_requests_usd",
        "GPU cost per 1,000 requests over the last 24 h in USD (see cost_per_1000_requests_target_usd).",
        labels=["endpoint", "window"],
    )
    spend = GaugeMetricFamily(
        PREFIX + "endpoint_month_spend_eur", "Month-to-date spend per endpoint.", labels=["endpoint"]
    )
    oldest = GaugeMetricFamily(
        PREFIX + "oldest_work_seconds",
        "Age of the oldest work in progress (0 when none).",
        labels=["endpoint"],
    )
    paused = GaugeMetricFamily(
        PREFIX + "endpoint_paused", "1 while the watchdog holds it at zero workers.", labels=["endpoint"]
    )
    suspicious = GaugeMetricFamily(
        PREFIX + "suspicious_traffic", "Number of current suspicious-traffic findings.", labels=["endpoint"]
    )
    cold = CounterMetricFamily(
        PREFIX + "cold_starts",
        "Cold starts this month (resets at the start of a month).",
        labels=["endpoint"],
    )
    slow = CounterMetricFamily(
        PREFIX + "cold_starts_over_target",
        "Cold starts this month slower than cold_start_target_seconds (counted at the largest histogram "
        "bucket edge not above it: exact when the target is an edge, as the default is). More than 5 % of "
        "them is a p95 above it.",
        labels=["endpoint"],
    )
    age = GaugeMetricFamily(
        PREFIX + "endpoint_data_age_seconds",
        "Age of the endpoint's /health and workers at the last tick (0: read then; idle endpoints of a "
        "large fleet take turns, never beyond the policy's stale-data bound).",
        labels=["endpoint"],
    )
    for ep in status.endpoints:
        age.add_metric([ep.id], ep.data_age_s)
        for worker_state in WORKER_STATES:
            workers.add_metric([ep.id, worker_state.lower()], ep.workers.get(worker_state, 0))
        for job_state in QUEUE_JOB_STATES:
            jobs.add_metric([ep.id, job_state], ep.jobs.get(job_state, 0))
        cost.add_metric([ep.id, "24h"], ep.cost_per_1000_24h_usd or 0.0)
        spend.add_metric([ep.id], ep.spend_month_eur)
        oldest.add_metric([ep.id], ep.oldest_work_s or 0.0)
        paused.add_metric([ep.id], 1.0 if ep.paused else 0.0)
        suspicious.add_metric([ep.id], len(ep.suspicious))
        cold.add_metric([ep.id], ep.cold_start_count)
        slow.add_metric([ep.id], cold_starts_over(ep, target_s))
    yield from (workers, jobs, cost, spend, oldest, paused, suspicious, cold, slow, age)


def cold_starts_over(endpoint: EndpointView, target_s: float) -> int:
    """Cold starts slower than ``target_s``, from the cumulative buckets: those above the largest edge not
    above the target (all of them if the target is below the first edge). Exact when the target is an edge,
    otherwise it counts a few at or under the target too: an alert on it errs on the early side."""
    below = 0
    for edge, cumulative in zip(COLD_START_BUCKETS_S, endpoint.cold_start_buckets, strict=False):
        if edge > target_s:
            break
        below = cumulative
    return max(0, endpoint.cold_start_count - below)


def _edge(edge: float) -> str:
    return f"{edge:g}" if edge != int(edge) else f"{int(edge)}.0"


def _account_metrics(status: DaemonStatus) -> Iterator[Metric]:
    """Breakdowns summed over the endpoints: a fixed number of series whatever their count."""
    endpoints = status.endpoints
    yield _gauge("endpoints", "Endpoints the watchdog watches.", len(endpoints))
    buckets = [0] * len(COLD_START_BUCKETS_S)
    gpu_seconds: dict[str, float] = {}
    requests = dict.fromkeys(REQUEST_WINDOWS, 0)
    pings_1h = 0
    out_of_policy = dict.fromkeys(COMPLIANCE_CHECKS, 0)
    cold_sum, cold_count = 0.0, 0
    for ep in endpoints:
        for index, cumulative in enumerate(ep.cold_start_buckets[: len(buckets)]):
            buckets[index] += cumulative
        cold_sum += ep.cold_start_sum_s
        cold_count += ep.cold_start_count
        for gpu_type, seconds in ep.gpu_seconds_by_type.items():
            gpu_seconds[gpu_type] = gpu_seconds.get(gpu_type, 0.0) + seconds
        requests["month"] += ep.requests_month
        requests["24h"] += ep.requests_24h
        requests["1h"] += ep.requests_1h
        pings_1h += ep.pings_1h
        for check in COMPLIANCE_CHECKS:
            if not ep.compliance.get(check, True):
                out_of_policy[check] += 1
    cold = HistogramMetricFamily(
        PREFIX + "cold_start_seconds",
        "Cold start durations this month, all endpoints (resets at the start of a month; per endpoint: "
        "cold_starts_total and cold_starts_over_target_total).",
    )
    pairs = [(_edge(edge), float(count)) for edge, count in zip(COLD_START_BUCKETS_S, buckets, strict=True)]
    pairs.append(("+Inf", float(cold_count)))
    cold.add_metric([], pairs, cold_sum)
    yield cold
    gpu = CounterMetricFamily(
        PREFIX + "gpu_seconds",
        "Billed GPU seconds this month, all endpoints, by GPU type (resets at the start of a month).",
        labels=["gpu_type"],
    )
    for gpu_type, seconds in sorted((gpu_seconds or {"unknown": 0.0}).items()):
        gpu.add_metric([gpu_type], seconds)
    yield gpu
    counted = GaugeMetricFamily(
        PREFIX + "requests", "Requests counted from logs and /health, all endpoints.", labels=["window"]
    )
    for window in REQUEST_WINDOWS:
        counted.add_metric([window], requests[window])
    yield counted
    pings = GaugeMetricFamily(
        PREFIX + "pings", "Worker heartbeat pings seen in the logs, all endpoints.", labels=["window"]
    )
    pings.add_metric(["1h"], pings_1h)
    yield pings
    policy = GaugeMetricFamily(
        PREFIX + "endpoints_noncompliant",
        "Endpoints whose config breaks the policy, by check (which ones: the dashboard and the ledger).",
        labels=["check"],
    )
    for check in COMPLIANCE_CHECKS:
        policy.add_metric([check], out_of_policy[check])
    yield policy


def _activity_metrics(status: DaemonStatus) -> Iterator[Metric]:
    actions = CounterMetricFamily(
        PREFIX + "actions", "Decisions taken or proposed.", labels=["rule", "action", "mode", "outcome"]
    )
    seen = dict(status.actions)
    for rule, names in RULE_ACTIONS.items():
        for action, mode, outcome in product(names, MODES, OUTCOMES):
            seen.setdefault(f"{rule}|{action}|{mode}|{outcome}", 0)
    for key, count in sorted(seen.items()):
        actions.add_metric(key.split("|", 3), count)
    yield actions
    saved = CounterMetricFamily(
        PREFIX + "saved_usd",
        "Money saved by actions (enforce) or that would have been saved (dry-run), USD.",
        labels=["rule", "mode"],
    )
    saved_seen = dict(status.saved_usd)
    for rule, mode in product(RULE_ACTIONS, MODES):
        saved_seen.setdefault(f"{rule}|{mode}", 0.0)
    for key, value in sorted(saved_seen.items()):
        saved.add_metric(key.split("|", 1), value)
    yield saved
    calls = CounterMetricFamily(
        PREFIX + "api_calls", "RunPod API calls by route and status.", labels=["route", "status"]
    )
    for key, count in sorted(status.api_calls.items()):
        calls.add_metric(key.rsplit("|", 1), count)
    yield calls
    sent = CounterMetricFamily(PREFIX + "alerts_sent", "Alerts delivered (Slack or log).")
    sent.add_metric([], status.alerts_sent)
    yield sent
    yield _gauge(
        "alerts_pending", "Alerts written to the ledger and not yet delivered.", status.alerts_pending
    )
    yield _gauge(
        "last_billing_timestamp_seconds",
        "When RunPod's billing was last read (Unix time).",
        status.last_billing_at or 0.0,
    )
    yield from _robustness_metrics(status)


BAD_RECORD_KINDS = ("log_line", "job_id_in_ping", "job_status")
"""Kinds of record the daemon skips as hostile or malformed (pre-seeded at 0)."""


def _robustness_metrics(status: DaemonStatus) -> Iterator[Metric]:
    """What could blind the guard, made visible: the ledger, alert delivery, skipped records."""
    yield _gauge(
        "ledger_up",
        "1 while the ledger accepts writes; 0 while it refuses them (the daemon guards from memory).",
        0.0 if status.ledger_problem else 1.0,
    )
    yield _gauge(
        "alerts_undelivered",
        "Alerts the dispatcher holds and has not delivered (Slack down, or the webhook refused).",
        status.alerts_undelivered,
    )
    yield _gauge(
        "balance_known",
        "1 while the account's balance can be read (GraphQL, optional: it retires in early 2027).",
        0.0 if status.account_problem else 1.0,
    )
    if status.balance_usd is not None:
        yield _gauge(
            "balance_usd", "The account's balance, as RunPod's GraphQL API reports it.", status.balance_usd
        )
    if status.spend_rate_cap_usd_per_hr is not None:
        yield _gauge(
            "spend_rate_cap_usd_per_hour",
            "RunPod's hourly spend cap: checked when a worker starts, it never stops a running one.",
            status.spend_rate_cap_usd_per_hr,
        )
    yield _gauge(
        "quota_limited",
        "1 when RunPod's rate limit held the last tick's read up (that tick is not ok, see last_tick_ok).",
        1.0 if status.quota_wait else 0.0,
    )
    if status.slack_webhook != "absent":
        yield _gauge(
            "slack_webhook_up",
            "1 while Slack takes the alert webhook's messages; 0 while it fails or refuses it.",
            1.0 if status.slack_webhook == "ok" else 0.0,
        )
    bad = CounterMetricFamily(
        PREFIX + "bad_records",
        "Hostile or malformed records skipped (each counted and logged, never failing a tick).",
        labels=["kind"],
    )
    seen = {kind: 0 for kind in BAD_RECORD_KINDS} | dict(status.bad_records)
    for kind, count in sorted(seen.items()):
        bad.add_metric([kind], count)
    yield bad


def build_registry(
    status: StatusRef, *, with_process_metrics: bool = True, clock: Clock = time.time
) -> CollectorRegistry:
    """A prometheus_client registry that renders the status at every scrape (client_python alone).

    ``clock``: the daemon's time (``daemon.clock.now``), so ``data_age_seconds`` is measured on the same
    clock as ``last_tick_at`` (a simulated clock in tests; the wall clock in production)."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(status, clock=clock))
    if with_process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


# --------------------------------------------------------------------------------------------------------
# Rendering once per status


class _Families(Collector):
    """Hands ``generate_latest`` a list of families already built."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass(frozen=True, slots=True)
class Exposition:
    """One status rendered: the text and, compressed once, its gzip without the trailer.

    ``gzip`` holds the compressor after a sync flush: a scrape copies it, compresses its own few lines
    (data age, process metrics) and finishes the member, so the status part is never compressed twice."""

    version: int
    status: DaemonStatus | None
    text: bytes
    gzip_head: bytes
    gzip: zlib._Compress


def render(status: DaemonStatus | None, version: int = 0) -> Exposition:
    """The status part of the exposition, as prometheus_client's text format, and its gzip head."""
    text = generate_latest(_Families(list(status_families(status))))
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    head = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Exposition(version, status, text, head, compressor)


_DATA_AGE_HEAD = (f"# HELP {DATA_AGE_NAME} {DATA_AGE_HELP}\n# TYPE {DATA_AGE_NAME} gauge\n").encode()


class MetricsPublisher:
    """Keeps the exposition of the latest status: rendered in its own thread once per ``StatusRef`` change.

    ``body()`` (any thread) returns the bytes of a whole scrape: the status part as rendered, then
    ``data_age_seconds`` and the process metrics (read at most every ``PROCESS_METRICS_MAX_AGE_S``)."""

    def __init__(
        self,
        status: StatusRef,
        *,
        clock: Clock = time.time,
        with_process_metrics: bool = True,
        monotonic: Clock = time.monotonic,
    ) -> None:
        self._status = status
        self._clock = clock
        self._monotonic = monotonic
        self._exposition = render(None, -1)
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._process = CollectorRegistry() if with_process_metrics else None
        if self._process is not None:
            ProcessCollector(registry=self._process)
            PlatformCollector(registry=self._process)
        self._process_text = b""
        self._process_read_at = float("-inf")
        self._tail_lock = threading.Lock()
        self._rendered = threading.Condition()
        self.renders = 0
        """How many times a status was rendered (tests and the benchmark read it)."""
        self.last_render_s = 0.0
        """Wall seconds the last render took."""

    # -- rendering ---------------------------------------------------------------------------------------

    def refresh(self) -> Exposition:
        """Render now if the status changed since the last render; returns the current exposition."""
        version, status = self._status.get_versioned()
        current = self._exposition
        if version != current.version:
            began = time.perf_counter()
            current = render(status, version)
            self.last_render_s = time.perf_counter() - began
            self.renders += 1
            with self._rendered:
                self._exposition = current  # one reference swapped whole: readers see the old or the new
                self._rendered.notify_all()
        return current

    def wait_current(self, timeout_s: float = 5.0) -> bool:
        """Block until the exposition is that of the status now published (tests and the benchmark: the
        renderer thread lags a ``StatusRef.set`` by one render). Renders here if no thread runs."""
        if self._thread is None:
            self.refresh()
            return True
        deadline = time.monotonic() + timeout_s
        with self._rendered:
            while self._exposition.version != self._status.get_versioned()[0]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._rendered.wait(remaining)
        return True

    def start(self) -> None:
        """Render the current status, then re-render in a thread whenever it changes (no-op if running)."""
        if self._thread is not None:
            return
        self._stopping = False
        self.refresh()
        self._unsubscribe = self._status.subscribe(self._wake.set)
        self._thread = threading.Thread(target=self._render_forever, name="metrics-render", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _render_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.refresh()
            except Exception:  # a bug must not stop /metrics: the last exposition is served meanwhile
                log.exception("metrics: rendering the status failed; serving the previous one")

    # -- a scrape ----------------------------------------------------------------------------------------

    def _tail(self, exposition: Exposition) -> bytes:
        parts = []
        if exposition.status is not None:
            age = data_age(exposition.status, self._clock())
            parts.append(_DATA_AGE_HEAD + f"{DATA_AGE_NAME} {_go_float(age)}\n".encode())
        if self._process is not None:
            with self._tail_lock:
                now = self._monotonic()
                if now - self._process_read_at >= PROCESS_METRICS_MAX_AGE_S:
                    self._process_text = generate_latest(self._process)
                    self._process_read_at = now
                parts.append(self._process_text)
        return b"".join(parts)

    def body_parts(self, *, gzip: bool = False) -> tuple[bytes, ...]:
        """A whole scrape's answer, plain or as one gzip member, in pieces (the status part is not copied)."""
        exposition = self._exposition
        tail = self._tail(exposition)
        if not gzip:
            return exposition.text, tail
        compressor = exposition.gzip.copy()
        return exposition.gzip_head, compressor.compress(tail) + compressor.flush()

    def body(self, *, gzip: bool = False) -> bytes:
        """``body_parts`` joined."""
        return b"".join(self.body_parts(gzip=gzip))


# --------------------------------------------------------------------------------------------------------
# Serving the bytes


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9877`` or ``[::1]:9877`` → (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(slots=True)
class _Client:
    task: asyncio.Task[None]
    opened: float
    answering: bool = False
    """False while the request is still being read: such a client is the one dropped when full."""


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def _response_head(code: int, length: int, *, content_type: str, gzip: bool = False) -> bytes:
    lines = [
        f"HTTP/1.1 {code} {_REASONS[code]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        "Connection: close",
    ]
    if gzip:
        lines.append("Content-Encoding: gzip")
    if code == 200:
        lines.append("Vary: Accept-Encoding")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _error_response(code: int, text: str) -> bytes:
    body = (text + "\n").encode()
    return _response_head(code, len(body), content_type="text/plain; charset=utf-8") + body


_BUSY = _error_response(503, "too many connections")


def _accepts_gzip(head: list[bytes]) -> bool:
    """Whether the request's ``Accept-Encoding`` lists gzip without ``q=0``."""
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() != b"accept-encoding":
            continue
        for coding in value.split(b","):
            token, *params = (part.strip().lower() for part in coding.split(b";"))
            if token == b"gzip":
                for param in params:
                    key, _, weight = param.partition(b"=")
                    with contextlib.suppress(ValueError):
                        if key.strip() == b"q" and float(weight) == 0:
                            return False
                return True
    return False


class MetricsServer:
    """HTTP/1.1 on one listening socket: ``GET /metrics`` answers the publisher's bytes; nothing else.

    Runs its own asyncio loop in its own thread (``metrics-http``): a scrape, a flood of them or a hostile
    client never runs on the daemon's loop. Every answer closes its connection (Prometheus opens one per
    scrape; keep-alive would only let idle clients hold slots)."""

    def __init__(
        self,
        publisher: MetricsPublisher,
        listen: str,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> None:
        self.publisher = publisher
        self.listen = listen
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self.write_timeout_s = write_timeout_s
        self._ssl: ssl.SSLContext | None = None
        if certfile:
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(certfile, keyfile or None)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._clients: dict[asyncio.Task[None], _Client] = {}
        self.served = 0
        self.refused = 0
        self.dropped = 0
        """Connections closed unanswered: dropped for a newcomer when full, or too slow."""

    @property
    def server_port(self) -> int:
        assert self._listener is not None, "start() first"
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        """Bind and listen now (an ``OSError`` here means the address is taken), then serve in a thread."""
        host, port = parse_listen(self.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(LISTEN_BACKLOG)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self.publisher.start()
        self._thread = threading.Thread(target=self._run, name="metrics-http", daemon=True)
        self._thread.start()
        self._started.wait(5.0)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop serving (connections in progress are cut), close the socket, stop the renderer."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.publisher.stop(timeout_s)

    # -- the server's own loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            log.exception("metrics: the HTTP server stopped")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        assert self._listener is not None
        acceptor = asyncio.create_task(self._accept_forever(self._listener), name="metrics-accept")
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            acceptor.cancel()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(acceptor, *self._clients, return_exceptions=True)

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        retry_s = _ACCEPT_RETRY_MIN_S
        failing_since: float | None = None
        while True:
            try:
                conn, _address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                # EMFILE/ENFILE (no descriptor left): pending connections wait in the kernel's backlog.
                if failing_since is None:
                    failing_since = loop.time()
                    log.warning("metrics: cannot accept connections (%s); retrying", exc.strerror or exc)
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, _ACCEPT_RETRY_MAX_S)
                continue
            retry_s = _ACCEPT_RETRY_MIN_S
            if failing_since is not None:
                log.info("metrics: accepting connections again after %.1f s", loop.time() - failing_since)
                failing_since = None
            self._admit(conn)
            await asyncio.sleep(0)  # let the newcomer read what it already sent before the next accept

    def _admit(self, conn: socket.socket) -> None:
        if len(self._clients) >= self.max_connections:
            waiting = [c for c in self._clients.values() if not c.answering]
            if waiting:
                # The oldest client that has not completed its request yet makes room: a scraper sends
                # its request at once, so an idle or trickling connection is what a flood is made of.
                oldest = min(waiting, key=lambda c: c.opened)
                oldest.task.cancel()
                del self._clients[oldest.task]
                self.dropped += 1
            else:
                with contextlib.suppress(OSError):
                    conn.send(_BUSY)  # into an empty socket buffer: never blocks
                conn.close()
                self.refused += 1
                return
        conn.setblocking(False)
        task = asyncio.create_task(self._serve(conn), name="metrics-client")
        loop = asyncio.get_running_loop()
        self._clients[task] = _Client(task, loop.time())
        task.add_done_callback(lambda t: self._clients.pop(t, None))

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        transport: asyncio.Transport | None = None
        try:
            reader = asyncio.StreamReader(limit=MAX_REQUEST_BYTES)
            protocol = asyncio.StreamReaderProtocol(reader)
            async with asyncio.timeout(self.request_timeout_s):
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol,
                    sock=conn,
                    ssl=self._ssl,
                    ssl_handshake_timeout=self.request_timeout_s if self._ssl else None,
                )
                writer = asyncio.StreamWriter(transport, protocol, reader, loop)
                answer = await self._read_request(reader)
            client = self._clients.get(me) if me is not None else None
            if client is not None:
                client.answering = True
            async with asyncio.timeout(self.write_timeout_s):
                for part in answer:
                    view = memoryview(part)
                    for start in range(0, len(view), _CHUNK):  # bounded buffering per connection
                        writer.write(view[start : start + _CHUNK])
                        await writer.drain()
                writer.close()
                await writer.wait_closed()
            self.served += 1
        except TimeoutError:
            self.dropped += 1
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the peer went away, or spoke something else than HTTP: nothing to tell anyone
        except Exception:  # a bug here must not kill the server or leak the descriptor
            log.exception("metrics: a connection failed")
        finally:
            if transport is not None:
                transport.abort()  # no-op after a clean close; cuts a slow or evicted one at once
            else:
                conn.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, ...]:
        """The answer, in pieces, to the request on ``reader`` (its head only: GET and HEAD have no body)."""
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return (_error_response(431, "request head too long"),)
        head = raw.split(b"\r\n")
        parts = head[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return (_error_response(400, "not an HTTP request"),)
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return (_error_response(405, "only GET"),)
        path = target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/"):
            return (_error_response(404, "try /metrics"),)
        gzip = _accepts_gzip(head)
        body = self.publisher.body_parts(gzip=gzip)
        length = sum(len(part) for part in body)
        response_head = _response_head(200, length, content_type=CONTENT_TYPE_PLAIN_0_0_4, gzip=gzip)
        return (response_head,) if method == b"HEAD" else (response_head, *body)


def start_exporter(
    status: StatusRef,
    listen: str,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    clock: Clock = time.time,
    with_process_metrics: bool = True,
) -> MetricsServer:
    """Start the daemon's exporter (its renderer thread and its HTTP thread); ``shutdown()`` stops both.

    ``clock``: the daemon's time (``daemon.clock.now``), so ``data_age_seconds`` is measured on the same
    clock as ``last_tick_at``.

    Raises:
        OSError: the address cannot be listened on (taken, not local).
    """
    publisher = MetricsPublisher(status, clock=clock, with_process_metrics=with_process_metrics)
    server = MetricsServer(publisher, listen, certfile=certfile, keyfile=keyfile)
    server.start()
    return server


def serve_metrics(
    registry: CollectorRegistry, listen: str, *, certfile: str | None = None, keyfile: str | None = None
) -> tuple[Any, Any]:
    """client_python alone: its threaded server, rendering ``registry`` at every scrape, with no connection
    cap or timeout. The benchmark's baseline; the daemon serves with ``start_exporter``."""
    host, port = parse_listen(listen)
    return start_http_server(
        port, addr=host, registry=registry, certfile=certfile or None, keyfile=keyfile or None
    )
