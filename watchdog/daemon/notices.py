"""What the daemon tells people: the wording of Slack alerts and of the dashboard's events, and the one
mapping from a rule to the kind of event and alert it makes.

Alert keys de-duplicate: an alert whose key the ledger already holds is never queued again. They are
built by :class:`AlertKey` only, and nothing ever parses one back. Pure functions: they take the decision,
its execution and the figures they quote, and return text; no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from watchdog.alerts import budget_alert_text, format_eur
from watchdog.clock import DAY_S
from watchdog.config import Config
from watchdog.daemon.execute import Execution
from watchdog.ledger import Alert, DecisionStep
from watchdog.models import EndpointConfig
from watchdog.money import BudgetStatus, cold_start_stats, cost_per_1000_requests, usd_to_eur
from watchdog.policy import Decision
from watchdog.reconcile import BilledStatesFinding
from watchdog.status import EventView
from watchdog.vocabulary import NOTIFY_ONLY_ACTIONS, Action, AlertKind, EventKind, Mode, Outcome, Rule

RULE_EVENT: Mapping[str, EventKind] = {
    Rule.BLIND: EventKind.BLIND,
    Rule.CONFIG_DRIFT: EventKind.DRIFT,
    Rule.SUSPICIOUS_TRAFFIC: EventKind.TRAFFIC,
}
"""Rules whose decisions show as their own kind of event (the others are actions or proposals)."""
RULE_ALERT: Mapping[str, AlertKind] = {
    Rule.BLIND: AlertKind.BLIND,
    Rule.CONFIG_DRIFT: AlertKind.DRIFT,
    Rule.SUSPICIOUS_TRAFFIC: AlertKind.TRAFFIC,
}
"""Rules whose alerts are their own kind (the others are ``action`` alerts)."""
SEVERITY_MARK: Mapping[str, str] = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
"""The mark an alert worded by the policy starts with, by its severity."""
MAX_SUMMARY_LINES = 20
"""Changes listed one per line in the first enforce tick's summary; the rest are counted."""


@dataclass(frozen=True, slots=True)
class AlertKey:
    """The identity of an alert: an alert whose key the ledger holds is never queued again.

    Its last part says how often the same subject may be announced again: per day, per month, or once per
    occurrence (a timestamp). Built here only; nothing parses a key back."""

    kind: str
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ":".join((self.kind, *self.parts))

    @classmethod
    def daily(cls, kind: str, subject: str, now: float) -> AlertKey:
        return cls(kind, (subject, datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%d")))

    @classmethod
    def once(cls, kind: str, subject: str, now: float) -> AlertKey:
        return cls(kind, (subject, str(int(now))))

    @classmethod
    def budget(cls, threshold: float, now: float) -> AlertKey:
        """A budget threshold, announced once a month."""
        return cls(AlertKind.BUDGET, (datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m"), str(threshold)))


def event_kind(step: DecisionStep) -> EventKind:
    return RULE_EVENT.get(
        step.rule, EventKind.PROPOSAL if step.outcome == Outcome.PROPOSED else EventKind.ACTION
    )


def events_of(
    steps: Sequence[DecisionStep], alerts: Sequence[Alert], *, usd_per_eur: float, now: float
) -> list[EventView]:
    """The dashboard's events for these decision steps and alerts, oldest first."""
    events = [
        EventView(
            at=step.at,
            kind=event_kind(step),
            endpoint_id=step.endpoint_id,
            text=f"{step.action} ({step.outcome}): {step.reason}",
            eur=usd_to_eur(step.saved_usd, usd_per_eur) if step.saved_usd else None,
            state=step.outcome,
        )
        for step in steps
    ]
    events.extend(EventView(now, EventKind.ALERT, None, alert.text, alert.eur, "pending") for alert in alerts)
    return events


def decision_alert(
    decision: Decision, execution: Execution, *, budget: BudgetStatus | None, usd_per_eur: float, now: float
) -> Alert | None:
    """The Slack alert for a decision, keyed so the same thing is never announced twice."""
    if decision.rule == Rule.BLIND:
        return Alert(
            key=str(AlertKey(AlertKind.BLIND, (str(int(now)),))),
            kind=AlertKind.BLIND,
            severity="critical",
            text=(
                f":see_no_evil: The watchdog is blind: {decision.reason}. "
                "It takes no action until it sees again."
            ),
        )
    if decision.rule == Rule.BUDGET_BRAKE and decision.action == Action.ALERT and decision.threshold is None:
        # The day's brake fired or lifted, or an early-month forecast overrun: said as the policy words it,
        # at most once a day each (the decision's key carries the day or the month).
        return Alert(
            key=str(AlertKey.daily(AlertKind.BUDGET, decision.dedupe_key, now)),
            kind=AlertKind.BUDGET,
            severity=decision.severity,
            text=f"{SEVERITY_MARK[decision.severity]} Budget: {decision.reason}",
        )
    if decision.rule == Rule.BUDGET_BRAKE and decision.action == Action.ALERT and budget is not None:
        threshold = decision.threshold if decision.threshold is not None else budget.used_ratio
        return Alert(
            key=str(AlertKey.budget(threshold, now)),
            kind=AlertKind.BUDGET,
            severity=decision.severity,
            text=budget_alert_text(
                spent_eur=budget.spent_eur,
                budget_eur=budget.budget_eur,
                forecast_eur=budget.forecast_eur,
                threshold_pct=round(threshold * 100),
            ),
            eur=budget.spent_eur,
        )
    saving_eur = usd_to_eur(decision.estimated_saving_usd, usd_per_eur)
    where = f" on {decision.endpoint_id}" if decision.endpoint_id else ""
    action = decision.action.replace("_", " ")
    kind = RULE_ALERT.get(decision.rule, AlertKind.ACTION)
    if decision.action == Action.ALERT:
        return Alert(
            key=str(AlertKey.daily("alert", decision.dedupe_key, now)),
            kind=kind,
            severity=decision.severity,
            text=f":warning: {decision.rule.replace('_', ' ')}{where}: {decision.reason}",
            eur=saving_eur or None,
        )
    if decision.mode != Mode.ENFORCE:
        return Alert(
            key=str(AlertKey.daily("proposal", decision.dedupe_key, now)),
            kind=kind,
            severity=decision.severity,
            text=(
                f":memo: Dry-run: would {action}{where} (would save about {format_eur(saving_eur)}). "
                f"{decision.reason}"
            ),
            eur=saving_eur,
        )
    steps = execution.steps
    if steps and steps[-1].outcome == Outcome.FAILED:
        text = f":x: Tried to {action}{where} and failed: {steps[-1].error}. {decision.reason}"
    else:
        text = (
            f":white_check_mark: Did {action}{where} (saves about {format_eur(saving_eur)}). "
            f"{decision.reason}"
        )
    return Alert(
        key=str(AlertKey.once("action", decision.dedupe_key, now)),
        kind=kind,
        severity=decision.severity,
        text=text,
        eur=saving_eur,
    )


def command_alert(step: DecisionStep, who: str, now: float) -> Alert:
    """The alert for an operator's action from the dashboard."""
    text = f"{step.action} on {step.endpoint_id} by {who}: {step.outcome}" + (
        f" ({step.error})" if step.error else ""
    )
    return Alert(
        key=str(AlertKey("manual", (step.dedupe_key or f"{step.action}:{step.endpoint_id}:{int(now)}",))),
        kind=AlertKind.ACTION,
        severity="info",
        text=text,
    )


def metric_alerts(
    endpoints: Iterable[EndpointConfig],
    *,
    requests_24h: Mapping[str, int],
    usd_24h: Mapping[str, float],
    cold_starts_24h: Mapping[str, Sequence[float]],
    config: Config,
    now: float,
) -> list[Alert]:
    """Cost per 1,000 requests above the limit and slow cold starts: at most once a day per endpoint."""
    alerts: list[Alert] = []
    slack, usd_per_eur = config.slack, config.budget.usd_per_eur
    for endpoint in endpoints:
        requests = requests_24h.get(endpoint.id, 0)
        spent = usd_24h.get(endpoint.id, 0.0)
        cost = cost_per_1000_requests(spent, requests)
        if cost is not None and cost > slack.cost_per_1000_alert_usd and requests >= 10:
            alerts.append(
                Alert(
                    key=str(AlertKey.daily("cost1000", endpoint.id, now)),
                    kind=AlertKind.COST,
                    severity="warning",
                    text=(
                        f":money_with_wings: {endpoint.name} ({endpoint.id}) costs ${cost:.2f} per 1,000 "
                        f"requests over the last 24 h (limit ${slack.cost_per_1000_alert_usd:.2f}): "
                        f"{format_eur(usd_to_eur(spent, usd_per_eur))} for {requests} requests"
                    ),
                    eur=usd_to_eur(spent, usd_per_eur),
                )
            )
        stats = cold_start_stats(cold_starts_24h.get(endpoint.id, ()), slack.cold_start_alert_s)
        if stats.p95_s is not None and stats.p95_s > slack.cold_start_alert_s:
            alerts.append(
                Alert(
                    key=str(AlertKey.daily("coldstart", endpoint.id, now)),
                    kind=AlertKind.COLD_START,
                    severity="warning",
                    text=(
                        f":snail: Cold starts on {endpoint.name} ({endpoint.id}) take {stats.p95_s:.0f} s "
                        f"(p95 of {stats.count} over 24 h; target {slack.cold_start_alert_s:.0f} s)"
                    ),
                )
            )
    return alerts


def billed_states_alert(finding: BilledStatesFinding, now: float) -> Alert:
    """RunPod's bill shows one worker state billed differently from the money model's ``billed_states``:
    announced at most once a day while the finding holds (the key carries the day). The daemon never
    changes its configuration itself; the text gives the line to change."""
    state = finding.state.value
    first = datetime.fromtimestamp(finding.first_hour, tz=UTC).strftime("%Y-%m-%d %H:00")
    last = datetime.fromtimestamp(finding.last_hour + 3600, tz=UTC).strftime("%Y-%m-%d %H:00")
    endpoints = len(finding.endpoints)
    share = min(1.0, max(0.0, finding.billed_share))  # a fit: noise can put it a little outside [0, 1]
    evidence = (
        f"in {finding.matching_hours} of {finding.telling_hours} hours with {state} time ({first} to {last} "
        f"UTC, {endpoints} endpoint{'' if endpoints == 1 else 's'}) the bill matched the estimate "
        f"{'with' if finding.billed_by_runpod else 'without'} it (it charged about {share:.0%} of the "
        f"{finding.state_gpu_s:,.0f} GPU-s)"
    )
    error = finding.estimate_error
    if error is None:
        size = "RunPod billed nothing for those hours"
    else:
        size = f"the estimate {'over' if error >= 0 else 'under'}-counts by {abs(error):.0%}"
    seconds = f"{finding.estimate_gpu_s:,.0f} GPU-s estimated, {finding.billed_gpu_s:,.0f} billed"
    if finding.billed_by_runpod:
        text = (
            f":warning: RunPod bills {state} time, which the money model leaves out: {evidence}. "
            f"{size.capitalize()} ({seconds}), so the budget sees recent spend only when the bill arrives. "
            f"Put it back in the config: [prices] {finding.config_line}"
        )
    else:
        text = (
            f":abacus: RunPod's bill leaves out {state} time, which the money model counts: {evidence}. "
            f"{size.capitalize()} ({seconds}). The conservative estimate stays until you change the "
            f"config: [prices] {finding.config_line}"
        )
    direction = "billed" if finding.billed_by_runpod else "unbilled"
    return Alert(
        key=str(AlertKey.daily(AlertKind.BILLED_STATES, f"{state}-{direction}", now)),
        kind=AlertKind.BILLED_STATES,
        severity="warning" if finding.billed_by_runpod else "info",
        text=text,
    )


def reload_failed_alert(problems: Sequence[str], now: float) -> Alert:
    return Alert(
        key=str(AlertKey("config-reload", (str(int(now)),))),
        kind=AlertKind.CONFIG,
        severity="warning",
        text=(
            ":warning: The watchdog could not reload its configuration and keeps the previous one: "
            + "; ".join(problems[:5])
        ),
    )


def first_enforce_summary(
    steps: Sequence[DecisionStep], *, endpoints: int, usd_per_eur: float, now: float
) -> Alert:
    """The one alert of the first tick that enforced on this ledger's account: every change it made, so a
    person who just switched from dry-run to enforce reads in one place what the watchdog did (and a tick
    that changed nothing says that too). Each change also has its own alert and ledger rows."""
    changes = [
        s
        for s in steps
        if s.mode == Mode.ENFORCE
        and s.outcome in (Outcome.APPLIED, Outcome.FAILED)
        and s.action not in NOTIFY_ONLY_ACTIONS  # an alert is said, not changed
    ]
    if not changes:
        text = (
            f":information_source: First enforce tick on this account: nothing needed changing "
            f"({endpoints} endpoint(s) within policy)."
        )
    else:
        touched = {s.endpoint_id for s in changes if s.endpoint_id is not None}
        saved = sum(s.saved_usd for s in changes if s.outcome == Outcome.APPLIED)
        lines = [
            f"- {s.endpoint_id or 'account'}: {s.action}"
            + (f" {_patch_words(s.patch, s.previous)}" if s.patch else "")
            + (f" job {s.job_id}" if s.job_id else "")
            + (f" [{s.rule}]" + (f" FAILED: {s.error}" if s.outcome == Outcome.FAILED else ""))
            for s in changes
        ]
        saving = f", saving up to {format_eur(usd_to_eur(saved, usd_per_eur))}" if saved > 0 else ""
        text = (
            f":warning: First enforce tick on this account: {len(changes)} change(s) on {len(touched)} of "
            f"{endpoints} endpoint(s){saving}:\n" + "\n".join(lines[:MAX_SUMMARY_LINES])
        )
        if len(lines) > MAX_SUMMARY_LINES:
            text += f"\n- ... and {len(lines) - MAX_SUMMARY_LINES} more (see the ledger's decisions)"
    return Alert(
        key=str(AlertKey.once(AlertKind.ACTION, "first-enforce", now)),
        kind=AlertKind.ACTION,
        severity="warning" if changes else "info",
        text=text,
    )


def _patch_words(patch: Mapping[str, object], previous: Mapping[str, object] | None) -> str:
    """``workers_max 3 -> 1, idle_timeout_s none -> 5``."""
    before = previous or {}
    return ", ".join(
        f"{name} {_value(before.get(name))} -> {_value(value)}" for name, value in sorted(patch.items())
    )


def _value(value: object) -> str:
    return "none" if value is None else str(value)


def first_sightings(alerts: Sequence[Alert], raised: Mapping[str, float], now: float) -> list[Alert]:
    """The alerts whose key was not raised in the last two days (an alert that stays true, such as a cost
    per 1,000 requests above the limit, is rebuilt every tick but belongs in the events log once)."""
    return [alert for alert in alerts if alert.key not in raised or now - raised[alert.key] > 2 * DAY_S]


def balance_unknown_alert(problem: str, now: float) -> Alert:
    """The account's balance cannot be read (GraphQL failing or retired): said once per episode; the
    policies do not depend on it, so this is information, not a blind guard."""
    return Alert(
        key=str(AlertKey.once(AlertKind.ACCOUNT, "balance", now)),
        kind=AlertKind.ACCOUNT,
        severity="info",
        text=(
            f"Balance unknown: RunPod's GraphQL API did not answer ({problem}). Every policy keeps working "
            "on REST v2 and the job runtime; only the balance, the spend per hour and standby workers are "
            "unknown until it answers again (GraphQL retires in early 2027)."
        ),
    )
