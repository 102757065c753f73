"""Prometheus metrics, read from the daemon's in-memory ``DaemonStatus`` at scrape time.

The exporter guidelines say to collect at scrape time; RunPod is slow and rate-limited, so the daemon's last
tick is a deliberate, documented exception: ``collect()`` only reads the current ``DaemonStatus`` (no RunPod,
no SQLite), a scrape never fails because RunPod is down, and staleness is itself a metric
(``runpod_watchdog_last_tick_timestamp_seconds``, ``runpod_watchdog_blind``). Labelled series are created at 0
for every known endpoint, rule and outcome so alert expressions never meet a missing series.

The server is prometheus_client's threaded one (bound to loopback by default, optional TLS), so a scrape
never stalls the asyncio loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import product
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from watchdog import __version__
from watchdog.status import COLD_START_BUCKETS_S, DaemonStatus, StatusRef
from watchdog.vocabulary import RULE_ACTIONS, Mode, Outcome, SpendSource, WorkerStatus

PREFIX = "runpod_watchdog_"
WORKER_STATES = tuple(WorkerStatus)
JOB_STATES = ("completed", "failed", "inProgress", "inQueue", "retried")
"""The /health job counters, as the status carries them."""
MODES = tuple(Mode)
OUTCOMES = tuple(o for o in Outcome if o != Outcome.INTENDED)
"""Outcomes counted in runpod_watchdog_actions_total (an intent is followed by its outcome: not counted)."""
SPEND_SOURCES = tuple(SpendSource)
COMPLIANCE_CHECKS = ("execution_timeout", "idle_timeout", "max_workers", "min_standby")


class WatchdogCollector(Collector):
    """Yields the metric families from the current DaemonStatus (or only the static ones before the first
    tick)."""

    def __init__(self, status: StatusRef, *, clock: Any = time.time) -> None:
        self._status = status
        self._clock = clock

    def describe(self) -> list[Metric]:
        # Defining describe() stops the registry from calling collect() at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        status = self._status.get()
        info = InfoMetricFamily(PREFIX + "build", "Version of the watchdog.")
        info.add_metric([], {"version": __version__})
        yield info
        up = GaugeMetricFamily(PREFIX + "status_available", "1 once the daemon has completed its first tick.")
        up.add_metric([], 0 if status is None else 1)
        yield up
        if status is None:
            return
        yield from _daemon_metrics(status, self._clock(), status.last_ok_at)
        yield from _target_metrics(status)
        yield from _budget_metrics(status)
        yield from _endpoint_metrics(status)
        yield from _activity_metrics(status)


def _gauge(name: str, doc: str, value: float, unit: str = "") -> GaugeMetricFamily:
    family = GaugeMetricFamily(PREFIX + name, doc, unit=unit)
    family.add_metric([], value)
    return family


def _daemon_metrics(status: DaemonStatus, now: float, last_ok_at: float | None) -> Iterator[Metric]:
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
    # Never read RunPod completely (since this exporter started): the data is as old as the daemon.
    read_at = last_ok_at if last_ok_at is not None else status.started_at
    yield _gauge(
        "data_age_seconds",
        "Seconds since the last complete read of RunPod (it keeps growing while the daemon is blind).",
        max(0.0, now - read_at),
    )
    yield _gauge("ledger_size_bytes", "Size of the SQLite ledger (database + WAL).", status.ledger_bytes)
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
    workers = GaugeMetricFamily(PREFIX + "workers", "Live workers by state.", labels=["endpoint", "state"])
    jobs = GaugeMetricFamily(PREFIX + "jobs", "Jobs by state, from /health.", labels=["endpoint", "state"])
    cold = HistogramMetricFamily(
        PREFIX + "cold_start_seconds",
        "Cold start durations (see cold_start_target_seconds).",
        labels=["endpoint"],
    )
    gpu = CounterMetricFamily(
        PREFIX + "gpu_seconds",
        "Billed GPU seconds this month (resets at the start of a month).",
        labels=["endpoint", "gpu_type"],
    )
    cost = GaugeMetricFamily(
        PREFIX + "cost_per_1000_requests_usd",
        "GPU cost per 1,000 requests in USD (see cost_per_1000_requests_target_usd).",
        labels=["endpoint", "window"],
    )
    requests = GaugeMetricFamily(
        PREFIX + "requests", "Requests counted from logs and /health.", labels=["endpoint", "window"]
    )
    pings = GaugeMetricFamily(
        PREFIX + "pings", "Worker heartbeat pings seen in the logs.", labels=["endpoint", "window"]
    )
    spend = GaugeMetricFamily(
        PREFIX + "endpoint_month_spend_eur", "Month-to-date spend per endpoint.", labels=["endpoint"]
    )
    oldest = GaugeMetricFamily(
        PREFIX + "oldest_work_seconds",
        "Age of the oldest work in progress (0 when none).",
        labels=["endpoint"],
    )
    limit = GaugeMetricFamily(
        PREFIX + "work_limit_seconds", "Runaway limit for work in progress.", labels=["endpoint"]
    )
    compliant = GaugeMetricFamily(
        PREFIX + "endpoint_compliant",
        "1 when the endpoint's config follows the policy.",
        labels=["endpoint", "check"],
    )
    paused = GaugeMetricFamily(
        PREFIX + "endpoint_paused", "1 while the watchdog holds it at zero workers.", labels=["endpoint"]
    )
    suspicious = GaugeMetricFamily(
        PREFIX + "suspicious_traffic", "Number of current suspicious-traffic findings.", labels=["endpoint"]
    )
    for ep in status.endpoints:
        for worker_state in WORKER_STATES:
            workers.add_metric([ep.id, worker_state.lower()], ep.workers.get(worker_state, 0))
        for job_state in JOB_STATES:
            jobs.add_metric([ep.id, job_state], ep.jobs.get(job_state, 0))
        buckets = [
            (_edge(edge), float(count))
            for edge, count in zip(COLD_START_BUCKETS_S, ep.cold_start_buckets, strict=False)
        ]
        buckets.append(("+Inf", float(ep.cold_start_count)))
        cold.add_metric([ep.id], buckets, ep.cold_start_sum_s)
        by_type = ep.gpu_seconds_by_type or {"unknown": 0.0}
        for gpu_type, seconds in sorted(by_type.items()):
            gpu.add_metric([ep.id, gpu_type], seconds)
        cost.add_metric([ep.id, "month"], ep.cost_per_1000_month_usd or 0.0)
        cost.add_metric([ep.id, "24h"], ep.cost_per_1000_24h_usd or 0.0)
        requests.add_metric([ep.id, "month"], ep.requests_month)
        requests.add_metric([ep.id, "24h"], ep.requests_24h)
        requests.add_metric([ep.id, "1h"], ep.requests_1h)
        pings.add_metric([ep.id, "1h"], ep.pings_1h)
        spend.add_metric([ep.id], ep.spend_month_eur)
        oldest.add_metric([ep.id], ep.oldest_work_s or 0.0)
        limit.add_metric([ep.id], ep.work_limit_s)
        for check in COMPLIANCE_CHECKS:
            compliant.add_metric([ep.id, check], 1.0 if ep.compliance.get(check, True) else 0.0)
        paused.add_metric([ep.id], 1.0 if ep.paused else 0.0)
        suspicious.add_metric([ep.id], len(ep.suspicious))
    yield from (
        workers,
        jobs,
        cold,
        gpu,
        cost,
        requests,
        pings,
        spend,
        oldest,
        limit,
        compliant,
        paused,
        suspicious,
    )


def _edge(edge: float) -> str:
    return f"{edge:g}" if edge != int(edge) else f"{int(edge)}.0"


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
    status: StatusRef, *, with_process_metrics: bool = True, clock: Any = time.time
) -> CollectorRegistry:
    """``clock``: the daemon's time (``daemon.clock.now``), so ``data_age_seconds`` is measured on the same
    clock as ``last_tick_at`` (a simulated clock in tests; the wall clock in production)."""
    registry = CollectorRegistry()
    registry.register(WatchdogCollector(status, clock=clock))
    if with_process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9877`` or ``[::1]:9877`` → (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def serve_metrics(
    registry: CollectorRegistry, listen: str, *, certfile: str | None = None, keyfile: str | None = None
) -> tuple[Any, Any]:
    """Start the threaded exporter; returns (server, thread) so the daemon can ``server.shutdown()``."""
    host, port = parse_listen(listen)
    return start_http_server(
        port, addr=host, registry=registry, certfile=certfile or None, keyfile=keyfile or None
    )
