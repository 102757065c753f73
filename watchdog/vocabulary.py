"""The watchdog's vocabulary, defined once: rules, actions, outcomes, modes, brake kinds, worker states,
command kinds, event and alert kinds, spend sources.

Why one module: every one of these words is read in several places (the policy decides with them, the
executor acts on them, the ledger stores them, the metrics pre-seed a series for each, the dashboard and
the demo show them). When each place kept its own tuple of strings, the copies drifted. Here each word is
a :class:`~enum.StrEnum` member (it *is* its string, so JSON, SQLite and Prometheus labels need no
conversion), and each grouping (which actions stop an endpoint, which worker states bill, which actions a
rule may take) is a constant beside it. Everything else imports from here; nothing here imports anything
of the product.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Mode(StrEnum):
    """How a decision is carried out."""

    ENFORCE = "enforce"
    """Act on RunPod (cancel, patch, pause), record the outcome, verify it."""
    DRY_RUN = "dry-run"
    """Touch nothing; record what would have been done and the money it would have saved."""


class RuleMode(StrEnum):
    """A rule's mode as ``[policy.rules]`` and the dashboard set it."""

    INHERIT = "inherit"
    """Follow the endpoint's mode."""
    ENFORCE = "enforce"
    DRY_RUN = "dry-run"


class Rule(StrEnum):
    """The policy's rules, in evaluation order, which is also their priority: the most expensive failure
    first (it gets an endpoint's action budget first), config drift last (a risk, not yet a loss)."""

    BLIND = "blind"
    """The daemon cannot see RunPod: no action at all, one critical alert."""
    RUNAWAY_JOB = "runaway_job"
    CRASH_LOOP = "crash_loop"
    IDLE_LEAK = "idle_leak"
    BUDGET_BRAKE = "budget_brake"
    SUSPICIOUS_TRAFFIC = "suspicious_traffic"
    CONFIG_DRIFT = "config_drift"
    MANUAL = "manual"
    """An operator's command through the control socket (the dashboard)."""


CONFIGURABLE_RULES: tuple[Rule, ...] = tuple(r for r in Rule if r not in (Rule.BLIND, Rule.MANUAL))
"""The rules whose mode ``[policy.rules]`` (and the dashboard) can set, in evaluation order."""


class Action(StrEnum):
    """What a decision does, in the order decisions of one rule and endpoint are carried out."""

    CANCEL_JOB = "cancel_job"
    ESCALATE = "escalate"
    """A cancelled job's worker still bills: scale the endpoint to zero."""
    SCALE_TO_ZERO = "scale_to_zero"
    PAUSE = "pause"
    PURGE_QUEUE = "purge_queue"
    TIGHTEN = "tighten"
    """Budget forecast overrun: max 1 worker and a short idle timeout."""
    PATCH_CONFIG = "patch_config"
    DENY_LIST = "deny_list"
    RESTORE = "restore"
    SET_RULE_MODE = "set_rule_mode"
    ALERT = "alert"
    NONE = "none"


NOTIFY_ONLY_ACTIONS: frozenset[Action] = frozenset({Action.ALERT, Action.NONE})
"""Actions that change nothing at RunPod: never capped, never cooled down, never verified."""
STOP_ACTIONS: frozenset[Action] = frozenset({Action.ESCALATE, Action.SCALE_TO_ZERO, Action.PAUSE})
"""Actions that set workers_max to 0: one per endpoint per tick is enough."""
BRAKE_ACTIONS: frozenset[Action] = STOP_ACTIONS | {Action.TIGHTEN}
"""Actions that hold an endpoint below its configuration until a ``restore`` puts it back."""

RULE_ACTIONS: Mapping[Rule, tuple[Action, ...]] = {
    Rule.BLIND: (Action.NONE,),
    Rule.RUNAWAY_JOB: (
        Action.CANCEL_JOB,
        Action.ESCALATE,
        Action.SCALE_TO_ZERO,
        Action.ALERT,
        Action.RESTORE,
    ),
    Rule.CRASH_LOOP: (Action.SCALE_TO_ZERO, Action.ALERT, Action.RESTORE),
    Rule.IDLE_LEAK: (Action.SCALE_TO_ZERO, Action.RESTORE),
    Rule.BUDGET_BRAKE: (Action.PAUSE, Action.PURGE_QUEUE, Action.TIGHTEN, Action.ALERT, Action.RESTORE),
    Rule.SUSPICIOUS_TRAFFIC: (Action.SCALE_TO_ZERO, Action.DENY_LIST, Action.ALERT, Action.RESTORE),
    Rule.CONFIG_DRIFT: (Action.PATCH_CONFIG,),
    Rule.MANUAL: (Action.CANCEL_JOB, Action.PAUSE, Action.RESTORE, Action.SET_RULE_MODE),
}
"""Every (rule, action) pair the daemon can record; the metrics pre-seed exactly these series, and a
policy test checks that no rule ever decides outside its row."""


class Outcome(StrEnum):
    """One step of a decision's life, as the ledger records it."""

    INTENDED = "intended"
    """About to act: written before the RunPod call, so a crash between the call and the tick's record
    still leaves a trace of what was done."""
    PROPOSED = "proposed"
    """Dry-run (or held back by the action cap or a cool-down): recorded, not done."""
    APPLIED = "applied"
    FAILED = "failed"
    VERIFIED = "verified"
    """A later tick saw the effect (the job ended, the worker left, the config changed)."""
    NOT_VERIFIED = "not_verified"
    SKIPPED = "skipped"


class BrakeKind(StrEnum):
    """Why the daemon holds an endpoint below its configuration (stored with the brake)."""

    RUNAWAY = "runaway"
    BUDGET = "brake"
    COOLDOWN = "cooldown"
    IDLE = "idle"
    MANUAL = "manual"


RULE_BRAKE_KIND: Mapping[Rule, BrakeKind] = {
    Rule.RUNAWAY_JOB: BrakeKind.RUNAWAY,
    Rule.BUDGET_BRAKE: BrakeKind.BUDGET,
    Rule.SUSPICIOUS_TRAFFIC: BrakeKind.COOLDOWN,
    Rule.IDLE_LEAK: BrakeKind.IDLE,
    Rule.CRASH_LOOP: BrakeKind.MANUAL,
    Rule.MANUAL: BrakeKind.MANUAL,
}
"""The kind of brake each rule's stop sets (a crash loop waits for a human, like a manual pause)."""


class WorkerStatus(StrEnum):
    """A worker's status as REST v2 reports it (runpod-api.md §3.3)."""

    RUNNING = "RUNNING"
    IDLE = "IDLE"
    INITIALIZING = "INITIALIZING"
    THROTTLED = "THROTTLED"
    UNHEALTHY = "UNHEALTHY"


BILLED_BY_DEFAULT: frozenset[WorkerStatus] = frozenset(
    {WorkerStatus.RUNNING, WorkerStatus.IDLE, WorkerStatus.INITIALIZING}
)
"""Worker statuses the money model bills: the conservative reading of an uncertain fact (runpod-api.md
§9: the 2025 docs bill the cold start, the 2026 state table does not; the idle tail after a job is
billed). THROTTLED and UNHEALTHY workers hold no GPU. The default of ``[prices] billed_states`` (the one
place it is written down); :mod:`watchdog.reconcile` says when RunPod's bill disagrees with it."""


class CommandKind(StrEnum):
    """What the control socket accepts from the dashboard (or a sysadmin's script)."""

    PAUSE = "pause"
    RESTORE = "restore"
    CANCEL_JOB = "cancel_job"
    SET_RULE_MODE = "set_rule_mode"
    ACK_ALERT = "ack_alert"


class EventKind(StrEnum):
    """The kinds of line the dashboard's events log shows."""

    ACTION = "action"
    PROPOSAL = "proposal"
    ALERT = "alert"
    DRIFT = "drift"
    TRAFFIC = "traffic"
    BLIND = "blind"


class AlertKind(StrEnum):
    """The kinds of Slack alert (a ledger column and a metric label)."""

    BLIND = "blind"
    BUDGET = "budget"
    ACTION = "action"
    DRIFT = "drift"
    TRAFFIC = "traffic"
    COST = "cost"
    COLD_START = "cold_start"
    CONFIG = "config"
    LEDGER = "ledger"
    ACCOUNT = "account"
    BILLED_STATES = "billed_states"
    """RunPod's bill consistently disagrees with the estimate by one worker state's time
    (:mod:`watchdog.reconcile`): a notice, at most once a day while it holds."""


class SpendSource(StrEnum):
    """Where a month-to-date figure comes from."""

    ESTIMATE = "estimate"
    """The daemon's live estimate: worker seconds by status × the price table."""
    BILLED = "billed"
    """RunPod's hourly billing (lags by hours)."""
    FIXED = "fixed"
    """Fixed monthly costs from the configuration (the Hugging Face space)."""
