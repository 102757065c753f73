"""Everything the daemon remembers from one tick to the next, in one place, and how it is saved to and
restored from the ledger.

One concept, one home: brakes live in :attr:`DaemonState.brakes` (with the rule that set them), the billing
schedule in :class:`BillingSchedule`, de-duplication in :class:`Dedupe`, blindness in :class:`Sight`, the
month's and the day's counters in :class:`Calendar` (which restarts them when the UTC month or day
changes), the live estimate's chain in :class:`Accounting`, what RunPod showed in the
:class:`~watchdog.daemon.tracker.Tracker`, what the daemon did in
:class:`~watchdog.daemon.tracker.OwnActions`, and the checks of applied actions in ``pending_checks``.

Saving and restoring happen here and nowhere else: :func:`state_meta` gives the ``meta`` entries written in
the same ledger transaction as each tick or command, :func:`restore_state` rebuilds the state from the
ledger at start-up (brakes, this month's requests, the daemon's recent actions and cancels, the last
tick's workers for a quick restart, the saved meta). This module reads the ledger but never writes it, and
it does no other I/O.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from watchdog.client import QuotaWindow
from watchdog.clock import DAY_S, month_start
from watchdog.daemon.execute import Execution, PendingCheck
from watchdog.daemon.tracker import OwnActions, Tracker, WorkerTrack
from watchdog.ledger import Alert, BrakeState, DecisionStep, LedgerReadModel
from watchdog.logwatch import LogPosition, LogTailer
from watchdog.models import EndpointConfig, Health, Worker
from watchdog.policy import ActionRecord, Deadline, Decision, EndpointFacts
from watchdog.status import EventView
from watchdog.vocabulary import Action, Mode, Outcome, SpendSource, WorkerStatus

log = logging.getLogger(__name__)

MAX_EVENTS = 30
"""Events the dashboard's log shows (newest first)."""
HEALTH_SOURCE = "(health)"
MAX_UNRECORDED = 2000
"""Decision steps kept in memory while the ledger refuses writes (a day of a busy account's steps)."""
"""Traffic rows derived from /health counter growth (no caller known)."""
STATE_META_KEY = "daemon_state"
"""``meta`` key of the saved part of the state (JSON), written with every tick and command."""
_LEGACY_META_KEYS = ("log_positions", "rule_overrides", "tiers")
"""Keys earlier versions wrote one by one; read once when no ``daemon_state`` exists yet."""


def month_label(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m")


def day_start(ts: float) -> float:
    return ts - (ts % DAY_S)


@dataclass
class Calendar:
    """Counters that restart with the UTC month (requests, tiers, GPU seconds, alerted budget thresholds)
    or the UTC day (GPU seconds today). :func:`roll_calendar` is the one place they restart."""

    month: float
    """Start of the UTC month these counters belong to."""
    day: float
    """Start of the UTC day ``gpu_seconds_today`` belongs to."""
    requests: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Endpoint → requests this month (per minute, the larger of the logs' and /health's count)."""
    free_requests: int = 0
    """This month's requests whose log line carried the free tier."""
    tiered_requests: int = 0
    """This month's requests whose log line carried any tier."""
    gpu_seconds: defaultdict[str, defaultdict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    """Endpoint → GPU type → billed GPU seconds this month (from the live estimate)."""
    gpu_seconds_today: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    alerted_thresholds: set[float] = field(default_factory=set)
    """Budget thresholds already alerted this month."""

    @classmethod
    def starting(cls, now: float) -> Calendar:
        return cls(month=month_start(now), day=day_start(now))


def roll_calendar(calendar: Calendar, now: float) -> Calendar:
    """The calendar for ``now``: the same object within its day; fresh day counters on a new UTC day; all
    counters fresh in a new UTC month."""
    if month_start(now) != calendar.month:
        return Calendar.starting(now)
    if day_start(now) != calendar.day:
        calendar.day = day_start(now)
        calendar.gpu_seconds_today.clear()
    return calendar


@dataclass
class Sight:
    """Whether the daemon sees RunPod."""

    last_ok_at: float | None = None
    """When the last tick read RunPod completely."""
    blind_since: float | None = None
    """Start of the current blind episode (None while the daemon sees)."""
    blind_logged_at: float | None = None
    """When the current blind episode was last logged (the log slows down: 1, 2, 4 ... 60 minutes)."""
    blind_log_every_s: float = 0.0


@dataclass
class AccountView:
    """What the daemon knows of the account as a whole (none of it drives a policy)."""

    balance_usd: float | None = None
    spend_per_hr_usd: float | None = None
    spend_rate_cap_usd_per_hr: float | None = None
    """RunPod's hourly spend cap (REST v2 ``/account/limits``), checked only when a worker starts: it never
    stops a worker already running."""
    limits_read_at: float | None = None
    limits_failed_at: float | None = None
    problem: str | None = None
    """Why the balance is unknown (GraphQL failing or retired), None while it is known."""
    problem_since: float | None = None

    def limits_due(self, now: float, interval_s: float) -> bool:
        last = max((t for t in (self.limits_read_at, self.limits_failed_at) if t is not None), default=None)
        return last is None or now - last >= interval_s


@dataclass
class ReadSchedule:
    """What the read planner remembers between ticks: RunPod's REST quota as a token bucket, and what was
    last read of each endpoint (so what has not changed can wait)."""

    tokens: float | None = None
    """REST v2 calls the daemon may still spend on reads that can wait (None before the first tick)."""
    refilled_at: float | None = None
    endpoints: tuple[EndpointConfig, ...] = ()
    listed_at: float | None = None
    workers: dict[str, tuple[Worker, ...]] = field(default_factory=dict)
    workers_read_at: dict[str, float] = field(default_factory=dict)
    health: dict[str, Health] = field(default_factory=dict)
    """Endpoint → its ``/health`` as last read (idle endpoints' is carried between their turns)."""
    health_read_at: dict[str, float] = field(default_factory=dict)
    quota: QuotaWindow | None = None
    """RunPod's most restrictive REST v2 window as its last answer reported it (None: not reported yet)."""
    rest_calls: deque[tuple[float, int]] = field(default_factory=deque)
    """(tick, REST v2 calls its reading made) over the last minute: the quota use the status publishes."""

    def rest_calls_last_minute(self, now: float) -> int:
        return sum(calls for at, calls in self.rest_calls if now - at < 60.0)


@dataclass
class BillingSchedule:
    """RunPod's billing is read every ``billing_interval_s``, and a failed read waits as long."""

    last_read_at: float | None = None
    failed_at: float | None = None

    def due(self, now: float, interval_s: float) -> bool:
        last = max((t for t in (self.last_read_at, self.failed_at) if t is not None), default=None)
        return last is None or now - last >= interval_s


@dataclass
class Accounting:
    """The chain of accounted intervals behind the live estimate (see :mod:`watchdog.daemon.accounting`)."""

    accounted_until: float | None = None
    """End of the last interval the ledger accounted (None on a ledger that never accounted)."""
    workers: dict[str, tuple[Worker, ...]] = field(default_factory=dict)
    """The previous successful poll's workers per endpoint: what the next interval is accrued from."""
    workers_at: float | None = None
    """When ``workers`` were seen (None: nothing seen since the start, the next interval is unobserved)."""
    restored_open_workers: dict[str, str] = field(default_factory=dict)
    """Worker → endpoint of sessions the ledger holds open from before a long restart gap: closed at the
    first tick that does not see them."""


@dataclass
class Dedupe:
    """What was already said, so the ledger is an audit log and Slack is not a tick log."""

    recorded: dict[str, float] = field(default_factory=dict)
    """Decision key → when a repeatable decision (a proposal, a notice) was last recorded."""
    raised: dict[str, float] = field(default_factory=dict)
    """Alert key → when this daemon first raised it (forgotten after two days)."""

    def prune(self, now: float) -> None:
        """Forget recordings older than a day and alerts raised more than two days ago."""
        self.recorded = {k: t for k, t in self.recorded.items() if now - t < DAY_S}
        self.raised = {k: t for k, t in self.raised.items() if now - t <= 2 * DAY_S}


@dataclass
class Unrecorded:
    """What a tick or a command did while the ledger refused to record it (a full disk, a read-only file):
    written with the next tick the ledger accepts, so an action is never lost from the audit log."""

    decisions: list[DecisionStep] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    brakes_set: dict[str, BrakeState] = field(default_factory=dict)
    brakes_cleared: list[str] = field(default_factory=list)
    dropped: int = 0
    """Steps dropped because the carry grew past ``MAX_UNRECORDED`` (counted, said in the alert)."""

    def __bool__(self) -> bool:
        return bool(self.decisions or self.alerts or self.brakes_set or self.brakes_cleared)

    def carry(
        self,
        decisions: Sequence[DecisionStep],
        alerts: Sequence[Alert],
        brakes_set: Sequence[BrakeState],
        brakes_cleared: Sequence[str],
    ) -> None:
        self.decisions.extend(decisions)
        self.alerts.extend(alerts)
        for endpoint_id in brakes_cleared:
            self.brakes_set.pop(endpoint_id, None)
            self.brakes_cleared.append(endpoint_id)
        for brake in brakes_set:
            self.brakes_set[brake.endpoint_id] = brake
        excess = len(self.decisions) - MAX_UNRECORDED
        if excess > 0:
            self.dropped += excess
            del self.decisions[:excess]
        del self.alerts[:-MAX_UNRECORDED]


@dataclass
class LedgerTrouble:
    """Whether the ledger accepts writes; while it does not, the daemon keeps guarding from memory."""

    since: float | None = None
    problem: str | None = None
    unrecorded: Unrecorded = field(default_factory=Unrecorded)


@dataclass
class Counters:
    """Counts since the daemon started (Prometheus counters)."""

    api_calls: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    """``"ROUTE|STATUS"`` → calls."""
    actions: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    """``"rule|action|mode|outcome"`` → decision steps recorded."""
    saved_usd: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """``"rule|mode"`` → money saved (enforce) or that would have been (dry-run)."""
    bad_records: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Kind → records skipped as hostile or malformed (a log line, a job id in a ping, a job's answer)."""


@dataclass
class DaemonState:
    """Everything that outlives a tick. Only :func:`watchdog.daemon.tick.run_tick` and
    :func:`watchdog.daemon.commands.run_command` change it, each at named steps."""

    started_at: float
    calendar: Calendar
    sight: Sight = field(default_factory=Sight)
    billing: BillingSchedule = field(default_factory=BillingSchedule)
    accounting: Accounting = field(default_factory=Accounting)
    tracker: Tracker = field(default_factory=Tracker)
    own: OwnActions = field(default_factory=OwnActions)
    brakes: dict[str, BrakeState] = field(default_factory=dict)
    """Endpoint → the brake holding it down (with the rule that set it and what to restore)."""
    rule_overrides: dict[str, Mode] = field(default_factory=dict)
    """``"rule"`` or ``"rule|endpoint_id"`` → mode, set from the dashboard (saved with the state)."""
    pending_checks: list[PendingCheck] = field(default_factory=list)
    """Applied actions whose effect later ticks still have to see."""
    facts: dict[str, EndpointFacts] = field(default_factory=dict)
    """What the policy knew of each endpoint at the last tick that saw RunPod: a deadline check starts
    from it and replaces what it reads afresh."""
    deadlines: list[Deadline] = field(default_factory=list)
    """When the runaway rule fires next, earliest first: the service checks then, not at its next tick."""
    refused_sources: set[str] = field(default_factory=set)
    """Deny-list entries that failed to write or never showed in the file: never tried again."""
    dedupe: Dedupe = field(default_factory=Dedupe)
    counters: Counters = field(default_factory=Counters)
    account: AccountView = field(default_factory=AccountView)
    first_enforced_at: float | None = None
    """When this ledger's account was first watched in enforce mode (the first enforce tick says what it
    changed, once, in one alert)."""
    reads: ReadSchedule = field(default_factory=ReadSchedule)
    events: deque[EventView] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    ledger: LedgerTrouble = field(default_factory=LedgerTrouble)
    status_written: tuple[float, tuple[bool, bool]] | None = None
    """When the status was last written to the ledger, and its (blind, ledger failing) flags then."""
    stored_spend: dict[tuple[str, float, SpendSource], float] | None = None
    """The month's hours as the ledger last returned them: the month to date when a read fails."""
    ticks: int = 0
    """Ticks run since start."""

    @classmethod
    def fresh(cls, now: float) -> DaemonState:
        return cls(started_at=now, calendar=Calendar.starting(now))

    def absorb(self, decision: Decision, execution: Execution, now: float) -> None:
        """Fold one executed decision into the memory: the action (for the cap and the cool-down), the
        cancel to watch, the budget threshold alerted, the brake set or cleared, the check to run on later
        ticks, and the counters."""
        if execution.attempted:
            self.own.note_action(
                ActionRecord(now, decision.endpoint_id, decision.rule, decision.action, execution.applied)
            )
        cancelled = execution.applied and decision.action == Action.CANCEL_JOB
        if cancelled and decision.endpoint_id and decision.job_id:
            self.own.note_cancel(decision.endpoint_id, decision.job_id, decision.worker_id, now)
        if decision.threshold is not None:
            self.calendar.alerted_thresholds.add(decision.threshold)
        if execution.brake_set is not None:
            self.brakes[execution.brake_set.endpoint_id] = execution.brake_set
        if execution.brake_cleared is not None:
            self.brakes.pop(execution.brake_cleared, None)
        if execution.check is not None:
            self.pending_checks.append(execution.check)
        if decision.action == Action.DENY_LIST and execution.attempted and not execution.applied:
            self.refused_sources.add(decision.source or "")
        for step in execution.steps:
            self.count_step(step)

    def shift_times(self, delta: float) -> None:
        """The system clock jumped by ``delta`` seconds (NTP stepped it, someone set it): move every time
        the state remembers by as much, so durations stay true and a wall-clock step neither ages a job
        nor makes it young. The accounting chain is the ledger's and is not moved; the next interval is
        accounted as unobserved (RunPod's billing covers it), or waits until time passes its end again."""
        self.tracker.shift_times(delta)
        self.own.shift_times(delta)
        sight, billing = self.sight, self.billing
        sight.last_ok_at = None if sight.last_ok_at is None else sight.last_ok_at + delta
        sight.blind_since = None if sight.blind_since is None else sight.blind_since + delta
        sight.blind_logged_at = None if sight.blind_logged_at is None else sight.blind_logged_at + delta
        billing.last_read_at = None if billing.last_read_at is None else billing.last_read_at + delta
        billing.failed_at = None if billing.failed_at is None else billing.failed_at + delta
        reads = self.reads
        reads.refilled_at = None if reads.refilled_at is None else reads.refilled_at + delta
        reads.listed_at = None if reads.listed_at is None else reads.listed_at + delta
        reads.workers_read_at = {e: at + delta for e, at in reads.workers_read_at.items()}
        reads.health_read_at = {e: at + delta for e, at in reads.health_read_at.items()}
        reads.rest_calls = deque((at + delta, calls) for at, calls in reads.rest_calls)
        account = self.account
        for name in ("limits_read_at", "limits_failed_at", "problem_since"):
            at = getattr(account, name)
            setattr(account, name, None if at is None else at + delta)
        self.dedupe.recorded = {k: at + delta for k, at in self.dedupe.recorded.items()}
        self.dedupe.raised = {k: at + delta for k, at in self.dedupe.raised.items()}
        self.brakes = {
            e: replace(b, since=b.since + delta, until=None if b.until is None else b.until + delta)
            for e, b in self.brakes.items()
        }
        self.accounting.workers_at = None

    def count_step(self, step: DecisionStep) -> None:
        """Count a recorded decision step (and the money it saved, or would have) for the metrics."""
        counters = self.counters
        counters.actions[f"{step.rule}|{step.action}|{step.mode}|{step.outcome}"] += 1
        if step.outcome in (Outcome.PROPOSED, Outcome.APPLIED) and step.saved_usd:
            counters.saved_usd[f"{step.rule}|{step.mode}"] += step.saved_usd


# ------------------------------------------------------------------------------------------------------------
# Saving


def state_meta(state: DaemonState, tailers: Sequence[LogTailer]) -> dict[str, str]:
    """The ``meta`` entries that carry the saved part of the state (written with each tick or command)."""
    positions = {}
    for tailer in tailers:
        position = tailer.position()
        if position is not None:
            positions[tailer.spec.name] = [position.inode, position.offset, position.line_no]
    calendar = state.calendar
    saved = {
        "log_positions": positions,
        "rule_overrides": dict(sorted(state.rule_overrides.items())),
        "month": month_label(calendar.month),
        "tiers": {"free": calendar.free_requests, "tiered": calendar.tiered_requests},
        "alerted_thresholds": sorted(calendar.alerted_thresholds),
        "first_enforced_at": state.first_enforced_at,
    }
    return {STATE_META_KEY: json.dumps(saved, sort_keys=True)}


# ------------------------------------------------------------------------------------------------------------
# Restoring


def restore_state(
    ledger: LedgerReadModel, tailers: Sequence[LogTailer], *, now: float, stale_after_s: float
) -> DaemonState:
    """The state a daemon starting at ``now`` resumes from; moves ``tailers`` to their saved positions.

    A quick restart (the last tick was ok and less than ``stale_after_s`` ago) keeps accruing the workers
    that tick saw; after a longer gap the gap is accounted with no live estimate (RunPod's billing covers
    it) and the sessions still open are closed at the first tick that does not see them.
    """
    state = DaemonState.fresh(now)
    saved = _saved_meta(ledger)
    for tailer in tailers:
        position = saved.get("log_positions", {}).get(tailer.spec.name)
        if position:
            tailer.restore(LogPosition(int(position[0]), int(position[1]), int(position[2])))
    state.rule_overrides = {str(k): Mode(v) for k, v in saved.get("rule_overrides", {}).items()}
    first = saved.get("first_enforced_at")
    state.first_enforced_at = float(first) if isinstance(first, int | float) else None
    if saved.get("month") == month_label(now):
        tiers = saved.get("tiers", {})
        state.calendar.free_requests = int(tiers.get("free", 0))
        state.calendar.tiered_requests = int(tiers.get("tiered", 0))
        state.calendar.alerted_thresholds = {float(t) for t in saved.get("alerted_thresholds", ())}
    state.calendar.requests = _requests_this_month(ledger, now)

    state.brakes = dict(ledger.brake_states())
    state.own = OwnActions.from_ledger(ledger.recent_decisions(500), now)
    for row in ledger.recent_decisions(500):
        if row.dedupe_key:
            state.dedupe.recorded[row.dedupe_key] = max(
                row.at, state.dedupe.recorded.get(row.dedupe_key, 0.0)
            )

    accounting = state.accounting
    accounting.accounted_until = ledger.last_accounted_at()
    latest = ledger.latest_tick()
    sessions = ledger.open_worker_sessions()
    quick = (
        latest is not None
        and latest.ok
        and accounting.accounted_until is not None
        and now - accounting.accounted_until <= stale_after_s
    )
    if quick and latest is not None:
        by_endpoint: dict[str, list[Worker]] = defaultdict(list)
        for session in sessions:
            try:
                status = WorkerStatus(session.last_status)
            except ValueError:
                continue
            by_endpoint[session.endpoint_id].append(
                Worker(id=session.worker_id, status=status, gpu_type_id=session.gpu_type_id)
            )
            state.tracker.workers[session.worker_id] = WorkerTrack(
                session.endpoint_id, status, session.last_seen_at, session.first_seen_at, session.gpu_type_id
            )
        accounting.workers = {endpoint: tuple(workers) for endpoint, workers in by_endpoint.items()}
        accounting.workers_at = latest.started_at
    else:
        accounting.restored_open_workers = {s.worker_id: s.endpoint_id for s in sessions}
    if accounting.accounted_until is not None:
        log.info(
            "resuming the ledger: last accounted %.0f s ago%s",
            now - accounting.accounted_until,
            "" if quick else " (longer than stale_after_s: that gap is left to RunPod's billing)",
        )
    return state


def _saved_meta(ledger: LedgerReadModel) -> dict[str, Any]:
    text = ledger.meta(STATE_META_KEY)
    if text:
        return _json_object(text)
    legacy = {key: _json_object(ledger.meta(key) or "") for key in _LEGACY_META_KEYS}
    tiers = legacy["tiers"]
    return {
        "log_positions": legacy["log_positions"],
        "rule_overrides": legacy["rule_overrides"],
        "month": tiers.get("month"),
        "tiers": tiers,
    }


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _requests_this_month(ledger: LedgerReadModel, now: float) -> defaultdict[str, int]:
    """This month's request counts from the ledger's traffic rows: per minute the larger of the logs' count
    and the /health count (the same rule as a tick's)."""
    logs: defaultdict[tuple[str, float], int] = defaultdict(int)
    health: defaultdict[tuple[str, float], int] = defaultdict(int)
    for row in ledger.traffic_since(month_start(now)):
        (health if row.source == HEALTH_SOURCE else logs)[(row.endpoint_id, row.minute)] += row.requests
    requests: defaultdict[str, int] = defaultdict(int)
    for key in set(logs) | set(health):
        requests[key[0]] += max(logs.get(key, 0), health.get(key, 0))
    return requests
