"""The thin layer between a policy decision and RunPod: one call per decision, an outcome per call, and a
check on later ticks that the call had the effect it was meant to have.

* ``dry-run`` decisions touch nothing and are recorded as ``proposed`` with the money they would save.
* ``enforce`` decisions become one RunPod call (``cancel_job``, ``patch_endpoint``, ``purge_queue``) or a
  deny-list write, recorded ``applied`` or ``failed`` (with RunPod's words). A failure never raises: the
  tick must go on and record it.
* Every applied decision is then verified on the following ticks (:meth:`Executor.verify`): a cancelled
  job is terminal and its worker gone (so it stopped billing); a patch shows in the endpoint's config (and,
  for a stop, no billed worker is left); a deny-list entry is in the file; a purged queue is empty. The
  outcome is a second ledger row, ``verified`` or ``not_verified`` (after ``verify_within_ticks``).
* Brakes (anything that holds an endpoint down: scale to zero, pause, escalate, tighten) are returned as
  ledger ``BrakeState`` rows carrying the configuration to restore; a ``restore`` clears the brake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from watchdog.clock import month_start
from watchdog.errors import RunPodError
from watchdog.ledger import BrakeKind, BrakeState
from watchdog.ledger import Decision as LedgerDecision
from watchdog.models import EndpointConfig, Health, JobStatus, Worker
from watchdog.money import BILLED_STATES
from watchdog.policy import NOTIFY_ONLY_ACTIONS, BrakeEntry, Decision
from watchdog.traffic import DenyList

log = logging.getLogger(__name__)

PATCH_FIELDS = ("workers_min", "workers_max", "idle_timeout_s", "execution_timeout_ms")
"""EndpointConfig fields REST v2 PATCH can set (``workers_standby`` only exists in the console/GraphQL)."""
BRAKE_ACTIONS = frozenset({"scale_to_zero", "pause", "escalate", "tighten"})
STOP_ACTIONS = frozenset({"scale_to_zero", "pause", "escalate"})
RULE_BRAKE_KIND: Mapping[str, BrakeKind] = {
    "runaway_job": "runaway",
    "budget_brake": "brake",
    "suspicious_traffic": "cooldown",
    "idle_leak": "idle",
    "crash_loop": "manual",
    "manual": "manual",
}
BRAKE_KIND_RULE: Mapping[str, str] = {
    "runaway": "runaway_job",
    "brake": "budget_brake",
    "cooldown": "suspicious_traffic",
    "idle": "idle_leak",
    "manual": "manual",
}


class RunPodActions:
    """What the executor needs of :class:`watchdog.client.RunPodClient` (a structural subset)."""

    async def cancel_job(self, endpoint_id: str, job_id: str) -> Any: ...
    async def patch_endpoint(self, endpoint_id: str, **fields: Any) -> EndpointConfig: ...
    async def purge_queue(self, endpoint_id: str) -> Any: ...


CheckKind = Literal["cancel", "patch", "stop", "deny", "purge"]


@dataclass
class PendingCheck:
    row: LedgerDecision
    """The ``applied`` row; verification writes a copy with the new outcome."""
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


@dataclass
class Execution:
    """What executing one decision produced, for the tick record."""

    rows: list[LedgerDecision] = field(default_factory=list)
    brake_set: BrakeState | None = None
    brake_cleared: str | None = None
    applied: bool = False
    attempted: bool = False
    """A RunPod call (or file write) was attempted: counts against the hourly cap and the cool-down."""
    saved_usd: float = 0.0


def brake_entry(state: BrakeState, rule: str | None = None) -> BrakeEntry:
    """A ledger brake row as the policy sees it (its rule from ``rule`` or the brake kind)."""
    rule = rule or BRAKE_KIND_RULE.get(state.kind, "manual")
    previous = dict(state.previous or {})
    if "idle_timeout_s" in previous:
        kind: Literal["scale_to_zero", "pause", "tighten"] = "tighten"
    elif rule == "budget_brake" or state.kind == "manual":
        kind = "pause"
    else:
        kind = "scale_to_zero"
    return BrakeEntry(state.endpoint_id, rule, kind, state.since, previous, state.until)


class Executor:
    def __init__(
        self,
        client: Any,
        *,
        deny_list_path: str | None = None,
        verify_within_ticks: int = 6,
    ) -> None:
        self.client = client
        self.deny_list_path = deny_list_path
        self.verify_within_ticks = verify_within_ticks
        self.pending: list[PendingCheck] = []

    async def execute(self, decision: Decision, now: float, *, brakes: Mapping[str, BrakeState]) -> Execution:
        """Carry out one decision (or only record it, in dry-run). Never raises for a RunPod failure."""
        base = LedgerDecision(
            at=now,
            rule=decision.rule,
            action=decision.action,
            mode=decision.mode,
            outcome="proposed",
            reason=decision.reason,
            endpoint_id=decision.endpoint_id,
            job_id=decision.job_id,
            worker_id=decision.worker_id,
            patch=dict(decision.patch) or None,
            previous=dict(decision.previous) or None,
            saved_usd=decision.estimated_saving_usd,
            dedupe_key=decision.dedupe_key or None,
        )
        result = Execution()
        if decision.mode != "enforce":
            if decision.action in NOTIFY_ONLY_ACTIONS:  # an alert saves nothing itself (its action does)
                result.rows.append(replace(base, saved_usd=0.0))
                return result
            result.rows.append(base)
            result.saved_usd = decision.estimated_saving_usd
            return result
        if decision.action in NOTIFY_ONLY_ACTIONS:
            result.rows.append(replace(base, outcome="applied", saved_usd=0.0))
            return result
        result.attempted = True
        try:
            check = await self._call(decision)
        except (RunPodError, ValueError, OSError) as exc:
            text = f"{type(exc).__name__}: {exc}"
            log.warning("%s %s on %s failed: %s", decision.rule, decision.action, decision.endpoint_id, text)
            result.rows.append(replace(base, outcome="failed", saved_usd=0.0, error=text[:500]))
            return result
        applied = replace(base, outcome="applied")
        result.rows.append(applied)
        result.applied = True
        result.saved_usd = decision.estimated_saving_usd
        log.info(
            "%s: %s on %s%s applied: %s",
            decision.rule,
            decision.action,
            decision.endpoint_id,
            f" (job {decision.job_id})" if decision.job_id else "",
            decision.reason,
        )
        if check is not None:
            self.pending.append(PendingCheck(applied, check, source=decision.source))
        endpoint_id = decision.endpoint_id
        if endpoint_id is not None and decision.action in BRAKE_ACTIONS:
            existing = brakes.get(endpoint_id)
            if existing is None:
                result.brake_set = BrakeState(
                    endpoint_id=endpoint_id,
                    kind=RULE_BRAKE_KIND.get(decision.rule, "manual"),
                    since=now,
                    until=decision.until,
                    month=month_start(now),
                    previous=dict(decision.previous),
                )
            else:  # stacked: keep the original configuration to restore
                merged = {**dict(decision.previous), **dict(existing.previous or {})}
                result.brake_set = replace(existing, previous=merged)
        elif endpoint_id is not None and decision.action == "restore":
            result.brake_cleared = endpoint_id
        return result

    async def _call(self, decision: Decision) -> CheckKind | None:
        action, endpoint_id = decision.action, decision.endpoint_id
        if action == "deny_list":
            if not self.deny_list_path:
                raise ValueError("pings.deny_list_path is not configured")
            if not decision.source:
                raise ValueError("no traffic source to deny")
            DenyList(self.deny_list_path).add([decision.source])
            return "deny"
        if endpoint_id is None:
            raise ValueError(f"action {action!r} needs an endpoint")
        if action == "cancel_job":
            if not decision.job_id:
                raise ValueError("cancel_job needs a job id")
            await self.client.cancel_job(endpoint_id, decision.job_id)
            return "cancel"
        if action == "purge_queue":
            await self.client.purge_queue(endpoint_id)
            return "purge"
        if action in BRAKE_ACTIONS or action in ("patch_config", "restore"):
            fields = patch_arguments(decision.patch)
            await self.client.patch_endpoint(endpoint_id, **fields)
            return "stop" if action in STOP_ACTIONS else "patch"
        raise ValueError(f"the executor does not know the action {action!r}")

    def verify(self, observation: Observation) -> list[LedgerDecision]:
        """Check every pending applied decision against this tick's observation; return the new rows."""
        rows: list[LedgerDecision] = []
        still: list[PendingCheck] = []
        for check in self.pending:
            check.ticks += 1
            verdict = self._check(check, observation)
            if verdict is not None:
                rows.append(
                    replace(check.row, at=observation.now, outcome="verified", reason=f"verified: {verdict}")
                )
                continue
            if check.ticks >= self.verify_within_ticks:
                rows.append(
                    replace(
                        check.row,
                        at=observation.now,
                        outcome="not_verified",
                        saved_usd=0.0,
                        reason=f"not verified after {check.ticks} ticks: {check.row.reason}",
                    )
                )
                continue
            still.append(check)
        self.pending = still
        return rows

    def _check(self, check: PendingCheck, seen: Observation) -> str | None:
        row = check.row
        endpoint_id = row.endpoint_id or ""
        workers = seen.workers.get(endpoint_id)
        if check.kind == "deny":
            return "source is in the deny list" if self._denied(check.source) else None
        if workers is None and check.kind != "deny":
            return None  # not observed this tick
        if check.kind == "cancel":
            job_id = row.job_id or ""
            status = seen.jobs.get(job_id)
            terminal = job_id in seen.gone_jobs or (status is not None and status.terminal)
            billed = [w for w in workers or () if w.id == row.worker_id and w.status in BILLED_STATES]
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
        wanted = {k: v for k, v in (row.patch or {}).items() if k in PATCH_FIELDS and v is not None}
        if any(getattr(config, k) != v for k, v in wanted.items()):
            return None
        if check.kind == "stop":
            if any(w.status in BILLED_STATES for w in workers or ()):
                return None
            return "workers max is 0 and no billed worker is left"
        return "endpoint shows " + ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))

    def denied_sources(self) -> set[str]:
        """The sources the deny-list file lists now (empty without a deny list)."""
        return DenyList(self.deny_list_path).read() if self.deny_list_path else set()

    def _denied(self, source: str | None) -> bool:
        if not self.deny_list_path or not source:
            return False
        return source in DenyList(self.deny_list_path).read()


def patch_arguments(patch: Mapping[str, object]) -> dict[str, Any]:
    """Decision patch (EndpointConfig field names) → ``RunPodClient.patch_endpoint`` keyword arguments.

    Raises ValueError for a field REST v2 cannot set, or when nothing is left to send."""
    fields: dict[str, Any] = {}
    for name, value in patch.items():
        if name not in PATCH_FIELDS:
            raise ValueError(
                f"{name} cannot be changed through the REST API; change it in the RunPod console"
            )
        if value is None:
            continue
        fields[name] = int(value)  # type: ignore[call-overload]
    if not fields:
        raise ValueError("nothing to change")
    return fields
