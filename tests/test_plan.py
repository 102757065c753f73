"""``runpod-watchdog plan`` in-process: the daemon's judgement from one read, as a diff, changing nothing;
the brake date (one pure function for plan, the daemon and the dashboard); ``run --dry-run``'s override.

The real commands against a real ``simulate`` process are in tests/test_cli_walk.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runpod_sim.app import DEFAULT_API_KEY
from runpod_sim.engine import Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID
from sim_harness.wiring import sim_config, sim_transport
from watchdog.clock import DAY_S, ManualClock, from_iso, next_month_start
from watchdog.config import (
    Config,
    ConfigLocation,
    EndpointOverride,
    RuleModes,
    Secret,
    default_config,
    dry_run_everywhere,
)
from watchdog.money import brake_fires_at, budget_status
from watchdog.plan import Change, Plan, PlanError, make_plan, mode_reason, plan_text
from watchdog.vocabulary import CONFIGURABLE_RULES, Action, Mode, Rule, RuleMode

START = from_iso("2026-06-24T14:00:00Z")
KEY = Secret(DEFAULT_API_KEY)


def _endpoints(sim: Simulator) -> dict[str, tuple[int, int | None, int]]:
    return {ep.id: (ep.workers_max, ep.execution_timeout_ms, ep.idle_timeout) for ep in sim.endpoints()}


def _hung_job_id(log: Path) -> str:
    for line in log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if (
            record.get("kind") == "ping"
            and record.get("endpoint_id") == HUNG_ENDPOINT_ID
            and record["job_id"]
        ):
            return str(record["job_id"])
    raise AssertionError("no heartbeat of the hung job in the access log")


async def _plan(sim: Simulator, config: Config, clock: ManualClock) -> Plan:
    return await make_plan(config, KEY, transport=sim_transport(sim), now=clock.now())


async def test_plan_on_the_hung_job_shows_the_cancel_and_the_patch_with_euros_and_changes_nothing(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    log = tmp_path / "access.jsonl"
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(log))
    clock.advance(300)  # the job has hung for about 4.5 minutes: past 120 s + 30 s
    sim.sync()
    before = _endpoints(sim)
    job_id = _hung_job_id(log)
    config = sim_config(tmp_path, log_path=log)

    plan = await _plan(sim, config, clock)

    by_action = {(s.decision.endpoint_id, s.decision.action): s for s in plan.steps}
    cancel = by_action[(HUNG_ENDPOINT_ID, Action.CANCEL_JOB)]
    assert cancel.decision.job_id == job_id
    assert cancel.decision.mode == Mode.ENFORCE and cancel.changes_something
    assert cancel.decision.estimated_saving_usd > 1.0  # an A6000 billing to the month's end
    patch = by_action[(HUNG_ENDPOINT_ID, Action.PATCH_CONFIG)]
    assert patch.changes == (Change("execution_timeout_ms", None, 120_000),)
    assert patch.problem is None and patch.decision.estimated_saving_usd > 0
    assert plan.would_change
    assert {e.id for e in plan.endpoints} == {HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID}

    text = plan_text(plan, usd_per_eur=config.budget.usd_per_eur, source="test")
    assert f"  {HUNG_ENDPOINT_ID}  executionTimeoutMs none → 120000  [config_drift" in text
    assert f"  {HUNG_ENDPOINT_ID}  cancel job {job_id}  [runaway_job" in text
    assert "€/month at risk" in text and "saves up to" in text
    assert "Nothing was changed." in text

    sim.sync()
    assert _endpoints(sim) == before
    assert sim.job(HUNG_ENDPOINT_ID, job_id).status == "IN_PROGRESS"
    assert not (tmp_path / "ledger.sqlite3").exists()  # plan opens no ledger


async def test_work_too_young_to_judge_is_a_runaway_check_to_come(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    clock.advance(40)  # the hung job started after its 15 s cold start: 25 s old, under 120 s + 30 s
    sim.sync()

    plan = await _plan(sim, sim_config(tmp_path), clock)

    assert not any(s.decision.action == Action.CANCEL_JOB for s in plan.steps)
    assert any(s.decision.rule == Rule.CONFIG_DRIFT for s in plan.steps)  # the patch is planned already
    hung = [d for d in plan.deadlines if d.endpoint_id == HUNG_ENDPOINT_ID]
    assert len(hung) == 1
    assert clock.now() < hung[0].at <= clock.now() + 150.1
    text = plan_text(plan, usd_per_eur=1.16, source="test")
    assert "Runaway checks to come (if the work still runs then):" in text
    assert f"  {HUNG_ENDPOINT_ID}  " in text.split("Runaway checks to come")[1]


async def test_in_dry_run_mode_the_plan_only_proposes(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    clock.advance(60)
    config = sim_config(tmp_path, policy={"mode": Mode.DRY_RUN})

    plan = await _plan(sim, config, clock)

    assert plan.steps and not plan.would_change
    text = plan_text(plan, usd_per_eur=1.16, source="test")
    assert "Changes `run` would make (enforce):\n  none" in text
    assert "Proposals it would only record (dry-run):" in text
    assert "`run` would change nothing now" in text


async def test_a_rejected_key_is_a_plan_error(tmp_path: Path) -> None:
    sim = build_simulator("steady", clock=ManualClock(START))
    with pytest.raises(PlanError) as caught:
        await make_plan(
            sim_config(tmp_path), Secret("wrong-key-123"), transport=sim_transport(sim), now=START
        )
    assert caught.value.auth_rejected


# ----------------------------------------------------------------------------------------------------------
# The brake date


def _steady_month_budget(day: float) -> tuple[float, float, float]:
    """(spent, forecast, days left) on ``day`` of June 2026 in the README's normal month: $10 fixed, $25.32
    of GPU a month at an even pace (≈ 30 € against the 20 € budget)."""
    now = from_iso("2026-06-01T00:00:00Z") + day * DAY_S
    variable = 25.32 / 30 * day
    status = budget_status(
        20.0,
        1.16,
        fixed_costs_usd_per_month=10.0,
        variable_mtd_usd=variable,
        now=now,
        variable_last_24h_usd=25.32 / 30,
    )
    return status.spent_eur, status.forecast_eur, status.days_left


def test_in_the_readme_normal_month_the_95_percent_brake_fires_around_day_14() -> None:
    now = from_iso("2026-06-05T00:00:00Z")
    spent, forecast, days_left = _steady_month_budget(4.0)
    fires = brake_fires_at(
        spent_eur=spent, forecast_eur=forecast, days_left=days_left, monthly_eur=20.0, brake_at=0.95, now=now
    )
    assert fires is not None
    elapsed_days = (fires - from_iso("2026-06-01T00:00:00Z")) / DAY_S
    assert 14.0 < elapsed_days < 14.6  # (19 € − 8.62 € fixed) / 0.73 € a day


def test_the_brake_date_is_now_when_spend_is_there_and_none_when_it_does_not_come_this_month() -> None:
    now = START
    left = (next_month_start(now) - now) / DAY_S
    common = {"monthly_eur": 20.0, "brake_at": 0.95, "now": now, "days_left": left}
    assert brake_fires_at(spent_eur=19.5, forecast_eur=25.0, **common) == now
    assert brake_fires_at(spent_eur=10.0, forecast_eur=10.0, **common) is None  # nothing more to spend
    assert brake_fires_at(spent_eur=10.0, forecast_eur=18.9, **common) is None  # reaches 18.9 < 19 at the end
    fires = brake_fires_at(spent_eur=10.0, forecast_eur=28.0, **common)
    assert fires is not None and now < fires < next_month_start(now)
    # halfway to the end: 9 € more at 18 € over the days left
    assert fires == pytest.approx(now + left * DAY_S / 2)
    assert brake_fires_at(spent_eur=10.0, forecast_eur=28.0, **{**common, "days_left": 0.0}) is None


# ----------------------------------------------------------------------------------------------------------
# run --dry-run


def _enforcing_config() -> Config:
    config = default_config(env={})
    rules = RuleModes(runaway_job=RuleMode.ENFORCE, budget_brake=RuleMode.DRY_RUN)
    endpoints = (EndpointOverride(match="prod-*", mode=Mode.ENFORCE), EndpointOverride(match="x", grace_s=5))
    policy = dataclasses.replace(config.policy, mode=Mode.DRY_RUN, rules=rules, endpoint=endpoints)
    return dataclasses.replace(config, policy=policy)


def test_dry_run_everywhere_leaves_nothing_to_enforce() -> None:
    config = _enforcing_config()
    assert config.rule_mode(Rule.RUNAWAY_JOB, "ep-1", "anything") == Mode.ENFORCE  # the rule enforces
    assert config.rule_mode(Rule.CONFIG_DRIFT, "ep-2", "prod-chat") == Mode.ENFORCE  # the endpoint does
    forced = dry_run_everywhere(config)
    for rule in CONFIGURABLE_RULES:
        for endpoint_id, name in (("ep-1", "anything"), ("ep-2", "prod-chat"), ("ep-3", "x")):
            assert forced.rule_mode(rule, endpoint_id, name) == Mode.DRY_RUN
    assert forced.policy.endpoint[1] == config.policy.endpoint[1]  # an entry without a mode is untouched
    assert dry_run_everywhere(default_config(env={})).policy.mode == Mode.DRY_RUN


def test_the_mode_reason_says_which_mode_and_why() -> None:
    config = default_config(env={})
    location = ConfigLocation(Path("/etc/runpod-watchdog/config.toml"), "system")
    assert mode_reason(config, location, forced_dry_run=False) == (
        'mode enforce: policy.mode = "enforce" in /etc/runpod-watchdog/config.toml (the system configuration)'
    )
    forced = mode_reason(config, location, forced_dry_run=True)
    assert forced.startswith("mode dry-run: --dry-run overrides the configuration (/etc/runpod-watchdog/")
    assert "nothing at RunPod will be changed" in forced
    mixed = mode_reason(_enforcing_config(), location, forced_dry_run=False)
    assert mixed.startswith("mode dry-run: ")
    assert '[policy.rules] runaway_job = "enforce"' in mixed
    assert '[[policy.endpoint]] match = "prod-*" mode = "enforce"' in mixed
    assert "budget_brake" not in mixed  # dry-run like policy.mode: not an exception
    none = mode_reason(config, ConfigLocation(None, "none"), forced_dry_run=True)
    assert "the built-in defaults" in none
