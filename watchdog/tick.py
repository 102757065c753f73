"""One tick of the daemon: fetch → track → evaluate → execute → record → publish.

1. **fetch**: new log lines (pings and requests) from every configured source; then RunPod: endpoints
   (+ GraphQL ``workersStandby``), each watched endpoint's workers and ``/health``, the status of every job
   the daemon knows to be open (learnt from heartbeat pings, or cancelled and under watch), and, every
   ``billing_interval_s``, the month's hourly billing. Any failed read makes the tick *blind*, except the
   two that only add to what the tick already knows: GraphQL ``workersStandby`` and the billing (which lags
   by hours anyway; on failure the month to date keeps the live estimate and the billed hours already in
   the ledger, and billing is retried after ``billing_interval_s``).
2. **track**: the :class:`~watchdog.tracker.Tracker` turns snapshots into durations (worker ``state_since``,
   job ages, cold starts, health deltas); the live estimate accrues ``(last_accounted_at, now]`` from the
   previous poll's workers (an unobserved gap longer than ``stale_after_s`` is accounted with no accruals:
   RunPod's billing covers it through the per-hour max-of-two rule).
3. **evaluate**: a :class:`~watchdog.policy.PolicyView` (limits, workers, jobs, health, budget, brakes,
   traffic findings, the daemon's recent actions) goes through :func:`watchdog.policy.evaluate`. A blind
   tick yields one ``blind`` decision and nothing else.
4. **execute**: :class:`~watchdog.executor.Executor` acts on enforce decisions and records dry-run ones as
   proposals; earlier actions are verified against this tick's observation.
5. **record**: everything (interval, spend, billing, configs, workers, jobs, traffic, brakes, decisions,
   alerts, the status JSON) in ONE ledger transaction.
6. **publish**: the :class:`~watchdog.status.DaemonStatus` goes to the StatusRef (metrics, control socket)
   and the alert dispatcher is woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watchdog import policy
from watchdog.alerts import budget_alert_text, format_eur
from watchdog.clock import hour_start, month_start
from watchdog.errors import RunPodAuthError, RunPodError, RunPodNotFound
from watchdog.executor import BRAKE_KIND_RULE, Execution, Observation, brake_entry
from watchdog.ledger import (
    UNATTRIBUTED_ENDPOINT,
    AccountingInterval,
    Alert,
    BilledSpend,
    ConfigObservation,
    JobUpdate,
    SpendAccrual,
    TickRecord,
    TrafficCount,
    WorkerUpdate,
)
from watchdog.ledger import Decision as LedgerDecision
from watchdog.logwatch import LogEvent
from watchdog.models import BillingReport, EndpointConfig, Health, Worker, WorkerStatus
from watchdog.money import (
    ACCOUNT_WIDE,
    BILLED_STATES,
    MonthToDate,
    accrue_interval,
    billed_by_hour,
    budget_status,
    cold_start_stats,
    cost_per_1000_requests,
    free_share_cost,
    measured_free_share,
    month_to_date,
    session_rounding_usd,
    usd_to_eur,
)
from watchdog.status import (
    COLD_START_BUCKETS_S,
    BudgetView,
    DaemonStatus,
    EndpointView,
)
from watchdog.traffic import (
    EndpointContext,
    TrafficFinding,
    TrafficThresholds,
    detect_jump,
    detect_keep_warm,
    detect_ping_rate,
    detect_rate,
    minute_of,
)

if TYPE_CHECKING:
    from watchdog.daemon import Daemon

log = logging.getLogger(__name__)

MAX_JOB_POLLS_PER_TICK = 20
"""Job status calls per tick, oldest jobs first (the runtime allows thousands per 10 s; we need few)."""
HEALTH_SOURCE = "(health)"
"""Traffic rows derived from /health counter growth (no caller known)."""
DAY_S = 86400.0


@dataclass
class Snapshot:
    """What one tick read from RunPod."""

    endpoints: tuple[EndpointConfig, ...] = ()
    workers: dict[str, tuple[Worker, ...]] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    jobs: dict[str, tuple[str, Any]] = field(default_factory=dict)
    """Job id → (endpoint id, models.Job)."""
    gone_jobs: set[str] = field(default_factory=set)
    billing: BillingReport | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What :meth:`Daemon.tick` did, for tests and the run loop."""

    tick_id: int | None
    started_at: float
    finished_at: float
    ok: bool
    blind: bool
    error: str | None
    decisions: tuple[policy.Decision, ...]
    rows: tuple[LedgerDecision, ...]
    """Ledger decision rows written by this tick (executions, proposals, verifications)."""
    new_alerts: tuple[str, ...]
    status: DaemonStatus | None

    @property
    def actions(self) -> tuple[LedgerDecision, ...]:
        """The enforced steps of this tick (applied or failed)."""
        return tuple(r for r in self.rows if r.outcome in ("applied", "failed"))


# ------------------------------------------------------------------------------------------------------------
# 1. fetch


def read_logs(d: Daemon) -> list[LogEvent]:
    events: list[LogEvent] = []
    for tailer in d.tailers:
        while True:
            result = tailer.read_new()
            events.extend(result.events)
            for problem in result.errors:
                log.warning("log source %s: %s", tailer.spec.name, problem)
            if not result.more_pending:
                break
    return events


async def fetch(d: Daemon, now: float) -> Snapshot:
    snap = Snapshot()
    client = d.client
    try:
        listed = await client.list_endpoints()
        standby: dict[str, int] = {}
        try:
            standby = (await client.account_spend()).workers_standby
        except RunPodAuthError:
            raise
        except RunPodError as exc:  # GraphQL adds only workersStandby: degrade, do not go blind
            log.warning("GraphQL account read failed (workersStandby unknown): %s", exc)
        watched = []
        for listed_endpoint in listed:
            if not d.config.policy_for(listed_endpoint.id, listed_endpoint.name).watched:
                continue
            standby_count = standby.get(listed_endpoint.id)
            watched.append(
                listed_endpoint
                if standby_count is None
                else replace(listed_endpoint, workers_standby=standby_count)
            )
        snap.endpoints = tuple(sorted(watched, key=lambda e: e.id))

        async def one(endpoint_id: str) -> None:
            workers, health = await asyncio.gather(
                client.list_workers(endpoint_id), client.health(endpoint_id)
            )
            snap.workers[endpoint_id] = workers.workers
            snap.health[endpoint_id] = health

        await asyncio.gather(*(one(e.id) for e in snap.endpoints))
        d.tracker.learn_jobs_from_pings(now)
        known = {e.id for e in snap.endpoints}
        for endpoint_id, job_id in d.tracker.open_job_ids()[:MAX_JOB_POLLS_PER_TICK]:
            if endpoint_id not in known:
                continue
            try:
                snap.jobs[job_id] = (endpoint_id, await client.job_status(endpoint_id, job_id))
            except RunPodNotFound:
                snap.gone_jobs.add(job_id)
        interval_s = d.config.runpod.billing_interval_s
        failed_at = d.tracker.billing_failed_at
        due = (d.last_billing_at is None or now - d.last_billing_at >= interval_s) and (
            failed_at is None or now - failed_at >= interval_s
        )
        if due:
            try:
                snap.billing = await client.serverless_billing(start=month_start(now), bucket_size="hour")
                d.tracker.billing_failed_at = None
            except RunPodAuthError:
                raise
            except RunPodError as exc:  # billing lags by hours anyway: degrade, do not go blind
                d.tracker.billing_failed_at = now
                log.warning(
                    "billing read failed (month to date uses the live estimate and the billed hours already "
                    "in the ledger; retried in %.0f s): %s",
                    interval_s,
                    exc,
                )
    except RunPodAuthError as exc:
        if d.tracker.last_ok is None:
            raise
        snap.error = f"{exc.title}: {exc}"
    except RunPodError as exc:
        snap.error = f"{exc.title}: {exc}"
    return snap


# ------------------------------------------------------------------------------------------------------------
# The tick


async def run_tick(d: Daemon) -> TickOutcome:
    config = d.config
    now = d.clock.now()
    tracker = d.tracker
    if d.month != month_start(now):
        d.new_month(now)

    # 1. fetch ------------------------------------------------------------------------------------------
    events = read_logs(d)
    tracker.traffic.add_events(events)
    traffic_rows = _traffic_rows(events)
    snap = await fetch(d, now)
    ok = snap.error is None

    estimates: list[SpendAccrual] = []
    billed: list[BilledSpend] = []
    worker_rows: list[WorkerUpdate] = []
    job_rows: list[JobUpdate] = []
    configs: list[ConfigObservation] = []
    interval: AccountingInterval | None = None
    endpoint_views: list[policy.EndpointFacts] = []
    crash_windows: dict[str, policy.CrashWindow] = {}

    # 2. track --------------------------------------------------------------------------------------------
    if ok:
        tracker.last_ok = now
        tracker.forget_endpoints(e.id for e in snap.endpoints)
        interval, estimates, worker_rows = _account(d, snap, now)
        for endpoint in snap.endpoints:
            configs.append(_config_observation(endpoint))
            requests, crash_windows[endpoint.id] = tracker.observe_health(
                endpoint.id, snap.health[endpoint.id], now
            )
            if requests:
                traffic_rows.append(
                    TrafficCount(endpoint.id, HEALTH_SOURCE, float(minute_of(now)), requests, 0)
                )
        d.count_tiers(events, now)
        log_requests: dict[str, int] = defaultdict(int)
        for event in events:
            if event.kind == "request":
                log_requests[event.endpoint_id] += 1
        health_requests = {r.endpoint_id: r.requests for r in traffic_rows if r.source == HEALTH_SOURCE}
        for endpoint in snap.endpoints:
            d.requests_month[endpoint.id] += max(
                log_requests.get(endpoint.id, 0), health_requests.get(endpoint.id, 0)
            )
        for endpoint_id in d.brakes:
            tracker.note_held(endpoint_id, now)
        for job_id, (endpoint_id, job) in snap.jobs.items():
            track = tracker.update_job(
                endpoint_id,
                job_id,
                job.status,
                now,
                worker_id=job.worker_id,
                delay_ms=job.delay_time_ms,
                execution_ms=job.execution_time_ms,
            )
            job_rows.append(
                JobUpdate(
                    job_id=job_id,
                    endpoint_id=endpoint_id,
                    status=job.status.value,
                    source=track.source,
                    worker_id=track.worker_id,
                    started_at=track.since,
                    finished_at=track.finished_at,
                    delay_ms=job.delay_time_ms,
                    execution_ms=job.execution_time_ms,
                )
            )
        for job_id in snap.gone_jobs:
            tracker.forget_job(job_id)
        if snap.billing is not None:
            d.last_billing_at = now
            for (endpoint_id, hour), usd in sorted(billed_by_hour(snap.billing.records).items()):
                if hour >= month_start(now):
                    endpoint_key = UNATTRIBUTED_ENDPOINT if endpoint_id == ACCOUNT_WIDE else endpoint_id
                    billed.append(BilledSpend(endpoint_key, hour, usd))

    # money (this tick's rows included) ----------------------------------------------------------------
    mtd, last_24h_usd, endpoint_24h_usd = _money(d, now, estimates, billed)
    fixed_usd = config.budget.fixed_usd_per_month
    budget = budget_status(
        config.budget.monthly_eur,
        config.budget.usd_per_eur,
        fixed_costs_usd_per_month=fixed_usd,
        variable_mtd_usd=mtd.counted_usd,
        now=now,
        thresholds=config.budget.alert_thresholds,
        variable_last_24h_usd=last_24h_usd,
    )
    d.last_budget = budget  # this tick's figures for this tick's budget alerts (not the previous tick's)

    # 3. evaluate -------------------------------------------------------------------------------------------
    findings: list[TrafficFinding] = []
    brakes = d.brakes
    if ok:
        verification = d.executor.verify(
            Observation(
                now=now,
                configs={e.id: e for e in snap.endpoints},
                workers=snap.workers,
                jobs={job_id: job.status for job_id, (_, job) in snap.jobs.items()},
                health=snap.health,
                gone_jobs=frozenset(snap.gone_jobs),
            )
        )
        live = {w.id for workers in snap.workers.values() for w in workers if w.status in BILLED_STATES}
        tracker.age_cancels(live, now)
        findings = _findings(d, now, snap)
        by_endpoint_usd = {e.endpoint_id: e.counted_usd for e in mtd.by_endpoint}
        for endpoint in snap.endpoints:
            observed = tracker.observe_workers(endpoint.id, snap.workers[endpoint.id], now)
            requests_24h = tracker.traffic.endpoint_requests(endpoint.id, now - DAY_S, now + 60)
            endpoint_views.append(
                policy.EndpointFacts(
                    config=endpoint,
                    limits=d.limits_for(endpoint),
                    workers=observed.views,
                    health=snap.health[endpoint.id],
                    jobs_in_progress=tracker.jobs_in_progress(endpoint.id),
                    cancelled_jobs=tracker.cancelled_jobs(endpoint.id),
                    crash=crash_windows.get(endpoint.id, policy.CrashWindow()),
                    requests_per_month=requests_24h * 30.0,
                    variable_mtd_usd=by_endpoint_usd.get(endpoint.id, 0.0),
                    last_progress_at=tracker.last_progress.get(endpoint.id),
                )
            )
        view = policy.PolicyView(
            endpoints=tuple(endpoint_views),
            settings=d.policy_settings(),
            last_successful_poll=now,
            budget=budget,
            alerted_thresholds=tracker.thresholds_alerted(now),
            traffic_findings=tuple(findings),
            actions=tuple(tracker.actions),
            brakes=tuple(brake_entry(b, d.brake_rules.get(e)) for e, b in sorted(brakes.items())),
            prices=config.price_table,
        )
        decisions = policy.evaluate(view, d.clock.now())
        if config.pings.cut == "alert":
            decisions = [
                x
                for x in decisions
                if not (x.rule == policy.RULE_TRAFFIC and x.action not in ("alert", "restore"))
            ]
        denied = d.executor.denied_sources()
        if denied:  # already cut off: re-adding it after every cool-down would only repeat the alert
            decisions = [x for x in decisions if not (x.action == "deny_list" and x.source in denied)]
    else:
        verification = []
        decisions = [_blind_decision(d, now, snap.error or "unknown error")]

    # 4. execute ---------------------------------------------------------------------------------------
    rows: list[LedgerDecision] = list(verification)
    alerts: list[Alert] = []
    brakes_set = []
    brakes_cleared: list[str] = []
    for decision in decisions:
        if not _worth_recording(d, decision, now):
            continue
        execution = await d.executor.execute(decision, now, brakes=d.brakes)
        d.absorb(decision, execution, now)
        if execution.brake_set is not None:
            brakes_set.append(execution.brake_set)
        if execution.brake_cleared is not None:
            brakes_cleared.append(execution.brake_cleared)
        rows.extend(execution.rows)
        alert = _decision_alert(d, decision, execution, now)
        if alert is not None:
            alerts.append(alert)
    if ok and tracker.blind_since is not None:
        log.warning("the watchdog sees RunPod again (blind since %s)", _iso(tracker.blind_since))
        tracker.blind_since = None
    for row in verification:
        d.count_action(row)
    alerts.extend(_metric_alerts(d, now, snap, endpoint_24h_usd) if ok else [])

    # 5. record -------------------------------------------------------------------------------------------
    # Alerts are rebuilt each tick from what is true (e.g. the cost per 1,000 requests is still above $3);
    # the ledger de-duplicates by key, and only the first sighting of a key belongs in the events log.
    alerts = d.first_sightings(alerts, now)
    finished = d.clock.now()
    status = build_status(
        d,
        now=now,
        finished=finished,
        ok=ok,
        error=snap.error,
        snap=snap,
        mtd=mtd,
        budget=budget,
        endpoint_24h_usd=endpoint_24h_usd,
        findings=findings,
        pending_alerts=len(alerts),
    )
    d.add_events(rows, alerts, now)
    status = _with_events(d, status)
    record = TickRecord(
        started_at=now,
        finished_at=finished,
        ok=ok,
        blind=not ok,
        error=snap.error,
        endpoints=len(snap.endpoints),
        accounting=interval,
        estimates=tuple(estimates),
        billed=tuple(billed),
        configs=tuple(configs),
        workers=tuple(worker_rows),
        jobs=tuple(job_rows),
        traffic=tuple(traffic_rows),
        brakes_set=tuple(brakes_set) + tuple(d.pending_brakes_set),
        brakes_cleared=tuple(brakes_cleared) + tuple(d.pending_brakes_cleared),
        decisions=tuple(rows),
        alerts=tuple(alerts),
        meta=d.meta_for_tick(status),
    )
    recorded = d.ledger.record_tick(record)
    d.pending_brakes_set.clear()
    d.pending_brakes_cleared.clear()
    if interval is not None:
        d.accounted_until = interval.end
    for change in recorded.config_changes:
        if change.changed_fields:
            log.info("endpoint %s config changed: %s", change.endpoint_id, ", ".join(change.changed_fields))
    tracker.prune(now)

    # 6. publish ------------------------------------------------------------------------------------------
    d.tick_count += 1
    d.status_ref.set(status)
    if recorded.new_alerts and d.dispatcher is not None:
        d.dispatcher.wake()
    outcome = TickOutcome(
        tick_id=recorded.tick_id,
        started_at=now,
        finished_at=finished,
        ok=ok,
        blind=not ok,
        error=snap.error,
        decisions=tuple(decisions),
        rows=tuple(rows),
        new_alerts=recorded.new_alerts,
        status=status,
    )
    return outcome


# ------------------------------------------------------------------------------------------------------------
# 2. accounting


def _account(
    d: Daemon, snap: Snapshot, now: float
) -> tuple[AccountingInterval | None, list[SpendAccrual], list[WorkerUpdate]]:
    """The live estimate for ``(accounted_until, now]`` from the previous poll's workers."""
    tracker = d.tracker
    start = d.accounted_until
    previous = tracker.snapshot
    observed = tracker.snapshot_at is not None and start is not None and now - start <= d.stale_after_s
    current = {e.id: snap.workers[e.id] for e in snap.endpoints}
    tracker.snapshot, tracker.snapshot_at = current, now
    rows: list[WorkerUpdate] = []
    if start is None:
        d.accounted_until = now  # a brand-new ledger: the chain of intervals starts here
    if start is None or now <= start:
        for endpoint_id, workers in current.items():
            rows.extend(WorkerUpdate(w.id, endpoint_id, w.status.value, w.gpu_type_id) for w in workers)
        return None, [], rows
    interval = AccountingInterval(start, now)
    spend: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0.0])
    seconds = now - start
    prices = d.config.price_table
    if observed:
        for endpoint_id, workers in previous.items():
            for accrual in accrue_interval(endpoint_id, workers, start=start, end=now, prices=prices):
                cell = spend[(endpoint_id, accrual.hour_start)]
                cell[0] += accrual.usd
                if accrual.state in BILLED_STATES:
                    cell[1] += accrual.gpu_seconds
                    tracker.gpu_seconds[endpoint_id][accrual.gpu_type_id or "unknown"] += accrual.gpu_seconds
                    tracker.gpu_seconds_today[endpoint_id] += accrual.gpu_seconds
    else:
        log.info(
            "accounting %.0f s with no live estimate (the daemon did not observe them; billing covers them)",
            seconds,
        )
    now_ids = {w.id for workers in current.values() for w in workers}
    prev_by_id = {w.id: (e, w) for e, workers in previous.items() for w in workers} if observed else {}
    for endpoint_id, workers in current.items():
        for worker in workers:
            rows.append(_worker_update(endpoint_id, worker, prev_by_id.get(worker.id), seconds, prices, None))
    for worker_id, (endpoint_id, worker) in prev_by_id.items():
        if worker_id not in now_ids:
            rows.append(_worker_update(endpoint_id, worker, (endpoint_id, worker), seconds, prices, now))
            if worker.status in BILLED_STATES:  # the session ended: RunPod rounded it up to the second
                # It ended somewhere in (start, now]; book it in the hour of the interval's middle.
                spend[(endpoint_id, hour_start((start + now) / 2))][0] += session_rounding_usd(worker, prices)
    if not observed:
        for worker_id, track_endpoint in list(_gone_without_snapshot(d, now_ids)):
            rows.append(WorkerUpdate(worker_id, track_endpoint, "STOPPED", ended_at=now))
    estimates = [
        SpendAccrual(endpoint_id, hour, usd, gpu_s)
        for (endpoint_id, hour), (usd, gpu_s) in sorted(spend.items())
    ]
    return interval, estimates, rows


def _gone_without_snapshot(d: Daemon, now_ids: set[str]) -> list[tuple[str, str]]:
    gone = [(w, e) for w, e in d.restored_open_workers.items() if w not in now_ids]
    d.restored_open_workers = {}
    return gone


def _worker_update(  # noqa: PLR0917
    endpoint_id: str,
    current: Worker,
    previous: tuple[str, Worker] | None,
    seconds: float,
    prices: Any,
    ended_at: float | None,
) -> WorkerUpdate:
    if previous is None:
        return WorkerUpdate(current.id, endpoint_id, current.status.value, current.gpu_type_id)
    before = previous[1]
    usd = (
        seconds * prices.usd_per_s(before.gpu_type_id) * before.gpu_count
        if before.status in BILLED_STATES
        else 0
    )
    return WorkerUpdate(
        worker_id=current.id,
        endpoint_id=endpoint_id,
        status="STOPPED" if ended_at is not None else current.status.value,
        gpu_type_id=current.gpu_type_id,
        initializing_s=seconds if before.status == WorkerStatus.INITIALIZING else 0.0,
        running_s=seconds if before.status == WorkerStatus.RUNNING else 0.0,
        idle_s=seconds if before.status == WorkerStatus.IDLE else 0.0,
        usd=usd,
        ended_at=ended_at,
    )


def _config_observation(endpoint: EndpointConfig) -> ConfigObservation:
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
        cell = counts[(event.endpoint_id, event.source or "(unknown)", minute_of(event.ts))]
        cell[0 if event.kind == "request" else 1] += 1
    return [TrafficCount(e, s, float(m), r, p) for (e, s, m), (r, p) in sorted(counts.items())]


# ------------------------------------------------------------------------------------------------------------
# money


def _money(
    d: Daemon, now: float, estimates: Sequence[SpendAccrual], billed: Sequence[BilledSpend]
) -> tuple[MonthToDate, float, dict[str, float]]:
    """Month to date (per hour the larger of estimate and billed), the last 24 h variable spend, and the
    last 24 h per endpoint."""
    month = month_start(now)
    rows = d.ledger.month_spend_by_hour(month)
    estimate_by_hour: dict[tuple[str, float], float] = defaultdict(float)
    billed_hours: dict[tuple[str, float], float] = {}
    for (endpoint_id, hour, source), usd in rows.items():
        if source == "estimate":
            estimate_by_hour[(endpoint_id, hour)] += usd
        else:
            billed_hours[(endpoint_id, hour)] = usd
    for accrual in estimates:
        estimate_by_hour[(accrual.endpoint_id, accrual.hour)] += accrual.usd
    for bill in billed:
        billed_hours[(bill.endpoint_id, bill.hour)] = bill.usd
    mtd = month_to_date(estimate_by_hour, billed_hours, now)
    since = hour_start(now - DAY_S)
    per_endpoint: dict[str, float] = defaultdict(float)
    for key in set(estimate_by_hour) | set(billed_hours):
        if key[1] >= since:
            per_endpoint[key[0]] += max(estimate_by_hour.get(key, 0.0), billed_hours.get(key, 0.0))
    d.last_mtd = mtd
    return mtd, sum(per_endpoint.values()), dict(per_endpoint)


# ------------------------------------------------------------------------------------------------------------
# 3. evaluate helpers


def _findings(d: Daemon, now: float, snap: Snapshot) -> list[TrafficFinding]:
    pings = d.config.pings
    thresholds = TrafficThresholds(
        max_requests_per_min=pings.max_requests_per_min,
        max_pings_per_min=pings.max_pings_per_min,
        keep_warm_min_minutes=pings.keep_warm_window_min,
        keep_warm_max_busy_ratio=pings.keep_warm_max_busy_ratio,
        jump_min_count=pings.jump_min_count,
    )
    counts = d.tracker.traffic
    contexts = {e.id: EndpointContext(idle_timeout_s=float(e.idle_timeout_s)) for e in snap.endpoints}
    for endpoint in snap.endpoints:
        health = snap.health.get(endpoint.id)
        if health is not None:
            busy = health.workers_running
            warm = busy + health.workers_idle
            contexts[endpoint.id] = EndpointContext(
                idle_timeout_s=float(endpoint.idle_timeout_s), busy_ratio=(busy / warm) if warm else None
            )
    found = [
        *detect_rate(counts, now, thresholds),
        *detect_ping_rate(counts, now, thresholds),
        *detect_keep_warm(counts, now, thresholds, contexts),
        *detect_jump(counts, now, thresholds),
    ]
    watched = {e.id for e in snap.endpoints}
    return [f for f in found if f.endpoint_id in watched]


def _blind_decision(d: Daemon, now: float, error: str) -> policy.Decision:
    last = d.tracker.last_ok
    seen = "no successful poll yet" if last is None else f"last successful poll {now - last:.0f} s ago"
    return policy.Decision(
        rule=policy.RULE_BLIND,
        action="none",
        endpoint_id=None,
        mode=d.config.policy.mode,
        reason=f"watchdog is blind ({seen}; {error}): taking no action",
        severity="critical",
        dedupe_key="blind:none",
    )


def _worth_recording(d: Daemon, decision: policy.Decision, now: float) -> bool:
    """Enforced actions always; a repeated proposal, notice or blind report at most once an hour (or once
    per blind episode), so the ledger is an audit log and not a tick log."""
    tracker = d.tracker
    if decision.rule == policy.RULE_BLIND:
        if tracker.blind_since is not None:
            return False
        tracker.blind_since = now
        log.warning("%s", decision.reason)
        return True
    repeatable = decision.mode != "enforce" or decision.action in policy.NOTIFY_ONLY_ACTIONS
    if not repeatable or not decision.dedupe_key:
        return True
    last = tracker.last_recorded.get(decision.dedupe_key)
    if last is not None and now - last < 3600.0:
        return False
    tracker.last_recorded[decision.dedupe_key] = now
    return True


# ------------------------------------------------------------------------------------------------------------
# alerts


def _month_label(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m")


def _day_label(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _eur(d: Daemon, usd: float) -> float:
    return usd_to_eur(usd, d.config.budget.usd_per_eur)


def _decision_alert(d: Daemon, decision: policy.Decision, execution: Execution, now: float) -> Alert | None:
    """The Slack alert for a decision, keyed so the same thing is never announced twice."""
    if decision.rule == policy.RULE_BLIND:
        return Alert(
            key=f"blind:{int(now)}",
            kind="blind",
            severity="critical",
            text=(
                f":see_no_evil: The watchdog is blind: {decision.reason}. "
                "It takes no action until it sees again."
            ),
        )
    if decision.rule == policy.RULE_BUDGET and decision.action == "alert":
        budget = d.last_budget
        threshold = decision.dedupe_key.rsplit(":", 1)[-1]
        try:
            pct = round(float(threshold) * 100)
        except ValueError:
            pct = 0
        if budget is not None:
            text = budget_alert_text(
                spent_eur=budget.spent_eur,
                budget_eur=budget.budget_eur,
                forecast_eur=budget.forecast_eur,
                threshold_pct=pct,
            )
        else:
            text = decision.reason
        return Alert(
            key=f"budget:{_month_label(now)}:{threshold}",
            kind="budget",
            severity=decision.severity,
            text=text,
            eur=budget.spent_eur if budget else None,
        )
    saving_eur = _eur(d, decision.estimated_saving_usd)
    where = f" on {decision.endpoint_id}" if decision.endpoint_id else ""
    action = decision.action.replace("_", " ")
    kind = {"config_drift": "drift", "suspicious_traffic": "traffic"}.get(decision.rule, "action")
    if decision.action == "alert":
        return Alert(
            key=f"alert:{decision.dedupe_key}:{_day_label(now)}",
            kind=kind,
            severity=decision.severity,
            text=f":warning: {decision.rule.replace('_', ' ')}{where}: {decision.reason}",
            eur=saving_eur or None,
        )
    if decision.mode != "enforce":
        return Alert(
            key=f"proposal:{decision.dedupe_key}:{_day_label(now)}",
            kind=kind,
            severity=decision.severity,
            text=(
                f":memo: Dry-run: would {action}{where} (would save about {format_eur(saving_eur)}). "
                f"{decision.reason}"
            ),
            eur=saving_eur,
        )
    rows = execution.rows
    outcome = rows[-1].outcome if rows else "skipped"
    if outcome == "failed":
        text = f":x: Tried to {action}{where} and failed: {rows[-1].error}. {decision.reason}"
    else:
        text = (
            f":white_check_mark: Did {action}{where} (saves about {format_eur(saving_eur)}). "
            f"{decision.reason}"
        )
    return Alert(
        key=f"action:{decision.dedupe_key}:{int(now)}",
        kind=kind,
        severity=decision.severity,
        text=text,
        eur=saving_eur,
    )


def _metric_alerts(
    d: Daemon, now: float, snap: Snapshot, endpoint_24h_usd: Mapping[str, float]
) -> list[Alert]:
    """Cost per 1,000 requests above the limit and slow cold starts: at most once a day per endpoint."""
    alerts: list[Alert] = []
    slack = d.config.slack
    day = _day_label(now)
    for endpoint in snap.endpoints:
        requests = d.tracker.traffic.endpoint_requests(endpoint.id, now - DAY_S, now + 60)
        cost = cost_per_1000_requests(endpoint_24h_usd.get(endpoint.id, 0.0), requests)
        if cost is not None and cost > slack.cost_per_1000_alert_usd and requests >= 10:
            alerts.append(
                Alert(
                    key=f"cost1000:{endpoint.id}:{day}",
                    kind="cost",
                    severity="warning",
                    text=(
                        f":money_with_wings: {endpoint.name} ({endpoint.id}) costs ${cost:.2f} per 1,000 "
                        f"requests over the last 24 h (limit ${slack.cost_per_1000_alert_usd:.2f}): "
                        f"{format_eur(_eur(d, endpoint_24h_usd.get(endpoint.id, 0.0)))} "
                        f"for {requests} requests"
                    ),
                    eur=_eur(d, endpoint_24h_usd.get(endpoint.id, 0.0)),
                )
            )
        stats = cold_start_stats(
            d.tracker.cold_start_samples(endpoint.id, now - DAY_S), slack.cold_start_alert_s
        )
        if stats.p95_s is not None and stats.p95_s > slack.cold_start_alert_s:
            alerts.append(
                Alert(
                    key=f"coldstart:{endpoint.id}:{day}",
                    kind="cold_start",
                    severity="warning",
                    text=(
                        f":snail: Cold starts on {endpoint.name} ({endpoint.id}) take {stats.p95_s:.0f} s "
                        f"(p95 of {stats.count} over 24 h; target {slack.cold_start_alert_s:.0f} s)"
                    ),
                )
            )
    return alerts


# ------------------------------------------------------------------------------------------------------------
# 6. publish


def build_status(
    d: Daemon,
    *,
    now: float,
    finished: float,
    ok: bool,
    error: str | None,
    snap: Snapshot,
    mtd: MonthToDate,
    budget: Any,
    endpoint_24h_usd: Mapping[str, float],
    findings: Sequence[TrafficFinding],
    pending_alerts: int,
) -> DaemonStatus:
    config = d.config
    usd_per_eur = config.budget.usd_per_eur
    d.last_budget = budget
    free_share, free_measured = measured_free_share(
        d.tiers["free"], d.tiers["tiered"], config.budget.free_share
    )
    budget_view = BudgetView(
        month=_month_label(now),
        monthly_eur=config.budget.monthly_eur,
        usd_per_eur=usd_per_eur,
        spent_eur=budget.spent_eur,
        fixed_eur=budget.fixed_eur,
        variable_eur=budget.variable_eur,
        estimate_eur=usd_to_eur(mtd.estimate_usd, usd_per_eur),
        billed_eur=usd_to_eur(mtd.billed_usd, usd_per_eur),
        used_ratio=budget.used_ratio,
        forecast_eur=budget.forecast_eur,
        days_left=budget.days_left,
        eur_per_day_allowed=budget.allowed_eur_per_day,
        free_share_eur=usd_to_eur(free_share_cost(mtd.counted_usd, free_share), usd_per_eur),
        free_share=free_share,
        free_share_measured=free_measured,
        thresholds=config.budget.alert_thresholds,
        thresholds_crossed=budget.thresholds_crossed,
        forecast_overrun=budget.forecast_overrun,
    )
    endpoints: list[EndpointView] = []
    previous = {e.id: e for e in (d.status_ref.get().endpoints if d.status_ref.get() else ())}
    if ok:
        mtd_by_endpoint = {e.endpoint_id: e.counted_usd for e in mtd.by_endpoint}
        for endpoint in snap.endpoints:
            endpoints.append(
                _endpoint_status(
                    d, now, endpoint, snap, mtd_by_endpoint.get(endpoint.id, 0.0), endpoint_24h_usd, findings
                )
            )
    else:
        endpoints = list(previous.values())
    counts = d.ledger_counts()
    return DaemonStatus(
        started_at=d.started_at,
        last_tick_at=finished,
        last_tick_ok=ok,
        last_tick_duration_s=max(0.0, finished - now),
        tick_interval_s=config.runpod.poll_interval_s,
        blind=not ok,
        blind_reason=error or "",
        mode=config.policy.mode,
        budget=budget_view,
        endpoints=tuple(endpoints),
        events=(),
        api_calls=dict(d.api_calls),
        actions=dict(d.action_counts),
        saved_usd=dict(d.saved_usd),
        last_ok_at=d.tracker.last_ok,
        alerts_sent=counts[0],
        alerts_pending=counts[1] + pending_alerts,
        ledger_bytes=_ledger_bytes(d),
        last_billing_at=d.last_billing_at,
    )


def _with_events(d: Daemon, status: DaemonStatus) -> DaemonStatus:
    return replace(status, events=tuple(d.events))


def _ledger_bytes(d: Daemon) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(f"{d.ledger.path}{suffix}")
    return total


def _endpoint_status(  # noqa: PLR0917
    d: Daemon,
    now: float,
    endpoint: EndpointConfig,
    snap: Snapshot,
    month_usd: float,
    endpoint_24h_usd: Mapping[str, float],
    findings: Sequence[TrafficFinding],
) -> EndpointView:
    config = d.config
    effective = config.policy_for(endpoint.id, endpoint.name)
    tracker = d.tracker
    workers: dict[str, int] = {state.value: 0 for state in WorkerStatus}
    for worker in snap.workers.get(endpoint.id, ()):
        workers[worker.status.value] += 1
    health = snap.health.get(endpoint.id) or Health()
    jobs = {
        "completed": health.jobs_completed,
        "failed": health.jobs_failed,
        "inProgress": health.jobs_in_progress,
        "inQueue": health.jobs_in_queue,
        "retried": health.jobs_retried,
    }
    ages = [now - j.since for j in tracker.jobs_in_progress(endpoint.id)]
    ages += [
        now - t.since
        for w_id, t in tracker.workers.items()
        if t.endpoint_id == endpoint.id and t.status == WorkerStatus.RUNNING
    ]
    samples = tracker.cold_start_samples(endpoint.id, month_start(now))
    stats = cold_start_stats(samples, config.slack.cold_start_alert_s)
    buckets = tuple(sum(1 for s in samples if s <= edge) for edge in COLD_START_BUCKETS_S)
    traffic = tracker.traffic
    requests_24h = traffic.endpoint_requests(endpoint.id, now - DAY_S, now + 60)
    requests_1h = traffic.endpoint_requests(endpoint.id, now - 3600, now + 60)
    pings_1h = traffic.endpoint_pings(endpoint.id, now - 3600, now + 60)
    requests_month = d.requests_month.get(endpoint.id, 0)
    current_minute = minute_of(now)
    rate = tuple(
        traffic.endpoint_requests(endpoint.id, m, m + 60) + traffic.endpoint_pings(endpoint.id, m, m + 60)
        for m in range(current_minute - 59 * 60, current_minute + 60, 60)
    )
    brake = d.brakes.get(endpoint.id)
    required_ms = effective.required_execution_timeout_s * 1000
    return EndpointView(
        id=endpoint.id,
        name=endpoint.name,
        mode=d.limits_for(endpoint).mode,
        workers=workers,
        jobs=jobs,
        oldest_work_s=max(ages) if ages else None,
        work_limit_s=effective.runaway_after_s,
        cold_start_p50_s=stats.p50_s,
        cold_start_p95_s=stats.p95_s,
        cold_start_buckets=buckets,
        cold_start_sum_s=sum(samples),
        cold_start_count=len(samples),
        gpu_seconds_today=tracker.gpu_seconds_today.get(endpoint.id, 0.0),
        gpu_seconds_month=sum(tracker.gpu_seconds.get(endpoint.id, {}).values()),
        gpu_seconds_by_type=dict(tracker.gpu_seconds.get(endpoint.id, {})),
        spend_month_eur=usd_to_eur(month_usd, config.budget.usd_per_eur),
        requests_month=requests_month,
        requests_24h=requests_24h,
        pings_1h=pings_1h,
        requests_1h=requests_1h,
        cost_per_1000_month_usd=cost_per_1000_requests(month_usd, requests_month),
        cost_per_1000_24h_usd=cost_per_1000_requests(endpoint_24h_usd.get(endpoint.id, 0.0), requests_24h),
        config={
            "workers_min": endpoint.workers_min,
            "workers_max": endpoint.workers_max,
            "workers_standby": endpoint.workers_standby,
            "idle_timeout_s": endpoint.idle_timeout_s,
            "execution_timeout_ms": endpoint.execution_timeout_ms,
        },
        compliance={
            "execution_timeout": bool(endpoint.execution_timeout_ms)
            and (endpoint.execution_timeout_ms or 0) <= required_ms,
            "idle_timeout": endpoint.idle_timeout_s <= effective.max_idle_timeout_s,
            "max_workers": endpoint.workers_max <= effective.max_workers,
            "min_standby": endpoint.workers_min <= effective.max_workers_min
            and endpoint.workers_standby <= effective.max_workers_standby,
        },
        paused=brake.kind if brake is not None else None,
        suspicious=tuple(f.detail for f in findings if f.endpoint_id == endpoint.id),
        rate_per_min=rate,
    )


def status_line(status: DaemonStatus, tick_number: int, actions: int) -> str:
    """One line for sd_notify STATUS= and the log."""
    budget = status.budget
    money = (
        f"{budget.spent_eur:.2f} € of {budget.monthly_eur:.2f} € ({budget.used_ratio * 100:.0f} %)"
        if budget
        else "budget unknown"
    )
    blind = ", BLIND" if status.blind else ""
    return f"tick {tick_number}: {len(status.endpoints)} endpoints, {money}, {actions} actions{blind}"


def status_json(status: DaemonStatus) -> str:
    return json.dumps(status.to_dict(), separators=(",", ":"), default=str)


__all__ = ["BRAKE_KIND_RULE", "Snapshot", "TickOutcome", "build_status", "fetch", "run_tick", "status_line"]
