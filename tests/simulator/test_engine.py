"""The simulator engine's model: worker lifecycle, billing ground truth, job rules, the worker protocol.

Every test drives a ManualClock, so the times asserted are exact simulated seconds.
"""

from __future__ import annotations

import json
import math

import pytest

from runpod_sim.engine import SimInvalid, SimNotFound, SimOptions, Simulator, billed_seconds
from runpod_sim.state import JobPolicy, SimEndpoint
from watchdog.clock import ManualClock, from_iso

START = from_iso("2026-06-15T12:00:00Z")
A6000_FLEX = 0.00034
A6000_ACTIVE = 0.00024
EP = "ep-test"


def make_sim(**option_overrides: object) -> tuple[Simulator, ManualClock]:
    clock = ManualClock(START)
    return Simulator(clock=clock, options=SimOptions(**option_overrides), seed=7), clock  # type: ignore[arg-type]


def endpoint(**overrides: object) -> SimEndpoint:
    fields: dict[str, object] = {
        "id": EP,
        "name": "test endpoint",
        "workers_max": 1,
        "cold_start_s": 12.0,
        "idle_timeout": 5,
        "execution_timeout_ms": 600_000,
    }
    fields.update(overrides)
    return SimEndpoint(**fields)  # type: ignore[arg-type]


def advance(sim: Simulator, clock: ManualClock, seconds: float) -> None:
    """Move time and bring the model up to it (job objects are only updated by a sync)."""
    clock.advance(seconds)
    sim.sync()


def at(sim: Simulator, clock: ManualClock, offset_s: float) -> None:
    """Set time to ``START + offset_s`` exactly (no accumulated float noise at a boundary) and sync."""
    clock.set(START + offset_s)
    sim.sync()


def run(duration_s: float) -> dict[str, object]:
    return {"sim": {"duration_s": duration_s}}


HANG = {"sim": {"hang": True}}


def states(sim: Simulator, endpoint_id: str = EP) -> list[str]:
    return [worker.state for worker in sim.workers(endpoint_id)]


# --------------------------------------------------------------------------- lifecycle
def test_worker_goes_cold_start_run_idle_tail_gone() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    job = sim.submit(EP, run(8.5))
    assert states(sim) == ["INITIALIZING"]
    assert sim.health(EP).initializing == 1
    at(sim, clock, 11.9)
    assert states(sim) == ["INITIALIZING"] and job.status == "IN_QUEUE"
    at(sim, clock, 12)
    assert states(sim) == ["RUNNING"] and job.status == "IN_PROGRESS"
    at(sim, clock, 20.4)
    assert job.status == "IN_PROGRESS"
    at(sim, clock, 20.5)
    assert job.status == "COMPLETED" and states(sim) == ["IDLE"]
    assert sim.health(EP).idle == sim.health(EP).ready == 1
    assert job.output == {"echo": run(8.5)}
    assert job.delay_time_ms == 12_000 and job.execution_time_ms == 8_500
    at(sim, clock, 25.4)
    assert states(sim) == ["IDLE"]
    at(sim, clock, 25.5)
    assert sim.workers(EP) == []
    [session] = sim.sessions(EP)
    assert session.stopped_at == pytest.approx(START + 25.5)
    assert (session.initializing_s, session.busy_s, session.idle_s) == pytest.approx((12.0, 8.5, 5.0))
    assert sim.session_billed_seconds(session) == 26
    assert sim.billed_usd_total() == pytest.approx(26 * A6000_FLEX)
    assert sim.health(EP).completed == 1


def test_a_job_arriving_during_the_idle_tail_reuses_the_warm_worker() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    sim.submit(EP, run(8.5))
    advance(sim, clock, 23.5)  # worker idle since 20.5
    second = sim.submit(EP, run(2.0))
    assert second.status == "IN_PROGRESS"
    assert second.delay_time_ms == 0
    advance(sim, clock, 60)
    [session] = sim.sessions(EP)
    assert session.initializing_s == pytest.approx(12.0)
    assert session.busy_s == pytest.approx(10.5)
    assert session.idle_s == pytest.approx(3.0 + 5.0)
    assert sim.session_billed_seconds(session) == math.ceil(12 + 10.5 + 8)


def test_raising_the_idle_timeout_during_an_idle_tail_extends_it() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    sim.submit(EP, run(8.5))
    at(sim, clock, 22)  # idle since 20.5; the 5 s tail would end at 25.5
    sim.update_endpoint(EP, {"idle_timeout": 300})
    at(sim, clock, 320.4)
    assert states(sim) == ["IDLE"]
    at(sim, clock, 320.5)
    assert sim.workers(EP) == []
    sim.update_endpoint(EP, {"idle_timeout": 5})
    sim.submit(EP, run(1.0))
    at(sim, clock, 320.5 + 12 + 1 + 5)
    assert sim.workers(EP) == []


def test_initializing_is_not_billed_when_the_option_says_so() -> None:
    sim, clock = make_sim(bill_initializing=False)
    sim.add_endpoint(endpoint())
    sim.submit(EP, run(8.5))
    advance(sim, clock, 60)
    [session] = sim.sessions(EP)
    assert session.started_at == pytest.approx(START + 12)
    assert session.initializing_s == 0
    assert sim.session_billed_seconds(session) == 14


def test_flashboot_shortens_cold_starts_after_the_first() -> None:
    sim, clock = make_sim(flashboot_factor=0.25)
    sim.add_endpoint(endpoint(flashboot="FLASHBOOT"))
    sim.submit(EP, run(1.0))
    advance(sim, clock, 60)
    job = sim.submit(EP, run(1.0))
    advance(sim, clock, 60)
    assert job.delay_time_ms == 3_000
    assert [s.initializing_s for s in sim.sessions(EP)] == pytest.approx([12.0, 3.0])


def test_capacity_throttles_extra_workers_without_billing_them() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=2, capacity=1, scaler_type="REQUEST_COUNT", scaler_value=1))
    first = sim.submit(EP, run(10.0))
    second = sim.submit(EP, run(10.0))
    assert sorted(states(sim)) == ["INITIALIZING", "THROTTLED"]
    assert sim.health(EP).throttled == 1
    advance(sim, clock, 12 + 10)  # first done at 22 and idle; the throttled worker still waits for capacity
    assert first.status == "COMPLETED"
    assert second.status == "IN_PROGRESS"  # the idle worker took it
    assert sim.health(EP).throttled == 1
    assert len(sim.sessions(EP)) == 1  # throttled time opens no session


# --------------------------------------------------------------------------- autoscaler
def test_queue_delay_starts_a_second_worker_only_after_the_delay() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=3, scaler_value=4))
    sim.submit(EP, run(100.0))
    advance(sim, clock, 20)
    sim.submit(EP, run(1.0))
    at(sim, clock, 23.9)
    assert len(sim.workers(EP)) == 1
    at(sim, clock, 24)
    assert sorted(states(sim)) == ["INITIALIZING", "RUNNING"]


def test_request_count_scales_to_ceil_of_jobs_over_value_within_workers_max() -> None:
    sim, _ = make_sim()
    sim.add_endpoint(endpoint(workers_max=5, scaler_type="REQUEST_COUNT", scaler_value=2))
    for _ in range(5):
        sim.submit(EP, run(1.0))
    assert len(sim.workers(EP)) == 3
    for _ in range(10):
        sim.submit(EP, run(1.0))
    assert len(sim.workers(EP)) == 5


def test_low_priority_jobs_never_trigger_scaling() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=3))
    job = sim.submit(EP, run(1.0), policy=JobPolicy(low_priority=True))
    advance(sim, clock, 3600)
    assert sim.workers(EP) == [] and job.status == "IN_QUEUE"
    sim.submit(EP, run(1.0))  # a normal job starts a worker, which also serves the low-priority one
    advance(sim, clock, 60)
    assert job.status == "COMPLETED"


def test_workers_min_keeps_an_active_worker_billed_at_the_active_rate() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_min=1))
    advance(sim, clock, 3600)
    [worker] = sim.workers(EP)
    assert worker.active and worker.role == "active" and worker.state == "IDLE"
    assert sim.current_spend_per_hr() == pytest.approx(A6000_ACTIVE * 3600)
    assert sim.billed_usd_total() == pytest.approx(3600 * A6000_ACTIVE)
    sim.update_endpoint(EP, {"workers_min": 0})
    advance(sim, clock, 5)
    assert sim.workers(EP) == []  # demoted to flex, then its (long past) idle tail ended it


@pytest.mark.parametrize(("billing", "rate"), [("active", A6000_ACTIVE), ("flex", A6000_FLEX), ("free", 0.0)])
def test_standby_workers_are_billed_per_option(billing: str, rate: float) -> None:
    sim, clock = make_sim(standby_billing=billing)
    sim.add_endpoint(endpoint(workers_standby=1, cold_start_s=0.0))
    advance(sim, clock, 1000)
    assert [w.role for w in sim.workers(EP)] == ["standby"]
    assert sim.billed_usd_total() == pytest.approx(1000 * rate)


def test_workers_max_zero_stops_every_worker_and_its_billing() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=2, scaler_type="REQUEST_COUNT", scaler_value=1))
    hung = sim.submit(EP, HANG)
    sim.submit(EP, HANG)
    advance(sim, clock, 100)
    assert states(sim) == ["RUNNING", "RUNNING"]
    assert sim.current_spend_per_hr() == pytest.approx(2 * A6000_FLEX * 3600)
    sim.update_endpoint(EP, {"workers_max": 0})
    assert sim.workers(EP) == []
    assert hung.status == "FAILED" and hung.error == "worker stopped"
    assert sim.current_spend_per_hr() == 0
    spent = sim.billed_usd_total()
    assert spent == pytest.approx(2 * 100 * A6000_FLEX)
    later = sim.submit(EP, run(1.0))
    advance(sim, clock, 86_400)
    assert sim.billed_usd_total() == spent
    assert later.status == "IN_QUEUE" and sim.workers(EP) == []


# --------------------------------------------------------------------------- billing
def test_billing_rounds_each_session_up_not_each_request() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(cold_start_s=0.5, idle_timeout=1))
    sim.submit(EP, run(0.3))  # session 0.5 + 0.3 + 1 = 1.8 s -> 2
    advance(sim, clock, 100)
    sim.submit(EP, run(1.2))  # 2.7 s -> 3
    advance(sim, clock, 100)
    sim.submit(EP, run(1.5))  # exactly 3.0 s -> 3, not 4
    advance(sim, clock, 100)
    assert [sim.session_billed_seconds(s) for s in sim.sessions(EP)] == [2, 3, 3]
    assert sim.billed_usd_total() == pytest.approx(8 * A6000_FLEX)
    assert billed_seconds(3.0000000001) == 3 and billed_seconds(3.01) == 4 and billed_seconds(0) == 0


def test_a_session_across_an_hour_boundary_splits_and_rounds_in_the_end_bucket() -> None:
    hour = from_iso("2026-06-15T13:00:00Z")
    sim, clock = make_sim()
    clock.set(hour - 10)
    sim.add_endpoint(endpoint())
    sim.submit(EP, run(8.5))  # session [hour-10, hour+15.5]: 26 billed seconds
    advance(sim, clock, 3600)
    buckets = sim.billing(start=hour - 3600, end=hour + 3600, bucket_s=3600)
    assert [(b.start, b.billed_s) for b in buckets] == [(hour - 3600, 10.0), (hour, pytest.approx(16.0))]
    assert sum(b.gpu_usd for b in buckets) == pytest.approx(26 * A6000_FLEX)
    assert sim.billing(start=hour, end=hour + 3600, bucket_s=3600, endpoint_id="other") == []


def test_bucket_sum_equals_ground_truth_to_the_cent() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=3, scaler_type="REQUEST_COUNT", scaler_value=1))
    sim.add_traffic(
        EP, actor="client", rate_per_s=1 / 120, input_factory=lambda rng: run(round(rng.uniform(1, 30), 3))
    )
    advance(sim, clock, 2 * 86_400)
    sim.update_endpoint(EP, {"workers_min": 1})  # plus an open active session at the end
    advance(sim, clock, 1234.5)
    day_start = from_iso("2026-06-15T00:00:00Z")
    buckets = sim.billing(start=day_start, end=day_start + 4 * 86_400, bucket_s=3600)
    truth = sim.billed_usd_total()
    assert len(sim.sessions(EP)) > 300
    assert sum(b.total_usd for b in buckets) == pytest.approx(truth, abs=1e-9)
    assert round(sum(b.total_usd for b in buckets), 2) == round(truth, 2)
    expected_seconds = sum(sim.session_billed_seconds(s) for s in sim.sessions(EP))
    assert sum(b.billed_s for b in buckets) == pytest.approx(expected_seconds)


def test_billing_delay_hides_recent_usage() -> None:
    sim, clock = make_sim(billing_delay_s=3600)
    sim.add_endpoint(endpoint(workers_min=1, cold_start_s=0.0))
    advance(sim, clock, 3 * 3600)
    buckets = sim.billing(start=START, end=START + 4 * 3600, bucket_s=3600)
    assert sum(b.billed_s for b in buckets) == pytest.approx(2 * 3600)
    assert sim.billed_usd_total() == pytest.approx(3 * 3600 * A6000_ACTIVE)


def test_account_balance_falls_by_the_billed_amount() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    sim.submit(EP, run(8.5))
    advance(sim, clock, 60)
    assert sim.account.client_balance_usd == pytest.approx(sim.initial_balance_usd - 26 * A6000_FLEX)


# --------------------------------------------------------------------------- timeouts
@pytest.mark.parametrize("status", ["TIMED_OUT", "FAILED"])
def test_execution_timeout_stops_the_worker_and_sets_the_status(status: str) -> None:
    sim, clock = make_sim(timeout_status=status)
    sim.add_endpoint(endpoint(execution_timeout_ms=10_000))
    job = sim.submit(EP, HANG)
    at(sim, clock, 21.9)
    assert job.status == "IN_PROGRESS"
    worker_id = sim.workers(EP)[0].id
    at(sim, clock, 22)
    assert job.status == status
    assert sim.workers(EP) == [] and sim.worker_stopped(worker_id)
    [session] = sim.sessions(EP)
    assert session.stopped_at == pytest.approx(START + 22) and session.idle_s == 0
    assert sim.stop_signals(EP, worker_id) == [job.id]


def test_a_job_policy_timeout_overrides_the_endpoint() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(execution_timeout_ms=None))
    job = sim.submit(EP, HANG, policy=JobPolicy(execution_timeout_ms=5_000))
    advance(sim, clock, 12 + 5)
    assert job.status == "TIMED_OUT"
    with pytest.raises(SimInvalid):
        sim.submit(EP, HANG, policy=JobPolicy(execution_timeout_ms=4_000))


def test_without_an_execution_timeout_a_hung_job_runs_for_a_week() -> None:
    sim, clock = make_sim(access_records_cap=200_000)
    sim.add_endpoint(endpoint(execution_timeout_ms=None))
    week = 7 * 86_400
    job = sim.submit(EP, HANG, policy=JobPolicy(ttl_ms=week * 1000))
    for _ in range(7):
        advance(sim, clock, 86_400 - 10)
    assert job.status == "IN_PROGRESS"
    [worker] = sim.workers(EP)
    assert worker.state == "RUNNING"
    [session] = sim.sessions(EP)
    assert session.busy_s == pytest.approx(week - 70 - 12)
    assert sim.billed_usd_total() == pytest.approx((week - 70) * A6000_FLEX)
    pings = [r for r in sim.access_records if r["kind"] == "ping" and r["job_id"] == job.id]
    assert len(pings) == pytest.approx((week - 70 - 12) / 10, abs=1)
    advance(sim, clock, 70)  # the TTL (a week from submission) deletes the job and frees the worker
    with pytest.raises(SimNotFound):
        sim.job(EP, job.id)
    assert sim.stop_signals(EP, worker.id) == [job.id]
    advance(sim, clock, 5)
    assert sim.workers(EP) == []


# --------------------------------------------------------------------------- job operations
def test_cancel_a_queued_job_removes_it_and_keeps_it_visible_until_retention() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=0))
    job = sim.submit(EP, run(1.0))
    assert sim.cancel(EP, job.id).status == "CANCELLED"
    assert sim.health(EP).in_queue == 0
    advance(sim, clock, 30 * 60 - 1)
    assert sim.job(EP, job.id).status == "CANCELLED"
    advance(sim, clock, 1)
    with pytest.raises(SimNotFound):
        sim.job(EP, job.id)


def test_cancel_an_in_progress_job_signals_its_worker_which_becomes_idle() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    job = sim.submit(EP, HANG)
    advance(sim, clock, 20)
    [worker] = sim.workers(EP)
    sim.cancel(EP, job.id)
    assert job.status == "CANCELLED" and worker.state == "IDLE"
    assert sim.stop_signals(EP, worker.id) == [job.id]
    assert sim.stop_signals(EP, worker.id) == []  # drained
    advance(sim, clock, 5)
    assert sim.workers(EP) == []
    assert sim.health(EP).completed == 0 and sim.health(EP).failed == 0


def test_retry_only_failed_or_timed_out_jobs_same_id_back_in_queue() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    job = sim.submit(EP, {"sim": {"duration_s": 2.0, "fail": "CUDA out of memory"}})
    advance(sim, clock, 14)
    assert job.status == "FAILED" and job.error == "CUDA out of memory"
    assert sim.health(EP).failed == 1
    advance(sim, clock, 6)  # the worker's idle tail is over: the retried job must wait for a cold start
    retried = sim.retry(EP, job.id)
    assert retried.id == job.id and retried.status == "IN_QUEUE" and retried.retries == 1
    assert retried.error is None and sim.health(EP).retried == 1
    advance(sim, clock, 12 + 2)
    assert job.status == "FAILED" and sim.health(EP).failed == 2
    ok = sim.submit(EP, run(1.0))
    advance(sim, clock, 60)
    assert ok.status == "COMPLETED"
    with pytest.raises(SimInvalid):
        sim.retry(EP, ok.id)


def test_purge_queue_removes_only_queued_jobs() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint())
    running = sim.submit(EP, run(30.0))
    advance(sim, clock, 13)
    queued = [sim.submit(EP, run(1.0)) for _ in range(2)]
    assert sim.purge_queue(EP) == 2
    assert running.status == "IN_PROGRESS"
    for job in queued:
        with pytest.raises(SimNotFound):
            sim.job(EP, job.id)
    advance(sim, clock, 30)
    assert running.status == "COMPLETED"


def test_ttl_deletes_a_job_from_submission() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=0))
    job = sim.submit(EP, run(1.0), policy=JobPolicy(ttl_ms=10_000))
    at(sim, clock, 9.9)
    assert sim.job(EP, job.id).status == "IN_QUEUE"
    at(sim, clock, 10)
    with pytest.raises(SimNotFound):
        sim.job(EP, job.id)
    assert sim.health(EP).in_queue == 0
    with pytest.raises(SimInvalid):
        sim.submit(EP, run(1.0), policy=JobPolicy(ttl_ms=9_999))


def test_results_are_kept_30_minutes_for_run_and_1_minute_for_runsync() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=2, scaler_type="REQUEST_COUNT", scaler_value=1))
    async_job = sim.submit(EP, run(1.0))
    sync_job = sim.submit(EP, run(1.0), sync=True)
    assert sync_job.id.startswith("sync-")
    advance(sim, clock, 13)
    assert async_job.status == sync_job.status == "COMPLETED"
    advance(sim, clock, 60)
    with pytest.raises(SimNotFound):
        sim.job(EP, sync_job.id)
    advance(sim, clock, 30 * 60 - 61)
    assert sim.job(EP, async_job.id).status == "COMPLETED"
    advance(sim, clock, 1)
    with pytest.raises(SimNotFound):
        sim.job(EP, async_job.id)
    with pytest.raises(SimNotFound):
        sim.job("nope", "x")


# --------------------------------------------------------------------------- crash loop
def test_crash_loop_keeps_jobs_queued_while_retries_climb() -> None:
    sim, clock = make_sim(unhealthy_restart_s=30)
    sim.add_endpoint(endpoint(crash_loop=True, cold_start_s=20))
    job = sim.submit(EP, run(1.0))
    advance(sim, clock, 20)
    assert states(sim) == ["UNHEALTHY"] and sim.health(EP).unhealthy == 1
    assert sim.health(EP).retried == 1
    advance(sim, clock, 30)
    assert states(sim) == ["INITIALIZING"]
    advance(sim, clock, 20 + 50 * 3)  # crashes at 20, 70, 120, 170, 220
    health = sim.health(EP)
    assert health.retried == 5 and job.retries == 5
    assert job.status == "IN_QUEUE" and health.in_queue == 1 and health.completed == 0
    sessions = sim.sessions(EP)
    assert len(sessions) == 5
    assert all(s.initializing_s == pytest.approx(20) and s.busy_s == 0 for s in sessions)
    assert sim.billed_usd_total() == pytest.approx(5 * 20 * A6000_FLEX)


# --------------------------------------------------------------------------- external workers
def test_external_worker_take_done_and_scale_down() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external", idle_timeout=30))
    assert sim.take_job(EP, "pod-1", gpu="NVIDIA A40") is None  # registers: billing starts now
    assert states(sim) == ["IDLE"]
    job = sim.submit(EP, {"prompt": "hi"})
    advance(sim, clock, 2)
    assert sim.health(EP).initializing == 0  # nothing simulated starts for an external endpoint
    taken = sim.take_job(EP, "pod-1")
    assert taken is job and job.status == "IN_PROGRESS" and job.worker_id == "pod-1"
    assert states(sim) == ["RUNNING"]
    advance(sim, clock, 3)
    sim.job_done(EP, "pod-1", job.id, {"status": "IN_PROGRESS", "output": "50%"}, is_stream=False)
    assert job.status == "IN_PROGRESS" and job.output == "50%"
    sim.job_done(EP, "pod-1", job.id, json.dumps({"output": {"text": "bonjour"}}), is_stream=False)
    assert job.status == "COMPLETED" and job.output == {"text": "bonjour"}
    assert job.execution_time_ms == 3_000
    at(sim, clock, 34.9)
    assert not sim.worker_stopped("pod-1")
    at(sim, clock, 35)
    assert sim.worker_stopped("pod-1") and sim.workers(EP) == []
    assert sim.take_job(EP, "pod-1") is None  # scaled down, and nothing queued: the platform wants no worker
    [session] = sim.sessions(EP)
    assert session.gpu_type_id == "NVIDIA A40"
    assert (session.initializing_s, session.busy_s, session.idle_s) == pytest.approx((0, 3, 32))
    assert sim.session_billed_seconds(session) == 35
    sim.ping(EP, "pod-1", job_ids=[])  # a stopped worker's ping bills nothing and brings nothing back
    advance(sim, clock, 100)
    assert sim.workers(EP) == [] and sim.billed_usd_total() == pytest.approx(35 * A6000_FLEX)

    # A job arrives: the autoscaler starts the (still polling) process again, as RunPod starts a worker.
    again = sim.submit(EP, {"prompt": "again"})
    assert sim.take_job(EP, "pod-1", job_in_progress=True) is None  # not a process still running a job
    assert sim.take_job(EP, "pod-1") is again and not sim.worker_stopped("pod-1")
    first, second = sim.sessions(EP)
    assert first is session and second.started_at == pytest.approx(START + 135) and second.stopped_at is None
    (worker,) = sim.workers(EP)
    assert worker.started_at == pytest.approx(START + 135) and worker.state == "RUNNING"


def test_external_error_reports_fail_the_job() -> None:
    sim, _ = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external", workers_max=3))
    report = {"error_type": "<class 'ValueError'>", "error_message": "bad input", "hostname": "h"}
    bodies = [json.dumps(report), {"error": json.dumps(report)}, {"error": "plain"}, "not json"]
    for number, body in enumerate(bodies):
        job = sim.submit(EP, {"n": number})
        assert sim.take_job(EP, f"pod-{number % 3}") is job
        sim.job_done(EP, f"pod-{number % 3}", job.id, body, is_stream=False)
        assert job.status == "FAILED"
        assert job.error is not None and ("bad input" in job.error or job.error in ("plain", "not json"))
    assert sim.health(EP).failed == 4


def test_external_workers_beyond_workers_max_get_nothing_and_are_stopped() -> None:
    sim, _ = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external", workers_max=1))
    sim.submit(EP, {"a": 1})
    sim.submit(EP, {"b": 2})
    assert sim.take_job(EP, "pod-1") is not None
    assert sim.take_job(EP, "pod-2") is None
    assert sim.worker_stopped("pod-2") and not sim.worker_stopped("pod-1")
    assert len(sim.sessions(EP)) == 1


def test_external_execution_timeout_signals_and_stops_the_worker() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external", execution_timeout_ms=10_000))
    job = sim.submit(EP, {"hang": True})
    sim.take_job(EP, "pod-1")
    advance(sim, clock, 10)
    assert job.status == "TIMED_OUT" and sim.worker_stopped("pod-1")
    assert sim.stop_signals(EP, "pod-1") == [job.id]
    sim.job_done(EP, "pod-1", job.id, {"output": "late"}, is_stream=False)
    assert job.status == "TIMED_OUT"  # a late report changes nothing


def test_external_cancel_frees_the_worker_and_ignores_its_late_report() -> None:
    sim, _ = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external"))
    first = sim.submit(EP, {"n": 1})
    second = sim.submit(EP, {"n": 2})
    sim.take_job(EP, "pod-1")
    sim.cancel(EP, first.id)
    assert sim.stop_signals(EP, "pod-1") == [first.id]
    sim.job_done(EP, "pod-1", first.id, {"output": "done anyway"}, is_stream=False)
    assert first.status == "CANCELLED"
    assert sim.take_job(EP, "pod-1") is second  # free at once


def test_external_stream_chunks_are_drained() -> None:
    sim, _ = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external"))
    job = sim.submit(EP, {"n": 1})
    sim.take_job(EP, "pod-1")
    sim.job_stream(EP, "pod-1", job.id, {"output": "a"})
    sim.job_stream(EP, "pod-1", job.id, json.dumps({"output": "b"}))
    assert sim.drain_stream(EP, job.id)[1] == ["a", "b"]
    assert sim.drain_stream(EP, job.id)[1] == []


def test_missed_pings_lose_an_external_worker_and_time_out_its_job() -> None:
    sim, clock = make_sim(missed_pings_to_lose_worker=3, ping_interval_s=10)
    sim.add_endpoint(endpoint(worker_kind="external"))
    job = sim.submit(EP, {"n": 1})
    sim.take_job(EP, "pod-1")
    advance(sim, clock, 20)
    sim.ping(EP, "pod-1", job_ids=[job.id], runpod_version="1.12.0")
    assert sim.workers(EP)[0].runpod_version == "1.12.0"
    at(sim, clock, 49.9)
    assert job.status == "IN_PROGRESS"
    at(sim, clock, 50)
    assert job.status == "TIMED_OUT" and sim.worker_stopped("pod-1")
    assert sim.sessions(EP)[0].stopped_at == pytest.approx(START + 50)


def test_an_unhealthy_ping_marks_the_worker_unhealthy_unbilled() -> None:
    sim, clock = make_sim(unhealthy_restart_s=30)
    sim.add_endpoint(endpoint(worker_kind="external"))
    sim.ping(EP, "pod-1", job_ids=[], status="unhealthy", reason="cuda: no GPU")
    assert states(sim) == ["UNHEALTHY"]
    assert sim.take_job(EP, "pod-1") is None
    advance(sim, clock, 30)
    assert sim.worker_stopped("pod-1") and sim.workers(EP) == []
    assert sim.billed_usd_total() == 0


async def test_async_waits_poll_in_real_time() -> None:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(worker_kind="external"))
    assert await sim.wait_take_job(EP, "pod-1", timeout_s=0.05, poll_s=0.01) is None
    job = sim.submit(EP, {"n": 1})
    taken = await sim.wait_take_job(EP, "pod-1", timeout_s=1, poll_s=0.01)
    assert taken is job
    assert await sim.wait_stop_signals(EP, "pod-1", timeout_s=0.05, poll_s=0.01) == []
    pending = await sim.wait_for_job(EP, job.id, timeout_s=0.05, poll_s=0.01)
    assert pending.status == "IN_PROGRESS"
    sim.cancel(EP, job.id)
    assert await sim.wait_stop_signals(EP, "pod-1", timeout_s=1, poll_s=0.01) == [job.id]
    assert (await sim.wait_for_job(EP, job.id, timeout_s=1)).status == "CANCELLED"
    assert clock.now() == START


# --------------------------------------------------------------------------- control plane
def test_update_endpoint_validates_and_bumps_version() -> None:
    sim, _ = make_sim()
    ep = sim.add_endpoint(endpoint())
    for bad in ({"workers_min": 2}, {"idle_timeout": 0}, {"workers_max": -1}, {"bogus": 1}, {"id": "x"}):
        with pytest.raises(SimInvalid):
            sim.update_endpoint(EP, bad)
    assert ep.version == 1
    sim.update_endpoint(EP, {"idle_timeout": 60})
    assert ep.idle_timeout == 60 and ep.version == 2
    with pytest.raises(SimNotFound):
        sim.update_endpoint("nope", {})


def test_save_endpoint_resets_omitted_fields_to_defaults() -> None:
    sim, _ = make_sim()
    created = sim.save_endpoint({"name": "made by graphql", "workers_max": 1, "workers_standby": 0})
    assert created.idle_timeout == 5 and created.scaler_value == 4
    sim.update_endpoint(created.id, {"idle_timeout": 120, "workers_max": 2})
    sim.save_endpoint({"id": created.id, "name": "renamed"})
    assert (created.name, created.idle_timeout, created.workers_max, created.workers_standby) == (
        "renamed",
        5,
        3,
        1,
    )


def test_delete_endpoint_requires_zero_workers_min_and_max() -> None:
    sim, _ = make_sim()
    sim.add_endpoint(endpoint())
    with pytest.raises(SimInvalid):
        sim.delete_endpoint(EP)
    sim.update_endpoint(EP, {"workers_max": 0})
    sim.delete_endpoint(EP)
    with pytest.raises(SimNotFound):
        sim.endpoint(EP)


# --------------------------------------------------------------------------- event order and logs
def _run_custom_traffic(steps: list[float]) -> tuple[list[tuple[float, float | None, float]], object]:
    sim, clock = make_sim()
    sim.add_endpoint(endpoint(workers_max=2, idle_timeout=30, execution_timeout_ms=20_000))
    sim.add_traffic(
        EP,
        actor="client",
        rate_per_s=1 / 90,
        input_factory=lambda rng: run(round(rng.expovariate(1 / 10), 3)),
        free_share=0.5,
    )
    for step in steps:
        advance(sim, clock, step)
    sessions = [(s.started_at, s.stopped_at, s.busy_s) for s in sim.sessions(EP)]
    return sessions, (sim.health(EP), round(sim.billed_usd_total(), 9))


def test_one_big_jump_gives_the_same_result_as_many_small_steps() -> None:
    horizon = 2 * 86_400
    big = _run_custom_traffic([horizon])
    small = _run_custom_traffic([horizon / 2000] * 2000)
    assert big == small
    assert len(big[0]) > 100
    assert big[1][0].failed > 0  # some jobs outlived the 20 s timeout: the comparison covers them too


def test_access_log_writes_flushed_json_lines(tmp_path: object) -> None:
    path = f"{tmp_path}/access.jsonl"
    clock = ManualClock(START)
    sim = Simulator(clock=clock, access_log_path=path)
    sim.add_endpoint(endpoint())
    sim.add_traffic(EP, actor="translate-app", interarrival=lambda _rng: 60.0, free_share=1.0)
    advance(sim, clock, 60)
    with open(path, encoding="utf-8") as log:
        lines = [json.loads(line) for line in log]
    request = next(line for line in lines if line["kind"] == "request")
    assert request["ts"] == "2026-06-15T12:01:00.000Z"
    assert (request["route"], request["source"], request["tier"]) == (
        f"/v2/{EP}/run",
        "translate-app",
        "free",
    )
    assert sim.job(EP, request["job_id"]).source == "translate-app"
    assert {line["kind"] for line in lines} == {"request"}  # worker records stay in memory by default
    assert any(record["kind"] == "worker" for record in sim.access_records)
    sim.log_access(kind="ping", endpoint_id=EP, ts=START + 0.25)
    with open(path, encoding="utf-8") as log:
        assert json.loads(log.readlines()[-1])["ts"] == "2026-06-15T12:00:00.250Z"
    sim.close()


def test_in_memory_access_records_are_capped() -> None:
    sim, _ = make_sim(access_records_cap=100)
    for number in range(1000):
        sim.log_access(kind="request", job_id=str(number))
    assert 100 <= len(sim.access_records) <= 111
    assert sim.access_records[-1]["job_id"] == "999"


# ------------------------------------------- SimOptions.cancelled_job_keeps_worker (runpod-api.md §5.4)
def _job_pings(sim: Simulator, job_id: str) -> list[float]:
    """Times (offsets from START) of the simulated heartbeats that list ``job_id``."""
    return [
        from_iso(r["ts"]) - START for r in sim.access_records if r["kind"] == "ping" and r["job_id"] == job_id
    ]


@pytest.mark.parametrize("keeps", [False, True])
def test_cancelling_a_hung_simulated_job_frees_or_keeps_its_worker(keeps: bool) -> None:
    sim, clock = make_sim(cancelled_job_keeps_worker=keeps)
    sim.add_endpoint(endpoint(execution_timeout_ms=None))
    job = sim.submit(EP, HANG)
    at(sim, clock, 20)
    [worker] = sim.workers(EP)
    session = worker.session
    assert session is not None
    sim.cancel(EP, job.id)
    assert job.status == "CANCELLED"
    assert sim.stop_signals(EP, worker.id) == [job.id]  # the stop signal is sent either way
    queued = sim.submit(EP, run(1.0))
    if not keeps:
        assert states(sim) == ["RUNNING"] and sim.job(EP, queued.id).status == "IN_PROGRESS"  # free at once
        assert sim.stray_job_id(worker.id) is None
        at(sim, clock, 26.0)  # the queued job ran 1 s, then the 5 s idle tail
        assert sim.workers(EP) == [] and session.stopped_at == pytest.approx(START + 26)
        assert _job_pings(sim, job.id) == []  # its first heartbeat (at 22 s) came after the cancel
        return
    # a blocking handler ignores the stop signal: the worker runs on, billed, and takes nothing else
    assert states(sim) == ["RUNNING"] and worker.current_job_id is None
    assert sim.stray_job_id(worker.id) == job.id
    health = sim.health(EP)
    assert (health.running, health.in_progress, health.in_queue) == (1, 0, 1)
    at(sim, clock, 20 + 3600)
    assert states(sim) == ["RUNNING"] and session.stopped_at is None  # never scaled down for idleness
    assert sim.job(EP, queued.id).status == "IN_QUEUE"  # workers_max 1: nothing else starts
    assert sim.session_billed_seconds(session) == 3620
    pings = _job_pings(sim, job.id)
    assert pings[0] == pytest.approx(22) and pings[-1] == pytest.approx(3612)  # heartbeats still list it
    assert len(pings) == 360
    # only stopping the worker ends the session
    sim.update_endpoint(EP, {"workers_max": 0})
    assert sim.workers(EP) == [] and sim.worker_stopped(worker.id)
    assert session.stopped_at == pytest.approx(START + 3620)
    assert sim.stray_job_id(worker.id) is None
    billed = sim.billed_usd_total(EP)
    assert billed == pytest.approx(3620 * A6000_FLEX)
    at(sim, clock, 2 * 3600)
    assert sim.billed_usd_total(EP) == pytest.approx(billed)
    assert _job_pings(sim, job.id)[-1] == pytest.approx(3612)
    assert job.status == "CANCELLED"


def test_kept_worker_is_freed_when_its_cancelled_handler_returns() -> None:
    """A blocking handler that does finish (here after its 30 s) frees the worker: IDLE, then scaled down."""
    sim, clock = make_sim(cancelled_job_keeps_worker=True)
    sim.add_endpoint(endpoint())
    job = sim.submit(EP, run(30.0))
    at(sim, clock, 20)
    sim.cancel(EP, job.id)
    [worker] = sim.workers(EP)
    at(sim, clock, 41.9)
    assert states(sim) == ["RUNNING"]
    at(sim, clock, 42)
    assert states(sim) == ["IDLE"] and sim.stray_job_id(worker.id) is None
    assert job.status == "CANCELLED" and job.output is None  # the late result changes nothing
    assert sim.health(EP).completed == 0
    at(sim, clock, 47)
    assert sim.workers(EP) == []
    [session] = sim.sessions(EP)
    assert session.stopped_at == pytest.approx(START + 47)
    assert (session.initializing_s, session.busy_s, session.idle_s) == pytest.approx((12, 30, 5))


def test_kept_worker_is_stopped_by_the_execution_timeout() -> None:
    sim, clock = make_sim(cancelled_job_keeps_worker=True)
    sim.add_endpoint(endpoint(execution_timeout_ms=60_000))
    job = sim.submit(EP, HANG)
    at(sim, clock, 20)
    [worker] = sim.workers(EP)
    sim.cancel(EP, job.id)
    assert sim.stop_signals(EP, worker.id) == [job.id]
    at(sim, clock, 71.9)
    assert states(sim) == ["RUNNING"]
    at(sim, clock, 72)  # started at 12 (after the cold start), timeout 60 s
    assert sim.workers(EP) == [] and sim.worker_stopped(worker.id)
    assert job.status == "CANCELLED"  # stays cancelled, not TIMED_OUT
    assert sim.stop_signals(EP, worker.id) == [job.id]
    assert sim.sessions(EP)[0].stopped_at == pytest.approx(START + 72)


@pytest.mark.parametrize("keeps", [False, True])
def test_external_worker_whose_heartbeat_lists_a_cancelled_job(keeps: bool) -> None:
    sim, clock = make_sim(cancelled_job_keeps_worker=keeps)
    sim.add_endpoint(endpoint(worker_kind="external", idle_timeout=5))
    job = sim.submit(EP, {"hang": True})
    second = sim.submit(EP, {"n": 2})
    assert sim.take_job(EP, "pod-1") is job
    advance(sim, clock, 10)
    sim.ping(EP, "pod-1", job_ids=[job.id])
    sim.cancel(EP, job.id)
    assert sim.stop_signals(EP, "pod-1") == [job.id]
    if not keeps:
        assert states(sim) == ["IDLE"]
        assert sim.take_job(EP, "pod-1") is second
        return
    assert states(sim) == ["RUNNING"] and sim.stray_job_id("pod-1") == job.id
    for _ in range(6):  # the SDK's heartbeat process keeps naming the job: RUNNING, billed, no new job
        advance(sim, clock, 10)
        sim.ping(EP, "pod-1", job_ids=[job.id])
        assert sim.take_job(EP, "pod-1") is None
    assert states(sim) == ["RUNNING"]
    [session] = sim.sessions(EP)
    assert session.stopped_at is None and sim.session_billed_seconds(session) == 70
    sim.job_done(EP, "pod-1", job.id, {"output": "late"}, is_stream=False)  # the handler returned after all
    assert states(sim) == ["IDLE"] and job.status == "CANCELLED"
    assert sim.take_job(EP, "pod-1") is second


def test_external_kept_worker_freed_by_a_ping_without_the_job_or_lost_by_missed_pings() -> None:
    sim, clock = make_sim(cancelled_job_keeps_worker=True, missed_pings_to_lose_worker=3, ping_interval_s=10)
    sim.add_endpoint(endpoint(worker_kind="external"))
    first = sim.submit(EP, {"hang": True})
    sim.take_job(EP, "pod-1")
    sim.cancel(EP, first.id)
    advance(sim, clock, 10)
    sim.ping(EP, "pod-1", job_ids=[])  # e.g. an async handler stopped through job-stop
    assert states(sim) == ["IDLE"] and sim.stray_job_id("pod-1") is None

    second = sim.submit(EP, {"hang": True})
    assert sim.take_job(EP, "pod-1") is second
    sim.cancel(EP, second.id)
    sim.ping(EP, "pod-1", job_ids=[second.id])
    assert states(sim) == ["RUNNING"]
    at(sim, clock, 39.9)
    assert states(sim) == ["RUNNING"]
    at(sim, clock, 40)  # the process died: no ping for 3 intervals
    assert sim.worker_stopped("pod-1") and sim.workers(EP) == []
    assert second.status == "CANCELLED"
    assert sim.sessions(EP)[0].stopped_at == pytest.approx(START + 40)
