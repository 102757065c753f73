"""Policy rules, one table each, plus the safety rails (dry-run, cap, cool-down, blindness, allow-list)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from watchdog.config import CutAction, default_config
from watchdog.daemon.evaluate import endpoint_limits, policy_settings, traffic_thresholds
from watchdog.models import EndpointConfig, Health, Worker
from watchdog.money import BudgetStatus, budget_status
from watchdog.policy import (
    ActionRecord,
    BrakeEntry,
    CancelledJob,
    CrashWindow,
    Decision,
    EndpointFacts,
    EndpointLimits,
    JobInProgress,
    PolicySettings,
    PolicyView,
    WorkerView,
    evaluate,
    restore_decisions,
)
from watchdog.traffic import UNKNOWN_SOURCE, TrafficCounter, TrafficFinding, detect_rate
from watchdog.vocabulary import RULE_ACTIONS, Action, Mode, Rule, WorkerStatus

A6000 = "NVIDIA RTX A6000"
A6000_FLEX = 0.00034
DAY = 86_400.0


def ts(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


NOW = ts(2025, 3, 10, 12)
TO_MONTH_END = ts(2025, 4, 1) - NOW

# The numbers users get: the built-in configuration is the one source of the policy's inputs.
CONFIG = default_config(env={})
SETTINGS = replace(policy_settings(CONFIG), usd_per_eur=1.0)  # a round rate: € figures equal $ figures


def cfg(endpoint_id: str = "ep1", **changes: Any) -> EndpointConfig:
    """An endpoint within the configured limits (execution timeout = the required 120 s)."""
    fields: dict[str, Any] = {
        "id": endpoint_id,
        "name": endpoint_id,
        "workers_min": 0,
        "workers_max": 1,
        "idle_timeout_s": 5,
        "execution_timeout_ms": 120_000,
        "gpu_pools": ("AMPERE_48",),
    }
    fields.update(changes)
    return EndpointConfig(**fields)


LIMITS = endpoint_limits(CONFIG, cfg(), {})
"""The configured limits (the built-in configuration has no per-endpoint entries: every endpoint's)."""


def facts(config: EndpointConfig, *, limits: EndpointLimits | None = None, **fields: Any) -> EndpointFacts:
    """An endpoint's facts, with its limits from the configuration unless a test gives its own."""
    return EndpointFacts(
        config=config, limits=endpoint_limits(CONFIG, config, {}) if limits is None else limits, **fields
    )


def wv(worker_id: str, status: WorkerStatus, seconds_in_state: float) -> WorkerView:
    return WorkerView(Worker(id=worker_id, status=status, gpu_type_id=A6000), NOW - seconds_in_state)


def view(*endpoints: EndpointFacts, now: float = NOW, **changes: Any) -> PolicyView:
    fields: dict[str, Any] = {
        "settings": SETTINGS,
        "last_successful_poll": now - 10,
        "prices": CONFIG.price_table,
    }
    fields.update(changes)
    return PolicyView(endpoints=tuple(endpoints), **fields)


def budget(used_eur: float, *, now: float = NOW, last_24h: float | None = None) -> BudgetStatus:
    return budget_status(
        20.0,
        1.0,
        fixed_costs_usd_per_month=0.0,
        variable_mtd_usd=used_eur,
        now=now,
        variable_last_24h_usd=last_24h,
    )


def actions(decisions: list[Decision], rule: str | None = None) -> list[tuple[str, str, str | None, str]]:
    return [(d.rule, d.action, d.endpoint_id, d.mode) for d in decisions if rule is None or d.rule == rule]


def seed_incident(limits: EndpointLimits = LIMITS) -> EndpointFacts:
    """The incident: no execution timeout, a job in progress for 3 days, its worker kept alive by pings."""
    return EndpointFacts(
        config=cfg(execution_timeout_ms=None),
        limits=limits,
        workers=(wv("w1", WorkerStatus.RUNNING, 3 * DAY),),
        jobs_in_progress=(JobInProgress("job-1", "w1", NOW - 3 * DAY),),
        health=Health(jobs_in_progress=1, workers_running=1),
    )


# --- the seed incident and the healthy case -------------------------------------------------------------


def test_seed_incident_cancels_the_job_and_fixes_the_timeout() -> None:
    decisions = evaluate(view(seed_incident()), NOW)
    assert actions(decisions) == [
        ("runaway_job", "cancel_job", "ep1", "enforce"),
        ("config_drift", "patch_config", "ep1", "enforce"),
    ]
    cancel, drift = decisions
    assert (cancel.job_id, cancel.worker_id) == ("job-1", "w1")
    assert cancel.estimated_saving_usd == pytest.approx(A6000_FLEX * TO_MONTH_END)
    assert "in progress for 3.0 days" in cancel.reason and "€" in cancel.reason
    assert drift.patch == {"execution_timeout_ms": 120_000}  # policy.required_execution_timeout_s
    assert drift.previous == {"execution_timeout_ms": None}
    assert drift.estimated_saving_usd > 0
    assert cancel.dedupe_key != drift.dedupe_key


def test_healthy_steady_endpoints_give_no_decisions() -> None:
    busy = facts(
        cfg("busy"),
        workers=(wv("w1", WorkerStatus.RUNNING, 30),),
        jobs_in_progress=(JobInProgress("job-9", "w1", NOW - 25),),
        health=Health(jobs_completed=40, jobs_in_progress=1, jobs_in_queue=1, workers_running=1),
        crash=CrashWindow(retries_delta=0, completed_delta=4, ticks=10),
        requests_per_month=3000,
    )
    warm = facts(cfg("warm"), workers=(wv("w2", WorkerStatus.IDLE, 3),), requests_per_month=3000)
    quiet = facts(cfg("quiet"))
    decisions = evaluate(view(busy, warm, quiet, budget=budget(2.0, last_24h=0.2)), NOW)
    assert decisions == []


# --- runaway_job ----------------------------------------------------------------------------------------


# The configured limit is max_execution_s 120 + grace_s 30 = 150 s.
@pytest.mark.parametrize(
    ("job_age_s", "timeout_ms", "expected", "saving_s"),
    [
        pytest.param(100, 600_000, [], None, id="within-limit"),
        pytest.param(150, 600_000, [], None, id="at-limit-plus-grace"),
        pytest.param(160, 600_000, ["cancel_job"], 440, id="beyond-grace-endpoint-stops-at-600"),
        # The required 120 s timeout is below the 150 s limit: a job still running at 160 s has outlived
        # its endpoint's own timeout, so nothing else will stop it before the month ends.
        pytest.param(160, 120_000, ["cancel_job"], TO_MONTH_END, id="past-its-own-timeout-until-month-end"),
        pytest.param(7200, 86_400_000, ["cancel_job"], DAY - 7200, id="endpoint-timeout-1-day"),
        pytest.param(3 * DAY, None, ["cancel_job"], TO_MONTH_END, id="no-timeout-until-month-end"),
        pytest.param(3 * DAY, 0, ["cancel_job"], TO_MONTH_END, id="zero-timeout-until-month-end"),
    ],
)
def test_runaway_job(
    job_age_s: float, timeout_ms: int | None, expected: list[str], saving_s: float | None
) -> None:
    endpoint = facts(
        cfg(execution_timeout_ms=timeout_ms),
        workers=(wv("w1", WorkerStatus.RUNNING, job_age_s),),
        jobs_in_progress=(JobInProgress("job-1", "w1", NOW - job_age_s),),
    )
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.rule == "runaway_job"]
    assert [d.action for d in decisions] == expected
    if saving_s is not None:
        assert decisions[0].estimated_saving_usd == pytest.approx(A6000_FLEX * saving_s)


@pytest.mark.parametrize(
    ("workers", "jobs", "unknown_since", "expected_worker"),
    [
        pytest.param([wv("w1", WorkerStatus.RUNNING, 7200)], [], None, "w1", id="running-2h-no-job-id"),
        pytest.param([wv("w1", WorkerStatus.RUNNING, 60)], [], None, None, id="running-briefly"),
        pytest.param(
            [wv("w1", WorkerStatus.RUNNING, 7200)],
            [JobInProgress("j", "w1", NOW - 30)],
            None,
            None,
            id="claimed-by-known-job",
        ),
        pytest.param(
            [wv("w1", WorkerStatus.RUNNING, 7200)],
            [JobInProgress("j", None, NOW - 30)],
            None,
            None,
            id="unlinked-known-job-cannot-tell",
        ),
        pytest.param([wv("w1", WorkerStatus.RUNNING, 30)], [], NOW - 7200, "w1", id="daemon-says-since-2h"),
    ],
)
def test_runaway_without_job_id_scales_to_zero(
    workers: list[WorkerView],
    jobs: list[JobInProgress],
    unknown_since: float | None,
    expected_worker: str | None,
) -> None:
    endpoint = facts(
        cfg(workers_max=1),
        workers=tuple(workers),
        jobs_in_progress=tuple(jobs),
        unknown_work_since=unknown_since,
    )
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.action == "scale_to_zero"]
    if expected_worker is None:
        assert decisions == []
        return
    (decision,) = decisions
    assert decision.worker_id == expected_worker
    assert decision.patch == {"workers_max": 0}
    assert decision.previous == {"workers_max": 1}
    assert decision.estimated_saving_usd > 0


@pytest.mark.parametrize(
    ("workers", "expect_restore"),
    [
        pytest.param([], True, id="worker-gone"),
        pytest.param([wv("w1", WorkerStatus.THROTTLED, 10)], True, id="only-unbilled-worker"),
        pytest.param([wv("w1", WorkerStatus.RUNNING, 10)], False, id="still-running"),
    ],
)
@pytest.mark.parametrize("rule", [Rule.RUNAWAY_JOB, Rule.IDLE_LEAK])
def test_restore_after_scale_to_zero_once_workers_are_gone(
    workers: list[WorkerView], expect_restore: bool, rule: Rule
) -> None:
    brake = BrakeEntry("ep1", rule, Action.SCALE_TO_ZERO, NOW - 900, {"workers_max": 1})
    endpoint = facts(cfg(workers_max=0), workers=tuple(workers))
    restores = [d for d in evaluate(view(endpoint, brakes=(brake,)), NOW) if d.action == "restore"]
    if not expect_restore:
        assert restores == []
        return
    (restore,) = restores
    assert (restore.rule, restore.patch, restore.previous) == (rule, {"workers_max": 1}, {"workers_max": 0})


def test_cancelled_job_is_not_cancelled_again() -> None:
    endpoint = replace(seed_incident(), cancelled_jobs=(CancelledJob("job-1", "w1", NOW - 20, 1),))
    assert [d.action for d in evaluate(view(endpoint), NOW) if d.rule == "runaway_job"] == []


@pytest.mark.parametrize(
    ("worker", "ticks", "workers_max", "expected"),
    [
        pytest.param(wv("w1", WorkerStatus.RUNNING, 3 * DAY), 5, 1, ["escalate"], id="still-running"),
        pytest.param(wv("w1", WorkerStatus.IDLE, 600), 5, 1, ["escalate"], id="idle-too-long"),
        pytest.param(wv("w1", WorkerStatus.IDLE, 10), 5, 1, [], id="idle-normal-tail"),
        pytest.param(wv("w1", WorkerStatus.RUNNING, 3 * DAY), 1, 1, [], id="too-few-ticks"),
        pytest.param(None, 5, 1, [], id="worker-gone"),
        pytest.param(wv("w1", WorkerStatus.RUNNING, 3 * DAY), 5, 0, ["alert"], id="already-zero-needs-human"),
    ],
)
def test_escalate_when_cancel_did_not_stop_the_worker(
    worker: WorkerView | None, ticks: int, workers_max: int, expected: list[str]
) -> None:
    endpoint = facts(
        cfg(workers_max=workers_max),
        workers=(worker,) if worker else (),
        jobs_in_progress=(JobInProgress("job-1", "w1", NOW - 3 * DAY),),
        cancelled_jobs=(CancelledJob("job-1", "w1", NOW - 300, ticks),),
    )
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.rule == "runaway_job"]
    assert [d.action for d in decisions] == expected
    if expected == ["escalate"]:
        assert decisions[0].patch == {"workers_max": 0}
        assert decisions[0].severity == "critical"


# --- config_drift ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "patch", "previous", "costs_money"),
    [
        pytest.param(
            {"execution_timeout_ms": None}, {"execution_timeout_ms": 120_000}, None, True, id="no-timeout"
        ),
        pytest.param(
            {"execution_timeout_ms": 0}, {"execution_timeout_ms": 120_000}, 0, True, id="zero-timeout"
        ),
        pytest.param(
            {"execution_timeout_ms": 3_600_000}, {"execution_timeout_ms": 120_000}, 3_600_000, True, id="long"
        ),
        pytest.param(
            {"execution_timeout_ms": 121_000},
            {"execution_timeout_ms": 120_000},
            121_000,
            True,
            id="just-over",
        ),
        pytest.param({"idle_timeout_s": 60}, {"idle_timeout_s": 10}, 60, True, id="idle-timeout"),
        pytest.param({"workers_max": 3}, {"workers_max": 1}, 3, False, id="workers-max-risk"),
        pytest.param({"workers_min": 1}, {"workers_min": 0}, 1, True, id="workers-min"),
        pytest.param({"workers_standby": 1}, {"workers_standby": 0}, 1, True, id="standby"),
    ],
)
def test_config_drift(
    changes: dict[str, Any], patch: dict[str, Any], previous: Any, costs_money: bool
) -> None:
    endpoint = facts(cfg(**changes), requests_per_month=3000)
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.rule == "config_drift"]
    (decision,) = decisions
    assert decision.action == "patch_config"
    assert decision.patch == patch
    assert decision.previous == {next(iter(patch)): previous}
    assert (decision.estimated_saving_usd > 0) is costs_money
    assert "per month" in decision.reason


def test_active_worker_drift_reports_its_monthly_cost_in_euros() -> None:
    settings = policy_settings(CONFIG)  # the configured rate, budget.usd_per_eur = 1.16
    (decision,) = evaluate(view(facts(cfg(workers_min=1)), settings=settings), NOW)
    assert decision.estimated_saving_usd == pytest.approx(622.08)  # an active A6000 for 30 days
    assert "€536.28 per month" in decision.reason  # 622.08 / 1.16


def test_config_drift_does_not_fight_our_own_brake() -> None:
    brake = BrakeEntry(
        "ep1", Rule.BUDGET_BRAKE, Action.TIGHTEN, NOW - 60, {"workers_max": 3, "idle_timeout_s": 60}
    )
    endpoint = facts(cfg(workers_max=3, idle_timeout_s=60))
    assert evaluate(view(endpoint, brakes=(brake,)), NOW) == []


def test_config_drift_within_limits_is_silent() -> None:
    endpoint = facts(
        cfg(workers_max=3, idle_timeout_s=30, execution_timeout_ms=1_800_000),
        limits=replace(LIMITS, max_workers=3, max_idle_timeout_s=30, required_execution_timeout_s=1800),
    )
    assert evaluate(view(endpoint), NOW) == []


# --- idle_leak ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle_for_s", "workers_min", "expected"),
    [
        pytest.param(600, 0, ["scale_to_zero"], id="idle-10-min-leak"),
        pytest.param(36, 0, ["scale_to_zero"], id="just-beyond-tail-and-grace"),
        pytest.param(35, 0, [], id="at-tail-plus-grace"),
        pytest.param(3, 0, [], id="normal-tail"),
        pytest.param(600, 1, [], id="active-worker-is-drift-not-leak"),
    ],
)
def test_idle_leak(idle_for_s: float, workers_min: int, expected: list[str]) -> None:
    endpoint = facts(cfg(workers_min=workers_min), workers=(wv("w1", WorkerStatus.IDLE, idle_for_s),))
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.rule == "idle_leak"]
    assert [d.action for d in decisions] == expected
    if expected:
        assert decisions[0].patch == {"workers_max": 0}
        assert decisions[0].previous == {"workers_max": 1}
        assert decisions[0].estimated_saving_usd == pytest.approx(A6000_FLEX * TO_MONTH_END)


# --- budget_brake ---------------------------------------------------------------------------------------

MONTH_END_NOW = ts(2025, 3, 31, 12)  # half a day left: the forecast barely extrapolates


@pytest.mark.parametrize(
    ("used_eur", "last_24h", "alerted", "expected"),
    [
        pytest.param(5.0, None, frozenset(), [], id="25pct-quiet"),
        pytest.param(11.0, None, frozenset(), [("alert", None)], id="55pct-alert"),
        pytest.param(17.0, None, frozenset(), [("alert", None), ("alert", None)], id="85pct-two-alerts"),
        pytest.param(17.0, None, frozenset({0.5}), [("alert", None)], id="50pct-already-alerted"),
        pytest.param(17.0, None, frozenset({0.5, 0.8}), [], id="all-reached-alerted"),
        pytest.param(
            12.0, 20.0, frozenset({0.5}), [("tighten", "ep1")], id="forecast-overrun-tightens-not-allowed"
        ),
        pytest.param(
            19.5,
            None,
            frozenset({0.5, 0.8}),
            [("pause", "ep1"), ("purge_queue", "ep1")],
            id="95pct-pause-and-purge-not-allowed",
        ),
        pytest.param(
            20.5,
            None,
            frozenset({0.5, 0.8}),
            [("alert", None), ("pause", "ep1"), ("purge_queue", "ep1")],
            id="100pct-alert-and-pause",
        ),
    ],
)
def test_budget_brake_ladder(
    used_eur: float, last_24h: float | None, alerted: frozenset[float], expected: list[tuple[str, str | None]]
) -> None:
    # At the allowed 10 s idle timeout, so the tighten has something to cut (to brake_idle_timeout_s, 5 s).
    regular = facts(cfg("ep1", workers_max=1, idle_timeout_s=10), requests_per_month=3000)
    # Its 5 s idle timeout is above this brake timeout: only the allow-list keeps it from a tighten.
    allowed = facts(cfg("ep0-allowed"), limits=replace(LIMITS, allowed=True, brake_idle_timeout_s=1))
    state = view(
        regular,
        allowed,
        now=MONTH_END_NOW,
        budget=budget(used_eur, now=MONTH_END_NOW, last_24h=last_24h),
        alerted_thresholds=alerted,
    )
    decisions = [d for d in evaluate(state, MONTH_END_NOW) if d.rule == "budget_brake"]
    assert [(d.action, d.endpoint_id) for d in decisions] == expected
    for decision in decisions:
        if decision.action in ("pause", "tighten"):
            assert decision.previous == {k: getattr(regular.config, k) for k in decision.patch}
    if ("tighten", "ep1") in expected:
        assert decisions[0].patch == {"workers_max": 1, "idle_timeout_s": 5}
        assert decisions[0].estimated_saving_usd > 0


def test_allow_list_exempts_from_the_brake_but_not_from_runaway() -> None:
    allowed = replace(seed_incident(replace(LIMITS, allowed=True)), config=cfg("ep-allowed"))
    other = facts(cfg("ep-other"))
    state = view(
        allowed,
        other,
        now=MONTH_END_NOW,
        budget=budget(19.5, now=MONTH_END_NOW),
        alerted_thresholds=frozenset({0.5, 0.8}),
    )
    decisions = evaluate(state, MONTH_END_NOW)
    assert [(d.rule, d.action, d.endpoint_id) for d in decisions] == [
        ("runaway_job", "cancel_job", "ep-allowed"),
        ("budget_brake", "pause", "ep-other"),
        ("budget_brake", "purge_queue", "ep-other"),
    ]


def test_pause_over_a_tighten_keeps_the_original_config() -> None:
    brake = BrakeEntry(
        "ep1", Rule.BUDGET_BRAKE, Action.TIGHTEN, NOW - 3600, {"workers_max": 3, "idle_timeout_s": 60}
    )
    endpoint = facts(cfg(workers_max=1, idle_timeout_s=1))
    state = view(endpoint, brakes=(brake,), budget=budget(19.5), alerted_thresholds=frozenset({0.5, 0.8}))
    (pause, _purge) = [d for d in evaluate(state, NOW) if d.rule == "budget_brake"]
    assert pause.patch == {"workers_max": 0}
    assert pause.previous == {"workers_max": 3, "idle_timeout_s": 60}


@pytest.mark.parametrize(
    ("braked_at", "expect_restore"),
    [
        pytest.param(ts(2025, 2, 27), True, id="braked-last-month"),
        pytest.param(ts(2025, 3, 2), False, id="braked-this-month"),
    ],
)
def test_month_change_restores_budget_brakes(braked_at: float, expect_restore: bool) -> None:
    brake = BrakeEntry(
        "ep1", Rule.BUDGET_BRAKE, Action.PAUSE, braked_at, {"workers_max": 1, "idle_timeout_s": 5}
    )
    endpoint = facts(cfg(workers_max=0))
    decisions = evaluate(view(endpoint, brakes=(brake,), budget=budget(0.0)), NOW)
    restores = [d for d in decisions if d.action == "restore"]
    assert len(restores) == int(expect_restore)
    if expect_restore:
        assert restores[0].patch == {"workers_max": 1, "idle_timeout_s": 5}
        assert restores[0].previous == {"workers_max": 0, "idle_timeout_s": 5}
        assert restores[0].mode == "enforce"


def test_restore_on_command_filters_endpoints() -> None:
    brakes = [
        BrakeEntry("ep2", Rule.CRASH_LOOP, Action.SCALE_TO_ZERO, NOW - 60, {"workers_max": 1}),
        BrakeEntry("ep1", Rule.BUDGET_BRAKE, Action.PAUSE, NOW - 60, {"workers_max": 1}),
    ]
    assert [d.endpoint_id for d in restore_decisions(brakes, NOW)] == ["ep1", "ep2"]
    (only,) = restore_decisions(brakes, NOW, endpoint_ids={"ep2"})
    assert (only.rule, only.action, only.patch) == ("crash_loop", "restore", {"workers_max": 1})


# --- crash_loop -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "completed", "unhealthy", "queued", "expected"),
    [
        pytest.param(5, 0, 1, 3, ["scale_to_zero", "alert"], id="crash-loop"),
        pytest.param(2, 0, 1, 3, [], id="few-retries"),
        pytest.param(5, 1, 1, 3, [], id="still-completing"),
        pytest.param(5, 0, 0, 3, [], id="no-unhealthy"),
        pytest.param(5, 0, 1, 0, [], id="empty-queue"),
    ],
)
def test_crash_loop(retries: int, completed: int, unhealthy: int, queued: int, expected: list[str]) -> None:
    endpoint = facts(
        cfg(),
        health=Health(jobs_in_queue=queued, jobs_retried=40, workers_unhealthy=unhealthy),
        crash=CrashWindow(retries_delta=retries, completed_delta=completed, ticks=5),
    )
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.rule == "crash_loop"]
    assert [d.action for d in decisions] == expected
    if expected:
        assert decisions[0].patch == {"workers_max": 0}


def test_crash_loop_counts_unhealthy_workers_from_the_worker_list() -> None:
    endpoint = facts(
        cfg(),
        workers=(wv("w1", WorkerStatus.UNHEALTHY, 30),),
        health=Health(jobs_in_queue=2),
        crash=CrashWindow(retries_delta=3, completed_delta=0, ticks=5),
    )
    assert [d.action for d in evaluate(view(endpoint), NOW)] == ["scale_to_zero", "alert"]


def test_one_stop_per_endpoint_when_rules_overlap() -> None:
    endpoint = facts(
        cfg(),
        workers=(wv("w1", WorkerStatus.IDLE, 3600), wv("w2", WorkerStatus.UNHEALTHY, 30)),
        health=Health(jobs_in_queue=2),
        crash=CrashWindow(retries_delta=3, completed_delta=0, ticks=5),
    )
    decisions = evaluate(view(endpoint), NOW)
    assert [(d.rule, d.action) for d in decisions] == [
        ("crash_loop", "scale_to_zero"),
        ("crash_loop", "alert"),
    ]


# --- suspicious_traffic ---------------------------------------------------------------------------------

FINDING = TrafficFinding("ep1", "203.0.113.9", "rate", "900 requests in 5 min", since=NOW - 300)
PING_FINDING = TrafficFinding(
    "ep1", None, "ping_rate", "8000 pings for job-1", since=NOW - 3 * DAY, job_id="job-1", worker_id="w1"
)


def cut_settings(cut: CutAction) -> PolicySettings:
    """The settings of a configuration whose ``pings.cut`` is ``cut`` ("deny-list" or "cooldown")."""
    return replace(policy_settings(replace(CONFIG, pings=replace(CONFIG.pings, cut=cut))), usd_per_eur=1.0)


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        pytest.param("deny-list", [("deny_list", "enforce"), ("alert", "enforce")], id="deny-list"),
        pytest.param("cooldown", [("scale_to_zero", "enforce"), ("alert", "enforce")], id="cooldown"),
    ],
)
def test_suspicious_traffic(cut: CutAction, expected: list[tuple[str, str]]) -> None:
    decisions = evaluate(view(facts(cfg()), traffic_findings=(FINDING,), settings=cut_settings(cut)), NOW)
    assert [(d.action, d.mode) for d in decisions] == expected
    cut_decision = decisions[0]
    if cut == "deny-list":
        assert cut_decision.source == "203.0.113.9"
    else:
        # pings.cut_cooldown_s, 900 s by default
        assert (cut_decision.patch, cut_decision.until) == ({"workers_max": 0}, NOW + 900)


@pytest.mark.parametrize(
    ("cut", "expected"),
    [("deny-list", ["alert"]), ("cooldown", ["scale_to_zero", "alert"])],
)
def test_traffic_finding_without_source_is_never_deny_listed(cut: CutAction, expected: list[str]) -> None:
    settings = cut_settings(cut)
    state = view(facts(cfg()), traffic_findings=(PING_FINDING,), settings=settings)
    assert [d.action for d in evaluate(state, NOW)] == expected


@pytest.mark.parametrize(("until", "expect_restore"), [(NOW - 1, True), (NOW + 60, False)])
def test_traffic_cooldown_restores_when_time_is_up(until: float, expect_restore: bool) -> None:
    brake = BrakeEntry(
        "ep1", Rule.SUSPICIOUS_TRAFFIC, Action.SCALE_TO_ZERO, NOW - 900, {"workers_max": 1}, until=until
    )
    decisions = evaluate(view(facts(cfg(workers_max=0)), brakes=(brake,)), NOW)
    assert [d.action for d in decisions] == (["restore"] if expect_restore else [])


# --- safety rails ---------------------------------------------------------------------------------------


def test_dry_run_rule_still_reports_the_saving() -> None:
    # runaway_job set to dry-run from the dashboard (a rule-mode override); the rest as configured.
    limits = endpoint_limits(CONFIG, cfg(), {Rule.RUNAWAY_JOB: Mode.DRY_RUN})
    decisions = evaluate(view(seed_incident(limits)), NOW)
    assert actions(decisions) == [
        ("runaway_job", "cancel_job", "ep1", "dry-run"),
        ("config_drift", "patch_config", "ep1", "enforce"),
    ]
    assert decisions[0].estimated_saving_usd > 0


def test_endpoint_mode_dry_run_with_a_rule_enforced() -> None:
    dry_run = replace(CONFIG, policy=replace(CONFIG.policy, mode=Mode.DRY_RUN))
    limits = endpoint_limits(dry_run, cfg(), {Rule.RUNAWAY_JOB: Mode.ENFORCE})
    decisions = evaluate(view(seed_incident(limits)), NOW)
    assert [d.mode for d in decisions] == ["enforce", "dry-run"]


@pytest.mark.parametrize(
    ("cap", "history", "expected_modes"),
    [
        pytest.param(CONFIG.policy.max_actions_per_hour, (), ["enforce", "enforce"], id="room"),
        pytest.param(1, (), ["enforce", "dry-run"], id="cap-1"),
        # The cap is per endpoint: another endpoint's actions leave ep1's allowance alone.
        pytest.param(
            1, (ActionRecord(NOW - 600, "other", "idle_leak", "scale_to_zero"),), ["enforce", "dry-run"]
        ),
        pytest.param(
            2, (ActionRecord(NOW - 600, "ep1", "idle_leak", "scale_to_zero"),), ["enforce", "dry-run"]
        ),
        # At the cap the drift patch is held, but never the cancel of a confirmed runaway job.
        pytest.param(
            1, (ActionRecord(NOW - 600, "ep1", "idle_leak", "scale_to_zero"),), ["enforce", "dry-run"]
        ),
        # Attempts RunPod refused (a forged job id's 404) changed nothing: they leave the allowance alone.
        pytest.param(
            2,
            (ActionRecord(NOW - 600, "ep1", "runaway_job", "cancel_job", applied=False),) * 40,
            ["enforce", "enforce"],
            id="refused-attempts-cost-nothing",
        ),
        pytest.param(
            1, (ActionRecord(NOW - 3700, "ep1", "idle_leak", "scale_to_zero"),), ["enforce", "dry-run"]
        ),
    ],
)
def test_action_cap_per_hour(cap: int, history: tuple[ActionRecord, ...], expected_modes: list[str]) -> None:
    settings = replace(SETTINGS, max_actions_per_hour=cap)
    decisions = evaluate(view(seed_incident(), settings=settings, actions=history), NOW)
    assert [d.mode for d in decisions] == expected_modes
    held = [d for d in decisions if d.mode == "dry-run"]
    assert all("action cap reached" in d.reason for d in held)
    assert all(d.estimated_saving_usd > 0 for d in held)


def test_cap_does_not_hold_alerts() -> None:
    settings = replace(SETTINGS, max_actions_per_hour=0)
    state = view(
        facts(cfg()),
        now=MONTH_END_NOW,
        settings=settings,
        budget=budget(11.0, now=MONTH_END_NOW),
    )
    assert [(d.action, d.mode) for d in evaluate(state, MONTH_END_NOW)] == [("alert", "enforce")]


@pytest.mark.parametrize(
    ("last_action_ago", "endpoint", "held"),
    [(60, "ep1", True), (299, "ep1", True), (301, "ep1", False), (60, "other", False)],
)
def test_cool_down_per_endpoint(last_action_ago: float, endpoint: str, held: bool) -> None:
    history = (ActionRecord(NOW - last_action_ago, endpoint, "config_drift", "patch_config"),)
    decisions = evaluate(view(seed_incident(), actions=history), NOW)
    # Stopping runaway work is never held by a cool-down (it exists against flapping); the drift patch is.
    assert [d.mode for d in decisions] == (["enforce", "dry-run"] if held else ["enforce", "enforce"])
    assert ["cool-down" in d.reason for d in decisions] == [False, held]


# policy.stale_after_s is 30 s.
@pytest.mark.parametrize("last_poll", [NOW - 31, NOW - 3 * DAY, None])
def test_stale_data_gives_one_blind_decision_and_no_action(last_poll: float | None) -> None:
    state = view(
        seed_incident(),
        last_successful_poll=last_poll,
        budget=budget(19.5),
        traffic_findings=(FINDING,),
    )
    (decision,) = evaluate(state, NOW)
    assert (decision.rule, decision.action, decision.patch) == ("blind", "none", {})
    assert "blind" in decision.reason


def test_fresh_enough_data_is_not_blind() -> None:
    decisions = evaluate(view(seed_incident(), last_successful_poll=NOW - 30), NOW)
    assert "blind" not in {d.rule for d in decisions}


def test_decision_order_is_deterministic() -> None:
    endpoints = [
        seed_incident(),
        facts(cfg("ep0", workers_min=1)),
        facts(cfg("ep2"), workers=(wv("w9", WorkerStatus.IDLE, 3600),)),
    ]
    settings = replace(SETTINGS, max_actions_per_hour=100)
    forward = evaluate(view(*endpoints, settings=settings, traffic_findings=(FINDING,)), NOW)
    backward = evaluate(view(*reversed(endpoints), settings=settings, traffic_findings=(FINDING,)), NOW)
    assert forward == backward
    assert [(d.rule, d.endpoint_id) for d in forward] == [
        ("runaway_job", "ep1"),
        ("idle_leak", "ep2"),
        ("suspicious_traffic", "ep1"),
        ("suspicious_traffic", "ep1"),
        ("config_drift", "ep0"),
        ("config_drift", "ep1"),
    ]


# --- progress: jobs finishing are evidence against "hung" and against "idle" ------------------------------


@pytest.mark.parametrize(
    ("progress_ago_s", "expected"),
    [
        pytest.param(None, ["scale_to_zero"], id="no-progress-runaway"),
        pytest.param(3 * DAY, ["scale_to_zero"], id="progress-long-ago"),
        pytest.param(20, [], id="jobs-keep-finishing"),
    ],
)
def test_unknown_work_that_keeps_finishing_jobs_is_not_a_runaway(
    progress_ago_s: float | None, expected: list[str]
) -> None:
    """A worker serving back-to-back short jobs stays RUNNING between polls: not one hung job."""
    endpoint = facts(
        cfg(),
        workers=(wv("w1", WorkerStatus.RUNNING, 3600),),
        last_progress_at=None if progress_ago_s is None else NOW - progress_ago_s,
    )
    decisions = [d for d in evaluate(view(endpoint), NOW) if d.rule == "runaway_job"]
    assert [d.action for d in decisions] == expected


def test_a_known_hung_job_is_cancelled_even_if_other_jobs_complete() -> None:
    endpoint = replace(seed_incident(), last_progress_at=NOW - 5)
    assert [d.action for d in evaluate(view(endpoint), NOW) if d.rule == "runaway_job"] == ["cancel_job"]


@pytest.mark.parametrize(("progress_ago_s", "expected"), [(None, ["scale_to_zero"]), (10, [])])
def test_a_worker_that_keeps_finishing_jobs_is_not_idle(
    progress_ago_s: float | None, expected: list[str]
) -> None:
    """0.2 s jobs every 3 s look IDLE at every poll; finishing jobs shows the worker is in use (the
    keep-warm detector, not the idle-leak rule, judges whether that use is suspicious)."""
    endpoint = facts(
        cfg(),
        workers=(wv("w1", WorkerStatus.IDLE, 600),),
        last_progress_at=None if progress_ago_s is None else NOW - progress_ago_s,
    )
    assert [d.action for d in evaluate(view(endpoint), NOW) if d.rule == "idle_leak"] == expected


def test_a_cancelled_jobs_worker_still_running_is_left_to_escalation_not_unknown_work() -> None:
    """After a cancel the job no longer claims its worker; the still-RUNNING worker is the escalation
    rule's to judge (after escalate_after_ticks), not an unidentified job to scale to zero at once."""
    endpoint = facts(
        cfg(),
        workers=(wv("w1", WorkerStatus.RUNNING, 3 * DAY),),
        cancelled_jobs=(CancelledJob("job-1", "w1", NOW - 20, 1),),
    )
    assert [d.action for d in evaluate(view(endpoint), NOW) if d.rule == "runaway_job"] == []
    later = replace(endpoint, cancelled_jobs=(CancelledJob("job-1", "w1", NOW - 60, 5),))
    assert [d.action for d in evaluate(view(later), NOW) if d.rule == "runaway_job"] == ["escalate"]


# --- a month that fits the budget: the day's allowance, and the forecast's first days ----------------------

DAY_SETTINGS = replace(SETTINGS, daily_allowance=True)
"""``budget.daily_allowance = true`` (the built-in default is off)."""
BAD_DAY = ts(2025, 3, 10, 15)
"""The 10th of March, 15:00 UTC: 22 days left in the month, today included."""
MIDNIGHT = ts(2025, 3, 11)
"""When the 10th's brake lifts."""
BAD_DAY_ALLOWANCE = (20.0 - 1.0) / 22
"""2 € spent this month, 1 € of it today: the 19 € left at the day's start over 22 days (no fixed costs)."""


def _day(
    today_usd: float,
    *,
    now: float = BAD_DAY,
    month_usd: float = 2.0,
    settings: PolicySettings = DAY_SETTINGS,
    **changes: Any,
) -> PolicyView:
    """A regular endpoint (most of today's spend) and an allow-listed one, ``today_usd`` spent today."""
    regular = facts(cfg("ep1"), variable_today_usd=today_usd * 0.8, variable_mtd_usd=month_usd * 0.8)
    allowed = facts(
        cfg("ep0-allowed"),
        limits=replace(LIMITS, allowed=True),
        variable_today_usd=today_usd * 0.2,
        variable_mtd_usd=month_usd * 0.2,
    )
    fields: dict[str, Any] = {
        "now": now,
        "budget": budget(month_usd, now=now),
        "variable_today_usd": today_usd,
        "settings": settings,
    }
    fields.update(changes)
    return view(regular, allowed, **fields)


def _day_brake(since: float = BAD_DAY, **changes: Any) -> BrakeEntry:
    """The 10th's brake on ep1, as the executor stores it."""
    fields: dict[str, Any] = {"until": MIDNIGHT}
    fields.update(changes)
    return BrakeEntry("ep1", Rule.BUDGET_BRAKE, Action.PAUSE, since, {"workers_max": 1}, **fields)


def _next_day(today_usd: float = 0.0, *, brake: BrakeEntry | None = None, **changes: Any) -> PolicyView:
    """The endpoint held at workers_max 0 by the 10th's brake, seen at ``now`` (default: 5 s past midnight)."""
    now = changes.pop("now", MIDNIGHT + 5)
    held = facts(cfg("ep1", workers_max=0))
    fields: dict[str, Any] = {
        "now": now,
        "budget": budget(changes.pop("month_usd", 3.0), now=now),
        "variable_today_usd": today_usd,
        "settings": DAY_SETTINGS,
        "brakes": (brake or _day_brake(),),
    }
    fields.update(changes)
    return view(held, **fields)


def _budget_steps(state: PolicyView, now: float) -> list[tuple[str, str | None]]:
    return [(d.action, d.endpoint_id) for d in evaluate(state, now) if d.rule == Rule.BUDGET_BRAKE]


@pytest.mark.parametrize(
    ("today_usd", "brakes"),
    [
        pytest.param(BAD_DAY_ALLOWANCE * 0.99, False, id="just-under-the-allowance"),
        pytest.param(BAD_DAY_ALLOWANCE, True, id="at-the-allowance"),
        pytest.param(1.0, True, id="over-it"),
    ],
)
def test_a_bad_day_pauses_what_is_not_allow_listed_at_the_days_allowance(
    today_usd: float, brakes: bool
) -> None:
    # today's own spend does not move the allowance: 2 € this month, of which ``today_usd`` today
    state = _day(today_usd, budget=budget(1.0 + today_usd, now=BAD_DAY))
    decisions = [d for d in evaluate(state, BAD_DAY) if d.rule == Rule.BUDGET_BRAKE]
    if not brakes:
        assert decisions == []
        return
    assert [(d.action, d.endpoint_id, d.mode, d.severity) for d in decisions] == [
        ("alert", None, "enforce", "warning"),
        ("pause", "ep1", "enforce", "warning"),
        ("purge_queue", "ep1", "enforce", "warning"),
    ]  # the allow-listed endpoint is spared
    alert, pause, purge = decisions
    assert (pause.patch, pause.previous, pause.until) == ({"workers_max": 0}, {"workers_max": 1}, MIDNIGHT)
    assert pause.dedupe_key == f"budget_brake:pause:ep1:{ts(2025, 3, 10)}"
    assert purge.dedupe_key == f"budget_brake:purge_queue:ep1:{ts(2025, 3, 10)}"
    assert alert.dedupe_key == f"budget_brake:alert:day:{ts(2025, 3, 10)}" and alert.threshold is None
    spent = f"today's GPU spend €{today_usd:.2f} reached the day's allowance €{BAD_DAY_ALLOWANCE:.2f}"
    assert alert.reason == (
        f"{spent} (the €19.00 left for GPU time this month at the day's start, over 22 day(s)): the day's "
        "brake pauses ep1 (not on policy.allow_list) until 00:00 UTC"
    )
    assert pause.reason.startswith(f"{spent}; pausing until 00:00 UTC saves about €")
    # the rest of the day (9 h) at today's pace (15 h gone), ep1's 80 % of it
    assert pause.estimated_saving_usd == pytest.approx(today_usd / (15 * 3600) * 9 * 3600 * 0.8)


def test_the_days_brake_fires_once() -> None:
    """Once the pause holds (workers_max 0, the brake recorded), the day's step has nothing left to do."""
    held = facts(cfg("ep1", workers_max=0), variable_today_usd=0.8)
    state = replace(_day(1.0), endpoints=(held,), brakes=(_day_brake(),))
    assert _budget_steps(state, BAD_DAY + 60) == []


def test_a_dry_run_days_brake_says_it_only_proposes() -> None:
    dry = replace(LIMITS, rule_modes={Rule.BUDGET_BRAKE: Mode.DRY_RUN})
    state = replace(_day(1.0), endpoints=(facts(cfg("ep1"), limits=dry, variable_today_usd=1.0),))
    alert, pause, _purge = [d for d in evaluate(state, BAD_DAY) if d.rule == Rule.BUDGET_BRAKE]
    assert pause.mode == "dry-run"
    assert alert.reason.endswith("until 00:00 UTC (proposed only: dry-run)")


def test_the_days_brake_lifts_at_the_next_utc_midnight() -> None:
    assert _budget_steps(_next_day(now=MIDNIGHT - 1), MIDNIGHT - 1) == []  # still the 10th
    decisions = [d for d in evaluate(_next_day(), MIDNIGHT + 5) if d.rule == Rule.BUDGET_BRAKE]
    assert [(d.action, d.endpoint_id, d.severity) for d in decisions] == [
        ("alert", None, "info"),
        ("restore", "ep1", "info"),
    ]
    alert, restore = decisions
    assert (restore.patch, restore.previous, restore.mode) == (
        {"workers_max": 1},
        {"workers_max": 0},
        "enforce",
    )
    assert "a new UTC day's allowance has started" in restore.reason
    allowance = (20.0 - 3.0) / 21
    assert alert.reason == (
        f"a new UTC day (today's allowance €{allowance:.2f}, €0.00 spent so far): the day's brake is lifted "
        "from ep1"
    )
    assert alert.dedupe_key == f"budget_brake:alert:day-lifted:{MIDNIGHT}"


def test_a_new_day_already_over_its_allowance_keeps_the_brake() -> None:
    assert _budget_steps(_next_day(today_usd=5.0), MIDNIGHT + 5) == []


def test_the_days_brake_lifts_even_once_the_allowance_is_switched_off() -> None:
    """Its end was promised when it was set; the setting only decides whether new ones fire."""
    state = _next_day(settings=SETTINGS, variable_today_usd=None)
    assert _budget_steps(state, MIDNIGHT + 5) == [("alert", None), ("restore", "ep1")]
    assert "a new UTC day: the day's brake is lifted from ep1" in evaluate(state, MIDNIGHT + 5)[0].reason


def test_the_months_brake_wins_over_the_days() -> None:
    # 96 % of the month and a bad day: the month's pause (until the month ends), not the day's
    state = _day(1.0, budget=budget(19.2, now=BAD_DAY), alerted_thresholds=frozenset({0.5, 0.8}))
    decisions = [d for d in evaluate(state, BAD_DAY) if d.rule == Rule.BUDGET_BRAKE]
    assert [(d.action, d.endpoint_id) for d in decisions] == [("pause", "ep1"), ("purge_queue", "ep1")]
    assert (
        decisions[0].until is None and decisions[0].dedupe_key == f"budget_brake:pause:ep1:{ts(2025, 3, 1)}"
    )
    # and a day's brake seen on a new day while the month's brake holds stays until the month changes
    assert (
        _budget_steps(_next_day(month_usd=19.2, alerted_thresholds=frozenset({0.5, 0.8})), MIDNIGHT + 5) == []
    )
    first_of_april = ts(2025, 4, 1) + 5
    april = _next_day(now=first_of_april, month_usd=0.0)
    assert _budget_steps(april, first_of_april) == [("restore", "ep1")]  # the month change's restore
    assert "a new month's budget has started" in evaluate(april, first_of_april)[0].reason


def test_the_daily_allowance_is_off_by_default_and_then_changes_nothing() -> None:
    assert not CONFIG.budget.daily_allowance and not SETTINGS.daily_allowance
    switched_on = replace(CONFIG, budget=replace(CONFIG.budget, daily_allowance=True))
    assert policy_settings(switched_on).daily_allowance
    bad_day = _day(5.0, settings=SETTINGS)
    assert evaluate(bad_day, BAD_DAY) == evaluate(replace(bad_day, variable_today_usd=None), BAD_DAY) == []
    # a month's pause over a tighten is never lifted by a new day
    stacked = BrakeEntry(
        "ep1", Rule.BUDGET_BRAKE, Action.TIGHTEN, BAD_DAY, {"workers_max": 3, "idle_timeout_s": 60}
    )
    assert _budget_steps(_next_day(brake=stacked, settings=SETTINGS), MIDNIGHT + 5) == []


def test_unknown_spend_today_never_brakes() -> None:
    assert evaluate(_day(5.0, variable_today_usd=None), BAD_DAY) == []


def test_a_days_pause_over_a_forecast_tighten_keeps_the_original_config_and_lifts_next_day() -> None:
    """The executor keeps the tighten's brake record (it has no end) when the day's pause stacks on it."""
    tighten = BrakeEntry(
        "ep1", Rule.BUDGET_BRAKE, Action.TIGHTEN, BAD_DAY - 3600, {"workers_max": 3, "idle_timeout_s": 60}
    )
    tightened = facts(cfg("ep1", workers_max=1, idle_timeout_s=5), variable_today_usd=1.0)
    state = replace(_day(1.0), endpoints=(tightened,), brakes=(tighten,))
    _alert, pause, _purge = [d for d in evaluate(state, BAD_DAY) if d.rule == Rule.BUDGET_BRAKE]
    assert (pause.patch, pause.previous) == ({"workers_max": 0}, {"workers_max": 3, "idle_timeout_s": 60})
    assert _budget_steps(_next_day(brake=tighten), MIDNIGHT + 5) == [("alert", None), ("restore", "ep1")]
    # a tighten alone (not paused) is the month's, and stays
    alone = replace(_next_day(brake=tighten), endpoints=(tightened,))
    assert _budget_steps(alone, MIDNIGHT + 5) == []


def test_a_bad_day_does_not_tighten_what_it_pauses() -> None:
    """A forecast overrun on the same tick would patch workers_max back to 1 after the pause."""
    regular = facts(cfg("ep1", idle_timeout_s=10), requests_per_month=3000, variable_today_usd=3.0)
    state = replace(_day(3.0, budget=budget(6.0, now=BAD_DAY, last_24h=3.0)), endpoints=(regular,))
    assert state.budget is not None and state.budget.forecast_overrun
    assert _budget_steps(state, BAD_DAY) == [("alert", None), ("pause", "ep1"), ("purge_queue", "ep1")]


def _early(now: float, used_eur: float, alerted: frozenset[float] = frozenset()) -> list[Decision]:
    """A forecast overrun (the last 24 h at 3 € a day) with an endpoint a tighten would cut."""
    endpoint = facts(cfg("ep1", idle_timeout_s=10), requests_per_month=3000)
    state = view(
        endpoint, now=now, budget=budget(used_eur, now=now, last_24h=3.0), alerted_thresholds=alerted
    )
    assert state.budget is not None and state.budget.forecast_overrun
    return [d for d in evaluate(state, now) if d.rule == Rule.BUDGET_BRAKE]


@pytest.mark.parametrize(
    ("now", "day_of_month"),
    [
        pytest.param(ts(2025, 3, 1, 6), 1, id="day-1"),
        pytest.param(ts(2025, 3, 2, 18), 2, id="day-2"),
        pytest.param(ts(2025, 3, 3, 23), 3, id="day-3"),
    ],
)
def test_a_forecast_overrun_in_the_months_first_days_is_information(now: float, day_of_month: int) -> None:
    (notice,) = _early(now, 3.0)
    assert (notice.action, notice.endpoint_id, notice.severity, notice.mode) == (
        "alert",
        None,
        "info",
        "enforce",
    )
    assert notice.reason.startswith("forecast €")
    assert (
        f"but on day {day_of_month} of the month it extrapolates too little data: information only, nothing "
        "is tightened (ep1 would get max 1 worker and a short idle timeout); from day 4, or once spend "
        "crosses 50% of the budget, an overrun is a warning and tightens"
    ) in notice.reason
    assert notice.dedupe_key == f"budget_brake:alert:forecast:{ts(2025, 3, 1)}" and notice.threshold is None


@pytest.mark.parametrize("now", [ts(2025, 3, 4), ts(2025, 3, 5, 12)], ids=["day-4", "day-5"])
def test_from_the_fourth_a_forecast_overrun_is_a_warning_and_tightens(now: float) -> None:
    (tighten,) = _early(now, 3.0)
    assert (tighten.action, tighten.endpoint_id, tighten.severity) == ("tighten", "ep1", "warning")


def test_early_in_the_month_a_crossed_threshold_keeps_the_warning() -> None:
    """10.5 € of 20 € on the 2nd: the overrun rests on money already spent, not on an extrapolation."""
    decisions = _early(ts(2025, 3, 2, 12), 10.5, alerted=frozenset({0.5}))
    assert [(d.action, d.endpoint_id, d.severity) for d in decisions] == [("tighten", "ep1", "warning")]


def test_early_in_the_month_nothing_to_tighten_means_nothing_to_say() -> None:
    already_tight = facts(cfg("ep1", idle_timeout_s=5))
    now = ts(2025, 3, 2, 12)
    state = view(already_tight, now=now, budget=budget(3.0, now=now, last_24h=3.0))
    assert _budget_steps(state, now) == []


# --- the vocabulary's table of (rule, action) pairs ---------------------------------------------------------


def _cancelled(worker: WorkerView, workers_max: int) -> EndpointFacts:
    return facts(
        cfg(workers_max=workers_max),
        workers=(worker,),
        jobs_in_progress=(JobInProgress("job-1", "w1", NOW - 3 * DAY),),
        cancelled_jobs=(CancelledJob("job-1", "w1", NOW - 300, 5),),
    )


def _crash_loop() -> EndpointFacts:
    return facts(
        cfg(),
        health=Health(jobs_in_queue=3, workers_unhealthy=1),
        crash=CrashWindow(retries_delta=5, completed_delta=0, ticks=5),
    )


def _braked(rule: Rule, kind: Action, **changes: Any) -> BrakeEntry:
    return BrakeEntry("ep1", rule, kind, NOW - 900, {"workers_max": 1}, **changes)


def _month_end_budget(used_eur: float, last_24h: float | None = None, **changes: Any) -> list[Decision]:
    endpoint = facts(cfg(idle_timeout_s=10), requests_per_month=3000)
    state = view(endpoint, now=MONTH_END_NOW, budget=budget(used_eur, now=MONTH_END_NOW, last_24h=last_24h))
    return evaluate(replace(state, **changes), MONTH_END_NOW)


POLICY_SCENARIOS: dict[str, Callable[[], list[Decision]]] = {
    "seed-incident": lambda: evaluate(view(seed_incident()), NOW),
    "runaway-without-job-id": lambda: evaluate(
        view(facts(cfg(), workers=(wv("w1", WorkerStatus.RUNNING, 7200),))), NOW
    ),
    "escalation": lambda: evaluate(view(_cancelled(wv("w1", WorkerStatus.RUNNING, 3 * DAY), 1)), NOW),
    "escalation-needs-a-human": lambda: evaluate(
        view(_cancelled(wv("w1", WorkerStatus.RUNNING, 3 * DAY), 0)), NOW
    ),
    "idle-leak": lambda: evaluate(view(facts(cfg(), workers=(wv("w1", WorkerStatus.IDLE, 600),))), NOW),
    "crash-loop": lambda: evaluate(view(_crash_loop()), NOW),
    "budget-alerts": lambda: _month_end_budget(17.0),
    "budget-tighten": lambda: _month_end_budget(12.0, 20.0, alerted_thresholds=frozenset({0.5})),
    "budget-pause": lambda: _month_end_budget(20.5),
    "traffic-deny-list": lambda: evaluate(
        view(facts(cfg()), traffic_findings=(FINDING, PING_FINDING), settings=cut_settings("deny-list")), NOW
    ),
    "traffic-cooldown": lambda: evaluate(
        view(facts(cfg()), traffic_findings=(FINDING, PING_FINDING), settings=cut_settings("cooldown")), NOW
    ),
    "config-drift": lambda: evaluate(
        view(
            facts(
                cfg(
                    execution_timeout_ms=None,
                    idle_timeout_s=60,
                    workers_max=3,
                    workers_min=1,
                    workers_standby=1,
                ),
                requests_per_month=3000,
            )
        ),
        NOW,
    ),
    "restore-runaway": lambda: evaluate(
        view(facts(cfg(workers_max=0)), brakes=(_braked(Rule.RUNAWAY_JOB, Action.SCALE_TO_ZERO),)), NOW
    ),
    "restore-idle-leak": lambda: evaluate(
        view(facts(cfg(workers_max=0)), brakes=(_braked(Rule.IDLE_LEAK, Action.SCALE_TO_ZERO),)), NOW
    ),
    "restore-traffic-cooldown": lambda: evaluate(
        view(
            facts(cfg(workers_max=0)),
            brakes=(_braked(Rule.SUSPICIOUS_TRAFFIC, Action.SCALE_TO_ZERO, until=NOW - 1),),
        ),
        NOW,
    ),
    "restore-budget-next-month": lambda: evaluate(
        view(
            facts(cfg(workers_max=0)),
            brakes=(replace(_braked(Rule.BUDGET_BRAKE, Action.PAUSE), since=ts(2025, 2, 27)),),
            budget=budget(0.0),
        ),
        NOW,
    ),
    "budget-day-brake": lambda: evaluate(_day(1.0), BAD_DAY),
    "budget-day-lift": lambda: evaluate(_next_day(), MIDNIGHT + 5),
    "budget-early-forecast": lambda: _early(ts(2025, 3, 2, 18), 3.0),
    # What the daemon does with an operator's restore command: the policy builds those decisions too.
    "restore-on-command": lambda: restore_decisions(
        [
            replace(_braked(Rule.CRASH_LOOP, Action.SCALE_TO_ZERO), endpoint_id="ep2"),
            _braked(Rule.MANUAL, Action.PAUSE),
        ],
        NOW,
    ),
    "blind": lambda: evaluate(view(seed_incident(), last_successful_poll=NOW - 3 * DAY), NOW),
}


@pytest.mark.parametrize("scenario", list(POLICY_SCENARIOS))
def test_every_decision_is_in_the_vocabularys_rule_actions(scenario: str) -> None:
    """The metrics pre-seed one series per RULE_ACTIONS pair: a rule deciding outside its row would make
    a series nobody pre-seeded (and a dashboard nobody drew)."""
    decisions = POLICY_SCENARIOS[scenario]()
    assert decisions, "a scenario that decides nothing checks nothing"
    outside = [(d.rule, d.action) for d in decisions if d.action not in RULE_ACTIONS.get(d.rule, ())]
    assert outside == []


def test_the_scenarios_reach_every_pair_the_policy_owns() -> None:
    """The other direction: every pair of the table is one the policy can decide (the scenarios above reach
    it), except the operator's commands, which the daemon decides without the policy."""
    reached = {(d.rule, d.action) for make in POLICY_SCENARIOS.values() for d in make()}
    table = {(rule, action) for rule, row in RULE_ACTIONS.items() for action in row}
    commands_only = {
        (Rule.MANUAL, Action.CANCEL_JOB),
        (Rule.MANUAL, Action.PAUSE),
        (Rule.MANUAL, Action.SET_RULE_MODE),
    }
    assert reached == table - commands_only


def test_an_unnamed_source_is_never_deny_listed() -> None:
    """A flood seen only in /health (or in lines that name no caller) reports the source "(unknown)";
    with the deny-list cut the policy used to decide a deny entry that DenyList always refuses."""
    counter = TrafficCounter()
    counter.add_health_delta("ep1", NOW - 31, requests=100)
    (finding,) = detect_rate(counter, NOW, traffic_thresholds(CONFIG))
    assert finding.source == UNKNOWN_SOURCE
    decisions = evaluate(
        view(facts(cfg()), traffic_findings=(finding,), settings=cut_settings("deny-list")), NOW
    )
    assert [d.action for d in decisions] == [Action.ALERT]


def test_a_cooldown_that_would_cut_off_other_callers_is_only_an_alert() -> None:
    """A forged flood with cut = "cooldown" used to hold an endpoint at zero workers for 15 minutes,
    repeatably, whoever else was using it. A cut must weigh what it costs the team's real users."""
    alone = facts(cfg(), requests_by_source_1h={"203.0.113.9": 900})
    decisions = evaluate(view(alone, traffic_findings=(FINDING,), settings=cut_settings("cooldown")), NOW)
    assert [d.action for d in decisions] == [Action.SCALE_TO_ZERO, Action.ALERT]
    shared = facts(cfg(), requests_by_source_1h={"203.0.113.9": 900, "learner-app": 12, "(unknown)": 3})
    decisions = evaluate(view(shared, traffic_findings=(FINDING,), settings=cut_settings("cooldown")), NOW)
    assert [d.action for d in decisions] == [Action.ALERT]
    assert (
        "not cut: a cool-down would also refuse 15 request(s) from 2 other caller(s)" in decisions[0].reason
    )


@pytest.mark.parametrize("cut", ["deny-list", "cooldown"])
def test_a_source_on_never_cut_is_reported_and_never_cut(cut: CutAction) -> None:
    """40 forged lines naming a partner used to get the partner denied."""
    settings = replace(cut_settings(cut), never_cut=("203.0.113.0/24",))
    alone = facts(cfg(), requests_by_source_1h={"203.0.113.9": 900})
    decisions = evaluate(view(alone, traffic_findings=(FINDING,), settings=settings), NOW)
    assert [d.action for d in decisions] == [Action.ALERT]
    assert "203.0.113.9 is on pings.never_cut" in decisions[0].reason


def test_a_source_that_is_no_deny_list_entry_is_never_written() -> None:
    wide = replace(FINDING, source="0.0.0.0/0")
    decisions = evaluate(
        view(facts(cfg()), traffic_findings=(wide,), settings=cut_settings("deny-list")), NOW
    )
    assert [d.action for d in decisions] == [Action.ALERT]
    assert "cannot deny it" in decisions[0].reason
