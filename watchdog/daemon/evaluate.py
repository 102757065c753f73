"""Stage 3, evaluate: from this tick's facts to the policy's decisions.

The configuration becomes the policy's inputs here and only here (:func:`endpoint_limits`,
:func:`policy_settings`, :func:`traffic_thresholds`), so the numbers a user configures are the numbers the
rules use, and unit tests build them from the same defaults. :func:`decide` assembles a
:class:`~watchdog.policy.PolicyView` from what the tick saw and what the daemon remembers, runs
:func:`watchdog.policy.evaluate`, and drops what the configuration says not to do. Pure: no I/O, no clock,
no state written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from watchdog.clock import DAY_S
from watchdog.config import Config
from watchdog.daemon.execute import brake_entry
from watchdog.daemon.fetch import Reading
from watchdog.daemon.track import Tracked
from watchdog.daemon.tracker import OwnActions, Tracker
from watchdog.ledger import BrakeState
from watchdog.models import EndpointConfig
from watchdog.money import BudgetStatus
from watchdog.policy import (
    CrashWindow,
    Decision,
    EndpointFacts,
    EndpointLimits,
    PolicySettings,
    PolicyView,
    evaluate,
)
from watchdog.traffic import (
    EndpointContext,
    TrafficFinding,
    TrafficThresholds,
    detect_jump,
    detect_keep_warm,
    detect_ping_rate,
    detect_rate,
)
from watchdog.vocabulary import CONFIGURABLE_RULES, Action, Mode, Rule


def endpoint_limits(
    config: Config, endpoint: EndpointConfig, overrides: Mapping[str, Mode]
) -> EndpointLimits:
    """One endpoint's limits: ``[policy]``, its ``[[policy.endpoint]]`` entries, and the rule modes set from
    the dashboard (``overrides``: ``"rule|endpoint_id"`` beats ``"rule"``)."""
    effective = config.policy_for(endpoint.id, endpoint.name)
    modes: dict[str, Mode] = {
        rule: overrides.get(f"{rule}|{endpoint.id}")
        or overrides.get(rule)
        or config.rule_mode_for(rule, effective)
        for rule in CONFIGURABLE_RULES
    }
    paused = effective.always_paused
    return EndpointLimits(
        mode=effective.mode,
        max_execution_s=effective.max_execution_s,
        grace_s=effective.grace_s,
        max_idle_timeout_s=effective.max_idle_timeout_s,
        max_workers=0 if paused else effective.max_workers,
        max_workers_min=0 if paused else effective.max_workers_min,
        max_workers_standby=0 if paused else effective.max_workers_standby,
        required_execution_timeout_s=effective.required_execution_timeout_s,
        rule_modes=modes,
        allowed=effective.allow_listed,
        brake_idle_timeout_s=effective.brake_idle_timeout_s,
    )


def policy_settings(config: Config) -> PolicySettings:
    return PolicySettings(
        usd_per_eur=config.budget.usd_per_eur,
        stale_after_s=config.policy.stale_after_s,
        max_actions_per_hour=config.policy.max_actions_per_hour,
        cooldown_s=config.policy.cooldown_s,
        alert_thresholds=config.budget.alert_thresholds,
        brake_at=config.budget.brake_at,
        traffic_cut="deny_list" if config.pings.cut == "deny-list" else "cooldown",
        cut_cooldown_s=config.pings.cut_cooldown_s,
        mode=config.policy.mode,
        never_cut=config.pings.never_cut,
        daily_allowance=config.budget.daily_allowance,
    )


def traffic_thresholds(config: Config) -> TrafficThresholds:
    pings = config.pings
    return TrafficThresholds(
        max_requests_per_min=pings.max_requests_per_min,
        max_pings_per_min=pings.max_pings_per_min,
        keep_warm_min_minutes=pings.keep_warm_window_min,
        keep_warm_max_busy_ratio=pings.keep_warm_max_busy_ratio,
        jump_min_count=pings.jump_min_count,
        jump_factor=pings.jump_factor,
    )


def traffic_findings(tracker: Tracker, reading: Reading, config: Config, now: float) -> list[TrafficFinding]:
    """What the request and ping watch finds on the watched endpoints."""
    thresholds = traffic_thresholds(config)
    contexts: dict[str, EndpointContext] = {}
    since = now - thresholds.keep_warm_min_minutes * 60.0
    for endpoint in reading.endpoints:
        busy_ratio = tracker.busy_ratio(endpoint.id, since) if endpoint.id in reading.health else None
        contexts[endpoint.id] = EndpointContext(float(endpoint.idle_timeout_s), busy_ratio=busy_ratio)
    counts = tracker.traffic
    found = [
        *detect_rate(counts, now, thresholds),
        *detect_ping_rate(counts, now, thresholds),
        *detect_keep_warm(counts, now, thresholds, contexts),
        *detect_jump(counts, now, thresholds),
    ]
    return [f for f in found if f.endpoint_id in contexts]


@dataclass(frozen=True, slots=True)
class Judged:
    decisions: tuple[Decision, ...]
    findings: tuple[TrafficFinding, ...]
    facts: tuple[EndpointFacts, ...] = ()
    """What the policy knew of each endpoint: the runaway deadlines are computed from it."""


def decide(
    *,
    reading: Reading,
    tracked: Tracked,
    tracker: Tracker,
    own: OwnActions,
    brakes: Mapping[str, BrakeState],
    rule_overrides: Mapping[str, Mode],
    budget: BudgetStatus,
    month_usd_by_endpoint: Mapping[str, float],
    alerted_thresholds: frozenset[float],
    denied_sources: frozenset[str],
    refused_sources: frozenset[str] = frozenset(),
    today_usd_by_endpoint: Mapping[str, float] | None = None,
    config: Config,
    now: float,
) -> Judged:
    """The decisions for a tick that read RunPod completely.

    ``today_usd_by_endpoint`` is the current UTC day's variable spend per endpoint (the month to date's
    ``today_usd``, account-wide billing under its own key): its sum is what ``budget.daily_allowance``
    measures. None (not known) leaves the day's allowance unjudged: it never brakes."""
    findings = traffic_findings(tracker, reading, config, now)
    facts = tuple(
        EndpointFacts(
            config=endpoint,
            limits=endpoint_limits(config, endpoint, rule_overrides),
            workers=tracked.workers.get(endpoint.id, ()),
            health=reading.health[endpoint.id],
            jobs_in_progress=tracker.jobs_in_progress(endpoint.id),
            cancelled_jobs=own.cancelled_jobs(endpoint.id),
            crash=tracked.crash.get(endpoint.id, CrashWindow()),
            requests_per_month=tracker.traffic.endpoint_requests(endpoint.id, now - DAY_S, now + 60) * 30.0,
            requests_by_source_1h={
                source: count.requests
                for source, count in tracker.traffic.by_source(endpoint.id, now - 3600, now + 60).items()
            },
            variable_mtd_usd=month_usd_by_endpoint.get(endpoint.id, 0.0),
            variable_today_usd=(today_usd_by_endpoint or {}).get(endpoint.id, 0.0),
            last_progress_at=tracker.last_progress.get(endpoint.id),
        )
        for endpoint in reading.endpoints
    )
    view = PolicyView(
        endpoints=facts,
        settings=policy_settings(config),
        last_successful_poll=now,
        budget=budget,
        alerted_thresholds=alerted_thresholds,
        variable_today_usd=None if today_usd_by_endpoint is None else sum(today_usd_by_endpoint.values()),
        traffic_findings=tuple(findings),
        actions=tuple(own.actions),
        brakes=tuple(brake_entry(b) for _, b in sorted(brakes.items())),
        prices=config.price_table,
    )
    decisions = evaluate(view, now)
    if config.pings.cut == "alert":
        decisions = [
            d
            for d in decisions
            if not (d.rule == Rule.SUSPICIOUS_TRAFFIC and d.action not in _ALERT_CUT_KEEPS)
        ]
    # already cut off (re-adding it after every cool-down would only repeat the alert), or an entry that
    # failed to write or to show in the file (trying again would only fail again, every tick)
    denied_sources = denied_sources | refused_sources
    if denied_sources:
        decisions = [
            d for d in decisions if not (d.action == Action.DENY_LIST and d.source in denied_sources)
        ]
    return Judged(tuple(decisions), tuple(findings), facts)


_ALERT_CUT_KEEPS = (Action.ALERT, Action.RESTORE)
"""With ``pings.cut = "alert"`` the traffic rule only alerts (and still lifts a cool-down set earlier)."""


def blind_decision(config: Config, last_ok_at: float | None, now: float, error: str) -> Decision:
    """The one decision of a tick that could not see RunPod: take no action, say so."""
    seen = (
        "no successful poll yet"
        if last_ok_at is None
        else f"last successful poll {now - last_ok_at:.0f} s ago"
    )
    return Decision(
        rule=Rule.BLIND,
        action=Action.NONE,
        endpoint_id=None,
        mode=config.policy.mode,
        reason=f"watchdog is blind ({seen}; {error}): taking no action",
        severity="critical",
        dedupe_key="blind:none",
    )


def is_repeat(decision: Decision, recorded: Mapping[str, float], now: float) -> bool:
    """A proposal or notice recorded less than an hour ago (enforced actions are never repeats): the
    ledger is an audit log, not a tick log."""
    repeatable = decision.mode != Mode.ENFORCE or decision.action in (Action.ALERT, Action.NONE)
    if not repeatable or not decision.dedupe_key:
        return False
    last = recorded.get(decision.dedupe_key)
    return last is not None and now - last < 3600.0


def thresholds_of(decisions: Sequence[Decision]) -> set[float]:
    """The budget thresholds these decisions alert."""
    return {d.threshold for d in decisions if d.threshold is not None}
