"""Stage 6, publish: the :class:`~watchdog.status.DaemonStatus` the dashboard, the metrics and the control
socket read, built from one tick's figures and the daemon's memory.

:func:`build_status` is pure: it takes what it shows and returns the status; the tick swaps it into the
:class:`~watchdog.status.StatusRef` (readers never see half a tick). :func:`status_line` is the one-line
form for sd_notify and the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watchdog.alerts import DeliveryHealth
from watchdog.clock import DAY_S, HOUR_S, month_start
from watchdog.config import Config
from watchdog.daemon.accounting import MonthMoney
from watchdog.daemon.fetch import Reading, rest_rate
from watchdog.daemon.state import Calendar, DaemonState, month_label
from watchdog.daemon.tracker import Tracker
from watchdog.ledger import BrakeState
from watchdog.models import EndpointConfig, Health
from watchdog.money import (
    BudgetStatus,
    cold_start_stats,
    cost_per_1000_requests,
    daily_allowance_eur,
    free_share_cost,
    measured_free_share,
    usd_to_eur,
)
from watchdog.status import COLD_START_BUCKETS_S, BudgetView, DaemonStatus, EndpointView, StatusTargets
from watchdog.traffic import TrafficFinding, minute_of
from watchdog.vocabulary import WorkerStatus


@dataclass(frozen=True, slots=True)
class LedgerFigures:
    """What the status shows of the ledger itself."""

    alerts_sent: int = 0
    alerts_pending: int = 0
    size_bytes: int = 0
    problem: str | None = None
    """Why the ledger refuses writes (None while it works)."""


def budget_view(budget: BudgetStatus, money: MonthMoney, calendar: Calendar, config: Config) -> BudgetView:
    usd_per_eur = config.budget.usd_per_eur
    free_share, measured = measured_free_share(
        calendar.free_requests, calendar.tiered_requests, config.budget.free_share
    )
    today_eur = usd_to_eur(money.month.today_usd, usd_per_eur)
    allowance = (
        daily_allowance_eur(
            monthly_eur=budget.budget_eur,
            fixed_eur=budget.fixed_eur,
            variable_eur=budget.variable_eur,
            today_eur=today_eur,
            now=calendar.day,  # the allowance depends on the time only through the UTC day
        )
        if config.budget.daily_allowance
        else None
    )
    return BudgetView(
        month=month_label(calendar.month),
        monthly_eur=config.budget.monthly_eur,
        usd_per_eur=usd_per_eur,
        spent_eur=budget.spent_eur,
        fixed_eur=budget.fixed_eur,
        variable_eur=budget.variable_eur,
        estimate_eur=usd_to_eur(money.month.estimate_usd, usd_per_eur),
        billed_eur=usd_to_eur(money.month.billed_usd, usd_per_eur),
        used_ratio=budget.used_ratio,
        forecast_eur=budget.forecast_eur,
        days_left=budget.days_left,
        eur_per_day_allowed=budget.allowed_eur_per_day,
        free_share_eur=usd_to_eur(free_share_cost(money.month.counted_usd, free_share), usd_per_eur),
        free_share=free_share,
        free_share_measured=measured,
        thresholds=config.budget.alert_thresholds,
        thresholds_crossed=budget.thresholds_crossed,
        forecast_overrun=budget.forecast_overrun,
        spent_today_eur=today_eur,
        daily_allowance_eur=allowance,
    )


def endpoint_view(
    endpoint: EndpointConfig,
    *,
    reading: Reading,
    tracker: Tracker,
    calendar: Calendar,
    brake: BrakeState | None,
    mode: str,
    money: MonthMoney,
    findings: Sequence[TrafficFinding],
    config: Config,
    now: float,
) -> EndpointView:
    effective = config.policy_for(endpoint.id, endpoint.name)
    workers: dict[str, int] = {state.value: 0 for state in WorkerStatus}
    for worker in reading.workers.get(endpoint.id, ()):
        workers[worker.status.value] += 1
    health = reading.health.get(endpoint.id) or Health()
    jobs = {
        "completed": health.jobs_completed,
        "failed": health.jobs_failed,
        "inProgress": health.jobs_in_progress,
        "inQueue": health.jobs_in_queue,
        "retried": health.jobs_retried,
    }
    ages = [now - j.since for j in tracker.jobs_in_progress(endpoint.id)]
    ages += [now - since for since in tracker.running_since(endpoint.id)]
    samples = tracker.cold_start_samples(endpoint.id, month_start(now))
    stats = cold_start_stats(samples, config.slack.cold_start_alert_s)
    traffic = tracker.traffic
    requests_24h = traffic.endpoint_requests(endpoint.id, now - DAY_S, now + 60)
    requests_month = calendar.requests.get(endpoint.id, 0)
    month_usd = money.endpoint_month_usd(endpoint.id)
    rate = traffic.per_minute(endpoint.id, minute_of(now) - 59 * 60, 60)
    required_ms = effective.required_execution_timeout_s * 1000
    return EndpointView(
        id=endpoint.id,
        name=endpoint.name,
        mode=mode,
        workers=workers,
        jobs=jobs,
        oldest_work_s=max(ages) if ages else None,
        work_limit_s=effective.runaway_after_s,
        cold_start_p50_s=stats.p50_s,
        cold_start_p95_s=stats.p95_s,
        cold_start_buckets=tuple(sum(1 for s in samples if s <= edge) for edge in COLD_START_BUCKETS_S),
        cold_start_sum_s=sum(samples),
        cold_start_count=len(samples),
        gpu_seconds_today=calendar.gpu_seconds_today.get(endpoint.id, 0.0),
        gpu_seconds_month=sum(calendar.gpu_seconds.get(endpoint.id, {}).values()),
        gpu_seconds_by_type=dict(calendar.gpu_seconds.get(endpoint.id, {})),
        spend_month_eur=usd_to_eur(month_usd, config.budget.usd_per_eur),
        requests_month=requests_month,
        requests_24h=requests_24h,
        pings_1h=traffic.endpoint_pings(endpoint.id, now - HOUR_S, now + 60),
        requests_1h=traffic.endpoint_requests(endpoint.id, now - HOUR_S, now + 60),
        cost_per_1000_month_usd=cost_per_1000_requests(month_usd, requests_month),
        cost_per_1000_24h_usd=cost_per_1000_requests(
            money.last_24h_by_endpoint.get(endpoint.id, 0.0), requests_24h
        ),
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
        data_age_s=reading.data_age(endpoint.id),
    )


def status_targets(config: Config) -> StatusTargets:
    """The configured targets the dashboard and the metrics compare against."""
    return StatusTargets(
        cost_per_1000_usd=config.slack.cost_per_1000_alert_usd,
        cold_start_s=config.slack.cold_start_alert_s,
        budget_thresholds=config.budget.alert_thresholds,
        brake_at=config.budget.brake_at,
    )


def build_status(
    state: DaemonState,
    *,
    started_at: float,
    finished_at: float,
    error: str | None,
    budget: BudgetView | None,
    endpoints: Sequence[EndpointView],
    ledger: LedgerFigures,
    delivery: DeliveryHealth | None,
    config: Config,
    quota_wait: str | None = None,
) -> DaemonStatus:
    """The status of the tick that ran from ``started_at`` to ``finished_at``: blind when ``error`` says
    why it could not read RunPod; not ok either when RunPod's quota held its read up (``quota_wait``)."""
    counters = state.counters
    return DaemonStatus(
        started_at=state.started_at,
        last_tick_at=finished_at,
        last_tick_ok=error is None and quota_wait is None,
        quota_wait=quota_wait or "",
        rest_calls_last_minute=state.reads.rest_calls_last_minute(finished_at),
        rest_quota_per_minute=round(rest_rate(state.reads.quota) * 60.0, 6),
        balance_usd=state.account.balance_usd,
        spend_per_hr_usd=state.account.spend_per_hr_usd,
        spend_rate_cap_usd_per_hr=state.account.spend_rate_cap_usd_per_hr,
        account_problem=state.account.problem or "",
        last_tick_duration_s=max(0.0, finished_at - started_at),
        tick_interval_s=config.runpod.poll_interval_s,
        blind=error is not None,
        blind_reason=error or "",
        mode=config.policy.mode,
        budget=budget,
        endpoints=tuple(endpoints),
        events=tuple(state.events),
        api_calls=dict(counters.api_calls),
        actions=dict(counters.actions),
        saved_usd=dict(counters.saved_usd),
        last_ok_at=state.sight.last_ok_at,
        alerts_sent=ledger.alerts_sent,
        alerts_pending=ledger.alerts_pending,
        ledger_bytes=ledger.size_bytes,
        last_billing_at=state.billing.last_read_at,
        targets=status_targets(config),
        ledger_problem=ledger.problem,
        alerts_undelivered=delivery.undelivered if delivery is not None else 0,
        slack_webhook=delivery.webhook if delivery is not None else "absent",
        bad_records=dict(counters.bad_records),
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
    ledger = ", LEDGER FAILING" if status.ledger_problem else ""
    return f"tick {tick_number}: {len(status.endpoints)} endpoints, {money}, {actions} actions{blind}{ledger}"


def endpoints_24h(tracker: Tracker, endpoints: Sequence[EndpointConfig], now: float) -> Mapping[str, int]:
    """Requests per endpoint over the last 24 hours."""
    return {e.id: tracker.traffic.endpoint_requests(e.id, now - DAY_S, now + 60) for e in endpoints}
