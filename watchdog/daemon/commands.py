"""Control-socket commands (pause, restore, cancel a job, set a rule's mode, acknowledge an alert): an
operator's action, carried out through the same executor as a tick's decisions and recorded the same way.

A command runs under the daemon's lock, between ticks. Its request is recorded first (the ledger's
``commands`` table: the intent is on disk before anything is done), then it acts, then everything it did
(the decision steps, the brake it set or cleared, the alert, the acknowledgement, the command's result and
the saved state) is written in ONE ledger transaction, so a pause is never lost if the daemon dies before
its next tick.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchdog.config import Config
from watchdog.daemon.execute import RunPodActions, brake_entry, execute
from watchdog.daemon.notices import command_alert, events_of
from watchdog.daemon.state import DaemonState, state_meta
from watchdog.errors import RunPodError
from watchdog.ledger import BrakeState, CommandRecord, DecisionStep, Ledger
from watchdog.logwatch import LogTailer
from watchdog.models import EndpointConfig
from watchdog.policy import Decision, restore_decisions
from watchdog.traffic import DenyList
from watchdog.vocabulary import CONFIGURABLE_RULES, Action, CommandKind, Mode, Outcome, Rule

log = logging.getLogger(__name__)

INHERIT = "inherit"
"""The rule mode that removes a dashboard override (the configuration's mode applies again)."""


class CommandClient(RunPodActions, Protocol):
    async def get_endpoint(self, endpoint_id: str) -> EndpointConfig: ...


class CommandRejected(ValueError):
    """The command is not valid (unknown kind, missing argument, nothing to restore); nothing was done."""


@dataclass
class Carried:
    """What a command did."""

    steps: list[DecisionStep] = field(default_factory=list)
    brakes_set: list[BrakeState] = field(default_factory=list)
    brakes_cleared: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(step.outcome == Outcome.APPLIED for step in self.steps)


async def run_command(
    kind: str,
    args: Mapping[str, Any],
    *,
    state: DaemonState,
    client: CommandClient,
    ledger: Ledger,
    tailers: Sequence[LogTailer],
    deny_list: DenyList | None,
    config: Config,
    now: float,
) -> dict[str, Any]:
    """Carry out one command and record it; returns the answer for the socket.

    Raises:
        CommandRejected: the command is invalid (recorded as rejected).
        RunPodError: RunPod refused (recorded as failed).
    """
    command_id = ledger.enqueue_command(kind, dict(args), now)
    try:
        _refuse_under_dry_run_only(kind, args, config)
        carried = await _carry_out(kind, args, state, client, deny_list, now)
    except (CommandRejected, KeyError, LookupError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, CommandRejected) else f"missing or invalid argument: {exc}"
        ledger.finish_command(command_id, "rejected", {"error": reason}, now)
        raise CommandRejected(reason) from exc
    except RunPodError as exc:
        ledger.finish_command(command_id, "failed", {"error": str(exc)}, now)
        raise
    who = _who(args)
    alerts = [command_alert(step, who, now) for step in carried.steps if step.action != Action.SET_RULE_MODE]
    answer = {"ok": carried.ok, **carried.answer}
    ledger.record_command(
        CommandRecord(
            command_id=command_id,
            at=now,
            state="done" if carried.ok else "failed",
            result=answer,
            decisions=tuple(carried.steps),
            brakes_set=tuple(carried.brakes_set),
            brakes_cleared=tuple(carried.brakes_cleared),
            alerts=tuple(alerts),
            acknowledged=tuple(carried.acknowledged),
            meta=state_meta(state, tailers),
        )
    )
    for event in events_of(carried.steps, alerts, usd_per_eur=config.budget.usd_per_eur, now=now):
        state.events.appendleft(event)
    return answer


ACTING_COMMANDS = frozenset({CommandKind.PAUSE, CommandKind.RESTORE, CommandKind.CANCEL_JOB})


def _refuse_under_dry_run_only(kind: str, args: Mapping[str, Any], config: Config) -> None:
    """Under ``policy.dry_run_only`` (``run --dry-run``) nothing is changed at RunPod, by hand either, and no
    rule can be switched to enforce."""
    if not config.policy.dry_run_only:
        return
    if kind in ACTING_COMMANDS or (kind == CommandKind.SET_RULE_MODE and args.get("mode") == Mode.ENFORCE):
        raise CommandRejected(
            "this daemon runs with dry_run_only (run --dry-run): nothing at RunPod is changed, by hand "
            "either; restart it without --dry-run to act"
        )


def _who(args: Mapping[str, Any]) -> str:
    return str(args.get("by") or "operator")[:80]


async def _carry_out(  # noqa: PLR0917
    kind: str,
    args: Mapping[str, Any],
    state: DaemonState,
    client: CommandClient,
    deny_list: DenyList | None,
    now: float,
) -> Carried:
    try:
        command = CommandKind(kind)
    except ValueError:
        raise CommandRejected(f"unknown command {kind!r}; expected one of {', '.join(CommandKind)}") from None
    if command == CommandKind.ACK_ALERT:
        key = str(args["key"])
        return Carried(acknowledged=[key], answer={"acknowledged": key})
    if command == CommandKind.SET_RULE_MODE:
        return _set_rule_mode(args, state, now)
    carried = Carried()
    results = []
    for decision in await _decisions(command, args, state, client, now):
        execution = await execute(decision, client, now=now, brakes=state.brakes, deny_list=deny_list)
        state.absorb(decision, execution, now)
        carried.steps.extend(execution.steps)
        if execution.brake_set is not None:
            carried.brakes_set.append(execution.brake_set)
        if execution.brake_cleared is not None:
            carried.brakes_cleared.append(execution.brake_cleared)
        last = execution.steps[-1] if execution.steps else None
        results.append(
            {
                "endpoint_id": decision.endpoint_id,
                "action": decision.action,
                "outcome": last.outcome if last else Outcome.SKIPPED,
                "error": last.error if last else None,
            }
        )
    carried.answer = {"results": results}
    return carried


def _set_rule_mode(args: Mapping[str, Any], state: DaemonState, now: float) -> Carried:
    rule, mode = str(args["rule"]), str(args["mode"])
    if rule not in CONFIGURABLE_RULES:
        raise CommandRejected(f"unknown rule {rule!r}; rules are {', '.join(CONFIGURABLE_RULES)}")
    if mode not in (*Mode, INHERIT):
        raise CommandRejected(f"mode must be {', '.join(Mode)} or {INHERIT}")
    endpoint_id = args.get("endpoint_id")
    key = f"{rule}|{endpoint_id}" if endpoint_id else rule
    if mode == INHERIT:
        state.rule_overrides.pop(key, None)
    else:
        state.rule_overrides[key] = Mode(mode)
    step = DecisionStep(
        at=now,
        rule=Rule.MANUAL,
        action=Action.SET_RULE_MODE,
        mode=Mode.ENFORCE,
        outcome=Outcome.APPLIED,
        reason=f"{_who(args)} set rule {rule} to {mode}" + (f" on {endpoint_id}" if endpoint_id else ""),
        endpoint_id=str(endpoint_id) if endpoint_id else None,
    )
    state.count_step(step)
    log.info("%s", step.reason)
    return Carried(steps=[step], answer={"rule": rule, "mode": mode, "overrides": dict(state.rule_overrides)})


async def _decisions(
    command: CommandKind, args: Mapping[str, Any], state: DaemonState, client: CommandClient, now: float
) -> list[Decision]:
    who = _who(args)
    endpoint_id = str(args["endpoint_id"]) if args.get("endpoint_id") else None
    if command == CommandKind.PAUSE:
        if endpoint_id is None:
            raise CommandRejected("pause needs an endpoint_id")
        brake = state.brakes.get(endpoint_id)
        previous: dict[str, object] = dict((brake.previous or {}) if brake else {})
        if not previous:
            previous = {"workers_max": (await client.get_endpoint(endpoint_id)).workers_max}
        return [
            Decision(
                rule=Rule.MANUAL,
                action=Action.PAUSE,
                endpoint_id=endpoint_id,
                mode=Mode.ENFORCE,
                reason=f"paused by {who} from the dashboard",
                severity="warning",
                patch={"workers_max": 0},
                previous=previous,
                dedupe_key=f"manual:pause:{endpoint_id}:{int(now)}",
            )
        ]
    if command == CommandKind.RESTORE:
        if endpoint_id is not None and endpoint_id not in state.brakes:
            raise CommandRejected(f"{endpoint_id} is not held by the watchdog")
        brakes = [brake_entry(b) for _, b in sorted(state.brakes.items())]
        ids = None if endpoint_id is None else [endpoint_id]
        return [
            dataclasses.replace(
                decision, rule=Rule.MANUAL, dedupe_key=f"manual:restore:{decision.endpoint_id}:{int(now)}"
            )
            for decision in restore_decisions(brakes, now, reason=f"restored by {who}", endpoint_ids=ids)
        ]
    if command == CommandKind.CANCEL_JOB:
        job_id = str(args["job_id"])
        if endpoint_id is None:
            raise CommandRejected("cancel_job needs an endpoint_id")
        return [
            Decision(
                rule=Rule.MANUAL,
                action=Action.CANCEL_JOB,
                endpoint_id=endpoint_id,
                mode=Mode.ENFORCE,
                reason=f"job {job_id} cancelled by {who} from the dashboard",
                severity="warning",
                job_id=job_id,
                dedupe_key=f"manual:cancel_job:{endpoint_id}:{job_id}",
            )
        ]
    raise CommandRejected(f"unknown command {command!r}")
