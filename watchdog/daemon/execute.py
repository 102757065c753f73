"""Stage 4, execute: the thin layer between a policy decision and RunPod; one call per decision, an outcome
per call, and a check on later ticks that the call had the effect it was meant to have.

* ``dry-run`` decisions touch nothing and are recorded as ``proposed`` with the money they would save.
* ``enforce`` decisions become one RunPod call (``cancel_job``, ``patch_endpoint``, ``purge_queue``) or a
  deny-list write, recorded ``applied`` or ``failed`` (with RunPod's words). A failure never raises: the
  tick must go on and record it.
* Every applied decision is then verified on the following ticks (:func:`verify`): a cancelled job is
  terminal and its worker gone (so it stopped billing); a patch shows in the endpoint's config (and, for a
  stop, no billed worker is left); a deny-list entry is in the file; a purged queue is empty. The outcome
  is a second ledger step, ``verified`` or ``not_verified`` (after ``VERIFY_WITHIN_TICKS`` ticks and
  ``VERIFY_WITHIN_S`` seconds).
* Brakes (anything that holds an endpoint down: scale to zero, pause, escalate, tighten) come back as
  ledger ``BrakeState`` rows carrying the rule that set them and the configuration to restore; a
  ``restore`` clears the brake.

The executor keeps no state: what to verify is returned to the caller (``Execution.check``) and handed
back to :func:`verify` (the daemon keeps the list in its state). It talks to RunPod through the
:class:`RunPodActions` protocol and writes only the deny-list file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from watchdog.clock import month_start
from watchdog.errors import RunPodError
from watchdog.ledger import BrakeState, DecisionStep
from watchdog.models import EndpointConfig, Health, Job, JobStatus, PurgeResult, Worker
from watchdog.policy import BrakeEntry, Decision
from watchdog.traffic import DenyList
from watchdog.vocabulary import (
    BRAKE_ACTIONS,
    NOTIFY_ONLY_ACTIONS,
    RULE_BRAKE_KIND,
    STOP_ACTIONS,
    Action,
    BrakeKind,
    Mode,
    Outcome,
    Rule,
    WorkerStatus,
)

log = logging.getLogger(__name__)

PATCH_FIELDS = ("workers_min", "workers_max", "idle_timeout_s", "execution_timeout_ms")
"""EndpointConfig fields REST v2 PATCH can set (``workers_standby`` only exists in the console/GraphQL)."""
VERIFY_WITHIN_TICKS = 6
"""An applied action whose effect is not seen within this many ticks, and within ``VERIFY_WITHIN_S`` plus
the endpoint's idle timeout (a cancelled job's worker bills its idle tail first: at a 1 s tick six ticks
are shorter than that), is recorded ``not_verified``."""
VERIFY_WITHIN_S = 30.0


class RunPodActions(Protocol):
    """What the executor needs of :class:`watchdog.client.RunPodClient`."""

    async def cancel_job(self, endpoint_id: str, job_id: str) -> Job: ...
    async def patch_endpoint(
        self,
        endpoint_id: str,
        *,
        workers_min: int | None = None,
        workers_max: int | None = None,
        idle_timeout_s: int | None = None,
        execution_timeout_ms: int | None = None,
    ) -> EndpointConfig: ...
    async def purge_queue(self, endpoint_id: str) -> PurgeResult: ...


CheckKind = Literal["cancel", "patch", "stop", "deny", "purge"]


@dataclass
class PendingCheck:
    """An applied decision whose effect later ticks must see."""

    step: DecisionStep
    """The ``applied`` step; verification records a copy with the new outcome."""
    kind: CheckKind
    ticks: int = 0
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What this tick saw, for verification."""

    now: float
    configs: Mapping[str, EndpointConfig]
    workers: Mapping[str, tuple[Worker, ...]]
    jobs: Mapping[str, JobStatus]
    """Job id → status polled this tick (absent: not polled or not found)."""
    health: Mapping[str, Health] = field(default_factory=dict)
    gone_jobs: frozenset[str] = frozenset()
    """Jobs RunPod no longer knows (404): expired, so certainly not running."""
    denied_sources: frozenset[str] = frozenset()
    """What the deny-list file lists now."""
    billed_states: frozenset[WorkerStatus] = frozenset()


@dataclass
class Execution:
    """What executing one decision produced."""

    steps: list[DecisionStep] = field(default_factory=list)
    brake_set: BrakeState | None = None
    brake_cleared: str | None = None
    applied: bool = False
    attempted: bool = False
    """A RunPod call (or file write) was attempted: counts against the hourly cap and the cool-down."""
    check: PendingCheck | None = None
    """What later ticks must verify (applied actions only)."""


def brake_entry(state: BrakeState) -> BrakeEntry:
    """A ledger brake as the policy sees it: the rule that set it and how it holds the endpoint."""
    rule = Rule(state.rule) if state.rule else _rule_of_kind(state.kind)
    previous = dict(state.previous or {})
    if "idle_timeout_s" in previous:
        hold = Action.TIGHTEN
    elif rule == Rule.BUDGET_BRAKE or state.kind == BrakeKind.MANUAL:
        hold = Action.PAUSE
    else:
        hold = Action.SCALE_TO_ZERO
    return BrakeEntry(state.endpoint_id, rule, hold, state.since, previous, state.until)


def _rule_of_kind(kind: str) -> Rule:
    """The rule behind a brake stored before brakes carried their rule (a crash loop's reads as manual,
    which is restored the same way: by a human)."""
    for rule, brake_kind in RULE_BRAKE_KIND.items():
        if brake_kind == kind and rule != Rule.CRASH_LOOP:
            return rule
    return Rule.MANUAL


async def execute(
    decision: Decision,
    client: RunPodActions,
    *,
    now: float,
    brakes: Mapping[str, BrakeState],
    deny_list: DenyList | None,
) -> Execution:
    """Carry out one decision (or only record it, in dry-run). Never raises for a RunPod failure."""
    base = step_for(decision, now, Outcome.PROPOSED)
    result = Execution()
    if decision.action in NOTIFY_ONLY_ACTIONS:  # an alert saves nothing itself (its action does)
        outcome = Outcome.APPLIED if decision.mode == Mode.ENFORCE else Outcome.PROPOSED
        result.steps.append(replace(base, outcome=outcome, saved_usd=0.0))
        return result
    if decision.mode != Mode.ENFORCE:
        result.steps.append(base)
        return result
    result.attempted = True
    try:
        kind = await _call(decision, client, deny_list)
    except (RunPodError, ValueError, OSError) as exc:
        text = f"{type(exc).__name__}: {exc}"
        log.warning("%s %s on %s failed: %s", decision.rule, decision.action, decision.endpoint_id, text)
        result.steps.append(replace(base, outcome=Outcome.FAILED, saved_usd=0.0, error=text[:500]))
        return result
    applied = replace(base, outcome=Outcome.APPLIED)
    result.steps.append(applied)
    result.applied = True
    log.info(
        "%s: %s on %s%s applied: %s",
        decision.rule,
        decision.action,
        decision.endpoint_id,
        f" (job {decision.job_id})" if decision.job_id else "",
        decision.reason,
    )
    result.check = PendingCheck(applied, kind, source=decision.source)
    endpoint_id = decision.endpoint_id
    if endpoint_id is not None and decision.action in BRAKE_ACTIONS:
        existing = brakes.get(endpoint_id)
        if existing is None:
            result.brake_set = BrakeState(
                endpoint_id=endpoint_id,
                kind=RULE_BRAKE_KIND.get(Rule(decision.rule), BrakeKind.MANUAL),
                rule=decision.rule,
                since=now,
                until=decision.until,
                month=month_start(now),
                previous=dict(decision.previous),
            )
        else:  # stacked: keep the original configuration to restore, and the rule that first held it
            merged = {**dict(decision.previous), **dict(existing.previous or {})}
            result.brake_set = replace(existing, previous=merged)
    elif endpoint_id is not None and decision.action == Action.RESTORE:
        result.brake_cleared = endpoint_id
    return result


def step_for(decision: Decision, now: float, outcome: Outcome) -> DecisionStep:
    """The ledger step of ``decision`` with ``outcome`` (intended, proposed, applied...)."""
    return DecisionStep(
        at=now,
        rule=decision.rule,
        action=decision.action,
        mode=decision.mode,
        outcome=outcome,
        reason=decision.reason,
        endpoint_id=decision.endpoint_id,
        job_id=decision.job_id,
        worker_id=decision.worker_id,
        patch=dict(decision.patch) or None,
        previous=dict(decision.previous) or None,
        saved_usd=decision.estimated_saving_usd,
        dedupe_key=decision.dedupe_key or None,
    )


async def _call(decision: Decision, client: RunPodActions, deny_list: DenyList | None) -> CheckKind:
    action, endpoint_id = decision.action, decision.endpoint_id
    if action == Action.DENY_LIST:
        if deny_list is None:
            raise ValueError("pings.deny_list_path is not configured")
        if not decision.source:
            raise ValueError("no traffic source to deny")
        deny_list.add([decision.source])
        return "deny"
    if endpoint_id is None:
        raise ValueError(f"action {action!r} needs an endpoint")
    if action == Action.CANCEL_JOB:
        if not decision.job_id:
            raise ValueError("cancel_job needs a job id")
        await client.cancel_job(endpoint_id, decision.job_id)
        return "cancel"
    if action == Action.PURGE_QUEUE:
        await client.purge_queue(endpoint_id)
        return "purge"
    if action in BRAKE_ACTIONS or action in (Action.PATCH_CONFIG, Action.RESTORE):
        fields = patch_arguments(decision.patch)
        await client.patch_endpoint(endpoint_id, **fields)
        return "stop" if action in STOP_ACTIONS else "patch"
    raise ValueError(f"the executor does not know the action {action!r}")


@dataclass(frozen=True, slots=True)
class Verification:
    steps: tuple[DecisionStep, ...]
    """The new ``verified`` or ``not_verified`` steps."""
    pending: tuple[PendingCheck, ...]
    """The checks still waiting (one more tick counted)."""
    unverified_sources: frozenset[str] = frozenset()
    """Deny-list entries that never showed in the file: not written again."""


def verify(pending: Sequence[PendingCheck], seen: Observation) -> Verification:
    """Check each pending applied decision against this tick's observation."""
    steps: list[DecisionStep] = []
    still: list[PendingCheck] = []
    unverified: set[str] = set()
    for waiting in pending:
        check = replace(waiting, ticks=waiting.ticks + 1)
        verdict = _verdict(check, seen)
        if verdict is not None:
            steps.append(
                replace(check.step, at=seen.now, outcome=Outcome.VERIFIED, reason=f"verified: {verdict}")
            )
        elif check.ticks >= VERIFY_WITHIN_TICKS and seen.now - check.step.at >= _verify_window_s(check, seen):
            if check.kind == "deny" and check.source:
                unverified.add(check.source)
            steps.append(
                replace(
                    check.step,
                    at=seen.now,
                    outcome=Outcome.NOT_VERIFIED,
                    saved_usd=0.0,
                    reason=f"not verified after {check.ticks} ticks: {check.step.reason}",
                )
            )
        else:
            still.append(check)
    return Verification(tuple(steps), tuple(still), frozenset(unverified))


def _verify_window_s(check: PendingCheck, seen: Observation) -> float:
    config = seen.configs.get(check.step.endpoint_id or "")
    return VERIFY_WITHIN_S + (config.idle_timeout_s if config is not None else 0.0)


def _verdict(check: PendingCheck, seen: Observation) -> str | None:
    step = check.step
    if check.kind == "deny":
        return "source is in the deny list" if check.source in seen.denied_sources else None
    endpoint_id = step.endpoint_id or ""
    workers = seen.workers.get(endpoint_id)
    if workers is None:
        return None  # not observed this tick
    if check.kind == "cancel":
        job_id = step.job_id or ""
        status = seen.jobs.get(job_id)
        terminal = job_id in seen.gone_jobs or (status is not None and status.terminal)
        billed = [w for w in workers if w.id == step.worker_id and w.status in seen.billed_states]
        if terminal and not billed:
            shown = status.value if status is not None else "expired"
            return f"job {job_id} is {shown} and its worker no longer bills"
        return None
    config = seen.configs.get(endpoint_id)
    if config is None:
        return None
    if check.kind == "purge":
        health = seen.health.get(endpoint_id)
        return "queue is empty" if health is not None and health.jobs_in_queue == 0 else None
    wanted = {k: v for k, v in (step.patch or {}).items() if k in PATCH_FIELDS and v is not None}
    if any(getattr(config, k) != v for k, v in wanted.items()):
        return None
    if check.kind == "stop":
        if any(w.status in seen.billed_states for w in workers):
            return None
        return "workers max is 0 and no billed worker is left"
    return "endpoint shows " + ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))


def patch_arguments(patch: Mapping[str, object]) -> dict[str, int]:
    """Decision patch (EndpointConfig field names) → ``RunPodClient.patch_endpoint`` keyword arguments.

    Raises ValueError for a field REST v2 cannot set, or when nothing is left to send."""
    fields: dict[str, int] = {}
    for name, value in patch.items():
        if name not in PATCH_FIELDS:
            raise ValueError(
                f"{name} cannot be changed through the REST API; change it in the RunPod console"
            )
        if value is None:
            continue
        if not isinstance(value, int | float | str) or isinstance(value, bool):
            raise ValueError(f"{name} must be a number, not {value!r}")
        fields[name] = int(value)
    if not fields:
        raise ValueError("nothing to change")
    return fields
