"""What the daemon would do now, without doing it: ``runpod-watchdog plan`` and ``run --dry-run``.

The safe first contact with a real account is a walk: ``snapshot`` (look), ``plan`` (what ``run`` would
change right now, as a diff), ``run --dry-run`` for a week (record what it would have done), then ``run``.
A new user's first ``run`` once patched a production endpoint 50 ms after start; ``plan`` shows that patch
before it happens.

How :func:`make_plan` stays the daemon's judgement and not a second copy of it: it reads RunPod ONCE
through the daemon's own fetch stage (:func:`~watchdog.daemon.fetch.read_runpod_bounded`: endpoints,
workers, ``/health``, the status of the jobs the logs name, this month's billing), folds the reading into a
fresh :class:`~watchdog.daemon.tracker.Tracker` with the daemon's track stage, computes the month to date
as a first tick does (RunPod's billing; no ledger, so no live estimate yet), and asks the pure evaluate
stage (:func:`~watchdog.daemon.evaluate.decide`) for the decisions. It opens no ledger, writes no file and
sends RunPod only reads. What it shows is what a daemon starting now, with an empty memory, would do at
its first tick; a daemon that has run for a while may do less (it remembers its cool-downs and brakes).

One addition of its own: the daemon also learns job ids from the heartbeat pings in the configured log
sources as they are written; ``plan`` has no "as they are written", so it reads the last
:data:`LOG_LOOKBACK_BYTES` of each source (the jobs named by pings in the last five minutes count, as in
the daemon). Work the daemon cannot judge yet (a job younger than ``max_execution_s + grace_s``, or work of
unknown id it must first watch that long) is listed with the moment it would be stopped
(:attr:`Plan.deadlines`).

``run --dry-run`` applies :func:`watchdog.config.dry_run_everywhere` (every mode turned to dry-run and
``policy.dry_run_only`` set), and :func:`mode_reason` says in one line which mode a run is in and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from watchdog.client import RunPodClient
from watchdog.clock import SystemClock, month_start, to_iso
from watchdog.config import Config, ConfigLocation, LogSource, RuleModes, Secret
from watchdog.daemon.accounting import billed_rows, month_money
from watchdog.daemon.evaluate import decide
from watchdog.daemon.execute import patch_arguments
from watchdog.daemon.fetch import ReadPlan, read_logs, read_runpod_bounded
from watchdog.daemon.track import track
from watchdog.daemon.tracker import OwnActions, Tracker
from watchdog.logwatch import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_READ_BYTES, LogPosition, LogTailer
from watchdog.models import EndpointConfig
from watchdog.money import BudgetStatus, brake_fires_at, budget_status, usd_to_eur
from watchdog.policy import Deadline, Decision, runaway_deadlines
from watchdog.traffic import DenyList
from watchdog.vocabulary import NOTIFY_ONLY_ACTIONS, Action, Mode, Rule, RuleMode

_Eur = Callable[[float], str]

LOG_LOOKBACK_BYTES = DEFAULT_MAX_READ_BYTES
"""How much of the end of each log source ``plan`` reads (one tailer read, about 4,000 access-log lines):
enough for the last five minutes of heartbeats on this team's traffic."""

FIELD_NAMES: Mapping[str, str] = {
    "workers_max": "workersMax",
    "workers_min": "workersMin",
    "workers_standby": "workersStandby",
    "idle_timeout_s": "idleTimeout",
    "execution_timeout_ms": "executionTimeoutMs",
}
"""Endpoint fields as the RunPod console and GraphQL name them (the diff's words)."""


class PlanError(Exception):
    """RunPod could not be read, so there is no plan (``auth_rejected``: it refused the API key)."""

    def __init__(self, message: str, *, auth_rejected: bool = False) -> None:
        super().__init__(message)
        self.auth_rejected = auth_rejected


@dataclass(frozen=True, slots=True)
class Change:
    """One endpoint field the decision would set: ``workersMax 3 → 1``."""

    field: str
    """The EndpointConfig field name (``workers_max``)."""
    before: object
    after: object

    def __str__(self) -> str:
        return f"{FIELD_NAMES.get(self.field, self.field)} {_value(self.before)} → {_value(self.after)}"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A decision of the evaluate stage, with what it would change at RunPod."""

    decision: Decision
    changes: tuple[Change, ...] = ()
    """The endpoint fields a patch would set (empty for a cancel, a purge, a deny-list entry, an alert)."""
    problem: str | None = None
    """Why the call would fail if tried (a field REST v2 cannot set); None when it can be made."""

    @property
    def changes_something(self) -> bool:
        """Enforced, and not only a notice: ``run`` would call RunPod (or write the deny list) for it."""
        return self.decision.mode == Mode.ENFORCE and self.decision.action not in NOTIFY_ONLY_ACTIONS


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``run`` would do at its first tick, from one read of RunPod."""

    at: float
    endpoints: tuple[EndpointConfig, ...]
    """The watched endpoints, as read."""
    steps: tuple[PlannedStep, ...]
    """Every decision, in the policy's order (most expensive failure first)."""
    budget: BudgetStatus
    brake_at: float
    """``budget.brake_at``: the share of the budget at which the brake pauses endpoints."""
    brake_fires_at: float | None
    """When the brake fires at the current rate (:func:`watchdog.money.brake_fires_at`)."""
    braked_endpoints: tuple[str, ...]
    """The watched endpoints the brake would pause (those not on ``policy.allow_list``)."""
    deadlines: tuple[Deadline, ...] = ()
    """Runaway checks to come: work that would be stopped at ``at`` if it still runs then."""
    notes: tuple[str, ...] = ()
    """What the reading lacked or could not use (billing unread, log sources unreadable...)."""

    @property
    def would_change(self) -> bool:
        return any(step.changes_something for step in self.steps)


async def make_plan(
    config: Config,
    api_key: Secret,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: float | None = None,
) -> Plan:
    """Read RunPod once and return what a daemon starting now would decide. Changes nothing.

    Raises:
        PlanError: RunPod could not be read completely (no decision is taken on a partial reading).
    """
    now = SystemClock().now() if now is None else now
    notes: list[str] = []
    tracker = Tracker()
    tailers = [_tail_of(source) for source in config.pings.source]
    try:
        logs = read_logs(tailers, now)
    finally:
        for tailer in tailers:
            tailer.close()
    notes.extend(logs.problems)
    tracker.observe_logs(logs.events, now)
    read_plan = ReadPlan(jobs=tuple(tracker.open_job_ids()), billing_due=True)
    async with RunPodClient.from_config(config.runpod, api_key, transport=transport) as client:
        reading = await read_runpod_bounded(client, config, read_plan, now, _never_stopping())
    if reading.error is not None:
        raise PlanError(reading.error, auth_rejected=reading.auth_rejected)
    if reading.quota_wait is not None:
        notes.append(reading.quota_wait)
    if reading.billing_failed:
        notes.append("RunPod's billing could not be read: the month to date counts the fixed costs only")

    tracked = track(tracker, reading, logs.events, held=(), now=now)
    billed = billed_rows(reading.billing, month_start(now)) if reading.billing is not None else ()
    money = month_money({}, (), billed, now)
    budget = budget_status(
        config.budget.monthly_eur,
        config.budget.usd_per_eur,
        fixed_costs_usd_per_month=config.budget.fixed_usd_per_month,
        variable_mtd_usd=money.month.counted_usd,
        now=now,
        thresholds=config.budget.alert_thresholds,
        variable_last_24h_usd=money.last_24h_usd,
    )
    judged = decide(
        reading=reading,
        tracked=tracked,
        tracker=tracker,
        own=OwnActions(),
        brakes={},
        rule_overrides={},
        budget=budget,
        month_usd_by_endpoint={e.endpoint_id: e.counted_usd for e in money.month.by_endpoint},
        today_usd_by_endpoint={e.endpoint_id: e.today_usd for e in money.month.by_endpoint},
        alerted_thresholds=frozenset(),
        denied_sources=_denied(config, notes),
        config=config,
        now=now,
    )
    configs = {endpoint.id: endpoint for endpoint in reading.endpoints}
    return Plan(
        at=now,
        endpoints=reading.endpoints,
        steps=tuple(_planned(decision, configs) for decision in judged.decisions),
        budget=budget,
        brake_at=config.budget.brake_at,
        brake_fires_at=brake_fires_at(
            spent_eur=budget.spent_eur,
            forecast_eur=budget.forecast_eur,
            days_left=budget.days_left,
            monthly_eur=budget.budget_eur,
            brake_at=config.budget.brake_at,
            now=now,
        ),
        braked_endpoints=tuple(
            e.id for e in reading.endpoints if not config.policy_for(e.id, e.name).allow_listed
        ),
        deadlines=tuple(d for d in runaway_deadlines(judged.facts) if d.at > now),
        notes=tuple(notes),
    )


def _never_stopping() -> asyncio.Event:
    return asyncio.Event()


def _tail_of(source: LogSource) -> LogTailer:
    """A tailer that reads the last :data:`LOG_LOOKBACK_BYTES` of the file, from a line's start."""
    tailer = LogTailer(source)
    try:
        found = os.stat(tailer.path)
    except OSError:
        return tailer  # the read reports it
    if not stat.S_ISREG(found.st_mode):
        return tailer
    offset = max(0, found.st_size - LOG_LOOKBACK_BYTES)
    if offset > 0:
        try:
            with open(tailer.path, "rb") as handle:
                handle.seek(offset)
                newline = handle.read(DEFAULT_MAX_LINE_BYTES).find(b"\n")
        except OSError:
            return tailer
        offset = offset + newline + 1 if newline >= 0 else offset
    tailer.restore(LogPosition(found.st_ino, offset, 0 if offset == 0 else -1))
    return tailer


def _denied(config: Config, notes: list[str]) -> frozenset[str]:
    if not config.pings.deny_list_path:
        return frozenset()
    try:
        return frozenset(DenyList(config.pings.deny_list_path).read())
    except OSError as exc:
        notes.append(f"deny list {config.pings.deny_list_path}: cannot read: {exc.strerror or exc}")
        return frozenset()


def _planned(decision: Decision, configs: Mapping[str, EndpointConfig]) -> PlannedStep:
    if not decision.patch:
        return PlannedStep(decision)
    config = configs.get(decision.endpoint_id or "")
    changes = tuple(
        Change(name, getattr(config, name, None) if config is not None else None, value)
        for name, value in decision.patch.items()
    )
    try:
        patch_arguments(decision.patch)
    except ValueError as exc:
        return PlannedStep(decision, changes, str(exc))
    return PlannedStep(decision, changes)


# --------------------------------------------------------------------------------------------------------
# The text


def plan_text(plan: Plan, *, usd_per_eur: float, source: str) -> str:
    """The plan for a human: each change as a diff line with its € figure, then the budget and the brake."""
    eur = _eur_formatter(usd_per_eur)
    changes = [s for s in plan.steps if s.changes_something]
    proposals = [
        s
        for s in plan.steps
        if s.decision.mode != Mode.ENFORCE and s.decision.action not in NOTIFY_ONLY_ACTIONS
    ]
    notices = [s for s in plan.steps if s.decision.action in NOTIFY_ONLY_ACTIONS]
    lines = [
        f"runpod-watchdog plan at {to_iso(plan.at)}: what `run` would do now, from one read of RunPod. "
        "Nothing was changed.",
        f"config: {source}; {len(plan.endpoints)} endpoint(s) watched",
        "",
        "Changes `run` would make (enforce):",
        *(_step_lines(step, eur) for step in changes),
    ]
    if not changes:
        lines.append("  none")
    if proposals:
        lines += ["", "Proposals it would only record (dry-run):", *(_step_lines(s, eur) for s in proposals)]
    if notices:
        lines += ["", "Alerts it would send (they change nothing):", *(_step_lines(s, eur) for s in notices)]
    if plan.deadlines:
        lines += ["", "Runaway checks to come (if the work still runs then):"]
        lines += [f"  {_deadline_line(d)}" for d in plan.deadlines]
    lines += ["", *_budget_lines(plan)]
    if plan.notes:
        lines += ["", "Notes:", *(f"  {note}" for note in plan.notes)]
    endpoints = len({s.decision.endpoint_id for s in changes})
    lines += [
        "",
        f"Result: {len(changes)} change(s) on {endpoints} endpoint(s) if `run` started now"
        if changes
        else "Result: `run` would change nothing now",
    ]
    return "\n".join(lines)


def _step_lines(step: PlannedStep, eur: _Eur) -> str:
    decision = step.decision
    where = decision.endpoint_id or "(account)"
    if step.changes:
        what = ", ".join(str(change) for change in step.changes)
    elif decision.action == Action.CANCEL_JOB:
        what = f"cancel job {decision.job_id}"
    elif decision.action == Action.PURGE_QUEUE:
        what = "purge the queue"
    elif decision.action == Action.DENY_LIST:
        what = f"deny-list += {decision.source}"
    elif decision.action in NOTIFY_ONLY_ACTIONS:
        what = "alert"
    else:
        what = str(decision.action)
    figure = _figure(decision, eur)
    head = f"  {where}  {what}  [{decision.rule}, {decision.action}, {decision.mode}]" + (
        f"  {figure}" if figure else ""
    )
    detail = [f"      {decision.reason}"]
    if step.problem is not None:
        detail.append(f"      would fail: {step.problem}")
    return "\n".join([head, *detail])


def _figure(decision: Decision, eur: _Eur) -> str:
    if decision.action in NOTIFY_ONLY_ACTIONS or decision.estimated_saving_usd <= 0:
        return ""
    if decision.rule == Rule.CONFIG_DRIFT:
        return f"{eur(decision.estimated_saving_usd)}/month at risk"
    return f"saves up to {eur(decision.estimated_saving_usd)}"


def _deadline_line(deadline: Deadline) -> str:
    at = to_iso(deadline.at)
    if deadline.job_id is not None:
        return f"{deadline.endpoint_id}  cancel job {deadline.job_id} at {at}"
    worker = f"worker {deadline.worker_id}" if deadline.worker_id else "a worker"
    return f"{deadline.endpoint_id}  {worker} on work of unknown id: workersMax → 0 at {at}"


def _budget_lines(plan: Plan) -> list[str]:
    budget = plan.budget
    lines = [
        f"Budget: {budget.spent_eur:.2f} € of {budget.budget_eur:.2f} € spent this month "
        f"({_pct(budget.used_ratio)}; fixed {budget.fixed_eur:.2f} €, GPU {budget.variable_eur:.2f} € "
        f"as RunPod billed it), forecast {budget.forecast_eur:.2f} € at the month's end"
    ]
    threshold = plan.brake_at * budget.budget_eur
    paused = len(plan.braked_endpoints)
    whom = f"pauses {paused} of {len(plan.endpoints)} endpoint(s) (those not on policy.allow_list)"
    if plan.brake_fires_at is None:
        lines.append(
            f"Brake: at the current rate the {_pct(plan.brake_at)} brake ({threshold:.2f} €) does not fire "
            "this month"
        )
    elif plan.brake_fires_at <= plan.at:
        lines.append(
            f"Brake: spend is past the {_pct(plan.brake_at)} brake ({threshold:.2f} €): it {whom} now"
        )
    else:
        day = datetime.fromtimestamp(plan.brake_fires_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(
            f"Brake: at the current rate the {_pct(plan.brake_at)} brake ({threshold:.2f} €) fires on {day} "
            f"(day {datetime.fromtimestamp(plan.brake_fires_at, tz=UTC).day} of the month) and {whom}"
        )
    return lines


def _eur_formatter(usd_per_eur: float) -> _Eur:
    def eur(usd: float) -> str:
        return f"{usd_to_eur(usd, usd_per_eur):,.2f} €"

    return eur


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.0f} %"


def _value(value: object) -> str:
    return "none" if value is None else str(value)


# --------------------------------------------------------------------------------------------------------
# run --dry-run


def mode_reason(config: Config, location: ConfigLocation, *, forced_dry_run: bool) -> str:
    """One line: the mode this run acts in, and why (the flag, the file and how it was found, the
    built-in defaults), naming the rules and endpoints that differ from ``policy.mode``."""
    where = str(location.path) if location.path is not None else "the built-in defaults"
    if forced_dry_run:
        return (
            f"mode dry-run: --dry-run overrides the configuration ({where}: policy.mode = "
            f'"{config.policy.mode}") for this run; nothing at RunPod will be changed, every decision is '
            "recorded as a proposal"
        )
    exceptions = _mode_exceptions(config)
    base = f'mode {config.policy.mode}: policy.mode = "{config.policy.mode}" in {where} ({location.why})'
    if location.path is None:
        base = f"mode {config.policy.mode}: the built-in defaults ({location.why})"
    return base + (f"; except {', '.join(exceptions)}" if exceptions else "")


def _mode_exceptions(config: Config) -> list[str]:
    policy = config.policy
    found = [
        f'[policy.rules] {f.name} = "{getattr(policy.rules, f.name)}"'
        for f in dataclasses.fields(RuleModes)
        if getattr(policy.rules, f.name) not in (RuleMode.INHERIT, RuleMode(str(policy.mode)))
    ]
    found += [
        f'[[policy.endpoint]] match = "{entry.match}" mode = "{entry.mode}"'
        for entry in policy.endpoint
        if entry.mode is not None and entry.mode != policy.mode
    ]
    return found


__all__ = [
    "LOG_LOOKBACK_BYTES",
    "Change",
    "Plan",
    "PlanError",
    "PlannedStep",
    "make_plan",
    "mode_reason",
    "plan_text",
]
