"""One tick of the daemon: fetch → track → evaluate → execute → record → publish.

:func:`run_tick` is the recipe, and the only place a tick changes the :class:`DaemonState`; each stage
takes what it needs and returns what it produces:

1. **fetch** (:mod:`~watchdog.daemon.fetch`): new log lines, then RunPod (endpoints, workers, ``/health``,
   the open jobs' status, the billing when due). A failed read makes the tick *blind*.
2. **track** (:mod:`~watchdog.daemon.track`): the reading against the tracker's memory: durations, crash
   windows, requests, ledger rows; the live estimate of the interval (:mod:`~watchdog.daemon.accounting`)
   and the month to date.
3. **evaluate** (:mod:`~watchdog.daemon.evaluate`): the policy's decisions. A blind tick yields one
   ``blind`` decision and nothing else.
4. **execute** (:mod:`~watchdog.daemon.execute`): enforce decisions act, dry-run ones are proposals;
   earlier actions are verified against this tick's reading; the alerts are worded
   (:mod:`~watchdog.daemon.notices`).
5. **record**: everything in ONE ledger transaction (the interval, spend, billing, configs, workers, jobs,
   traffic, brakes, decision steps, alerts, the saved state and the status).
6. **publish** (:mod:`~watchdog.daemon.publish`): the status goes to the StatusRef (metrics, control
   socket) and the alert dispatcher is woken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from watchdog.clock import DAY_S, month_start
from watchdog.config import Config
from watchdog.daemon.accounting import Accrued, MonthMoney, accrue, billed_rows, month_money
from watchdog.daemon.evaluate import blind_decision, decide, endpoint_limits, is_repeat, policy_settings
from watchdog.daemon.execute import Execution, Observation, brake_entry, execute, step_for, verify
from watchdog.daemon.fetch import (
    Reading,
    ReadPlan,
    read_logs,
    read_runpod_bounded,
    refill_rest_tokens,
    rest_budget,
    rest_quota,
)
from watchdog.daemon.notices import (
    balance_unknown_alert,
    billed_states_alert,
    decision_alert,
    events_of,
    first_enforce_summary,
    first_sightings,
    metric_alerts,
)
from watchdog.daemon.ports import Ports
from watchdog.daemon.publish import (
    LedgerFigures,
    budget_view,
    build_status,
    endpoint_view,
    endpoints_24h,
)
from watchdog.daemon.state import DaemonState, LedgerTrouble, ReadSchedule, roll_calendar, state_meta
from watchdog.daemon.track import Tracked, track
from watchdog.errors import LedgerError, RunPodAuthError, RunPodError, RunPodNotFound
from watchdog.ledger import (
    STATUS_META_KEY,
    Alert,
    BilledSpend,
    BrakeState,
    ChangeRecord,
    DecisionStep,
    RecordedTick,
    TickRecord,
)
from watchdog.models import BillingReport
from watchdog.money import BudgetStatus, budget_status
from watchdog.policy import Deadline, Decision, EndpointFacts, PolicyView, evaluate, runaway_deadlines
from watchdog.reconcile import WINDOW_S, reconcile_billed_states
from watchdog.status import DaemonStatus, status_json
from watchdog.traffic import TrafficFinding
from watchdog.vocabulary import (
    BILLED_BY_DEFAULT,
    NOTIFY_ONLY_ACTIONS,
    Action,
    Mode,
    Outcome,
    Rule,
    SpendSource,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What one tick did, for tests and the run loop."""

    tick_id: int | None
    started_at: float
    finished_at: float
    ok: bool
    blind: bool
    error: str | None
    decisions: tuple[Decision, ...]
    rows: tuple[DecisionStep, ...]
    """Decision steps written by this tick (executions, proposals, verifications)."""
    new_alerts: tuple[str, ...]
    status: DaemonStatus | None

    @property
    def actions(self) -> tuple[DecisionStep, ...]:
        """The enforced steps of this tick (applied or failed)."""
        return tuple(r for r in self.rows if r.outcome in (Outcome.APPLIED, Outcome.FAILED))


def _enforces(config: Config, steps: Sequence[DecisionStep]) -> bool:
    """This tick acts: the account-wide mode is enforce (``run --dry-run`` never is), or a rule or an
    endpoint set to enforce changed something."""
    if config.policy.dry_run_only:
        return False
    return config.policy.mode == Mode.ENFORCE or any(
        s.mode == Mode.ENFORCE and s.outcome == Outcome.APPLIED for s in steps
    )


async def run_tick(state: DaemonState, ports: Ports, config: Config, now: float) -> TickOutcome:
    """Run one whole tick at ``now``.

    Raises:
        RunPodAuthError: RunPod rejects the API key and the daemon has never read it successfully (a
            misconfigured key at start-up is fatal; later it only blinds the ticks).
        LedgerError: the tick could not be recorded (nothing of it is in the ledger).
    """
    state.calendar = roll_calendar(state.calendar, now)

    # 1. fetch ----------------------------------------------------------------------------------------------
    logs = read_logs(ports.tailers, now)
    for problem in logs.problems:
        log.warning("%s", problem)
    dropped_ids = state.tracker.observe_logs(logs.events, now)
    reads = state.reads
    reads.quota = quota = rest_quota(ports.client.quota())
    reads.tokens = refill_rest_tokens(
        reads.tokens, reads.refilled_at, now, quota, config.runpod.poll_interval_s
    )
    reads.refilled_at = now
    plan = ReadPlan(
        # cancelled jobs first (their cancel is verified), then the open jobs in the tracker's order
        jobs=tuple(dict.fromkeys([*state.own.cancelled_ids(), *state.tracker.open_job_ids()])),
        billing_due=state.billing.due(now, config.runpod.billing_interval_s),
        known_busy_workers=state.tracker.known_busy_workers(),
        log_cursors=dict(state.tracker.log_cursors),
        limits_due=state.account.limits_due(now, ACCOUNT_LIMITS_EVERY_S),
        rest_budget=rest_budget(reads.tokens, quota),
        stale_after_s=config.policy.stale_after_s,
        poll_interval_s=config.runpod.poll_interval_s,
        known_endpoints=reads.endpoints,
        endpoints_listed_at=reads.listed_at,
        last_workers=reads.workers,
        workers_read_at=reads.workers_read_at,
        urgent_endpoints=_urgent_endpoints(state, now, config.runpod.poll_interval_s),
        last_health=reads.health,
        health_read_at=reads.health_read_at,
    )
    reading = await read_runpod_bounded(ports.client, config, plan, now, ports.stopping)
    _note_reads(reads, reading, now)
    if reading.quota_wait is not None:
        log.warning("tick %d not ok: %s", state.ticks + 1, reading.quota_wait)
    if reading.auth_rejected and state.sight.last_ok_at is None:
        raise RunPodAuthError(reading.error or "RunPod rejected the API key")
    account_alert = _note_account(state, reading, now)

    # 2. track ----------------------------------------------------------------------------------------------
    tracked = track(state.tracker, reading, logs.events, held=tuple(state.brakes), now=now)
    _count_requests(state, tracked)
    accrued = Accrued(None)
    accounting = state.accounting
    billed: tuple[BilledSpend, ...] = ()
    if reading.ok:
        state.sight.last_ok_at = now
        accounting, accrued = accrue(
            state.accounting,
            {e.id: reading.workers[e.id] for e in reading.endpoints},
            now=now,
            prices=config.price_table,
            billed_states=config.prices.billed_state_set,
            stale_after_s=config.policy.stale_after_s,
        )
        if reading.billing is not None:
            billed = billed_rows(reading.billing, month_start(now))
    money = month_money(_stored_spend(state, ports, now), accrued.estimates, billed, now)
    budget = budget_status(
        config.budget.monthly_eur,
        config.budget.usd_per_eur,
        fixed_costs_usd_per_month=config.budget.fixed_usd_per_month,
        variable_mtd_usd=money.month.counted_usd,
        now=now,
        thresholds=config.budget.alert_thresholds,
        variable_last_24h_usd=money.last_24h_usd,
    )

    # 3. evaluate -------------------------------------------------------------------------------------------
    steps: list[DecisionStep] = []
    findings: tuple[TrafficFinding, ...] = ()
    if reading.ok:
        verification = verify(state.pending_checks, _observation(reading, ports, now))
        state.pending_checks = list(verification.pending)
        state.refused_sources |= verification.unverified_sources
        for step in verification.steps:
            state.count_step(step)
        steps.extend(verification.steps)
        live = {w.id for ws in reading.workers.values() for w in ws if w.status in BILLED_BY_DEFAULT}
        state.own.age_cancels(live, now)
        judged = decide(
            reading=reading,
            tracked=tracked,
            tracker=state.tracker,
            own=state.own,
            brakes=state.brakes,
            rule_overrides=state.rule_overrides,
            budget=budget,
            month_usd_by_endpoint={e.endpoint_id: e.counted_usd for e in money.month.by_endpoint},
            today_usd_by_endpoint={e.endpoint_id: e.today_usd for e in money.month.by_endpoint},
            alerted_thresholds=frozenset(state.calendar.alerted_thresholds),
            denied_sources=_denied(ports),
            refused_sources=frozenset(state.refused_sources),
            config=config,
            now=now,
        )
        decisions, findings = _capped(judged.decisions, config), judged.findings
        state.facts = {facts.config.id: facts for facts in judged.facts}
    else:
        decisions = (blind_decision(config, state.sight.last_ok_at, now, reading.error or "unknown error"),)

    # 4 and 5 hold the acting lock: a deadline check (watchdog.daemon.tick.check_deadlines) may run while
    # this tick reads RunPod, never while it acts.
    async with ports.acting:
        # 4. execute ---------------------------------------------------------------------------------------
        admitted = _intend(
            [d for d in decisions if not _taken_meanwhile(state, d) and _worth_recording(state, d, now)],
            state,
            ports,
            now,
        )
        alerts: list[Alert] = [account_alert] if account_alert is not None else []
        brakes_set: dict[str, BrakeState] = {}
        brakes_cleared: list[str] = []
        for decision in admitted:
            execution = await execute(
                decision, ports.client, now=now, brakes=state.brakes, deny_list=ports.deny_list
            )
            state.absorb(decision, execution, now)
            steps.extend(execution.steps)
            if execution.brake_set is not None:
                brakes_set[execution.brake_set.endpoint_id] = execution.brake_set
            if execution.brake_cleared is not None:
                brakes_set.pop(execution.brake_cleared, None)
                brakes_cleared.append(execution.brake_cleared)
            alert = decision_alert(
                decision, execution, budget=budget, usd_per_eur=config.budget.usd_per_eur, now=now
            )
            if alert is not None:
                alerts.append(alert)
        if reading.ok:
            if state.sight.blind_since is not None:
                log.warning("the watchdog sees RunPod again (blind since %s)", _iso(state.sight.blind_since))
                state.sight.blind_since = state.sight.blind_logged_at = None
                state.sight.blind_log_every_s = 0.0
            alerts.extend(
                metric_alerts(
                    reading.endpoints,
                    requests_24h=endpoints_24h(state.tracker, reading.endpoints, now),
                    usd_24h=money.last_24h_by_endpoint,
                    cold_starts_24h={
                        e.id: state.tracker.cold_start_samples(e.id, now - DAY_S) for e in reading.endpoints
                    },
                    config=config,
                    now=now,
                )
            )
            if reading.billing is not None:
                alerts.extend(_billed_states_alerts(ports, config, reading.billing, now))
            if state.first_enforced_at is None and _enforces(config, steps):
                summary = first_enforce_summary(
                    steps, endpoints=len(reading.endpoints), usd_per_eur=config.budget.usd_per_eur, now=now
                )
                log.warning("%s", summary.text)
                alerts.append(summary)
                state.first_enforced_at = now
        # Alerts are rebuilt each tick from what is true (the cost per 1,000 requests is still above $3); the
        # ledger de-duplicates by key, and only the first sighting of a key belongs in the events log.
        alerts = first_sightings(alerts, state.dedupe.raised, now)
        for alert in alerts:
            state.dedupe.raised[alert.key] = now
        for event in events_of(steps, alerts, usd_per_eur=config.budget.usd_per_eur, now=now):
            state.events.appendleft(event)

        # 5. record ----------------------------------------------------------------------------------------
        _count_gpu_seconds(state, accrued)
        _count_bad_records(state, logs.malformed, dropped_ids, reading)
        finished = ports.clock.now()
        status = _status(state, ports, config, reading, money, budget, findings, now, finished, len(alerts))
        carried = state.ledger.unrecorded
        record = TickRecord(
            started_at=now,
            finished_at=finished,
            ok=reading.ok and reading.quota_wait is None,
            blind=not reading.ok,
            error=reading.error or reading.quota_wait,
            endpoints=len(reading.endpoints),
            accounting=accrued.interval,
            estimates=accrued.estimates,
            billed=billed,
            configs=tracked.configs,
            workers=accrued.workers,
            jobs=tracked.jobs,
            traffic=tracked.traffic,
            brakes_set=(
                *(b for e, b in carried.brakes_set.items() if e not in brakes_set),
                *brakes_set.values(),
            ),
            brakes_cleared=(*carried.brakes_cleared, *brakes_cleared),
            decisions=(*carried.decisions, *steps),
            alerts=(*carried.alerts, *alerts),
            meta={**state_meta(state, ports.tailers), **_status_meta(state, status, now)},
            state_seconds=accrued.state_seconds,
            observed=accrued.observed,
        )
        recorded: RecordedTick | None = None
        try:
            recorded = ports.ledger.record_tick(record)
        except LedgerError as exc:
            # The actions happened: keep them in memory for the next tick the ledger accepts, and keep the
            # accounting chain where the ledger has it (the next interval covers this one).
            _ledger_failed(state, ports, str(exc), now)
            carried.carry(steps, alerts, tuple(brakes_set.values()), brakes_cleared)
        else:
            _ledger_works(state, ports, now)
            state.accounting = accounting
            for change in recorded.config_changes:
                if change.changed_fields:
                    fields = ", ".join(change.changed_fields)
                    log.info("endpoint %s config changed: %s", change.endpoint_id, fields)
        if reading.billing is not None:
            state.billing.last_read_at, state.billing.failed_at = now, None
        elif reading.billing_failed:
            state.billing.failed_at = now
        state.tracker.prune(now)
        state.own.prune(now)
        state.dedupe.prune(now)
        _refresh_deadlines(state)

    # 6. publish --------------------------------------------------------------------------------------------
    state.ticks += 1
    ports.status.set(status)
    if recorded is not None and recorded.new_alerts:
        ports.wake_alerts()
    if not reading.ok:
        _log_blind(state, reading.error or "unknown error", now)
    return TickOutcome(
        tick_id=recorded.tick_id if recorded is not None else None,
        started_at=now,
        finished_at=finished,
        ok=reading.ok and reading.quota_wait is None,
        blind=not reading.ok,
        error=reading.error or reading.quota_wait,
        decisions=tuple(decisions),
        rows=tuple(steps),
        new_alerts=recorded.new_alerts if recorded is not None else (),
        status=status,
    )


@dataclass(frozen=True, slots=True)
class DeadlineOutcome:
    """What a deadline check did."""

    checked: tuple[Deadline, ...]
    decisions: tuple[Decision, ...]
    rows: tuple[DecisionStep, ...]


async def check_deadlines(state: DaemonState, ports: Ports, config: Config, now: float) -> DeadlineOutcome:
    """The runaway rule at the moment it fires, not at the next tick: for each endpoint with a deadline
    due, read that endpoint's workers and the due jobs' status afresh (the stale-data rule holds: nothing is
    decided on an answer older than this check; a failed read means no action), then judge the endpoint
    with the runaway rule alone and act, recording the steps the same way a tick does. Only the acting
    lock is held, so a slow tick's reads do not delay a due cancel."""
    due = [d for d in state.deadlines if d.at <= now]
    if not due:
        return DeadlineOutcome((), (), ())
    decisions: list[Decision] = []
    for endpoint_id in sorted({d.endpoint_id for d in due}):
        facts = state.facts.get(endpoint_id)
        if facts is None:
            continue
        fresh = await _read_endpoint_afresh(
            state, ports, facts, [d for d in due if d.endpoint_id == endpoint_id]
        )
        if fresh is None:
            continue
        view = PolicyView(
            endpoints=(fresh,),
            settings=policy_settings(config),
            last_successful_poll=now,
            prices=config.price_table,
            actions=tuple(state.own.actions),
            brakes=tuple(brake_entry(b) for e, b in sorted(state.brakes.items()) if e == endpoint_id),
        )
        decisions.extend(
            d
            for d in evaluate(view, now)
            if d.rule == Rule.RUNAWAY_JOB and d.action in (Action.CANCEL_JOB, Action.SCALE_TO_ZERO)
        )
    decisions = list(_capped(decisions, config))
    steps: list[DecisionStep] = []
    now = ports.clock.now()  # the reads took time: the steps are stamped when they are taken
    async with ports.acting:
        admitted = _intend(
            [d for d in decisions if not _taken_meanwhile(state, d) and _worth_recording(state, d, now)],
            state,
            ports,
            now,
        )
        alerts: list[Alert] = []
        brakes_set: list[BrakeState] = []
        for decision in admitted:
            execution = await execute(
                decision, ports.client, now=now, brakes=state.brakes, deny_list=ports.deny_list
            )
            state.absorb(decision, execution, now)
            steps.extend(execution.steps)
            if execution.brake_set is not None:
                brakes_set.append(execution.brake_set)
            alert = decision_alert(
                decision, execution, budget=None, usd_per_eur=config.budget.usd_per_eur, now=now
            )
            if alert is not None:
                alerts.append(alert)
        alerts = first_sightings(alerts, state.dedupe.raised, now)
        for alert in alerts:
            state.dedupe.raised[alert.key] = now
        for event in events_of(steps, alerts, usd_per_eur=config.budget.usd_per_eur, now=now):
            state.events.appendleft(event)
        if steps or alerts:
            try:
                new_alerts = ports.ledger.record_changes(
                    ChangeRecord(now, tuple(steps), tuple(brakes_set), (), tuple(alerts))
                )
            except LedgerError as exc:
                _ledger_failed(state, ports, str(exc), now)
                state.ledger.unrecorded.carry(steps, alerts, brakes_set, ())
            else:
                if new_alerts:
                    ports.wake_alerts()
    _refresh_deadlines(state)
    return DeadlineOutcome(tuple(due), tuple(decisions), tuple(steps))


async def _read_endpoint_afresh(
    state: DaemonState, ports: Ports, facts: EndpointFacts, due: Sequence[Deadline]
) -> EndpointFacts | None:
    """The endpoint's facts with the due jobs read now, and its workers too when a deadline is about work
    no job explains (None when a read fails). A job's deadline rests on the job's own status, read from
    the job runtime: its quota is far larger than REST v2's, so a tick that used up the REST quota does not
    hold a due cancel back (the workers are then as the last complete tick saw them)."""
    endpoint_id = facts.config.id
    try:
        workers = None
        if any(deadline.job_id is None for deadline in due):
            workers = (await ports.client.list_workers(endpoint_id)).workers
        for deadline in due:
            if deadline.job_id is None:
                continue
            try:
                job = await ports.client.job_status(endpoint_id, deadline.job_id)
            except RunPodNotFound:
                state.tracker.forget_job(deadline.job_id)
                continue
            state.tracker.observe_job(
                endpoint_id,
                deadline.job_id,
                job.status,
                ports.clock.now(),
                worker_id=job.worker_id,
                delay_ms=job.delay_time_ms,
                execution_ms=job.execution_time_ms,
            )
    except (RunPodError, ValueError) as exc:
        log.warning("deadline check on %s: no action on stale data (%s)", endpoint_id, str(exc)[:200])
        return None
    now = ports.clock.now()
    return replace(
        facts,
        workers=facts.workers
        if workers is None
        else state.tracker.observe_workers(endpoint_id, workers, now).views,
        jobs_in_progress=state.tracker.jobs_in_progress(endpoint_id),
        cancelled_jobs=state.own.cancelled_jobs(endpoint_id),
    )


def _refresh_deadlines(state: DaemonState) -> None:
    """The runaway deadlines as the daemon's memory now says (cancels and new evidence included)."""
    state.deadlines = runaway_deadlines(
        [
            replace(
                facts,
                jobs_in_progress=state.tracker.jobs_in_progress(endpoint_id),
                cancelled_jobs=state.own.cancelled_jobs(endpoint_id),
            )
            for endpoint_id, facts in state.facts.items()
        ]
    )


def failed_tick(state: DaemonState, ports: Ports, config: Config, now: float, error: str) -> TickOutcome:
    """A tick that raised, whatever the reason, is a BLIND tick, never a silent one: the status says so
    (the dashboard and ``/metrics`` show it), the blind alert is raised once per episode, and the tick is
    recorded when the ledger allows. Nothing of the failed tick's reading is trusted."""
    finished = ports.clock.now()
    error = error[:300]
    decision = blind_decision(config, state.sight.last_ok_at, now, error)
    steps: list[DecisionStep] = []
    alerts: list[Alert] = []
    if _worth_recording(state, decision, now):
        step = step_for(decision, now, Outcome.APPLIED if decision.mode == Mode.ENFORCE else Outcome.PROPOSED)
        steps.append(replace(step, saved_usd=0.0))
        state.count_step(steps[0])
        alert = decision_alert(
            decision, Execution(steps=steps), budget=None, usd_per_eur=config.budget.usd_per_eur, now=now
        )
        alerts = first_sightings([alert] if alert else [], state.dedupe.raised, now)
        for new in alerts:
            state.dedupe.raised[new.key] = now
        for event in events_of(steps, alerts, usd_per_eur=config.budget.usd_per_eur, now=now):
            state.events.appendleft(event)
    previous = ports.status.get()
    if previous is not None:
        status = replace(
            previous,
            last_tick_at=finished,
            last_tick_ok=False,
            last_tick_duration_s=max(0.0, finished - now),
            blind=True,
            blind_reason=error,
            events=tuple(state.events),
        )
    else:
        status = build_status(
            state,
            started_at=now,
            finished_at=finished,
            error=error,
            budget=None,
            endpoints=(),
            ledger=LedgerFigures(problem=state.ledger.problem),
            delivery=ports.delivery(),
            config=config,
        )
    recorded: RecordedTick | None = None
    try:
        recorded = ports.ledger.record_tick(
            TickRecord(
                started_at=now,
                finished_at=finished,
                ok=False,
                blind=True,
                error=error,
                decisions=tuple(steps),
                alerts=tuple(alerts),
                meta={STATUS_META_KEY: status_json(status)},
            )
        )
    except LedgerError as exc:
        _ledger_failed(state, ports, str(exc), now)
        state.ledger.unrecorded.carry(steps, alerts, (), ())
    state.ticks += 1
    ports.status.set(status)
    if recorded is not None and recorded.new_alerts:
        ports.wake_alerts()
    return TickOutcome(
        tick_id=recorded.tick_id if recorded is not None else None,
        started_at=now,
        finished_at=finished,
        ok=False,
        blind=True,
        error=error,
        decisions=(decision,),
        rows=tuple(steps),
        new_alerts=recorded.new_alerts if recorded is not None else (),
        status=status,
    )


def _intend(decisions: list[Decision], state: DaemonState, ports: Ports, now: float) -> list[Decision]:
    """Write the actions about to be taken, before taking them. If the ledger refuses, act only where
    waiting costs the most (stopping runaway work, from memory) and hold the rest as proposals."""
    acting = [d for d in decisions if d.mode == Mode.ENFORCE and d.action not in NOTIFY_ONLY_ACTIONS]
    if not acting:
        return decisions
    try:
        ports.ledger.record_intents([step_for(d, now, Outcome.INTENDED) for d in acting])
    except LedgerError as exc:
        _ledger_failed(state, ports, str(exc), now)
        return [
            d
            if d.mode != Mode.ENFORCE or d.action in NOTIFY_ONLY_ACTIONS or d.rule == Rule.RUNAWAY_JOB
            else replace(d, mode=Mode.DRY_RUN, reason=f"{d.reason} [held: the ledger cannot record it]")
            for d in decisions
        ]
    return decisions


def _capped(decisions: Sequence[Decision], config: Config) -> tuple[Decision, ...]:
    """``policy.dry_run_only`` (``run --dry-run``) is the last word: every decision becomes a proposal,
    whatever mode a rule, an endpoint or the dashboard gave it."""
    if not config.policy.dry_run_only:
        return tuple(decisions)
    return tuple(d if d.mode != Mode.ENFORCE else replace(d, mode=Mode.DRY_RUN) for d in decisions)


def _urgent_endpoints(state: DaemonState, now: float, poll_interval_s: float) -> frozenset[str]:
    """Endpoints whose workers must be read this tick whatever the quota: a runaway deadline falls before the
    next tick, an action awaits its verification, or the daemon holds the endpoint down."""
    soon = {d.endpoint_id for d in state.deadlines if d.at <= now + 2 * poll_interval_s}
    checking = {c.step.endpoint_id for c in state.pending_checks if c.step.endpoint_id}
    return frozenset(soon | checking | set(state.brakes))


def _note_reads(reads: ReadSchedule, reading: Reading, now: float) -> None:
    """What the reading spent of the REST quota and what it read, for the next tick's plan."""
    if reads.tokens is not None:
        reads.tokens -= reading.rest_calls
    reads.rest_calls.append((now, reading.rest_calls))
    while reads.rest_calls and now - reads.rest_calls[0][0] >= 60.0:
        reads.rest_calls.popleft()
    if not reading.ok:
        return
    if reading.listed:
        reads.endpoints, reads.listed_at = reading.endpoints, now
    listed = {e.id for e in reading.endpoints}
    for endpoint_id in listed:
        if endpoint_id in reading.workers_read or not reading.workers.get(endpoint_id):
            reads.workers[endpoint_id] = reading.workers.get(endpoint_id, ())
            reads.workers_read_at[endpoint_id] = now
        if endpoint_id in reading.health and endpoint_id not in reading.health_carried:
            reads.health[endpoint_id] = reading.health[endpoint_id]
            reads.health_read_at[endpoint_id] = now
    for endpoint_id in [e for e in reads.workers if e not in listed]:
        del reads.workers[endpoint_id]
        reads.workers_read_at.pop(endpoint_id, None)
    for endpoint_id in [e for e in reads.health if e not in listed]:
        del reads.health[endpoint_id]
        reads.health_read_at.pop(endpoint_id, None)


def _note_account(state: DaemonState, reading: Reading, now: float) -> Alert | None:
    """Fold what the tick read of the account (GraphQL balance, REST v2 limits) into ``state.account``; the
    first read that fails in an episode yields the one "balance unknown" alert (GraphQL is optional: it
    retires in early 2027, and nothing the daemon enforces depends on it)."""
    account = state.account
    if reading.limits is not None:
        account.spend_rate_cap_usd_per_hr = reading.limits.spend_rate_limit_usd_per_hr
        account.limits_read_at, account.limits_failed_at = now, None
    elif reading.limits_failed:
        account.limits_failed_at = now
    if reading.account is not None:
        account.balance_usd = reading.account.client_balance_usd
        account.spend_per_hr_usd = reading.account.current_spend_per_hr_usd
        if account.problem is not None:
            log.info("the account's balance is known again (%s)", account.problem)
        account.problem = account.problem_since = None
        return None
    if reading.account_problem is None:
        return None  # the tick never got as far as the account read (it is blind for another reason)
    account.balance_usd = account.spend_per_hr_usd = None
    first = account.problem is None
    account.problem = reading.account_problem
    if not first:
        return None
    account.problem_since = now
    log.warning("balance unknown: %s", reading.account_problem)
    return balance_unknown_alert(reading.account_problem, now)


def _billed_states_alerts(ports: Ports, config: Config, billing: BillingReport, now: float) -> list[Alert]:
    """Whether RunPod's hourly bill shows one worker state billed otherwise than ``[prices] billed_states``
    (:mod:`watchdog.reconcile`): asked whenever billing is read; the alert's key says it once a day."""
    try:
        hours = ports.ledger.state_seconds_since(now - WINDOW_S)
        observed = ports.ledger.observed_seconds_since(now - WINDOW_S)
    except LedgerError as exc:
        log.warning("billed states not reconciled: the ledger cannot be read (%s)", str(exc)[:200])
        return []
    finding = reconcile_billed_states(
        hours, observed, billing.records, billed_states=config.prices.billed_state_set, now=now
    )
    return [] if finding is None else [billed_states_alert(finding, now)]


def _stored_spend(
    state: DaemonState, ports: Ports, now: float
) -> dict[tuple[str, float, SpendSource], float]:
    """The month's hours in the ledger; the last ones read when the ledger cannot be read now."""
    try:
        state.stored_spend = ports.ledger.month_spend_by_hour(month_start(now))
    except LedgerError as exc:
        _ledger_failed(state, ports, str(exc), now)
        if state.stored_spend is None:
            raise
    return state.stored_spend


def _ledger_failed(state: DaemonState, ports: Ports, problem: str, now: float) -> None:
    """The ledger refused: say so once per episode (log, Slack from memory, the status and metrics)."""
    trouble = state.ledger
    trouble.problem = problem[:300]
    if trouble.since is None:
        trouble.since = now
        log.error("the ledger refuses writes; guarding from memory until it accepts them again: %s", problem)
        ports.alert_without_ledger(
            f"ledger-failing:{int(now)}",
            f":floppy_disk: The watchdog's ledger refuses writes ({trouble.problem}). It keeps guarding from "
            "memory (runaway jobs are still cancelled, other actions wait) and writes what it did once the "
            "ledger accepts writes again. Check the disk of the state directory.",
        )


def _ledger_works(state: DaemonState, ports: Ports, now: float) -> None:
    trouble = state.ledger
    if trouble.since is not None:
        late = len(trouble.unrecorded.decisions)
        lost = f", {trouble.unrecorded.dropped} lost" if trouble.unrecorded.dropped else ""
        log.warning(
            "the ledger accepts writes again (failing since %s); %d decision steps written late%s",
            _iso(trouble.since),
            late,
            lost,
        )
        ports.alert_without_ledger(
            f"ledger-recovered:{int(trouble.since)}",
            f":floppy_disk: The watchdog's ledger accepts writes again (it refused them since "
            f"{_iso(trouble.since)}); {late} decision steps were written late{lost}.",
        )
    state.ledger = LedgerTrouble()


def _count_bad_records(state: DaemonState, malformed_lines: int, dropped_ids: int, reading: Reading) -> None:
    bad = state.counters.bad_records
    for kind, count in (
        ("log_line", malformed_lines),
        ("job_id_in_ping", dropped_ids),
        ("job_status", len(reading.bad_jobs)),
    ):
        if count:
            bad[kind] += count
    for job_id, problem in reading.bad_jobs.items():
        log.warning("skipped job %r: %s", job_id[:80], problem)


ACCOUNT_LIMITS_EVERY_S = 300.0
"""The account's limits (the spend-rate cap) change when someone edits them in the console: read them every
five minutes, not every tick (REST v2 quota)."""
STATUS_WRITE_EVERY_S = 30.0
"""The status the dashboard falls back to when the daemon is down is written at most this often (and at
every change of blindness or ledger trouble): serialising a 1,000-endpoint status every tick costs more
than the tick itself."""


def _status_meta(state: DaemonState, status: DaemonStatus, now: float) -> dict[str, str]:
    flags = (status.blind, status.ledger_problem is not None)
    last = state.status_written
    if last is not None and now - last[0] < STATUS_WRITE_EVERY_S and last[1] == flags:
        return {}
    state.status_written = (now, flags)
    return {STATUS_META_KEY: status_json(status)}


def _count_requests(state: DaemonState, tracked: Tracked) -> None:
    calendar = state.calendar
    for endpoint_id, requests in tracked.requests.items():
        calendar.requests[endpoint_id] += requests
    calendar.free_requests += tracked.free_requests
    calendar.tiered_requests += tracked.tiered_requests


def _count_gpu_seconds(state: DaemonState, accrued: Accrued) -> None:
    """Add the interval's billed GPU seconds to the month's and today's (each hour to its own day)."""
    calendar = state.calendar
    for (endpoint_id, gpu_type, hour), seconds in accrued.gpu_seconds.items():
        if hour >= calendar.month:
            calendar.gpu_seconds[endpoint_id][gpu_type] += seconds
        if hour >= calendar.day:
            calendar.gpu_seconds_today[endpoint_id] += seconds


BLIND_LOG_FIRST_S = 60.0
BLIND_LOG_MAX_S = 3_600.0


def _log_blind(state: DaemonState, error: str, now: float) -> None:
    """A blind episode is logged when it starts (with the blind decision) and then after 1, 2, 4 ... up to
    60 minutes: a daemon that cannot reach RunPod for a day writes a few dozen lines, not 17,000 (the
    metrics and the one Slack alert carry the state meanwhile)."""
    sight = state.sight
    if sight.blind_logged_at is None:
        sight.blind_logged_at, sight.blind_log_every_s = now, BLIND_LOG_FIRST_S
        return
    if now - sight.blind_logged_at < sight.blind_log_every_s:
        return
    since = sight.blind_since if sight.blind_since is not None else sight.blind_logged_at
    sight.blind_log_every_s = min(BLIND_LOG_MAX_S, sight.blind_log_every_s * 2)
    sight.blind_logged_at = now
    log.warning(
        "still blind after %.0f min: %s (next report in %.0f min)",
        (now - since) / 60,
        error[:300],
        sight.blind_log_every_s / 60,
    )


def _taken_meanwhile(state: DaemonState, decision: Decision) -> bool:
    """The job this decision cancels was cancelled since it was judged: a tick judges before it takes the
    acting lock, and a deadline check may cancel the job while the tick waits for it (or the other way
    round). Sending the cancel twice would record two applied cancels for one job."""
    return (
        decision.action == Action.CANCEL_JOB
        and decision.job_id is not None
        and decision.job_id in state.own.cancelled
    )


def _worth_recording(state: DaemonState, decision: Decision, now: float) -> bool:
    """A blind report once per blind episode; a repeated proposal or notice at most once an hour; enforced
    actions always. Notes what it lets through (the episode start, the time recorded)."""
    if decision.rule == Rule.BLIND:
        if state.sight.blind_since is not None:
            return False
        state.sight.blind_since = now
        log.warning("%s", decision.reason)
        return True
    if is_repeat(decision, state.dedupe.recorded, now):
        return False
    if decision.dedupe_key and (decision.mode != Mode.ENFORCE or decision.action in NOTIFY_ONLY_ACTIONS):
        state.dedupe.recorded[decision.dedupe_key] = now
    return True


def _observation(reading: Reading, ports: Ports, now: float) -> Observation:
    return Observation(
        now=now,
        configs={e.id: e for e in reading.endpoints},
        workers=reading.workers,
        jobs={job_id: job.status for job_id, (_, job) in reading.jobs.items()},
        health=reading.health,
        gone_jobs=frozenset(reading.gone_jobs),
        denied_sources=_denied(ports),
        billed_states=BILLED_BY_DEFAULT,
    )


def _denied(ports: Ports) -> frozenset[str]:
    return frozenset(ports.deny_list.read()) if ports.deny_list is not None else frozenset()


def _status(  # noqa: PLR0917
    state: DaemonState,
    ports: Ports,
    config: Config,
    reading: Reading,
    money: MonthMoney,
    budget: BudgetStatus,
    findings: Sequence[TrafficFinding],
    now: float,
    finished: float,
    new_alerts: int,
) -> DaemonStatus:
    """This tick's status; a blind tick keeps showing the endpoints as last seen."""
    previous = ports.status.get()
    if reading.ok:
        endpoints = [
            endpoint_view(
                endpoint,
                reading=reading,
                tracker=state.tracker,
                calendar=state.calendar,
                brake=state.brakes.get(endpoint.id),
                mode=endpoint_limits(config, endpoint, state.rule_overrides).mode,
                money=money,
                findings=findings,
                config=config,
                now=now,
            )
            for endpoint in reading.endpoints
        ]
    else:
        endpoints = list(previous.endpoints) if previous is not None else []
    try:
        sent, unsent = ports.ledger.alert_counts()
    except LedgerError:
        sent, unsent = 0, 0
    return build_status(
        state,
        started_at=now,
        finished_at=finished,
        error=reading.error,
        quota_wait=reading.quota_wait,
        budget=budget_view(budget, money, state.calendar, config),
        endpoints=endpoints,
        ledger=LedgerFigures(sent, unsent + new_alerts, ports.ledger.size_bytes(), state.ledger.problem),
        delivery=ports.delivery(),
        config=config,
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
