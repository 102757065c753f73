"""The named scenarios: each reproduces its incident, and ``steady`` prices a month the way §6 does.

The steady-month test is the acceptance test for the whole simulator: a 30-day month of Poisson traffic
lived in a few ManualClock jumps must bill what the per-session arithmetic says, and show the cold-start
and idle-tail seconds that make the real bill much larger than "3000 × 8.5 s".
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from runpod_sim.engine import SimNotFound
from runpod_sim.registry import SCENARIOS, build_simulator
from runpod_sim.scenarios import (
    CRASH_ENDPOINT_ID,
    DRIFT_ENDPOINT_ID,
    FLEET_ENDPOINT_PREFIX,
    FLOOD_ENDPOINT_ID,
    HUNG_ENDPOINT_ID,
    MONTH_S,
    STEADY_ENDPOINT_ID,
    AntitheticDurations,
    ScenarioParams,
    fleet_busy_count,
    format_duration,
)
from runpod_sim.serve import simulate_command
from runpod_sim.state import SimJob
from watchdog.clock import ManualClock, from_iso, month_start
from watchdog.config import default_config

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


@pytest.mark.parametrize(("name", "size", "busy"), [("fleet-10", 10, 2), ("fleet-1000", 1000, 10)])
def test_a_fleet_is_n_compliant_endpoints_all_idle_but_a_few_always_warm(
    name: str, size: int, busy: int
) -> None:
    """The benchmarks' many-endpoint account (bench/daemon_cost): ``simulate --scenario fleet-N``."""
    policy = default_config(env={}).policy
    clock = ManualClock(MID_MONTH)
    sim = build_simulator(name, clock=clock, seed=1)
    endpoints = sim.endpoints()
    assert len({endpoint.id for endpoint in endpoints}) == size == len(endpoints)
    for endpoint in endpoints:  # nothing for the default policy to correct
        assert endpoint.workers_min == 0 and endpoint.workers_standby == 0
        assert endpoint.workers_max <= policy.max_workers
        assert endpoint.idle_timeout <= policy.max_idle_timeout_s
        assert endpoint.execution_timeout_ms is not None
        assert endpoint.execution_timeout_ms <= policy.required_execution_timeout_s * 1000
    clock.advance(120)
    warm = [endpoint.id for endpoint in endpoints if sim.workers(endpoint.id)]
    assert (
        warm == [f"{FLEET_ENDPOINT_PREFIX}{index:05d}" for index in range(busy)]
        and fleet_busy_count(size) == busy
    )
    clock.advance(600)
    for endpoint_id in warm:  # a 5 s job every 6 s: the one worker never cools down (one session, still open)
        [session] = sim.sessions(endpoint_id)
        assert session.stopped_at is None and sim.health(endpoint_id).completed >= 100
    assert all(not sim.sessions(endpoint.id) for endpoint in endpoints[busy:])


def test_any_fleet_size_is_a_scenario_and_one_is_listed() -> None:
    """``simulate --scenario fleet-N`` has no size option: the registry knows every fleet-N, lists fleet-10."""
    assert [name for name in SCENARIOS if name.startswith("fleet")] == ["fleet-10"]
    assert "fleet-1000" in SCENARIOS and SCENARIOS["fleet-7"].name == "fleet-7"
    assert SCENARIOS.get("fleet-250") is not None and SCENARIOS.get("nope") is None
    for bad in ("fleet-0", "fleet-007", "fleet-", "fleet-x", "fleet-10001", "fleet--1", "fleet-١٠"):
        assert bad not in SCENARIOS
        with pytest.raises(ValueError, match="unknown scenario"):
            build_simulator(bad, clock=ManualClock(MID_MONTH))
    assert len(build_simulator("fleet-7", clock=ManualClock(MID_MONTH)).endpoints()) == 7
    sim = build_simulator("fleet-10", clock=ManualClock(MID_MONTH), params=ScenarioParams(fleet_endpoints=3))
    assert [endpoint.id for endpoint in sim.endpoints()] == [
        "ep-fleet00000",
        "ep-fleet00001",
        "ep-fleet00002",
    ]
    assert fleet_busy_count(3) == 2 and fleet_busy_count(1) == 1 and fleet_busy_count(250) == 2
    with pytest.raises(ValueError, match="at least one endpoint"):
        build_simulator("fleet-10", clock=ManualClock(MID_MONTH), params=ScenarioParams(fleet_endpoints=0))


LISTED_AND_FLEETS = [*sorted(SCENARIOS), "fleet-1", "fleet-1000"]


@pytest.mark.parametrize("name", LISTED_AND_FLEETS)
def test_every_scenario_says_what_it_shows_and_how_long_that_takes_at_speed_1(name: str) -> None:
    """The issue: "simulate scenarios are reproducible with the shipped config at real speed, or
    --list-scenarios says what each shows and how long it takes". One line, one duration, per scenario."""
    scenario = SCENARIOS[name]
    assert scenario.shows and "\n" not in scenario.shows and len(scenario.shows) <= 320, scenario.shows
    assert scenario.shows_after_s is not None and 0 < scenario.shows_after_s <= 2 * 3600
    assert scenario.listing.startswith(scenario.shows)
    assert scenario.listing.endswith(f"[shown after {format_duration(scenario.shows_after_s)} at speed 1]")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 59.6, 60, 135, 605, 1800, 3600, 3845, 7260)] == [
        "5 s",
        "1 min",
        "1 min",
        "2 min 15 s",
        "10 min 5 s",
        "30 min",
        "1 h",
        "1 h 4 min",
        "2 h 1 min",
    ]


def test_list_scenarios_prints_each_one_with_what_it_shows_and_its_duration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert simulate_command(argparse.Namespace(list_scenarios=True)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t", 1)[0] for line in lines] == sorted(SCENARIOS)
    for line in lines:
        name, text = line.split("\t", 1)
        assert text == SCENARIOS[name].listing and "at speed 1]" in text
    assert any(
        line.startswith("hung-job\t") and "[shown after 2 min 20 s at speed 1]" in line for line in lines
    )


SHOWN_BY = {
    "hung-job": lambda sim, daemon: sim.job(HUNG_ENDPOINT_ID, _only_job(sim)).status == "TIMED_OUT",
    "config-drift": lambda sim, daemon: _verified(daemon, "config_drift", "patch_config", DRIFT_ENDPOINT_ID),
    "crash-loop": lambda sim, daemon: _verified(daemon, "crash_loop", "scale_to_zero", CRASH_ENDPOINT_ID),
    "budget-burn": lambda sim, daemon: any(a.key.endswith(":0.5") for a in daemon.ledger.recent_alerts(1000)),
    "ping-flood": lambda sim, daemon: _keep_warm_alert(daemon),
    "demo": lambda sim, daemon: _keep_warm_alert(daemon),  # the story's last act
}
"""How each scenario's ``shows`` can be seen in the simulator or the daemon's ledger."""


def _keep_warm_alert(daemon: Any) -> bool:
    return any(
        a.key.startswith("alert:suspicious_traffic") and "keep_warm" in a.key
        for a in daemon.ledger.recent_alerts(1000)
    )


def _only_job(sim: Any) -> str:
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()
    return str(job.id)


def _verified(daemon: Any, rule: str, action: str, endpoint_id: str) -> bool:
    return any(
        (r.rule, r.action, r.outcome, r.endpoint_id) == (rule, action, "verified", endpoint_id)
        for r in daemon.ledger.recent_decisions(1000)
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHOWN_BY))
async def test_what_a_scenario_shows_happens_by_its_stated_time_with_the_shipped_config(
    name: str, tmp_path: Path
) -> None:
    """The daemon on the shipped defaults (5 s ticks from the simulator's start, on its whole seconds: the
    bots are out of step with them, as real ones are; the simulator's access log as its one ping source,
    as ``--list-scenarios`` says ping-flood needs): what the listing says the scenario shows has happened by ``shows_after_s``, and not
    two ticks earlier (the listing is not padded)."""
    from sim_harness.wiring import daemon_against

    scenario = SCENARIOS[name]
    assert scenario.shows_after_s is not None
    clock = ManualClock(from_iso("2026-06-15T12:00:00Z"))
    start = clock.now()
    log = tmp_path / "access.log"
    sim = build_simulator(name, clock=clock, seed=0, access_log_path=str(log))
    async with daemon_against(sim, tmp_path, log_path=log) as daemon:
        shown_at = None
        while clock.now() - start <= scenario.shows_after_s:
            await daemon.tick()
            if SHOWN_BY[name](sim, daemon):
                shown_at = clock.now() - start
                break
            clock.advance(5.0)
            sim.sync()
    assert shown_at is not None, f"{name}: not shown within {scenario.shows_after_s} s"
    assert shown_at > scenario.shows_after_s - 10.0, f"{name}: shown at {shown_at} s, the listing says later"
