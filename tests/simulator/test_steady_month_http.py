"""Acceptance: a steady month, read back through REST v2 billing exactly as the daemon reads it.

WHY: the product's promise is money over a month. The ``steady`` scenario (3000 translation requests per
30 days, 8.5 s each on one A6000 flex worker) is the non-profit's normal life; its bill must come out of
``GET /v2/billing/serverless`` in hourly buckets (what the daemon polls) equal, to the cent, to the ground
truth: Σ over worker sessions of ceil(seconds) × price. The breakdown shows where the money goes: the
execution itself is only about $8.67; each isolated request also pays a cold start and an idle tail.
Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import httpx

from runpod_sim.app import DEFAULT_API_KEY, create_app
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import (
    A6000,
    MONTH_S,
    STEADY_ENDPOINT_ID,
    STEADY_MEAN_SERVICE_S,
    STEADY_REQUESTS_PER_MONTH,
)
from watchdog.client import RunPodClient
from watchdog.clock import ManualClock, from_iso
from watchdog.prices import DEFAULT_PRICES

MONTH_START = from_iso("2026-06-01T00:00:00Z")
BASE = "http://127.0.0.1:8787"


async def test_steady_month_billing_through_http_equals_session_truth() -> None:
    clock = ManualClock(start=MONTH_START)
    sim = build_simulator("steady", clock=clock, seed=0)
    clock.advance(MONTH_S)
    sim.sync()

    async with RunPodClient(
        api_key=DEFAULT_API_KEY,
        graphql_url=f"{BASE}/graphql",
        rest_url=f"{BASE}/v2",
        runtime_url=f"{BASE}/v2",
        transport=httpx.ASGITransport(app=create_app(sim)),
    ) as api:
        report = await api.serverless_billing(
            start=MONTH_START, end=MONTH_START + MONTH_S, bucket_size="hour"
        )

    # --- the HTTP answer: hourly buckets inside the month, one endpoint, totals consistent
    assert 300 < report.record_count == len(report.records) <= MONTH_S // 3600
    assert all(r.end - r.start == 3600 and r.start % 3600 == 0 for r in report.records)
    assert all(MONTH_START <= r.start < MONTH_START + MONTH_S for r in report.records)
    assert {r.endpoint_id for r in report.records} == {STEADY_ENDPOINT_ID}
    assert abs(sum(r.total_usd for r in report.records) - report.total_usd) < 1e-9

    # --- ground truth from the sessions: Σ ceil(seconds) × price, to the cent
    sessions = sim.sessions(STEADY_ENDPOINT_ID)
    price = DEFAULT_PRICES.usd_per_s(A6000)
    assert {s.gpu_type_id for s in sessions} == {A6000} and not any(s.active for s in sessions)
    billed_s = sum(sim.session_billed_seconds(s) for s in sessions)
    truth_usd = billed_s * price
    assert abs(report.total_usd - truth_usd) < 0.005
    assert abs(sim.billed_usd_total() - truth_usd) < 1e-6

    # --- where the money goes
    execution_s = sum(s.busy_s for s in sessions)
    cold_start_s = sum(s.initializing_s for s in sessions)
    idle_tail_s = sum(s.idle_s for s in sessions)
    raw_s = sum((s.stopped_at if s.stopped_at is not None else clock.now()) - s.started_at for s in sessions)
    rounding_s = billed_s - raw_s
    assert abs(execution_s + cold_start_s + idle_tail_s - raw_s) < 1e-3 * len(sessions)
    assert 0 <= rounding_s < len(sessions)
    requests = sum(source.sent for source in sim.traffic_sources())
    nominal_execution_usd = STEADY_REQUESTS_PER_MONTH * STEADY_MEAN_SERVICE_S * price
    execution_usd = execution_s * price

    print(
        f"\nsteady month via GET /v2/billing/serverless (hourly, {report.record_count} records): "
        f"${report.total_usd:.2f}  (sessions: {len(sessions)}, requests: {requests})\n"
        f"  execution  {execution_s:10.0f} s  ${execution_usd:6.2f}  "
        f"(nominal 3000 x 8.5 s x ${price} = ${nominal_execution_usd:.2f})\n"
        f"  cold start {cold_start_s:10.0f} s  ${cold_start_s * price:6.2f}\n"
        f"  idle tail  {idle_tail_s:10.0f} s  ${idle_tail_s * price:6.2f}\n"
        f"  rounding   {rounding_s:10.1f} s  ${rounding_s * price:6.2f}"
    )
    assert execution_s > 0 and cold_start_s > 0 and idle_tail_s > 0
    assert abs(execution_usd - nominal_execution_usd) <= 0.06 * nominal_execution_usd
    assert abs(nominal_execution_usd - 8.67) < 0.01
    assert 0.94 * STEADY_REQUESTS_PER_MONTH <= requests <= 1.06 * STEADY_REQUESTS_PER_MONTH
    # each isolated request pays a cold start and an idle tail: the month costs well above execution alone
    assert report.total_usd > 2 * execution_usd
