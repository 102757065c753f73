"""Money arithmetic for a 20 EUR/month RunPod budget: live estimates, month-to-date, forecasts, drift costs.

Why this module exists: RunPod's billing API lags by hours, and the incident that motivated the product (a
hung job kept alive by pings for days) showed that hours are enough to burn a month's budget. So the daemon
keeps its *own* per-second estimate from the worker list it polls, reconciles it with billing once billing
arrives, and forecasts the end of the month conservatively. Everything here is a pure function: no I/O, no
clock (``now`` is UTC epoch seconds, passed in), no logging, so a simulated month is tested in milliseconds.

Conventions:

* RunPod bills in USD; the budget is in EUR. All conversions go through :func:`usd_to_eur` /
  :func:`eur_to_usd` with a configured ``usd_per_eur`` rate (runpod-api.md §6: none is sourced for us).
* Amounts stay floats; rounding is only for display (callers format).
* Where RunPod's semantics are uncertain we count the way that can only *over*-estimate spend
  (runpod-api.md §5.2): INITIALIZING is billed, unknown GPU types get the most expensive price.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from watchdog.clock import DAY_S, hour_start, month_start, next_month_start
from watchdog.models import BillingRecord, EndpointConfig, Worker
from watchdog.prices import GpuPrice, PriceTable
from watchdog.vocabulary import BILLED_BY_DEFAULT, WorkerStatus

SECONDS_IN_30_DAYS = 30 * DAY_S
"""RunPod's own "per month" unit for active workers (runpod-api.md §6: price × 2,592,000)."""


ACCOUNT_WIDE = "*"
"""Endpoint key for billing records that carry no endpoint id."""


def day_start(ts: float) -> float:
    """Start of the UTC day containing ``ts`` (UTC days are whole multiples of 86,400 s since the epoch)."""
    return ts - (ts % DAY_S)


# --------------------------------------------------------------------------------------------------------
# Currency: the only place EUR and USD meet.


def usd_to_eur(usd: float, usd_per_eur: float) -> float:
    """USD → EUR at ``usd_per_eur`` dollars for one euro (e.g. 1.08)."""
    if usd_per_eur <= 0:
        raise ValueError("usd_per_eur must be > 0")
    return usd / usd_per_eur


def eur_to_usd(eur: float, usd_per_eur: float) -> float:
    """EUR → USD at ``usd_per_eur`` dollars for one euro."""
    if usd_per_eur <= 0:
        raise ValueError("usd_per_eur must be > 0")
    return eur * usd_per_eur


# --------------------------------------------------------------------------------------------------------
# Live estimate between two polls.


@dataclass(frozen=True, slots=True)
class Accrual:
    """Spend the daemon attributes to one (endpoint, hour, GPU type, state, price kind) for one tick.

    The daemon adds the accruals of every tick into its ledger keyed by (endpoint_id, hour_start); summing
    ``usd`` per key gives the ``estimate_by_hour`` mapping :func:`month_to_date` wants.
    """

    endpoint_id: str
    hour_start: float
    gpu_type_id: str | None
    state: WorkerStatus
    seconds: float
    """Worker-seconds (wall time × workers), not multiplied by GPUs per worker."""
    gpu_seconds: float
    """``seconds`` × GPUs per worker: what RunPod prices."""
    usd: float
    active: bool = False
    """Priced at the active (``workersMin``) rate instead of flex."""


def _worker_usd_per_s(worker: Worker, prices: PriceTable, active_ids: frozenset[str]) -> float:
    return prices.usd_per_s(worker.gpu_type_id, active=worker.id in active_ids) * worker.gpu_count


def worker_seconds_by_state(workers: Sequence[Worker], seconds: float) -> dict[WorkerStatus, float]:
    """Worker-seconds per state over an interval of ``seconds`` in which ``workers`` were observed.

    Every state present appears, billed or not, so the TUI can show where time went.
    """
    totals: dict[WorkerStatus, float] = defaultdict(float)
    for worker in workers:
        totals[worker.status] += seconds
    return dict(totals)


def estimate_interval_usd(
    workers: Sequence[Worker],
    seconds: float,
    prices: PriceTable,
    active_ids: frozenset[str] = frozenset(),
    billed_states: frozenset[WorkerStatus] = BILLED_BY_DEFAULT,
) -> dict[str | None, float]:
    """USD per GPU type that ``workers`` accrue in ``seconds`` between two polls.

    Each billed worker (RUNNING, IDLE, INITIALIZING) costs ``seconds × GPUs × price``; the price is the
    active one for ids in ``active_ids`` (workers kept by ``workersMin``) and flex otherwise. Unknown GPU
    types get the most expensive price (PriceTable.lookup). Non-billed workers contribute nothing.
    """
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    totals: dict[str | None, float] = defaultdict(float)
    for worker in workers:
        if worker.status in billed_states:
            totals[worker.gpu_type_id] += seconds * _worker_usd_per_s(worker, prices, active_ids)
    return dict(totals)


def _hour_slices(start: float, end: float) -> Iterable[tuple[float, float]]:
    """(hour_start, seconds) pieces of [start, end) cut at UTC hour boundaries."""
    cursor = start
    while cursor < end:
        hour = hour_start(cursor)
        piece_end = min(end, hour + 3600.0)
        yield hour, piece_end - cursor
        cursor = piece_end


EXPECTED_SESSION_ROUNDING_S = 0.5
"""RunPod bills each worker session rounded UP to the whole second (runpod-api.md §5.2). A session's
length is continuous, so the round-up adds 0.5 s on average; polling never sees it. Added once per
session when it ends, it removes a bias of about -2 % on short sessions (bench/estimate_error.py)."""


def session_rounding_usd(worker: Worker, prices: PriceTable, *, active: bool = False) -> float:
    """Expected round-up cost of one ended worker session (see EXPECTED_SESSION_ROUNDING_S)."""
    return (
        EXPECTED_SESSION_ROUNDING_S
        * prices.usd_per_s(worker.gpu_type_id, active=active)
        * max(1, worker.gpu_count)
    )


def accrue_interval(
    endpoint_id: str,
    workers: Sequence[Worker],
    *,
    start: float,
    end: float,
    prices: PriceTable,
    active_ids: frozenset[str] = frozenset(),
    billed_states: frozenset[WorkerStatus] = BILLED_BY_DEFAULT,
) -> tuple[Accrual, ...]:
    """Accruals for one endpoint over the poll interval [start, end), split at hour boundaries.

    ``workers`` is the snapshot the caller attributes to the interval (the daemon uses the earlier poll:
    a worker seen then was alive at least until it was seen). Non-billed workers produce accruals with
    ``usd`` 0 so time per state stays visible. Result is sorted and aggregated per
    (hour, GPU type, state, active).
    """
    if end < start:
        raise ValueError("end must be >= start")
    seconds_by_key: dict[tuple[float, str | None, WorkerStatus, bool], list[float]] = defaultdict(
        lambda: [0.0, 0.0, 0.0]
    )
    for hour, seconds in _hour_slices(start, end):
        for worker in workers:
            active = worker.id in active_ids
            billed = worker.status in billed_states
            totals = seconds_by_key[(hour, worker.gpu_type_id, worker.status, active)]
            totals[0] += seconds
            totals[1] += seconds * worker.gpu_count
            totals[2] += seconds * _worker_usd_per_s(worker, prices, active_ids) if billed else 0.0
    return tuple(
        Accrual(endpoint_id, hour, gpu, state, worker_s, gpu_s, usd, active)
        for (hour, gpu, state, active), (worker_s, gpu_s, usd) in sorted(
            seconds_by_key.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2], item[0][3])
        )
    )


def usd_by_endpoint_hour(accruals: Iterable[Accrual]) -> dict[tuple[str, float], float]:
    """Sum accruals per (endpoint_id, hour_start): the ``estimate_by_hour`` input of :func:`month_to_date`."""
    totals: dict[tuple[str, float], float] = defaultdict(float)
    for accrual in accruals:
        totals[(accrual.endpoint_id, accrual.hour_start)] += accrual.usd
    return dict(totals)


def billed_gpu_seconds(
    accruals: Iterable[Accrual], billed_states: frozenset[WorkerStatus] = BILLED_BY_DEFAULT
) -> float:
    """GPU-seconds in billed states (the ``gpu_seconds_total`` metric)."""
    return sum(a.gpu_seconds for a in accruals if a.state in billed_states)


def billed_by_hour(records: Iterable[BillingRecord]) -> dict[tuple[str, float], float]:
    """Billing records → USD per (endpoint_id, hour_start).

    A record spanning several hours (e.g. a daily bucket) is spread evenly over the hours it covers, so
    prefer hourly buckets: the per-hour max in :func:`month_to_date` is only as sharp as the bucket. Records
    without an endpoint id are keyed :data:`ACCOUNT_WIDE`.
    """
    totals: dict[tuple[str, float], float] = defaultdict(float)
    for record in records:
        endpoint = record.endpoint_id or ACCOUNT_WIDE
        length = record.end - record.start
        if length <= 3600.0:
            totals[(endpoint, hour_start(record.start))] += record.total_usd
            continue
        for hour, seconds in _hour_slices(record.start, record.end):
            totals[(endpoint, hour)] += record.total_usd * seconds / length
    return dict(totals)


# --------------------------------------------------------------------------------------------------------
# Month to date: reconcile the estimate with (lagging) billing.


@dataclass(frozen=True, slots=True)
class EndpointMonthToDate:
    endpoint_id: str
    counted_usd: float
    """Sum over hours of max(estimate, billed): what the budget counts."""
    estimate_usd: float
    billed_usd: float
    drift_usd: float
    """billed − estimate over the hours billing has reported (positive: we under-estimate)."""
    today_usd: float = 0.0
    """The part of ``counted_usd`` in the hours of the current UTC day (what the day's allowance of
    :func:`daily_allowance_eur` is measured against)."""


@dataclass(frozen=True, slots=True)
class MonthToDate:
    month_start: float
    counted_usd: float
    estimate_usd: float
    billed_usd: float
    drift_usd: float
    billed_hours: int
    """Hours of this month billing has reported for (any endpoint): shows how far billing lags."""
    last_billed_hour: float | None
    by_endpoint: tuple[EndpointMonthToDate, ...]
    """Sorted by endpoint id."""
    today_usd: float = 0.0
    """The part of ``counted_usd`` in the hours of the current UTC day, all endpoints."""


def month_to_date(
    estimate_by_hour: Mapping[tuple[str, float], float],
    billed_by_hour: Mapping[tuple[str, float], float],
    now: float,
) -> MonthToDate:
    """Variable spend of the current UTC month.

    Per (endpoint, hour) the larger of our estimate and RunPod's bill counts: billing lags by hours (so a
    recent hour only has the estimate) and our estimate can miss things (disk, rounding, workers we never
    saw), so the max is never below either source. Drift (billed − estimate) is measured only on hours
    that billing has reported, otherwise billing lag would read as a large negative drift. Hours outside
    [month start, now] are ignored. The hours of the current UTC day are also summed apart (``today_usd``):
    hours and UTC days share their boundaries, so the day's spend is counted by the same max-of-two rule.
    """
    start = month_start(now)
    today = day_start(now)

    def in_month(key: tuple[str, float]) -> bool:
        return start <= key[1] <= now

    keys = sorted({k for k in estimate_by_hour if in_month(k)} | {k for k in billed_by_hour if in_month(k)})
    per_endpoint: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    billed_hours: set[float] = set()
    for key in keys:
        estimate = estimate_by_hour.get(key, 0.0)
        billed = billed_by_hour.get(key)
        totals = per_endpoint[key[0]]
        counted = max(estimate, billed or 0.0)
        totals[0] += counted
        totals[1] += estimate
        if billed is not None:
            totals[2] += billed
            totals[3] += billed - estimate
            billed_hours.add(key[1])
        if key[1] >= today:
            totals[4] += counted
    by_endpoint = tuple(
        EndpointMonthToDate(endpoint, counted, estimate, billed, drift, today_usd)
        for endpoint, (counted, estimate, billed, drift, today_usd) in sorted(per_endpoint.items())
    )
    return MonthToDate(
        month_start=start,
        counted_usd=sum(e.counted_usd for e in by_endpoint),
        estimate_usd=sum(e.estimate_usd for e in by_endpoint),
        billed_usd=sum(e.billed_usd for e in by_endpoint),
        drift_usd=sum(e.drift_usd for e in by_endpoint),
        billed_hours=len(billed_hours),
        last_billed_hour=max(billed_hours) if billed_hours else None,
        by_endpoint=by_endpoint,
        today_usd=sum(e.today_usd for e in by_endpoint),
    )


# --------------------------------------------------------------------------------------------------------
# Budget status and forecast.

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.8, 0.95)
MIN_ELAPSED_DAYS_FOR_RATE = 1.0
"""The month-to-date daily rate divides by at least one day, so one request at 00:05 on the 1st is not
extrapolated to a month of that pace."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where the month stands, in EUR (the budget's currency).

    Fixed costs (the Hugging Face space) count in full from the 1st: a subscription is charged for the
    month whatever happens later, so that money is already gone and must not look available for requests.
    Hence everything left (``left_eur``) is left for requests; ``request_budget_eur`` is the whole month's
    allowance for variable (GPU) spend.
    """

    budget_eur: float
    spent_eur: float
    fixed_eur: float
    variable_eur: float
    request_budget_eur: float
    """budget − fixed: the most variable spend the month can absorb."""
    left_eur: float
    """budget − spent; negative when over budget. All of it is left for requests (fixed is paid)."""
    used_ratio: float
    days_left: float
    """Fractional days until the next UTC month starts."""
    allowed_eur_per_day: float
    """What may still be spent per remaining day (0 when nothing is left)."""
    rate_mtd_eur_per_day: float
    """Average daily variable spend this month (divided by at least one day)."""
    rate_last_24h_eur_per_day: float | None
    """Variable spend of the last 24 h; None when the caller has no such figure."""
    forecast_mtd_rate_eur: float
    forecast_last_24h_rate_eur: float | None
    forecast_eur: float
    """Conservative forecast: fixed + variable + the larger rate × days left."""
    forecast_overrun: bool
    thresholds_crossed: tuple[float, ...]
    usd_per_eur: float


def budget_status(
    monthly_eur: float,
    usd_per_eur: float,
    *,
    fixed_costs_usd_per_month: float,
    variable_mtd_usd: float,
    now: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    variable_last_24h_usd: float | None = None,
) -> BudgetStatus:
    """Budget, spend and forecast for the UTC month containing ``now``."""
    start = month_start(now)
    end = next_month_start(now)
    fixed_eur = usd_to_eur(fixed_costs_usd_per_month, usd_per_eur)
    variable_eur = usd_to_eur(variable_mtd_usd, usd_per_eur)
    spent_eur = fixed_eur + variable_eur
    left_eur = monthly_eur - spent_eur
    days_left = max(0.0, (end - now) / DAY_S)
    days_elapsed = max(MIN_ELAPSED_DAYS_FOR_RATE, (now - start) / DAY_S)
    rate_mtd = variable_eur / days_elapsed
    rate_24h = None if variable_last_24h_usd is None else usd_to_eur(variable_last_24h_usd, usd_per_eur)
    forecast_mtd = spent_eur + rate_mtd * days_left
    forecast_24h = None if rate_24h is None else spent_eur + rate_24h * days_left
    forecast = max(forecast_mtd, forecast_24h if forecast_24h is not None else forecast_mtd)
    nothing_to_spend = math.inf if spent_eur > 0 else 0.0
    used_ratio = spent_eur / monthly_eur if monthly_eur > 0 else nothing_to_spend
    return BudgetStatus(
        budget_eur=monthly_eur,
        spent_eur=spent_eur,
        fixed_eur=fixed_eur,
        variable_eur=variable_eur,
        request_budget_eur=monthly_eur - fixed_eur,
        left_eur=left_eur,
        used_ratio=used_ratio,
        days_left=days_left,
        allowed_eur_per_day=max(0.0, left_eur) / days_left if days_left > 0 else 0.0,
        rate_mtd_eur_per_day=rate_mtd,
        rate_last_24h_eur_per_day=rate_24h,
        forecast_mtd_rate_eur=forecast_mtd,
        forecast_last_24h_rate_eur=forecast_24h,
        forecast_eur=forecast,
        forecast_overrun=forecast > monthly_eur,
        thresholds_crossed=tuple(sorted(t for t in thresholds if used_ratio >= t)),
        usd_per_eur=usd_per_eur,
    )


def brake_fires_at(
    *,
    spent_eur: float,
    forecast_eur: float,
    days_left: float,
    monthly_eur: float,
    brake_at: float,
    now: float,
) -> float | None:
    """When the budget brake fires (spend reaches ``brake_at`` × ``monthly_eur``) if the month goes on at
    the forecast's rate; ``now`` when spend is already there; None when it does not fire this month (no
    spend to come, or the moment falls after the month's end, when the spend starts again from the fixed
    costs).

    The rate is the forecast's own, ``(forecast − spent) / days left`` (the larger of the month's daily
    rate and the last 24 hours', see :func:`budget_status`), so the date agrees with the forecast shown
    beside it. Takes the fields :class:`BudgetStatus` and ``watchdog.status.BudgetView`` both carry, so
    the daemon, ``plan`` and the dashboard compute the same date.
    """
    threshold = brake_at * monthly_eur
    if spent_eur >= threshold:
        return now
    if days_left <= 0 or forecast_eur <= spent_eur:
        return None
    eur_per_s = (forecast_eur - spent_eur) / (days_left * DAY_S)
    fires = now + (threshold - spent_eur) / eur_per_s
    return fires if fires < now + days_left * DAY_S else None


def daily_allowance_eur(
    *, monthly_eur: float, fixed_eur: float, variable_eur: float, today_eur: float, now: float
) -> float:
    """The variable (GPU) spend the UTC day containing ``now`` may reach before the day's brake stops the
    endpoints not on the allow-list (``budget.daily_allowance``): what the month had left for requests
    when the day began, spread evenly over the days left, today included::

        (monthly budget - fixed costs - variable spend before today) / days from today to the month's end

    ``variable_eur`` is the month's variable spend to date, ``today_eur`` the part of it spent today (the
    fields :class:`BudgetStatus` and :class:`MonthToDate` carry; fixed costs count in full from the 1st).
    Example: 20 € with the $10 Hugging Face space at 1.16 leaves 11.38 € for GPU time, so a 30-day month
    starts at 0.38 € a day (a 31-day one at 0.37 €); 20 € / 31 days ≈ 0.65 € would forget the fixed costs.

    Why the remaining budget over the remaining days, and not a fixed share, (budget - fixed) / days in
    the month: the two agree on the 1st, and afterwards only this one is the pace that ends the month on
    budget. A quiet day carries over, so a busy but legitimate day after a quiet week is not braked while
    the month has room for it; an expensive day shrinks the days after it, so days that each stay under
    their allowance cannot together overspend, even when the month began before the allowance was switched
    on or the daemon was installed. A fixed share would brake the busy day of a month with plenty left, and
    grant every remaining day a full share of a month already nearly gone. The allowance is fixed for the
    day: today's own spend is taken out, so spending does not move the line it is measured against (only a
    late bill for an earlier hour does, a little). Never negative: with nothing left it is 0.
    """
    start = day_start(now)
    days = max(1, round((next_month_start(now) - start) / DAY_S))
    left = monthly_eur - fixed_eur - (variable_eur - today_eur)
    return max(0.0, left) / days


# --------------------------------------------------------------------------------------------------------
# Unit economics and latency.


def cost_per_1000_requests(usd: float, requests: int) -> float | None:
    """USD per 1000 requests (alert above $3); None when there were no requests (no meaningful ratio)."""
    if requests < 0:
        raise ValueError("requests must be >= 0")
    if requests == 0:
        return None
    return usd * 1000.0 / requests


def free_share_cost(total_variable_usd: float, free_share: float) -> float:
    """The part of variable spend that serves free learners (``free_share`` in [0, 1], e.g. 0.3)."""
    if not 0.0 <= free_share <= 1.0:
        raise ValueError("free_share must be within [0, 1]")
    return total_variable_usd * free_share


MIN_TIERED_REQUESTS = 20
"""Below this many requests carrying a tier, the month's measured free share is too noisy to use."""


def measured_free_share(free_requests: int, tiered_requests: int, default: float) -> tuple[float, bool]:
    """The share of requests offered free: measured from the logs' tier field once at least
    MIN_TIERED_REQUESTS requests this month carried one, else the configured ``default``.

    Returns (share, measured).
    """
    if tiered_requests >= MIN_TIERED_REQUESTS:
        return min(1.0, max(0.0, free_requests / tiered_requests)), True
    return default, False


@dataclass(frozen=True, slots=True)
class ColdStartStats:
    """Cold starts (INITIALIZING durations and job ``delayTime``), nearest-rank percentiles, in seconds."""

    count: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    over_target: int
    """Samples above the target (15 s by default)."""


def _nearest_rank(sorted_samples: Sequence[float], percentile: float) -> float:
    rank = max(1, math.ceil(percentile / 100.0 * len(sorted_samples)))
    return sorted_samples[rank - 1]


def cold_start_stats(samples_s: Sequence[float], target_s: float = 15.0) -> ColdStartStats:
    """p50/p95/max/count of cold-start samples; percentiles are None without samples."""
    ordered = sorted(samples_s)
    if not ordered:
        return ColdStartStats(0, None, None, None, 0)
    return ColdStartStats(
        count=len(ordered),
        p50_s=_nearest_rank(ordered, 50),
        p95_s=_nearest_rank(ordered, 95),
        max_s=ordered[-1],
        over_target=sum(1 for s in ordered if s > target_s),
    )


# --------------------------------------------------------------------------------------------------------
# What a configuration drift costs.

ConfigField = Literal[
    "workers_min", "workers_standby", "idle_timeout_s", "workers_max", "execution_timeout_ms"
]


@dataclass(frozen=True, slots=True)
class ConfigCost:
    usd_per_month: float
    note: str


def endpoint_gpu_price(config: EndpointConfig, prices: PriceTable) -> GpuPrice:
    """The price an endpoint's worker may cost: the most expensive GPU type its ``gpu_pools`` allow.

    Entries may be pool ids (``AMPERE_48``) or GPU type ids; nothing known → the table's most expensive.
    """
    candidates = [g for g in prices.gpus if g.pool in config.gpu_pools or g.gpu_type_id in config.gpu_pools]
    if not candidates:
        return prices.lookup(None)
    return max(candidates, key=lambda g: g.flex_usd_per_s)


def monthly_cost_of_config(
    field: ConfigField,
    current: float | None,
    allowed: float,
    *,
    price: GpuPrice,
    gpu_count: int = 1,
    requests_per_month: float = 0.0,
    now: float,
) -> ConfigCost:
    """USD per month a setting above its allowed value costs at current traffic (an upper bound).

    * ``workers_min`` / ``workers_standby``: each extra worker runs 24/7 at the active price for 30 days
      (standby billing is uncertain, runpod-api.md §2.1, so it is priced like an active worker).
    * ``idle_timeout_s``: (current − allowed) s of extra tail after *every* request at the flex price; an
      upper bound (requests that arrive while the worker is warm share one tail).
    * ``workers_max``: costs nothing at current traffic (max 1 worker is busy enough), it is a risk: 0 and
      a note.
    * ``execution_timeout_ms``: the worst case is one hung job. Missing (None/0): it runs until the month
      ends; too long: it runs until that timeout (capped at the month's end). Either way only the seconds
      beyond the required timeout are the drift's fault.
    """
    if field in ("workers_min", "workers_standby"):
        extra = max(0.0, (current or 0) - allowed)
        usd = extra * price.active_usd_per_s * gpu_count * SECONDS_IN_30_DAYS
        return ConfigCost(usd, f"{extra:g} worker(s) billed 24/7 at the active price")
    if field == "idle_timeout_s":
        extra_s = max(0.0, (current or 0) - allowed)
        usd = extra_s * requests_per_month * price.flex_usd_per_s * gpu_count
        return ConfigCost(usd, f"{extra_s:g} s extra idle tail after each of {requests_per_month:g} requests")
    if field == "workers_max":
        return ConfigCost(0.0, "no cost at current traffic; risk: parallel workers multiply a spike's cost")
    if field == "execution_timeout_ms":
        seconds_left = max(0.0, next_month_start(now) - now)
        required_s = allowed / 1000.0
        if not current:
            hung_s = seconds_left
            note = "no execution timeout: one hung job bills until the month ends"
        else:
            hung_s = min(current / 1000.0, seconds_left)
            note = f"execution timeout {current / 1000.0:g} s: one hung job bills that long"
        usd = max(0.0, hung_s - required_s) * price.flex_usd_per_s * gpu_count
        return ConfigCost(usd, note)
    raise ValueError(f"unknown config field {field!r}")
