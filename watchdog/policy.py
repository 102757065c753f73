"""The watchdog's judgement: from one snapshot of the world to a list of reversible decisions.

Why pure: the daemon's I/O shell builds a :class:`PolicyView` every tick (configs, workers with the time
each entered its state, jobs, health deltas, budget, brakes it applied, actions it took) and executes what
:func:`evaluate` returns. Keeping the judgement free of I/O and clocks lets the seed incident (a job with no
execution timeout, kept alive for days by pings) and every other rule be replayed in a unit test.

Principles:

* **Every action is reversible.** Decisions that change an endpoint carry ``patch`` (new values) and
  ``previous`` (old values). When an endpoint is already braked by us, ``previous`` comes from the saved
  brake, so stacking brakes never loses the original configuration.
* **Safety before zeal.** Per-rule dry-run still reports the money at stake; actions per hour are capped
  and each endpoint gets a cool-down after an action (held decisions are downgraded to dry-run, not
  dropped, so the operator sees them); stale data gives one ``blind`` decision and no action at all.
* **The allow-list exempts from the budget brake only.** An allowed endpoint still gets its runaway job
  cancelled: a hung job is never a legitimate use of the budget.
* **Deterministic order**: by rule priority (most expensive failure first, which is also who gets the
  action cap first), then endpoint id, action, job, worker.
* **The budget brake has steps**: threshold alerts; a forecast overrun tightens (and is only information
  in the month's first :data:`EARLY_MONTH_DAYS` days); with ``budget.daily_allowance`` a day whose
  variable spend reaches its allowance pauses until the next UTC midnight; the month's brake pauses until
  the month ends, and wins over the day's (see :func:`_budget_brake`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from watchdog.clock import DAY_S, HOUR_S, month_start, next_month_start
from watchdog.models import EndpointConfig, Health, Worker
from watchdog.money import (
    SECONDS_IN_30_DAYS,
    BudgetStatus,
    ConfigField,
    daily_allowance_eur,
    day_start,
    endpoint_gpu_price,
    monthly_cost_of_config,
    usd_to_eur,
)
from watchdog.prices import PriceTable
from watchdog.traffic import UNKNOWN_SOURCE, deny_entry, is_protected
from watchdog.vocabulary import (
    BILLED_BY_DEFAULT,
    NOTIFY_ONLY_ACTIONS,
    STOP_ACTIONS,
    Action,
    Mode,
    Rule,
    WorkerStatus,
)

Severity = Literal["info", "warning", "critical"]

RULE_ORDER: tuple[Rule, ...] = tuple(Rule)
"""Priority: a runaway job burns money fastest; config drift is a risk, not yet a loss."""
ACTION_ORDER: tuple[Action, ...] = tuple(Action)


EARLY_MONTH_DAYS = 3
"""In the first days of a UTC month (the 1st to the 3rd) a forecast overrun is information, not a warning,
unless spend has already crossed the first ``budget.alert_thresholds`` threshold (see :func:`_budget_brake`).

Why 3: early in the month the forecast extrapolates almost nothing. The month's daily rate divides by at
least one day (``money.MIN_ELAPSED_DAYS_FOR_RATE``), so one busy morning on the 1st reads as a month at that
pace, and the last 24 hours' rate is a single day, a workshop or a quiet Sunday. After three days the
month's rate averages three days (one odd day moves it a third as much) while about 90 % of the month is
still ahead to act on; waiting for a full weekly cycle would leave a quarter of the month unguarded by the
forecast. Nothing real goes unguarded meanwhile: the thresholds and the month's brake (and the day's
allowance, when on) act on money already spent, never on the forecast."""


# --------------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    """Effective limits of one endpoint (``[policy]`` merged with its ``[[policy.endpoint]]`` entries).

    No defaults here: the configuration is the one source of them, and
    :func:`watchdog.daemon.evaluate.endpoint_limits` builds this from it (tests too).
    """

    mode: Mode
    max_execution_s: float
    grace_s: float
    max_idle_timeout_s: int
    max_workers: int
    max_workers_min: int
    max_workers_standby: int
    required_execution_timeout_s: int
    rule_modes: Mapping[str, Mode]
    """Per-rule mode (e.g. enforce only runaway_job while everything else is dry-run)."""
    allowed: bool
    """On the allow-list: exempt from the budget brake (tighten/pause/purge), from nothing else."""
    brake_idle_timeout_s: int

    def mode_for(self, rule: str) -> Mode:
        return self.rule_modes.get(rule, self.mode)


@dataclass(frozen=True, slots=True)
class WorkerView:
    worker: Worker
    state_since: float
    """When the daemon first saw the worker in its current status (UTC epoch seconds)."""


@dataclass(frozen=True, slots=True)
class JobInProgress:
    job_id: str
    worker_id: str | None
    since: float
    """Job start if known, else when the daemon first saw it in progress."""


@dataclass(frozen=True, slots=True)
class CancelledJob:
    """A job the daemon cancelled (from its action history), to check that the cancel took effect."""

    job_id: str
    worker_id: str | None
    cancelled_at: float
    ticks_since: int


@dataclass(frozen=True, slots=True)
class CrashWindow:
    """Health counter deltas over the recent ticks (the daemon diffs successive /health answers)."""

    retries_delta: int = 0
    completed_delta: int = 0
    ticks: int = 0


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """What the policy knows of one endpoint at one tick (not to be confused with status.EndpointView,
    the published view the dashboard shows)."""

    config: EndpointConfig
    limits: EndpointLimits
    workers: tuple[WorkerView, ...] = ()
    health: Health | None = None
    jobs_in_progress: tuple[JobInProgress, ...] = ()
    unknown_work_since: float | None = None
    """First seen time of in-progress work whose job id is unknown. When None, it is derived from RUNNING
    workers that no known job claims (their ``state_since``); a RUNNING worker serving back-to-back jobs
    looks like one long job, which at max 1 worker and ~100 requests a day is rare and only costs a brief
    scale-to-zero followed by a restore."""
    cancelled_jobs: tuple[CancelledJob, ...] = ()
    crash: CrashWindow = CrashWindow()
    requests_per_month: float = 0.0
    """Current traffic, for pricing config drift."""
    variable_mtd_usd: float = 0.0
    """This endpoint's month-to-date variable spend: its share of the forecast a pause saves."""
    variable_today_usd: float = 0.0
    """This endpoint's variable spend in the current UTC day: its share of the rest of the day a day's
    brake saves."""
    requests_by_source_1h: Mapping[str, int] = field(default_factory=dict)
    """Requests per caller over the last hour (from the logs): who a cool-down would also cut off."""
    last_progress_at: float | None = None
    """When /health last showed jobs of this endpoint finishing. Work that keeps finishing jobs is not one
    hung job of unknown id (a worker serving back-to-back short jobs stays RUNNING between polls), and a
    worker that keeps finishing jobs is not idle (one serving 0.2 s jobs looks IDLE at every poll). Jobs
    whose id is known (from heartbeats) are judged by their own age, whatever else completes."""


class TrafficFindingLike(Protocol):
    """What the policy reads of a ``watchdog.traffic.TrafficFinding`` (kept structural, so the traffic
    module can grow fields without touching the policy)."""

    @property
    def endpoint_id(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True, slots=True)
class BrakeEntry:
    """A brake the daemon applied (one per endpoint; when brakes stack, ``previous`` stays the original)."""

    endpoint_id: str
    rule: Rule
    kind: Action
    """How the brake holds the endpoint: SCALE_TO_ZERO, PAUSE or TIGHTEN."""
    since: float
    previous: Mapping[str, object]
    until: float | None = None
    """For a timed cool-down (suspicious traffic): restore once ``now`` reaches it."""


@dataclass(frozen=True, slots=True)
class ActionRecord:
    at: float
    endpoint_id: str | None
    rule: str
    action: str
    applied: bool = True
    """False for an attempt RunPod refused (a 404 cancel, a failed patch): it changed nothing, so it does
    not use up the hourly cap (it still starts the cool-down, so a failing call is not hammered)."""


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Account-wide settings, built from the configuration by
    :func:`watchdog.daemon.evaluate.policy_settings` (the two policy constants keep their value here)."""

    usd_per_eur: float
    stale_after_s: float
    max_actions_per_hour: int
    cooldown_s: float
    alert_thresholds: tuple[float, ...]
    brake_at: float
    traffic_cut: Literal["deny_list", "cooldown"]
    cut_cooldown_s: float
    mode: Mode
    """Mode of decisions that belong to no endpoint (budget alerts)."""
    never_cut: tuple[str, ...]
    """Sources (addresses, networks, client ids) no traffic cut may touch (``pings.never_cut``)."""
    escalate_after_ticks: int = 3
    """Ticks to wait after a cancel before scaling a still-billing worker's endpoint to zero."""
    crash_retry_delta: int = 3
    """Retries within the crash window that, with unhealthy workers and no completion, make a crash loop."""
    daily_allowance: bool = False
    """``budget.daily_allowance``: a UTC day whose variable spend reaches its allowance
    (:func:`watchdog.money.daily_allowance_eur`) pauses the endpoints not on the allow-list until the next
    UTC midnight."""


@dataclass(frozen=True, slots=True)
class PolicyView:
    """Everything the policy may know, frozen at one tick."""

    endpoints: tuple[EndpointFacts, ...]
    settings: PolicySettings
    last_successful_poll: float | None
    prices: PriceTable
    budget: BudgetStatus | None = None
    alerted_thresholds: frozenset[float] = frozenset()
    """Budget thresholds already alerted this month."""
    variable_today_usd: float | None = None
    """Variable spend in the current UTC day, all endpoints and account-wide billing (per hour the larger of
    estimate and billed, as the month to date counts it); None when unknown: the day's allowance is then
    not judged (it never brakes) and the day's brakes still lift when their day is over."""
    traffic_findings: tuple[TrafficFindingLike, ...] = ()
    actions: tuple[ActionRecord, ...] = ()
    """Enforced actions of at least the last hour (cap) and cool-down window."""
    brakes: tuple[BrakeEntry, ...] = ()


# --------------------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True, slots=True)
class Decision:
    rule: Rule
    action: Action
    endpoint_id: str | None
    mode: Mode
    reason: str
    severity: Severity
    job_id: str | None = None
    worker_id: str | None = None
    patch: Mapping[str, object] = field(default_factory=dict)
    """EndpointConfig field → new value."""
    previous: Mapping[str, object] = field(default_factory=dict)
    """EndpointConfig field → value to put back when reversing."""
    estimated_saving_usd: float = 0.0
    """Money the action saves (upper bound; per month for config drift). See each rule."""
    dedupe_key: str = ""
    source: str | None = None
    """For ``deny_list``: the traffic source to deny."""
    until: float | None = None
    """For timed brakes: when the daemon should restore."""
    threshold: float | None = None
    """For a budget alert: the budget threshold it announces."""


# --------------------------------------------------------------------------------------------------------
# Helpers


def _duration(seconds: float) -> str:
    """Plain words for a duration in a reason: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR_S:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / HOUR_S:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _eur(usd: float, settings: PolicySettings) -> str:
    return f"€{usd_to_eur(usd, settings.usd_per_eur):.2f}"


def _brake_for(view: PolicyView, endpoint_id: str) -> BrakeEntry | None:
    return next((b for b in view.brakes if b.endpoint_id == endpoint_id), None)


def _previous(config: EndpointConfig, fields: Sequence[str], brake: BrakeEntry | None) -> dict[str, object]:
    """Values to restore: the brake's saved originals first, so stacked brakes keep the real config."""
    saved = brake.previous if brake else {}
    return {name: saved.get(name, getattr(config, name)) for name in fields}


def _worker_usd_per_s(worker: Worker | None, config: EndpointConfig, prices: PriceTable) -> float:
    if worker is None:
        return endpoint_gpu_price(config, prices).flex_usd_per_s * config.gpu_count
    return prices.usd_per_s(worker.gpu_type_id) * worker.gpu_count


def _stop_patch(ep: EndpointFacts, brake: BrakeEntry | None) -> tuple[dict[str, object], dict[str, object]]:
    return {"workers_max": 0}, _previous(ep.config, ("workers_max",), brake)


def _key(*parts: object) -> str:
    return ":".join("" if p is None else str(p) for p in parts)


# --------------------------------------------------------------------------------------------------------
# Rules


def _runaway(ep: EndpointFacts, view: PolicyView, now: float) -> list[Decision]:
    """Work in progress beyond max_execution_s + grace_s.

    Saving: the worker's price × the seconds the job would still bill if left alone, i.e. until the
    endpoint's own execution timeout stops it, or until the month ends when it has none or when the job
    has already outlived it (a hung handler keeps pinging, runpod-api.md §5.4, so nothing else stops it).
    """
    config, limits, settings = ep.config, ep.limits, view.settings
    limit_s = limits.max_execution_s + limits.grace_s
    mode = limits.mode_for(Rule.RUNAWAY_JOB)
    month_end = next_month_start(now)
    timeout_s = (config.execution_timeout_ms or 0) / 1000.0
    workers = {w.worker.id: w.worker for w in ep.workers}
    cancelled = {c.job_id for c in ep.cancelled_jobs}
    decisions: list[Decision] = []

    def left_alone_s(since: float) -> float:
        platform_stop = since + timeout_s
        # Past its own timeout and still running: the platform is not stopping it, so nothing will.
        stops_at = min(platform_stop, month_end) if timeout_s > 0 and platform_stop > now else month_end
        return max(0.0, stops_at - now)

    for job in sorted(ep.jobs_in_progress, key=lambda j: j.job_id):
        age = now - job.since
        if job.job_id in cancelled or age <= limit_s:
            continue
        worker = workers.get(job.worker_id) if job.worker_id else None
        saving = _worker_usd_per_s(worker, config, view.prices) * left_alone_s(job.since)
        decisions.append(
            Decision(
                rule=Rule.RUNAWAY_JOB,
                action=Action.CANCEL_JOB,
                endpoint_id=config.id,
                mode=mode,
                reason=(
                    f"job {job.job_id} in progress for {_duration(age)} (limit {limit_s:.0f} s); "
                    f"left alone it would bill up to {_eur(saving, settings)} more"
                ),
                severity="critical",
                job_id=job.job_id,
                worker_id=job.worker_id,
                estimated_saving_usd=saving,
                dedupe_key=_key(Rule.RUNAWAY_JOB, "cancel_job", config.id, job.job_id),
            )
        )

    since, worker_id = _unknown_work(ep)
    if since is not None and now - since > limit_s and config.workers_max > 0:
        brake = _brake_for(view, config.id)
        patch, previous = _stop_patch(ep, brake)
        saving = _worker_usd_per_s(workers.get(worker_id or ""), config, view.prices) * left_alone_s(since)
        decisions.append(
            Decision(
                rule=Rule.RUNAWAY_JOB,
                action=Action.SCALE_TO_ZERO,
                endpoint_id=config.id,
                mode=mode,
                reason=(
                    f"a worker has been running for {_duration(now - since)} on a job we cannot "
                    f"identify (limit {limit_s:.0f} s); scaling to zero saves up to {_eur(saving, settings)}"
                ),
                severity="critical",
                worker_id=worker_id,
                patch=patch,
                previous=previous,
                estimated_saving_usd=saving,
                dedupe_key=_key(Rule.RUNAWAY_JOB, "scale_to_zero", config.id, worker_id),
            )
        )
    return decisions


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the runaway rule will fire for one piece of work, if nothing changes: a job RunPod confirmed in
    progress (``job_id``), or a worker running work no known job accounts for (``job_id`` None)."""

    at: float
    endpoint_id: str
    job_id: str | None
    worker_id: str | None


DEADLINE_MARGIN_S = 0.1
"""The runaway rule fires strictly past the limit; its deadline is checked this long after it."""


def runaway_deadlines(endpoints: Sequence[EndpointFacts]) -> list[Deadline]:
    """The moments the runaway rule fires (start + max_execution_s + grace_s, just past), earliest first,
    so the daemon can check then instead of at its next tick. The same limits as :func:`_runaway`."""
    deadlines: list[Deadline] = []
    for ep in endpoints:
        limit_s = ep.limits.max_execution_s + ep.limits.grace_s + DEADLINE_MARGIN_S
        cancelled = {c.job_id for c in ep.cancelled_jobs}
        deadlines.extend(
            Deadline(job.since + limit_s, ep.config.id, job.job_id, job.worker_id)
            for job in ep.jobs_in_progress
            if job.job_id not in cancelled
        )
        since, worker_id = _unknown_work(ep)
        if since is not None and ep.config.workers_max > 0:
            deadlines.append(Deadline(since + limit_s, ep.config.id, None, worker_id))
    return sorted(deadlines, key=lambda d: (d.at, d.endpoint_id, d.job_id or ""))


def _unknown_work(ep: EndpointFacts) -> tuple[float | None, str | None]:
    """(first seen, worker id) of in-progress work no known job accounts for.

    A worker still running a job the daemon cancelled is not unknown work: :func:`_escalations` judges it,
    after ``escalate_after_ticks`` (a cancel needs a moment to reach an async handler)."""
    claimed = {j.worker_id for j in ep.jobs_in_progress}
    watched = {c.worker_id for c in ep.cancelled_jobs}
    running = sorted(
        (w.state_since, w.worker.id)
        for w in ep.workers
        if w.worker.status == WorkerStatus.RUNNING and w.worker.id not in claimed | watched
    )
    if ep.unknown_work_since is not None:
        return ep.unknown_work_since, running[0][1] if running else None
    if None in claimed or not running:
        return None, None
    since, worker_id = running[0]
    if ep.last_progress_at is not None:
        since = max(since, ep.last_progress_at)
    return since, worker_id


def _escalations(ep: EndpointFacts, view: PolicyView, now: float) -> list[Decision]:
    """A cancelled job's worker still billed N ticks later (a sync handler ignores /cancel, §5.4)."""
    config, limits = ep.config, ep.limits
    tail_s = config.idle_timeout_s + limits.grace_s
    workers = {w.worker.id: w for w in ep.workers}
    decisions: list[Decision] = []
    for cancelled in sorted(ep.cancelled_jobs, key=lambda c: c.job_id):
        seen = workers.get(cancelled.worker_id or "")
        if seen is None or cancelled.ticks_since < view.settings.escalate_after_ticks:
            continue
        if seen.worker.status not in (WorkerStatus.RUNNING, WorkerStatus.IDLE):
            continue
        if now - cancelled.cancelled_at <= tail_s:
            continue
        if seen.worker.status == WorkerStatus.IDLE and now - seen.state_since <= tail_s:
            continue
        saving = _worker_usd_per_s(seen.worker, config, view.prices) * max(0.0, next_month_start(now) - now)
        stopped_already = config.workers_max == 0
        patch, previous = ({}, {}) if stopped_already else _stop_patch(ep, _brake_for(view, config.id))
        decisions.append(
            Decision(
                rule=Rule.RUNAWAY_JOB,
                action=Action.ALERT if stopped_already else Action.ESCALATE,
                endpoint_id=config.id,
                mode=limits.mode_for(Rule.RUNAWAY_JOB),
                reason=(
                    f"job {cancelled.job_id} was cancelled {_duration(now - cancelled.cancelled_at)} ago "
                    f"but worker {seen.worker.id} is still {seen.worker.status.value.lower()}"
                    + (
                        " although workers_max is 0: needs a human"
                        if stopped_already
                        else f"; scaling to zero, up to {_eur(saving, view.settings)} at stake"
                    )
                ),
                severity="critical",
                job_id=cancelled.job_id,
                worker_id=seen.worker.id,
                patch=patch,
                previous=previous,
                estimated_saving_usd=saving,
                dedupe_key=_key(Rule.RUNAWAY_JOB, "escalate", config.id, cancelled.job_id),
            )
        )
    return decisions


def _crash_loop(ep: EndpointFacts, view: PolicyView, now: float) -> list[Decision]:
    """Retries climbing, unhealthy workers, a queue, and nothing completing.

    Saving: one worker kept starting (billed while initializing) until the month ends, an upper bound.
    """
    config, health, crash = ep.config, ep.health or Health(), ep.crash
    unhealthy = max(
        health.workers_unhealthy, sum(1 for w in ep.workers if w.worker.status == WorkerStatus.UNHEALTHY)
    )
    looping = (
        crash.retries_delta >= view.settings.crash_retry_delta
        and unhealthy > 0
        and health.jobs_in_queue > 0
        and crash.completed_delta <= 0
    )
    if not looping or config.workers_max == 0:
        return []
    mode = ep.limits.mode_for(Rule.CRASH_LOOP)
    saving = _worker_usd_per_s(None, config, view.prices) * max(0.0, next_month_start(now) - now)
    patch, previous = _stop_patch(ep, _brake_for(view, config.id))
    what = (
        f"crash loop: {crash.retries_delta} retries and 0 completions over {crash.ticks} ticks, "
        f"{unhealthy} unhealthy worker(s), {health.jobs_in_queue} queued"
    )
    return [
        Decision(
            rule=Rule.CRASH_LOOP,
            action=Action.SCALE_TO_ZERO,
            endpoint_id=config.id,
            mode=mode,
            reason=f"{what}; scaling to zero until a human restores it (up to {_eur(saving, view.settings)})",
            severity="critical",
            patch=patch,
            previous=previous,
            estimated_saving_usd=saving,
            dedupe_key=_key(Rule.CRASH_LOOP, "scale_to_zero", config.id),
        ),
        Decision(
            rule=Rule.CRASH_LOOP,
            action=Action.ALERT,
            endpoint_id=config.id,
            mode=mode,
            reason=what,
            severity="critical",
            estimated_saving_usd=saving,
            dedupe_key=_key(Rule.CRASH_LOOP, "alert", config.id, month_start(now)),
        ),
    ]


def _idle_leak(ep: EndpointFacts, view: PolicyView, now: float) -> list[Decision]:
    """A flex worker IDLE beyond idle_timeout + grace: something keeps it alive (e.g. pings).

    Saving: each leaking worker's price until the month ends (nothing else would stop it).
    """
    config, limits = ep.config, ep.limits
    if config.workers_min != 0 or config.workers_max == 0:
        return []
    tail_s = config.idle_timeout_s + limits.grace_s
    escalated = {c.worker_id for c in ep.cancelled_jobs}
    leaking = sorted(
        (
            w
            for w in ep.workers
            if w.worker.status == WorkerStatus.IDLE
            and now - max(w.state_since, ep.last_progress_at or w.state_since) > tail_s
            and w.worker.id not in escalated
        ),
        key=lambda w: (w.state_since, w.worker.id),
    )
    if not leaking:
        return []
    seconds_left = max(0.0, next_month_start(now) - now)
    saving = sum(_worker_usd_per_s(w.worker, config, view.prices) for w in leaking) * seconds_left
    patch, previous = _stop_patch(ep, _brake_for(view, config.id))
    oldest = leaking[0]
    return [
        Decision(
            rule=Rule.IDLE_LEAK,
            action=Action.SCALE_TO_ZERO,
            endpoint_id=config.id,
            mode=limits.mode_for(Rule.IDLE_LEAK),
            reason=(
                f"{len(leaking)} worker(s) idle for {(now - oldest.state_since) / 60:.0f} min, beyond the "
                f"{config.idle_timeout_s} s idle timeout + {limits.grace_s:.0f} s grace; left alone they "
                f"bill up to {_eur(saving, view.settings)} by the month's end"
            ),
            severity="critical",
            worker_id=oldest.worker.id,
            patch=patch,
            previous=previous,
            estimated_saving_usd=saving,
            dedupe_key=_key(Rule.IDLE_LEAK, "scale_to_zero", config.id),
        )
    ]


def _config_drift(ep: EndpointFacts, view: PolicyView, now: float) -> list[Decision]:
    """Settings beyond the limits; each decision carries what the drift costs per month (its saving)."""
    config, limits, settings = ep.config, ep.limits, view.settings
    brake = _brake_for(view, config.id)
    price = endpoint_gpu_price(config, view.prices)
    required_ms = limits.required_execution_timeout_s * 1000
    checks: list[tuple[ConfigField, int | None, int, bool]] = [
        (
            "execution_timeout_ms",
            config.execution_timeout_ms,
            required_ms,
            not config.execution_timeout_ms or config.execution_timeout_ms > required_ms,
        ),
        (
            "idle_timeout_s",
            config.idle_timeout_s,
            limits.max_idle_timeout_s,
            config.idle_timeout_s > limits.max_idle_timeout_s and brake is None,
        ),
        (
            "workers_max",
            config.workers_max,
            limits.max_workers,
            config.workers_max > limits.max_workers and brake is None,
        ),
        (
            "workers_min",
            config.workers_min,
            limits.max_workers_min,
            config.workers_min > limits.max_workers_min,
        ),
        (
            "workers_standby",
            config.workers_standby,
            limits.max_workers_standby,
            config.workers_standby > limits.max_workers_standby,
        ),
    ]
    decisions: list[Decision] = []
    for name, current, allowed, drifting in checks:
        if not drifting:
            continue
        cost = monthly_cost_of_config(
            name,
            current,
            allowed,
            price=price,
            gpu_count=config.gpu_count,
            requests_per_month=ep.requests_per_month,
            now=now,
        )
        decisions.append(
            Decision(
                rule=Rule.CONFIG_DRIFT,
                action=Action.PATCH_CONFIG,
                endpoint_id=config.id,
                mode=limits.mode_for(Rule.CONFIG_DRIFT),
                reason=(
                    f"{name} is {current} (allowed {allowed}): {cost.note}, "
                    f"{_eur(cost.usd_per_month, settings)} per month; setting it to {allowed}"
                ),
                severity="critical" if cost.usd_per_month > 0 else "warning",
                patch={name: allowed},
                previous={name: current},
                estimated_saving_usd=cost.usd_per_month,
                dedupe_key=_key(Rule.CONFIG_DRIFT, name, config.id, current),
            )
        )
    return decisions


def _auto_restore(ep: EndpointFacts, view: PolicyView, now: float) -> list[Decision]:
    """Undo our own temporary brakes once their reason is gone.

    Runaway and idle-leak brakes lift when the endpoint has no billed worker left; a traffic cool-down
    lifts when its time is up. Crash-loop brakes wait for a human; budget brakes for the next month.
    """
    brake = _brake_for(view, ep.config.id)
    if brake is None:
        return []
    live = any(w.worker.status in BILLED_BY_DEFAULT for w in ep.workers)
    if brake.rule in (Rule.RUNAWAY_JOB, Rule.IDLE_LEAK) and not live:
        why = "no billed worker left"
    elif brake.rule == Rule.SUSPICIOUS_TRAFFIC and brake.until is not None and now >= brake.until:
        why = "traffic cool-down is over"
    else:
        return []
    return restore_decisions(
        [brake], now, reason=why, configs={ep.config.id: ep.config}, mode=ep.limits.mode_for(brake.rule)
    )


def _budget_brake(view: PolicyView, now: float) -> list[Decision]:
    """The budget's steps, for the endpoints not on the allow-list:

    1. an alert at each ``budget.alert_thresholds`` threshold, once a month;
    2. a forecast overrun tightens them (max 1 worker, a short idle timeout). In the month's first
       :data:`EARLY_MONTH_DAYS` days, while spend is below the first threshold, the forecast rests on too
       little data: the overrun is one ``info`` notice naming what would be tightened, and nothing is
       (:func:`_early_forecast_notice`);
    3. with ``budget.daily_allowance``, a UTC day whose variable spend reaches the day's allowance pauses
       and purges them until the next UTC midnight, with one alert when it fires and one when it lifts
       (:func:`_day_pauses`, :func:`_day_lifts`);
    4. at ``brake_at`` of the budget, the month's brake pauses and purges them until the month ends. It
       keeps priority over the day's: while it holds, the day's brake neither fires nor lifts.
    """
    budget, settings = view.budget, view.settings
    decisions: list[Decision] = []
    month = month_start(now)
    decisions.extend(_month_change_restores(view, now))
    if budget is None:
        return decisions
    for threshold in sorted(settings.alert_thresholds):
        if budget.used_ratio >= threshold and threshold not in view.alerted_thresholds:
            decisions.append(
                Decision(
                    rule=Rule.BUDGET_BRAKE,
                    action=Action.ALERT,
                    endpoint_id=None,
                    mode=settings.mode,
                    reason=(
                        f"{budget.used_ratio:.0%} of the €{budget.budget_eur:.2f} budget used "
                        f"(€{budget.spent_eur:.2f}: €{budget.fixed_eur:.2f} fixed, "
                        f"€{budget.variable_eur:.2f} GPU); forecast €{budget.forecast_eur:.2f}"
                    ),
                    severity="critical" if threshold >= 0.8 else "warning",
                    dedupe_key=_key(Rule.BUDGET_BRAKE, "alert", month, threshold),
                    threshold=threshold,
                )
            )
    braking = budget.used_ratio >= settings.brake_at
    day = _day_figures(view, now)
    day_braking = not braking and day is not None and day.reached
    if not braking and not day_braking:
        decisions.extend(_day_lifts(view, now, day))
    if not braking and not day_braking and not budget.forecast_overrun:
        return decisions
    candidates = [ep for ep in sorted(view.endpoints, key=lambda e: e.config.id) if not ep.limits.allowed]
    if braking:
        decisions.extend(_month_pauses(view, candidates, budget, now))
    elif day is not None and day_braking:
        decisions.extend(_day_pauses(view, candidates, day, now))
    else:
        tightens = _forecast_tightens(view, candidates, budget, now)
        if tightens and _forecast_too_early(budget, settings, now):
            decisions.append(_early_forecast_notice(tightens, budget, settings, now))
        else:
            decisions.extend(tightens)
    return decisions


def _pause_and_purge(
    view: PolicyView,
    ep: EndpointFacts,
    *,
    why: str,
    saving: float,
    severity: Severity,
    period: float,
    until: float | None,
) -> list[Decision]:
    """The brake the month's and the day's steps share: workers_max 0 (the original configuration kept
    when it stacks on a tighten) and the queue purged, keyed by the month or the day (``period``)."""
    config, brake = ep.config, _brake_for(view, ep.config.id)
    mode = ep.limits.mode_for(Rule.BUDGET_BRAKE)
    patch, previous = _stop_patch(ep, brake)
    if brake is not None and brake.kind == Action.TIGHTEN:
        previous = _previous(config, ("workers_max", "idle_timeout_s"), brake)
    return [
        Decision(
            rule=Rule.BUDGET_BRAKE,
            action=Action.PAUSE,
            endpoint_id=config.id,
            mode=mode,
            reason=why,
            severity=severity,
            patch=patch,
            previous=previous,
            estimated_saving_usd=saving,
            until=until,
            dedupe_key=_key(Rule.BUDGET_BRAKE, "pause", config.id, period),
        ),
        Decision(
            rule=Rule.BUDGET_BRAKE,
            action=Action.PURGE_QUEUE,
            endpoint_id=config.id,
            mode=mode,
            reason=f"{why}; queued jobs would start workers again",
            severity=severity,
            dedupe_key=_key(Rule.BUDGET_BRAKE, "purge_queue", config.id, period),
        ),
    ]


def _month_pauses(
    view: PolicyView, candidates: Sequence[EndpointFacts], budget: BudgetStatus, now: float
) -> list[Decision]:
    """The month's brake, until the month ends. Saving: the forecast's rate for the days left, shared by
    each endpoint's part of the month's spend."""
    settings = view.settings
    remaining_eur = max(budget.rate_mtd_eur_per_day, budget.rate_last_24h_eur_per_day or 0.0)
    remaining_usd = remaining_eur * budget.days_left * settings.usd_per_eur
    total_mtd = sum(ep.variable_mtd_usd for ep in candidates)
    decisions: list[Decision] = []
    for ep in candidates:
        if ep.config.workers_max == 0 and _brake_for(view, ep.config.id) is not None:
            continue
        share = ep.variable_mtd_usd / total_mtd if total_mtd > 0 else 1.0 / len(candidates)
        saving = remaining_usd * share
        why = (
            f"{budget.used_ratio:.0%} of the budget used (brake at {settings.brake_at:.0%}); "
            f"pausing saves about {_eur(saving, settings)} of forecast spend"
        )
        decisions.extend(
            _pause_and_purge(
                view, ep, why=why, saving=saving, severity="critical", period=month_start(now), until=None
            )
        )
    return decisions


def _forecast_tightens(
    view: PolicyView, candidates: Sequence[EndpointFacts], budget: BudgetStatus, now: float
) -> list[Decision]:
    """A forecast overrun: max 1 worker and the brake idle timeout on each endpoint not already held.

    Saving: the idle tail cut after each of the endpoint's requests for what is left of the month."""
    month = month_start(now)
    decisions: list[Decision] = []
    for ep in candidates:
        config, brake = ep.config, _brake_for(view, ep.config.id)
        tightened = {
            "workers_max": min(config.workers_max, 1),
            "idle_timeout_s": min(config.idle_timeout_s, ep.limits.brake_idle_timeout_s),
        }
        if brake is not None or all(getattr(config, k) == v for k, v in tightened.items()):
            continue
        price = endpoint_gpu_price(config, view.prices)
        idle_cut_s = config.idle_timeout_s - tightened["idle_timeout_s"]
        saving = (
            idle_cut_s
            * ep.requests_per_month
            * price.flex_usd_per_s
            * config.gpu_count
            * min(1.0, budget.days_left * 86_400.0 / SECONDS_IN_30_DAYS)
        )
        decisions.append(
            Decision(
                rule=Rule.BUDGET_BRAKE,
                action=Action.TIGHTEN,
                endpoint_id=config.id,
                mode=ep.limits.mode_for(Rule.BUDGET_BRAKE),
                reason=(
                    f"forecast €{budget.forecast_eur:.2f} exceeds the €{budget.budget_eur:.2f} budget; "
                    f"max 1 worker and a {tightened['idle_timeout_s']} s idle timeout save about "
                    f"{_eur(saving, view.settings)}"
                ),
                severity="warning",
                patch=tightened,
                previous=_previous(config, tuple(tightened), brake),
                estimated_saving_usd=saving,
                dedupe_key=_key(Rule.BUDGET_BRAKE, "tighten", config.id, month),
            )
        )
    return decisions


def _forecast_too_early(budget: BudgetStatus, settings: PolicySettings, now: float) -> bool:
    """In the month's first :data:`EARLY_MONTH_DAYS` days, with spend below the first alert threshold."""
    first = min(settings.alert_thresholds, default=float("inf"))
    return now - month_start(now) < EARLY_MONTH_DAYS * DAY_S and budget.used_ratio < first


def _early_forecast_notice(
    tightens: Sequence[Decision], budget: BudgetStatus, settings: PolicySettings, now: float
) -> Decision:
    """The softened forecast overrun: information (once an hour in the ledger, once a day on Slack) naming
    the endpoints a tighten would touch; nothing is changed."""
    day_of_month = int((now - month_start(now)) // DAY_S) + 1
    first = min(settings.alert_thresholds, default=None)
    crossing = f", or once spend crosses {first:.0%} of the budget," if first is not None else ""
    names = ", ".join(d.endpoint_id or "" for d in tightens)
    return Decision(
        rule=Rule.BUDGET_BRAKE,
        action=Action.ALERT,
        endpoint_id=None,
        mode=settings.mode,
        reason=(
            f"forecast €{budget.forecast_eur:.2f} exceeds the €{budget.budget_eur:.2f} budget, but on day "
            f"{day_of_month} of the month it extrapolates too little data: information only, nothing is "
            f"tightened ({names} would get max 1 worker and a short idle timeout); from day "
            f"{EARLY_MONTH_DAYS + 1}{crossing} an overrun is a warning and tightens"
        ),
        severity="info",
        dedupe_key=_key(Rule.BUDGET_BRAKE, "alert", "forecast", month_start(now)),
    )


@dataclass(frozen=True, slots=True)
class _Day:
    """The current UTC day against its allowance (``budget.daily_allowance``), in EUR."""

    start: float
    end: float
    """The next UTC midnight: when the day's brake lifts."""
    allowance_eur: float
    spent_eur: float
    days_left: int
    """Days from today to the month's end, today included: the allowance's divisor."""

    @property
    def reached(self) -> bool:
        """Today's spend reached the allowance (a day with no spend has nothing to brake, even when nothing
        is left of the month: the month's brake got there first)."""
        return self.spent_eur > 0 and self.spent_eur >= self.allowance_eur


def _day_figures(view: PolicyView, now: float) -> _Day | None:
    """Today against its allowance; None when the allowance is off, or today's spend or the budget unknown."""
    budget = view.budget
    if budget is None or not view.settings.daily_allowance or view.variable_today_usd is None:
        return None
    spent = usd_to_eur(view.variable_today_usd, budget.usd_per_eur)
    start = day_start(now)
    allowance = daily_allowance_eur(
        monthly_eur=budget.budget_eur,
        fixed_eur=budget.fixed_eur,
        variable_eur=budget.variable_eur,
        today_eur=spent,
        now=now,
    )
    days_left = max(1, round((next_month_start(now) - start) / DAY_S))
    return _Day(start, start + DAY_S, allowance, spent, days_left)


def _day_pauses(
    view: PolicyView, candidates: Sequence[EndpointFacts], day: _Day, now: float
) -> list[Decision]:
    """The day's brake: the month's pause and purge, until the next UTC midnight (``until``), plus one
    alert naming the endpoints it holds. An endpoint already at workers_max 0 is left as it is.

    Saving: the rest of the day at today's pace (today's spend over the hours gone, at least one), times
    the endpoint's part of today's spend (an equal part of it when today's spend has no endpoint)."""
    settings = view.settings
    total_today = view.variable_today_usd or 0.0
    rest_of_day_usd = total_today / max(HOUR_S, now - day.start) * max(0.0, day.end - now)
    attributed = sum(ep.variable_today_usd for ep in candidates) > 0
    spent = f"today's GPU spend €{day.spent_eur:.2f} reached the day's allowance €{day.allowance_eur:.2f}"
    decisions: list[Decision] = []
    for ep in candidates:
        if ep.config.workers_max == 0:
            continue
        share = ep.variable_today_usd / total_today if attributed else 1.0 / len(candidates)
        saving = rest_of_day_usd * share
        why = f"{spent}; pausing until 00:00 UTC saves about {_eur(saving, settings)} at today's pace"
        decisions.extend(
            _pause_and_purge(
                view, ep, why=why, saving=saving, severity="warning", period=day.start, until=day.end
            )
        )
    pauses = [d for d in decisions if d.action == Action.PAUSE]
    if not pauses:
        return decisions
    names = ", ".join(d.endpoint_id or "" for d in pauses)
    proposed = " (proposed only: dry-run)" if all(d.mode != Mode.ENFORCE for d in pauses) else ""
    decisions.append(
        Decision(
            rule=Rule.BUDGET_BRAKE,
            action=Action.ALERT,
            endpoint_id=None,
            mode=settings.mode,
            reason=(
                f"{spent} (the €{day.allowance_eur * day.days_left:.2f} left for GPU time this month at the "
                f"day's start, over {day.days_left} day(s)): the day's brake pauses {names} (not on "
                f"policy.allow_list) until 00:00 UTC{proposed}"
            ),
            severity="warning",
            dedupe_key=_key(Rule.BUDGET_BRAKE, "alert", "day", day.start),
        )
    )
    return decisions


def _held_for_the_day(brake: BrakeEntry, ep: EndpointFacts, settings: PolicySettings) -> bool:
    """A budget brake the day's step set: the only one with an end (``until``), or, with the allowance
    on, a forecast tighten holding the endpoint at workers_max 0 (the day's pause stacked on it keeps the
    tighten's record, which has no end; the month's brake, the other pause that could have stacked, is
    not holding when this is asked)."""
    if brake.until is not None:
        return True
    saved = brake.previous.get("workers_max")
    stacked = isinstance(saved, int) and saved > 0 and ep.config.workers_max == 0
    return settings.daily_allowance and brake.kind == Action.TIGHTEN and stacked


def _day_lifts(view: PolicyView, now: float, day: _Day | None) -> list[Decision]:
    """Restore the day's brakes once their day is over (the caller asks only while neither the month's
    brake nor today's allowance holds), with one alert. A restore puts back the configuration from before
    the brake (a tighten underneath included: it comes back at a later tick if the forecast still
    overruns). Last month's brakes are the month change's (:func:`_month_change_restores`)."""
    month = month_start(now)
    endpoints = {ep.config.id: ep for ep in view.endpoints}
    decisions: list[Decision] = []
    for brake in sorted(view.brakes, key=lambda b: (b.endpoint_id, b.since)):
        ep = endpoints.get(brake.endpoint_id)
        if ep is None or brake.rule != Rule.BUDGET_BRAKE or month_start(brake.since) < month:
            continue
        ends = brake.until if brake.until is not None else day_start(brake.since) + DAY_S
        if now < ends or not _held_for_the_day(brake, ep, view.settings):
            continue
        decisions.extend(
            restore_decisions(
                [brake],
                now,
                reason="a new UTC day's allowance has started",
                configs={ep.config.id: ep.config},
                mode=ep.limits.mode_for(Rule.BUDGET_BRAKE),
            )
        )
    if not decisions:
        return decisions
    names = ", ".join(d.endpoint_id or "" for d in decisions)
    today = (
        f" (today's allowance €{day.allowance_eur:.2f}, €{day.spent_eur:.2f} spent so far)"
        if day is not None
        else ""
    )
    decisions.append(
        Decision(
            rule=Rule.BUDGET_BRAKE,
            action=Action.ALERT,
            endpoint_id=None,
            mode=view.settings.mode,
            reason=f"a new UTC day{today}: the day's brake is lifted from {names}",
            severity="info",
            dedupe_key=_key(Rule.BUDGET_BRAKE, "alert", "day-lifted", day_start(now)),
        )
    )
    return decisions


def _month_change_restores(view: PolicyView, now: float) -> list[Decision]:
    month = month_start(now)
    stale_brakes = [b for b in view.brakes if b.rule == Rule.BUDGET_BRAKE and month_start(b.since) < month]
    configs = {ep.config.id: ep.config for ep in view.endpoints}
    return restore_decisions(
        stale_brakes, now, reason="a new month's budget has started", configs=configs, mode=view.settings.mode
    )


def _suspicious_traffic(view: PolicyView, now: float) -> list[Decision]:
    """Each finding: an alert, plus the configured cut (deny the source, or a timed scale-to-zero).

    A finding without a source (a hung job's pings, a worker) cannot be denied; it still gets the alert
    and, with the cool-down cut, the timed scale-to-zero.

    Saving of a cool-down: one busy worker for the cool-down (an upper bound); a deny-list entry: unknown, 0.
    A keep-warm finding also says what it costs: one worker billed around the clock for a month, carried by
    its alert (``estimated_saving_usd``, the alert's € figure) and named in every reason.
    """
    settings = view.settings
    endpoints = {ep.config.id: ep for ep in view.endpoints}
    decisions: list[Decision] = []
    stopping: set[str] = set()
    for finding in sorted(
        view.traffic_findings, key=lambda f: (f.endpoint_id, f.source or "", f.kind, f.detail)
    ):
        ep = endpoints.get(finding.endpoint_id)
        mode = ep.limits.mode_for(Rule.SUSPICIOUS_TRAFFIC) if ep else settings.mode
        what = f"suspicious traffic ({finding.kind}) from {finding.source}: {finding.detail}"
        warm_usd = 0.0
        if ep is not None and finding.kind == "keep_warm":
            warm_usd = _worker_usd_per_s(None, ep.config, view.prices) * SECONDS_IN_30_DAYS
            what += f"; a worker kept warm around the clock costs about {_eur(warm_usd, settings)} a month"
        why_not = _why_not_cut(finding, ep, settings)
        if why_not:
            what += f"; not cut: {why_not}"
        decisions.append(
            Decision(
                rule=Rule.SUSPICIOUS_TRAFFIC,
                action=Action.ALERT,
                endpoint_id=finding.endpoint_id,
                mode=mode,
                reason=what,
                severity="warning",
                source=finding.source,
                estimated_saving_usd=warm_usd,
                dedupe_key=_key(
                    Rule.SUSPICIOUS_TRAFFIC, "alert", finding.endpoint_id, finding.source, finding.kind
                ),
            )
        )
        if why_not:
            continue
        if settings.traffic_cut == "deny_list":
            if finding.source in (None, UNKNOWN_SOURCE):  # a worker or job, or a caller nobody named
                continue
            decisions.append(
                Decision(
                    rule=Rule.SUSPICIOUS_TRAFFIC,
                    action=Action.DENY_LIST,
                    endpoint_id=finding.endpoint_id,
                    mode=mode,
                    reason=f"{what}; denying {finding.source}",
                    severity="warning",
                    source=finding.source,
                    dedupe_key=_key(
                        Rule.SUSPICIOUS_TRAFFIC, "deny_list", finding.endpoint_id, finding.source
                    ),
                )
            )
            continue
        if ep is None or ep.config.workers_max == 0 or finding.endpoint_id in stopping:
            continue
        stopping.add(finding.endpoint_id)
        saving = _worker_usd_per_s(None, ep.config, view.prices) * settings.cut_cooldown_s
        patch, previous = _stop_patch(ep, _brake_for(view, ep.config.id))
        decisions.append(
            Decision(
                rule=Rule.SUSPICIOUS_TRAFFIC,
                action=Action.SCALE_TO_ZERO,
                endpoint_id=finding.endpoint_id,
                mode=mode,
                reason=(
                    f"{what}; scaling to zero for {settings.cut_cooldown_s / 60:.0f} min "
                    f"(up to {_eur(saving, settings)})"
                ),
                severity="warning",
                source=finding.source,
                patch=patch,
                previous=previous,
                estimated_saving_usd=saving,
                until=now + settings.cut_cooldown_s,
                dedupe_key=_key(Rule.SUSPICIOUS_TRAFFIC, "scale_to_zero", finding.endpoint_id),
            )
        )
    return decisions


def _why_not_cut(finding: TrafficFindingLike, ep: EndpointFacts | None, settings: PolicySettings) -> str:
    """Why this finding gets an alert and no cut ("" when a cut may go ahead).

    The log names the source, and logs can be forged: a source on ``pings.never_cut`` is never cut, and
    one that is not a usable deny-list entry is not written for the gateway to interpret. A cool-down
    stops the endpoint for everyone, so it goes ahead only when nobody else called it in the last hour:
    otherwise a forged flood would cut the team's real users off."""
    source = finding.source
    if source and is_protected(source, settings.never_cut):
        return f"{source} is on pings.never_cut"
    if settings.traffic_cut == "deny_list" and source not in (None, UNKNOWN_SOURCE):
        try:
            deny_entry(source)
        except ValueError as exc:
            return f"cannot deny it ({exc})"
    if settings.traffic_cut == "cooldown" and ep is not None:
        others = {s: n for s, n in ep.requests_by_source_1h.items() if s != source and n > 0}
        if others:
            callers = sum(others.values())
            return (
                f"a cool-down would also refuse {callers} request(s) from {len(others)} other caller(s) "
                "in the last hour; deny this source at the gateway instead"
            )
    return ""


# --------------------------------------------------------------------------------------------------------
# Public entry points


def restore_decisions(
    brakes: Sequence[BrakeEntry],
    now: float,
    *,
    reason: str = "restored on command",
    endpoint_ids: Collection[str] | None = None,
    configs: Mapping[str, EndpointConfig] | None = None,
    mode: Mode = Mode.ENFORCE,
) -> list[Decision]:
    """``restore`` decisions putting each brake's saved configuration back.

    Used by :func:`evaluate` (month change, reason gone) and by the daemon for an operator's restore
    command (``endpoint_ids`` None: all). ``previous`` holds the current values when ``configs`` is given,
    so even a restore is reversible.
    """
    decisions = []
    for brake in sorted(brakes, key=lambda b: (b.endpoint_id, b.since)):
        if endpoint_ids is not None and brake.endpoint_id not in endpoint_ids:
            continue
        config = (configs or {}).get(brake.endpoint_id)
        current = {name: getattr(config, name) for name in brake.previous} if config else {}
        restored = ", ".join(f"{name}={value}" for name, value in sorted(brake.previous.items()))
        decisions.append(
            Decision(
                rule=brake.rule,
                action=Action.RESTORE,
                endpoint_id=brake.endpoint_id,
                mode=mode,
                reason=f"{reason}: restoring {restored} (braked by {brake.rule})",
                severity="info",
                patch=dict(brake.previous),
                previous=current,
                dedupe_key=_key(brake.rule, "restore", brake.endpoint_id, brake.since),
            )
        )
    return decisions


def evaluate(view: PolicyView, now: float) -> list[Decision]:
    """All decisions for this tick, in deterministic order, with the safety rules applied."""
    settings = view.settings
    age = None if view.last_successful_poll is None else now - view.last_successful_poll
    if age is None or age > settings.stale_after_s:
        seen = "no successful poll yet" if age is None else f"last successful poll {age:.0f} s ago"
        return [
            Decision(
                rule=Rule.BLIND,
                action=Action.NONE,
                endpoint_id=None,
                mode=settings.mode,
                reason=f"watchdog is blind ({seen}, limit {settings.stale_after_s:.0f} s): taking no action",
                severity="critical",
                dedupe_key=_key(Rule.BLIND, "none"),
            )
        ]
    decisions: list[Decision] = []
    for ep in sorted(view.endpoints, key=lambda e: e.config.id):
        for rule in (_runaway, _escalations, _crash_loop, _idle_leak, _config_drift, _auto_restore):
            decisions.extend(rule(ep, view, now))
    decisions.extend(_budget_brake(view, now))
    decisions.extend(_suspicious_traffic(view, now))
    decisions.sort(key=_order)
    return _apply_safety(_one_stop_per_endpoint(decisions), view, now)


def _order(decision: Decision) -> tuple[int, str, int, str, str, str]:
    return (
        RULE_ORDER.index(decision.rule) if decision.rule in RULE_ORDER else len(RULE_ORDER),
        decision.endpoint_id or "",
        ACTION_ORDER.index(decision.action) if decision.action in ACTION_ORDER else len(ACTION_ORDER),
        decision.job_id or "",
        decision.worker_id or "",
        decision.dedupe_key,
    )


def _one_stop_per_endpoint(decisions: list[Decision]) -> list[Decision]:
    """Several rules may want workers_max 0 on one endpoint; the highest-priority one does it."""
    stopped: set[str | None] = set()
    kept = []
    for decision in decisions:
        if decision.action in STOP_ACTIONS:
            if decision.endpoint_id in stopped:
                continue
            stopped.add(decision.endpoint_id)
        kept.append(decision)
    return kept


def _hold(decision: Decision, why: str) -> Decision:
    return replace(decision, mode=Mode.DRY_RUN, reason=f"{decision.reason} [held: {why}]")


def _apply_safety(decisions: list[Decision], view: PolicyView, now: float) -> list[Decision]:
    """Downgrade to dry-run the enforce decisions beyond an endpoint's hourly cap or inside its cool-down.

    The cap counts per endpoint (one misbehaving endpoint must not use up the actions another needs), and
    only actions that changed something: a refused call (a forged job id's 404) costs nothing. The
    cool-down exists against flapping, so it never holds back stopping runaway work: the seed incident's
    first tick patches the missing execution timeout *and* cancels the hung job. Nor does the cap: a job
    RunPod confirms in progress past its limit is always cancelled (only confirmed jobs reach the policy).
    """
    settings = view.settings
    recent_by_endpoint: dict[str | None, int] = {}
    last_action: dict[str | None, float] = {}
    for action in view.actions:
        if now - action.at < HOUR_S and action.applied:
            recent_by_endpoint[action.endpoint_id] = recent_by_endpoint.get(action.endpoint_id, 0) + 1
        last_action[action.endpoint_id] = max(action.at, last_action.get(action.endpoint_id, action.at))
    result = []
    for decision in decisions:
        if decision.mode != "enforce" or decision.action in NOTIFY_ONLY_ACTIONS:
            result.append(decision)
            continue
        last = last_action.get(decision.endpoint_id)
        if last is not None and now - last < settings.cooldown_s and decision.rule != Rule.RUNAWAY_JOB:
            result.append(_hold(decision, f"cool-down, last action on this endpoint {now - last:.0f} s ago"))
            continue
        capped = recent_by_endpoint.get(decision.endpoint_id, 0) >= settings.max_actions_per_hour
        if capped and not (decision.rule == Rule.RUNAWAY_JOB and decision.action == Action.CANCEL_JOB):
            result.append(_hold(decision, "action cap reached"))
            continue
        recent_by_endpoint[decision.endpoint_id] = recent_by_endpoint.get(decision.endpoint_id, 0) + 1
        result.append(decision)
    return result
