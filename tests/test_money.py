"""Money arithmetic: live estimate, month-to-date reconciliation, budget forecast, drift costs."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from watchdog.models import BillingRecord, EndpointConfig, Worker, WorkerStatus
from watchdog.money import (
    SECONDS_IN_30_DAYS,
    ColdStartStats,
    accrue_interval,
    billed_by_hour,
    billed_gpu_seconds,
    budget_status,
    cold_start_stats,
    cost_per_1000_requests,
    daily_allowance_eur,
    day_start,
    endpoint_gpu_price,
    estimate_interval_usd,
    eur_to_usd,
    free_share_cost,
    month_to_date,
    monthly_cost_of_config,
    usd_by_endpoint_hour,
    usd_to_eur,
    worker_seconds_by_state,
)
from watchdog.prices import DEFAULT_PRICES

A6000 = "NVIDIA RTX A6000"
A4000 = "NVIDIA RTX A4000"
A6000_PRICE = DEFAULT_PRICES.lookup(A6000)
MOST_EXPENSIVE_FLEX = max(g.flex_usd_per_s for g in DEFAULT_PRICES.gpus)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def worker(wid: str, status: WorkerStatus, gpu: str | None = A6000, gpus: int = 1) -> Worker:
    return Worker(id=wid, status=status, gpu_type_id=gpu, gpu_count=gpus)


# --- currency -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("usd", "rate", "eur"), [(10.8, 1.08, 10.0), (0.0, 1.2, 0.0), (3.0, 1.5, 2.0)])
def test_currency_conversion_round_trips(usd: float, rate: float, eur: float) -> None:
    assert usd_to_eur(usd, rate) == pytest.approx(eur)
    assert eur_to_usd(eur, rate) == pytest.approx(usd)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_currency_rejects_nonpositive_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="usd_per_eur"):
        usd_to_eur(1.0, rate)
    with pytest.raises(ValueError, match="usd_per_eur"):
        eur_to_usd(1.0, rate)


# --- live estimate --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "active_ids", "expected"),
    [
        pytest.param([worker("w1", WorkerStatus.RUNNING)], frozenset(), {A6000: 0.00034 * 60}, id="running"),
        pytest.param([worker("w1", WorkerStatus.IDLE)], frozenset(), {A6000: 0.00034 * 60}, id="idle-tail"),
        pytest.param(
            [worker("w1", WorkerStatus.INITIALIZING)], frozenset(), {A6000: 0.00034 * 60}, id="init-billed"
        ),
        pytest.param([worker("w1", WorkerStatus.THROTTLED)], frozenset(), {}, id="throttled-free"),
        pytest.param([worker("w1", WorkerStatus.UNHEALTHY)], frozenset(), {}, id="unhealthy-free"),
        pytest.param(
            [worker("w1", WorkerStatus.IDLE)], frozenset({"w1"}), {A6000: 0.00024 * 60}, id="active-price"
        ),
        pytest.param(
            [worker("w1", WorkerStatus.RUNNING, gpus=2)], frozenset(), {A6000: 2 * 0.00034 * 60}, id="2-gpus"
        ),
        pytest.param(
            [worker("w1", WorkerStatus.RUNNING, gpu=None)],
            frozenset(),
            {None: MOST_EXPENSIVE_FLEX * 60},
            id="unknown-gpu-most-expensive",
        ),
        pytest.param(
            [worker("w1", WorkerStatus.RUNNING), worker("w2", WorkerStatus.IDLE, gpu=A4000)],
            frozenset(),
            {A6000: 0.00034 * 60, A4000: 0.00016 * 60},
            id="per-gpu-type",
        ),
    ],
)
def test_estimate_interval_usd(
    workers: list[Worker], active_ids: frozenset[str], expected: dict[str | None, float]
) -> None:
    got = estimate_interval_usd(workers, 60.0, DEFAULT_PRICES, active_ids)
    assert got.keys() == expected.keys()
    for gpu, usd in expected.items():
        assert got[gpu] == pytest.approx(usd)


def test_estimate_rejects_negative_interval() -> None:
    with pytest.raises(ValueError, match="seconds"):
        estimate_interval_usd([], -1.0, DEFAULT_PRICES)


def test_worker_seconds_by_state_counts_every_state() -> None:
    workers = [
        worker("a", WorkerStatus.RUNNING),
        worker("b", WorkerStatus.RUNNING),
        worker("c", WorkerStatus.THROTTLED),
    ]
    assert worker_seconds_by_state(workers, 30.0) == {
        WorkerStatus.RUNNING: 60.0,
        WorkerStatus.THROTTLED: 30.0,
    }


def test_accrue_interval_splits_at_hour_boundary_and_aggregates() -> None:
    start = ts(2025, 3, 10, 11, 59)  # 60 s before noon, 60 s after
    workers = [worker("w1", WorkerStatus.RUNNING, gpus=2), worker("w2", WorkerStatus.THROTTLED)]
    accruals = accrue_interval("ep1", workers, start=start, end=start + 120, prices=DEFAULT_PRICES)
    by_hour = usd_by_endpoint_hour(accruals)
    assert by_hour == {
        ("ep1", ts(2025, 3, 10, 11)): pytest.approx(60 * 2 * 0.00034),
        ("ep1", ts(2025, 3, 10, 12)): pytest.approx(60 * 2 * 0.00034),
    }
    throttled = [a for a in accruals if a.state == WorkerStatus.THROTTLED]
    assert [(a.seconds, a.usd) for a in throttled] == [(60.0, 0.0), (60.0, 0.0)]
    assert billed_gpu_seconds(accruals) == pytest.approx(240.0)
    assert [a.hour_start for a in accruals] == sorted(a.hour_start for a in accruals)


def test_accrue_interval_rejects_time_going_backwards() -> None:
    with pytest.raises(ValueError, match="end"):
        accrue_interval("ep", [], start=10.0, end=5.0, prices=DEFAULT_PRICES)


def test_billed_by_hour_spreads_long_buckets_and_keys_account_wide() -> None:
    day = ts(2025, 3, 10)
    records = [
        BillingRecord(start=day, end=day + 3600, endpoint_id="ep1", total_usd=0.5),
        BillingRecord(start=day, end=day + 4 * 3600, endpoint_id=None, total_usd=4.0),
    ]
    got = billed_by_hour(records)
    assert got[("ep1", day)] == pytest.approx(0.5)
    assert [got[("*", day + h * 3600)] for h in range(4)] == pytest.approx([1.0] * 4)


# --- month to date --------------------------------------------------------------------------------------

NOW = ts(2025, 3, 10, 12, 30)
H9, H10, H11 = ts(2025, 3, 10, 9), ts(2025, 3, 10, 10), ts(2025, 3, 10, 11)
LAST_MONTH = ts(2025, 2, 27, 5)


@pytest.mark.parametrize(
    ("estimate", "billed", "counted", "drift", "billed_hours"),
    [
        pytest.param({("a", H9): 1.0}, {("a", H9): 1.5}, 1.5, 0.5, 1, id="billed-higher"),
        pytest.param({("a", H9): 2.0}, {("a", H9): 1.5}, 2.0, -0.5, 1, id="estimate-higher"),
        pytest.param({("a", H9): 1.0, ("a", H11): 3.0}, {("a", H9): 1.0}, 4.0, 0.0, 1, id="lag-not-drift"),
        pytest.param({("a", LAST_MONTH): 100.0, ("a", H10): 1.0}, {}, 1.0, 0.0, 0, id="previous-month"),
        pytest.param({}, {("a", H10): 0.7}, 0.7, 0.7, 1, id="billing-only"),
    ],
)
def test_month_to_date_takes_the_larger_per_hour(
    estimate: dict[tuple[str, float], float],
    billed: dict[tuple[str, float], float],
    counted: float,
    drift: float,
    billed_hours: int,
) -> None:
    mtd = month_to_date(estimate, billed, NOW)
    assert mtd.month_start == ts(2025, 3, 1)
    assert mtd.counted_usd == pytest.approx(counted)
    assert mtd.drift_usd == pytest.approx(drift)
    assert mtd.billed_hours == billed_hours


def test_month_to_date_per_endpoint_sorted() -> None:
    mtd = month_to_date(
        {("b", H9): 1.0, ("a", H9): 2.0, ("a", H10): 1.0},
        {("b", H9): 1.25, ("a", H9): 2.0},
        NOW,
    )
    assert [(e.endpoint_id, e.counted_usd, e.drift_usd) for e in mtd.by_endpoint] == [
        ("a", pytest.approx(3.0), pytest.approx(0.0)),
        ("b", pytest.approx(1.25), pytest.approx(0.25)),
    ]
    assert mtd.last_billed_hour == H9


def test_month_to_date_counts_the_utc_days_hours_apart() -> None:
    """Today's spend (the daily allowance's measure) is the same max-of-two count, over today's hours."""
    yesterday = ts(2025, 3, 9, 23)
    mtd = month_to_date(
        {("a", yesterday): 5.0, ("a", H9): 1.0, ("b", H10): 0.5, ("a", LAST_MONTH): 9.0},
        {("a", H9): 1.5, ("*", H11): 0.25},
        NOW,
    )
    assert day_start(NOW) == ts(2025, 3, 10)
    assert [(e.endpoint_id, e.today_usd) for e in mtd.by_endpoint] == [
        ("*", pytest.approx(0.25)),
        ("a", pytest.approx(1.5)),
        ("b", pytest.approx(0.5)),
    ]
    assert mtd.today_usd == pytest.approx(2.25)
    assert mtd.counted_usd == pytest.approx(7.25)


# --- budget ---------------------------------------------------------------------------------------------


def test_budget_on_the_first_counts_the_fixed_subscription_in_full() -> None:
    status = budget_status(
        20.0, 1.25, fixed_costs_usd_per_month=10.0, variable_mtd_usd=0.0, now=ts(2025, 3, 1, 0, 1)
    )
    assert status.fixed_eur == pytest.approx(8.0)
    assert status.spent_eur == pytest.approx(8.0)
    assert status.request_budget_eur == pytest.approx(12.0)
    assert status.left_eur == pytest.approx(12.0)
    assert status.used_ratio == pytest.approx(0.4)
    assert status.thresholds_crossed == ()
    assert not status.forecast_overrun


@pytest.mark.parametrize(
    ("variable_usd", "last_24h_usd", "forecast", "overrun", "crossed"),
    [
        # March 2025 has 31 days; at 10 Mar 12:00, 9.5 days elapsed, 21.5 days left; rate 1.0 USD = 1 EUR
        pytest.param(0.0, None, 10.0, False, (0.5,), id="idle-month-fixed-is-half"),
        pytest.param(1.9, None, 10.0 + 1.9 + 0.2 * 21.5, False, (0.5,), id="mtd-rate"),
        pytest.param(1.9, 0.5, 10.0 + 1.9 + 0.5 * 21.5, True, (0.5,), id="24h-rate-wins"),
        pytest.param(1.9, 0.0, 10.0 + 1.9 + 0.2 * 21.5, False, (0.5,), id="mtd-rate-wins"),
        pytest.param(9.5, None, 10.0 + 9.5 + 1.0 * 21.5, True, (0.5, 0.8, 0.95), id="nearly-spent"),
    ],
)
def test_budget_forecast_is_conservative(
    variable_usd: float,
    last_24h_usd: float | None,
    forecast: float,
    overrun: bool,
    crossed: tuple[float, ...],
) -> None:
    status = budget_status(
        20.0,
        1.0,
        fixed_costs_usd_per_month=10.0,
        variable_mtd_usd=variable_usd,
        now=ts(2025, 3, 10, 12),
        variable_last_24h_usd=last_24h_usd,
    )
    assert status.days_left == pytest.approx(21.5)
    assert status.forecast_eur == pytest.approx(forecast)
    assert status.forecast_mtd_rate_eur <= status.forecast_eur
    assert status.forecast_overrun is overrun
    assert status.thresholds_crossed == crossed
    assert status.allowed_eur_per_day == pytest.approx(max(0.0, 20.0 - 10.0 - variable_usd) / 21.5)


def test_budget_rate_divides_by_at_least_one_day() -> None:
    status = budget_status(
        20.0, 1.0, fixed_costs_usd_per_month=0.0, variable_mtd_usd=0.5, now=ts(2025, 3, 1, 1)
    )
    assert status.rate_mtd_eur_per_day == pytest.approx(0.5)


def test_budget_over_spent_has_negative_left_and_no_allowance() -> None:
    status = budget_status(
        20.0, 1.0, fixed_costs_usd_per_month=10.0, variable_mtd_usd=15.0, now=ts(2025, 3, 20)
    )
    assert status.left_eur == pytest.approx(-5.0)
    assert status.allowed_eur_per_day == 0.0
    assert status.used_ratio == pytest.approx(1.25)


def test_budget_zero_budget() -> None:
    spent = budget_status(0.0, 1.0, fixed_costs_usd_per_month=1.0, variable_mtd_usd=0.0, now=NOW)
    nothing = budget_status(0.0, 1.0, fixed_costs_usd_per_month=0.0, variable_mtd_usd=0.0, now=NOW)
    assert math.isinf(spent.used_ratio)
    assert nothing.used_ratio == 0.0


# --- unit economics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "requests", "expected"),
    [(8.67, 3000, 2.89), (3.0, 1000, 3.0), (0.0, 10, 0.0), (5.0, 0, None)],
)
def test_cost_per_1000_requests(usd: float, requests: int, expected: float | None) -> None:
    got = cost_per_1000_requests(usd, requests)
    assert got == (None if expected is None else pytest.approx(expected))


def test_cost_per_1000_rejects_negative_requests() -> None:
    with pytest.raises(ValueError, match="requests"):
        cost_per_1000_requests(1.0, -1)


@pytest.mark.parametrize(
    ("total", "share", "expected"), [(10.0, 0.3, 3.0), (10.0, 0.0, 0.0), (4.0, 1.0, 4.0)]
)
def test_free_share_cost(total: float, share: float, expected: float) -> None:
    assert free_share_cost(total, share) == pytest.approx(expected)


@pytest.mark.parametrize("share", [-0.1, 1.1])
def test_free_share_rejects_out_of_range(share: float) -> None:
    with pytest.raises(ValueError, match="free_share"):
        free_share_cost(1.0, share)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], ColdStartStats(0, None, None, None, 0)),
        ([7.0], ColdStartStats(1, 7.0, 7.0, 7.0, 0)),
        ([3.0, 1.0, 2.0, 20.0], ColdStartStats(4, 2.0, 20.0, 20.0, 1)),
        ([float(s) for s in range(1, 101)], ColdStartStats(100, 50.0, 95.0, 100.0, 85)),
    ],
)
def test_cold_start_stats(samples: list[float], expected: ColdStartStats) -> None:
    assert cold_start_stats(samples) == expected


# --- config drift cost ----------------------------------------------------------------------------------

MID_MARCH = ts(2025, 3, 16)  # 16 days to April
SECONDS_LEFT = 16 * 86_400


@pytest.mark.parametrize(
    ("field", "current", "allowed", "expected_usd"),
    [
        pytest.param("workers_min", 1, 0, 0.00024 * SECONDS_IN_30_DAYS, id="one-active-worker-622usd"),
        pytest.param("workers_min", 0, 0, 0.0, id="workers-min-ok"),
        pytest.param("workers_standby", 2, 0, 2 * 0.00024 * SECONDS_IN_30_DAYS, id="standby"),
        pytest.param("idle_timeout_s", 65, 5, 60 * 3000 * 0.00034, id="idle-tail"),
        pytest.param("workers_max", 3, 1, 0.0, id="max-workers-risk-only"),
        pytest.param("execution_timeout_ms", None, 600_000, (SECONDS_LEFT - 600) * 0.00034, id="no-timeout"),
        pytest.param("execution_timeout_ms", 0, 600_000, (SECONDS_LEFT - 600) * 0.00034, id="zero-timeout"),
        pytest.param("execution_timeout_ms", 3_600_000, 600_000, 3000 * 0.00034, id="timeout-1h"),
    ],
)
def test_monthly_cost_of_config(field: str, current: int | None, allowed: int, expected_usd: float) -> None:
    cost = monthly_cost_of_config(
        field,  # type: ignore[arg-type]
        current,
        allowed,
        price=A6000_PRICE,
        requests_per_month=3000,
        now=MID_MARCH,
    )
    assert cost.usd_per_month == pytest.approx(expected_usd)
    assert cost.note


def test_one_active_a6000_costs_30_times_the_budget() -> None:
    cost = monthly_cost_of_config("workers_min", 1, 0, price=A6000_PRICE, now=MID_MARCH)
    assert cost.usd_per_month == pytest.approx(622.08)


def test_monthly_cost_rejects_unknown_field() -> None:
    with pytest.raises(ValueError, match="unknown"):
        monthly_cost_of_config("flashboot", 1, 0, price=A6000_PRICE, now=MID_MARCH)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pools", "expected_flex"),
    [
        (("AMPERE_48",), 0.00034),
        (("AMPERE_16", "AMPERE_48"), 0.00034),
        (("NVIDIA RTX A4000",), 0.00016),
        ((), MOST_EXPENSIVE_FLEX),
        (("UNKNOWN_POOL",), MOST_EXPENSIVE_FLEX),
    ],
)
def test_endpoint_gpu_price_is_the_most_expensive_allowed(
    pools: tuple[str, ...], expected_flex: float
) -> None:
    config = EndpointConfig("ep", "ep", 0, 1, 5, 600_000, gpu_pools=pools)
    assert endpoint_gpu_price(config, DEFAULT_PRICES).flex_usd_per_s == expected_flex


def test_session_rounding_is_half_a_second_of_the_workers_price() -> None:
    from watchdog.models import Worker, WorkerStatus
    from watchdog.money import EXPECTED_SESSION_ROUNDING_S, session_rounding_usd
    from watchdog.prices import DEFAULT_PRICES

    a6000 = Worker("w1", WorkerStatus.IDLE, gpu_type_id="NVIDIA RTX A6000", gpu_count=2)
    assert EXPECTED_SESSION_ROUNDING_S == 0.5
    assert session_rounding_usd(a6000, DEFAULT_PRICES) == pytest.approx(0.5 * 0.00034 * 2)
    assert session_rounding_usd(a6000, DEFAULT_PRICES, active=True) == pytest.approx(0.5 * 0.00024 * 2)


@pytest.mark.parametrize(
    ("free", "tiered", "expected"),
    [(0, 0, (0.3, False)), (5, 19, (0.3, False)), (8, 20, (0.4, True)), (0, 40, (0.0, True))],
)
def test_free_share_is_measured_once_enough_requests_carry_a_tier(
    free: int, tiered: int, expected: tuple[float, bool]
) -> None:
    from watchdog.money import measured_free_share

    assert measured_free_share(free, tiered, 0.3) == expected


# --- the daily allowance --------------------------------------------------------------------------------

DEFAULT_FIXED_EUR = 10.0 / 1.16
"""The shipped configuration: the 10 USD Hugging Face space at 1.16 USD per EUR."""


@pytest.mark.parametrize(
    ("now", "variable", "today", "allowance"),
    [
        # the 1st: (20 - 8.62) / 30 days, about 0.38 EUR, not 20 / 31 = 0.65 (the fixed costs come first)
        pytest.param(ts(2026, 6, 1, 0, 5), 0.0, 0.0, (20 - DEFAULT_FIXED_EUR) / 30, id="june-1st"),
        pytest.param(ts(2026, 7, 1, 9), 0.3, 0.3, (20 - DEFAULT_FIXED_EUR) / 31, id="july-1st-spent-today"),
        # the 16th of June (15 days left, today included), after a quiet half month: the unspent carries over
        pytest.param(ts(2026, 6, 16, 18), 2.0, 0.5, (20 - DEFAULT_FIXED_EUR - 1.5) / 15, id="quiet-half"),
        # after an expensive stretch the days left get less
        pytest.param(ts(2026, 6, 16, 18), 9.0, 0.0, (20 - DEFAULT_FIXED_EUR - 9.0) / 15, id="costly-half"),
        pytest.param(ts(2026, 6, 30, 23, 59), 11.0, 0.2, (20 - DEFAULT_FIXED_EUR - 10.8) / 1, id="last-day"),
        pytest.param(ts(2026, 6, 20), 14.0, 1.0, 0.0, id="nothing-left-is-zero-never-negative"),
    ],
)
def test_daily_allowance_is_the_month_left_at_the_days_start_over_the_days_left(
    now: float, variable: float, today: float, allowance: float
) -> None:
    got = daily_allowance_eur(
        monthly_eur=20.0, fixed_eur=DEFAULT_FIXED_EUR, variable_eur=variable, today_eur=today, now=now
    )
    assert got == pytest.approx(allowance)


def test_daily_allowance_for_the_shipped_budget_is_about_38_cents() -> None:
    june = daily_allowance_eur(
        monthly_eur=20.0, fixed_eur=DEFAULT_FIXED_EUR, variable_eur=0.0, today_eur=0.0, now=ts(2026, 6, 1)
    )
    assert round(june, 2) == 0.38


def test_daily_allowance_does_not_move_with_todays_spend() -> None:
    """Spending today does not lower the line today's spend is measured against."""
    now = ts(2026, 6, 10, 15)
    before = daily_allowance_eur(monthly_eur=20.0, fixed_eur=8.0, variable_eur=3.0, today_eur=0.0, now=now)
    after = daily_allowance_eur(monthly_eur=20.0, fixed_eur=8.0, variable_eur=3.4, today_eur=0.4, now=now)
    assert before == pytest.approx(after) == pytest.approx(9.0 / 21)
