"""The named scenarios: each reproduces its incident, and ``steady`` prices a month the way §6 does.

The steady-month test is the acceptance test for the whole simulator: a 30-day month of Poisson traffic
lived in a few ManualClock jumps must bill what the per-session arithmetic says, and show the cold-start
and idle-tail seconds that make the real bill much larger than "3000 × 8.5 s".
"""

from __future__ import annotations

import math
import random
import time

import pytest

from runpod_sim.engine import SimNotFound
from runpod_sim.registry import SCENARIOS, build_simulator
from runpod_sim.scenarios import (
    CRASH_ENDPOINT_ID,
    DRIFT_ENDPOINT_ID,
    FLOOD_ENDPOINT_ID,
    HUNG_ENDPOINT_ID,
    MONTH_S,
    STEADY_ENDPOINT_ID,
    AntitheticDurations,
    ScenarioParams,
)
from runpod_sim.state import SimJob
from watchdog.clock import ManualClock, from_iso, month_start

A6000_FLEX = 0.00034
MONTH_START = from_iso("2026-06-01T00:00:00Z")
MID_MONTH = from_iso("2026-06-15T12:00:00Z")


def test_a_steady_month_bills_execution_cold_starts_and_idle_tails_per_session() -> None:
    cpu_started = time.process_time()
    clock = ManualClock(MONTH_START)
    sim = build_simulator("steady", clock=clock, seed=0)
    durations: list[float] = []
    other_endings: list[SimJob] = []

    def record(job: SimJob) -> None:
        if job.status == "COMPLETED":
            durations.append(job.input["sim"]["duration_s"])
        else:
            other_endings.append(job)

    sim.add_job_listener(record)
    for _ in range(3):
        clock.advance(MONTH_S / 3)
    [traffic] = sim.traffic_sources()
    sim.stop_traffic(traffic.id)
    clock.advance(3600)  # let the last job and its idle tail finish
    sessions = sim.sessions(STEADY_ENDPOINT_ID)
    cpu_s = time.process_time() - cpu_started

    jobs = len(durations)
    assert abs(jobs - 3000) <= 150, jobs
    assert traffic.sent == jobs and other_endings == []
    assert sim.health(STEADY_ENDPOINT_ID).completed == jobs
    assert all(session.stopped_at is not None for session in sessions)
    busy_s = sum(s.busy_s for s in sessions)
    initializing_s = sum(s.initializing_s for s in sessions)
    idle_s = sum(s.idle_s for s in sessions)
    assert busy_s == pytest.approx(sum(durations), rel=1e-12)
    assert sum(durations) / jobs == pytest.approx(8.5, abs=1.0 / jobs)  # mirrored pairs: mean is 8.5
    assert initializing_s == pytest.approx(12.0 * len(sessions))  # every session began with a cold start
    assert idle_s >= 5.0 * len(sessions) - 1e-6  # ... and ended with the full idle tail
    billed_s = sum(math.ceil(s.initializing_s + s.busy_s + s.idle_s - 1e-6) for s in sessions)
    total_usd = sim.billed_usd_total()
    assert round(total_usd, 2) == round(billed_s * A6000_FLEX, 2)
    buckets = sim.billing(start=MONTH_START, end=MONTH_START + MONTH_S + 86_400, bucket_s=86_400)
    assert round(sum(b.total_usd for b in buckets), 2) == round(total_usd, 2)
    execution_usd = busy_s * A6000_FLEX
    assert execution_usd == pytest.approx(8.67, rel=0.06)
    assert total_usd > 2.5 * execution_usd  # the cold starts and idle tails dominate sporadic traffic
    assert cpu_s < 10
    print(
        f"\nsteady month: {jobs} jobs in {len(sessions)} worker sessions (CPU {cpu_s:.2f} s)\n"
        f"  execution   {busy_s:10.1f} s  ${busy_s * A6000_FLEX:7.2f}\n"
        f"  cold starts {initializing_s:10.1f} s  ${initializing_s * A6000_FLEX:7.2f}\n"
        f"  idle tails  {idle_s:10.1f} s  ${idle_s * A6000_FLEX:7.2f}\n"
        f"  rounding    {billed_s - busy_s - initializing_s - idle_s:10.1f} s\n"
        f"  billed      {billed_s:10d} s  ${total_usd:7.2f}  (execution only: ${execution_usd:.2f})"
    )


def test_the_same_seed_gives_the_same_month_and_another_seed_does_not() -> None:
    def month(seed: int) -> list[tuple[float, float | None]]:
        clock = ManualClock(MONTH_START)
        sim = build_simulator("steady", clock=clock, seed=seed)
        clock.advance(3 * 86_400)
        return [(s.started_at, s.stopped_at) for s in sim.sessions()]

    assert month(3) == month(3)
    assert month(3) != month(4)


def test_antithetic_durations_average_exactly_the_mean() -> None:
    durations = AntitheticDurations(8.5, 1.0)
    rng = random.Random(1)
    drawn = [durations(rng) for _ in range(1000)]
    assert sum(drawn) / len(drawn) == pytest.approx(8.5, abs=1e-12)
    assert min(drawn) >= 7.5 and max(drawn) <= 9.5 and len(set(drawn)) > 500


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_builds_describes_itself_and_runs_a_day(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.name == name and len(scenario.description) > 80 and scenario.summary.endswith(".")
    clock = ManualClock(MID_MONTH)
    sim = build_simulator(name, clock=clock, seed=1)
    assert sim.endpoints()
    clock.advance(86_400)
    assert sim.billed_usd_total() > 0
    assert any(record["kind"] == "request" for record in sim.access_records)


def test_hung_job_keeps_pinging_and_billing_until_cancelled() -> None:
    clock = ManualClock(MID_MONTH)
    sim = build_simulator("hung-job", clock=clock)
    endpoint = sim.endpoint(HUNG_ENDPOINT_ID)
    assert endpoint.execution_timeout_ms is None and endpoint.worker_kind == "simulated"
    [hung_request] = [
        r for r in sim.access_records if r["kind"] == "request" and r["endpoint_id"] == HUNG_ENDPOINT_ID
    ]
    clock.advance(6 * 3600)
    job = sim.job(HUNG_ENDPOINT_ID, hung_request["job_id"])
    assert job.status == "IN_PROGRESS" and job.source == "batch-transcriber"
    pings = [r for r in sim.access_records if r["kind"] == "ping" and r["job_id"] == job.id]
    assert len(pings) > 6 * 360 - 5
    assert sim.billed_usd_total(HUNG_ENDPOINT_ID) == pytest.approx(6 * 3600 * A6000_FLEX, rel=1e-3)
    sim.cancel(HUNG_ENDPOINT_ID, job.id)
    clock.advance(60)
    assert sim.workers(HUNG_ENDPOINT_ID) == []
    spent = sim.billed_usd_total(HUNG_ENDPOINT_ID)
    clock.advance(86_400)
    assert sim.billed_usd_total(HUNG_ENDPOINT_ID) == spent


def test_hung_job_with_external_workers_waits_for_a_real_worker() -> None:
    clock = ManualClock(MID_MONTH)
    sim = build_simulator("hung-job", clock=clock, external_workers=True)
    assert sim.endpoint(HUNG_ENDPOINT_ID).worker_kind == "external"
    clock.advance(600)
    assert sim.workers(HUNG_ENDPOINT_ID) == [] and sim.health(HUNG_ENDPOINT_ID).in_queue == 1
    job = sim.take_job(HUNG_ENDPOINT_ID, "sdk-worker-1")
    assert job is not None and job.input["hang"] is True
    clock.advance(3 * 86_400)
    sim.ping(HUNG_ENDPOINT_ID, "sdk-worker-1", job_ids=[job.id])
    assert sim.job(HUNG_ENDPOINT_ID, job.id).status == "IN_PROGRESS"  # no execution timeout: never stopped


def test_ping_flood_keeps_one_worker_warm_all_day() -> None:
    clock = ManualClock(MID_MONTH)
    sim = build_simulator("ping-flood", clock=clock)
    clock.advance(86_400)
    sessions = sim.sessions(FLOOD_ENDPOINT_ID)
    assert len(sessions) == 1 and sessions[0].stopped_at is None
    bot_requests = [r for r in sim.access_records if r["source"] == "keepwarm-bot"]
    assert abs(len(bot_requests) - 86_400 // 3) <= 1  # one every 3 s, from 1.3 s after the start
    assert sim.billed_usd_total() == pytest.approx(86_400 * 0.00019, rel=1e-4)


def test_config_drift_raises_limits_minutes_in() -> None:
    clock = ManualClock(MID_MONTH)
    sim = build_simulator("config-drift", clock=clock, params=ScenarioParams(drift_after_s=900))
    endpoint = sim.endpoint(DRIFT_ENDPOINT_ID)
    clock.advance(899)
    assert (endpoint.workers_min, endpoint.idle_timeout, endpoint.workers_max) == (0, 5, 1)
    clock.advance(1)
    sim.sync()
    assert (endpoint.workers_min, endpoint.idle_timeout, endpoint.workers_max) == (1, 300, 3)
    assert endpoint.version == 2
    clock.advance(3600)
    assert any(worker.role == "active" for worker in sim.workers(DRIFT_ENDPOINT_ID))
    assert sim.current_spend_per_hr() >= 0.00024 * 3600


def test_crash_loop_jobs_stay_queued_while_retries_climb() -> None:
    clock = ManualClock(MID_MONTH)
    sim = build_simulator("crash-loop", clock=clock)
    clock.advance(3 * 3600)
    health = sim.health(CRASH_ENDPOINT_ID)
    assert health.completed == 0 and health.in_queue > 5 and health.retried > 100
    assert health.unhealthy + health.initializing == 2
    clock.advance(3600)
    assert sim.health(CRASH_ENDPOINT_ID).retried > health.retried


def test_budget_burn_starts_the_month_at_the_target_spend() -> None:
    clock = ManualClock(MID_MONTH)
    sim = build_simulator("budget-burn", clock=clock)
    assert sim.billed_usd_total() == pytest.approx(7.4, abs=0.0005)
    assert sim.account.client_balance_usd == pytest.approx(sim.initial_balance_usd - 7.4, abs=0.0005)
    history = sim.sessions(STEADY_ENDPOINT_ID)
    assert all(month_start(MID_MONTH) <= s.started_at and s.stopped_at <= MID_MONTH for s in history)
    buckets = sim.billing(start=month_start(MID_MONTH), end=MID_MONTH, bucket_s=86_400)
    assert sum(b.total_usd for b in buckets) == pytest.approx(7.4, abs=0.0005)
    assert len({int((b.start - month_start(MID_MONTH)) // 86_400) for b in buckets}) == 15
    clock.advance(86_400)
    assert sim.billed_usd_total() > 7.5  # live traffic keeps adding

    other = build_simulator(
        "budget-burn", clock=ManualClock(MID_MONTH), params=ScenarioParams(burn_target_usd=3)
    )
    assert other.billed_usd_total() == pytest.approx(3.0, abs=0.0005)


def test_unknown_scenarios_are_refused() -> None:
    with pytest.raises(ValueError, match="steady"):
        build_simulator("nope", clock=ManualClock(MID_MONTH))
    sim = build_simulator("steady", clock=ManualClock(MID_MONTH))
    with pytest.raises(SimNotFound):
        sim.endpoint(HUNG_ENDPOINT_ID)


@pytest.mark.parametrize(
    ("name", "endpoint_id"),
    [
        ("steady", STEADY_ENDPOINT_ID),
        ("hung-job", HUNG_ENDPOINT_ID),
        ("ping-flood", FLOOD_ENDPOINT_ID),
        ("config-drift", DRIFT_ENDPOINT_ID),
        ("crash-loop", CRASH_ENDPOINT_ID),
        ("budget-burn", STEADY_ENDPOINT_ID),
    ],
)
def test_external_workers_serve_each_scenarios_main_endpoint(name: str, endpoint_id: str) -> None:
    """With external_workers (``simulate --external-workers``) the scenario's main endpoint waits for real
    SDK workers: no simulated worker ever starts there, and a worker polling it gets the queued work."""
    clock = ManualClock(MID_MONTH)
    sim = build_simulator(name, clock=clock, external_workers=True)
    assert [ep.id for ep in sim.endpoints() if ep.worker_kind == "external"] == [endpoint_id]
    clock.advance(4 * 3600)
    assert sim.workers(endpoint_id) == []
    queued = sim.health(endpoint_id).in_queue
    assert queued >= 1, "four hours of the scenario's traffic wait for a worker"
    job = sim.take_job(endpoint_id, "pod-1", job_in_progress=False)
    assert job is not None and job.worker_id == "pod-1"
    assert sim.health(endpoint_id).in_queue == queued - 1


def test_the_demo_story_ignores_external_workers() -> None:
    sim = build_simulator("demo", clock=ManualClock(MID_MONTH), external_workers=True)
    assert all(ep.worker_kind == "simulated" for ep in sim.endpoints())
