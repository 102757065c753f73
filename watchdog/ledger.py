"""The daemon's memory: one SQLite file holding every tick, dollar, decision and alert.

Why it is built this way:

- **Money must survive crashes.** The budget is 20 EUR a month; after a SIGKILL, an OOM kill or a power cut
  the ledger must neither lose an acknowledged tick nor count GPU time twice. WAL with ``synchronous=FULL``
  keeps every committed transaction even across power loss (tested-recipes §5), and each tick is written by
  :meth:`Ledger.record_tick` in ONE transaction, so a restart or a reader sees a whole tick or nothing of it.
- **Estimated spend is accounted in contiguous intervals.** A tick accounts ``(previous_poll, this_poll]``;
  the end of the last accounted interval is stored in ``meta`` in the same transaction as the spend it
  produced, and :meth:`Ledger.record_tick` refuses an interval that does not start exactly there. After a
  restart the daemon resumes from :meth:`Ledger.last_accounted_at`: nothing is lost, nothing counted twice.
  Billed spend, by contrast, is RunPod's word and simply replaces what we had for that hour.
- **One writer.** An exclusive ``flock`` on ``<ledger>.lock`` makes a second daemon on the same file fail at
  once with the first one's pid, instead of both enforcing the budget from half-shared state. The kernel
  drops the lock when the process dies, however it dies, so a stale lock cannot keep the daemon down.
- **Many readers, never in the writer's way.** The TUI and the metrics use :class:`LedgerReader`
  (``mode=ro``) whose reads are single autocommit statements: an open read transaction would block WAL
  checkpoints and let the WAL grow without bound. :meth:`LedgerReader.consistent` groups a few reads into one
  short snapshot.
- **The schema is versioned.** Steps are :class:`~watchdog.ledger_schema.Migrations`, each applied inside a
  transaction together with the record of it, in the bookkeeping table sqlite-utils wrote (the ledger used
  it until the daemon's memory needed its 4.5 MiB back); a ledger written by a newer version is refused.
- **It stays small.** :meth:`Ledger.apply_retention` drops raw rows after a few days, folds hourly spend into
  daily rows (month totals unchanged) and hands freed pages back to the filesystem.

All timestamps are UTC epoch seconds stored as REAL; JSON columns are TEXT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self

from watchdog.clock import DAY_S, HOUR_S, next_month_start
from watchdog.clock import month_start as _month_start_of
from watchdog.errors import LedgerError
from watchdog.ledger_schema import Database, Migrations
from watchdog.models import JobStatus
from watchdog.status import DaemonStatus
from watchdog.vocabulary import BrakeKind, Outcome, SpendSource

STATUS_META_KEY = "status"
"""``meta`` key under which the daemon stores its DaemonStatus JSON with every tick."""
_OPEN_JOB_STATUSES = tuple(str(status) for status in JobStatus if not status.terminal)

__all__ = [
    "MIGRATIONS",
    "UNATTRIBUTED_ENDPOINT",
    "AccountingInterval",
    "Alert",
    "AlertRow",
    "BilledSpend",
    "BrakeState",
    "ChangeRecord",
    "CommandRecord",
    "CommandRow",
    "ConfigChange",
    "ConfigObservation",
    "ConfigRow",
    "DecisionRow",
    "DecisionStep",
    "JobUpdate",
    "Ledger",
    "LedgerReadModel",
    "LedgerReader",
    "MonthTotals",
    "ObservedSeconds",
    "OpenJobRow",
    "RecordedTick",
    "RetentionResult",
    "SpendAccrual",
    "StateSeconds",
    "TickRecord",
    "TickRow",
    "TrafficCount",
    "WorkerSessionRow",
    "WorkerUpdate",
]

MINUTE_S = 60

UNATTRIBUTED_ENDPOINT = ""
"""``endpoint_id`` for billed spend RunPod does not attribute to an endpoint (storage, account fees)."""

MIGRATION_SET = "runpod_watchdog_ledger"

_TERMINAL_JOB_STATUSES = tuple(str(status) for status in JobStatus if status.terminal)
_META_LAST_ACCOUNTED = "last_accounted_at"
_META_ROLLED_UP_BEFORE = "spend_rolled_up_before"
_RESERVED_META_KEYS = frozenset({_META_LAST_ACCOUNTED, _META_ROLLED_UP_BEFORE})

AlertState = Literal["pending", "sent", "failed"]
CommandState = Literal["pending", "done", "failed", "rejected"]


# ------------------------------------------------------------------------------------------------------------
# What the daemon hands to record_tick (plain types only: the ledger does not depend on policy or money code)
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountingInterval:
    """The stretch of time a tick's estimated spend covers: ``(start, end]``.

    ``start`` must equal :meth:`Ledger.last_accounted_at` (or anything, on a ledger that never accounted);
    a gap the daemon could not observe (it was down) is still accounted, possibly with no accruals, so the
    chain of intervals never has a hole or an overlap.
    """

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class SpendAccrual:
    """Estimated GPU cost inside the tick's interval for one endpoint and one UTC hour; ADDED to the hour."""

    endpoint_id: str
    hour: float
    """Start of the UTC hour (a multiple of 3600); an interval crossing an hour gives two accruals."""
    usd: float
    gpu_seconds: float


@dataclass(frozen=True, slots=True)
class StateSeconds:
    """The live estimate's GPU seconds of one endpoint in one worker state and UTC hour, billed or not, and
    what they cost at the price table (as if billed); ADDED to the hour. Kept so that RunPod's hourly bill
    can be reconciled against the estimate state by state (:mod:`watchdog.reconcile`)."""

    endpoint_id: str
    hour: float
    """Start of the UTC hour (a multiple of 3600)."""
    state: str
    """A worker status (``RUNNING``, ``IDLE``, ``INITIALIZING``, ``THROTTLED``, ``UNHEALTHY``)."""
    gpu_seconds: float
    usd: float
    """``gpu_seconds`` priced from the price table, whether the money model bills the state or not."""


@dataclass(frozen=True, slots=True)
class ObservedSeconds:
    """Seconds of one UTC hour the live estimate observed (the daemon saw the workers); ADDED to the hour.
    An hour observed for less than all of it (a restart, a blind stretch) has an incomplete estimate."""

    hour: float
    seconds: float


@dataclass(frozen=True, slots=True)
class BilledSpend:
    """RunPod's billing for one endpoint and hour; REPLACES what was billed for that hour before."""

    endpoint_id: str
    hour: float
    usd: float
    gpu_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ConfigObservation:
    """An endpoint's configuration as seen this tick; stored only when it differs from the last row."""

    endpoint_id: str
    name: str
    workers_min: int
    workers_max: int
    idle_timeout_s: int
    execution_timeout_ms: int | None
    gpu_pools: tuple[str, ...] = ()
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: float = 4
    workers_standby: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The API's answer as received; stored with a change but never compared (it holds volatile fields)."""


CONFIG_COMPARED_FIELDS = (
    "name",
    "workers_min",
    "workers_max",
    "workers_standby",
    "idle_timeout_s",
    "execution_timeout_ms",
    "gpu_pools",
    "scaler_type",
    "scaler_value",
)


@dataclass(frozen=True, slots=True)
class WorkerUpdate:
    """A worker seen this tick. The ``*_s`` and ``usd`` values cover this tick's interval and are ADDED,
    so they share the crash safety of the spend accruals written in the same transaction."""

    worker_id: str
    endpoint_id: str
    status: str
    gpu_type_id: str | None = None
    initializing_s: float = 0.0
    running_s: float = 0.0
    idle_s: float = 0.0
    usd: float = 0.0
    ended_at: float | None = None
    """Set when the worker is gone; a worker seen again later reopens its session."""


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A job seen this tick. ``None`` fields keep what the ledger already knows."""

    job_id: str
    endpoint_id: str
    status: str
    source: str
    """How the job's start (``started_at``) is known: ``worker_log``, ``status``, ``worker_running``,
    ``heartbeat`` or ``first_seen`` (see ``watchdog.daemon.tracker.START_EVIDENCE``)."""
    worker_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TrafficCount:
    """Requests and pings counted for one endpoint, source and UTC minute; ADDED to the minute."""

    endpoint_id: str
    source: str
    minute: float
    """Start of the UTC minute (a multiple of 60)."""
    requests: int = 0
    pings: int = 0


@dataclass(frozen=True, slots=True)
class BrakeState:
    """Why the daemon is holding an endpoint down, and what to restore afterwards."""

    endpoint_id: str
    kind: BrakeKind
    since: float
    until: float | None = None
    rule: str | None = None
    """The rule that set the brake (None for brakes written before brakes carried their rule)."""
    month: float | None = None
    """Start of the UTC budget month the brake belongs to (a month brake ends with its month)."""
    previous: Mapping[str, Any] | None = None
    """The configuration fields the brake changed, as they were before, so they can be restored."""


@dataclass(frozen=True, slots=True)
class DecisionStep:
    """One step of a rule's life: proposed, applied, verified... Each step is its own row (an audit log)."""

    at: float
    rule: str
    action: str
    mode: str
    outcome: Outcome
    reason: str
    endpoint_id: str | None = None
    job_id: str | None = None
    worker_id: str | None = None
    patch: Mapping[str, Any] | None = None
    previous: Mapping[str, Any] | None = None
    saved_usd: float = 0.0
    error: str | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert to send. ``key`` de-duplicates: an alert whose key exists is never queued again."""

    key: str
    kind: str
    severity: str
    text: str
    eur: float | None = None


@dataclass(frozen=True, slots=True)
class TickRecord:
    """Everything one tick learned and did; written whole or not at all.

    Rows without their own time (config, workers, jobs, alerts) are stamped with ``started_at``.
    """

    started_at: float
    finished_at: float
    ok: bool
    blind: bool = False
    """True when the tick could not see RunPod (it ran, but decided nothing from fresh data)."""
    error: str | None = None
    endpoints: int = 0
    """How many endpoints the tick looked at."""
    accounting: AccountingInterval | None = None
    estimates: tuple[SpendAccrual, ...] = ()
    billed: tuple[BilledSpend, ...] = ()
    configs: tuple[ConfigObservation, ...] = ()
    workers: tuple[WorkerUpdate, ...] = ()
    jobs: tuple[JobUpdate, ...] = ()
    traffic: tuple[TrafficCount, ...] = ()
    brakes_set: tuple[BrakeState, ...] = ()
    brakes_cleared: tuple[str, ...] = ()
    decisions: tuple[DecisionStep, ...] = ()
    alerts: tuple[Alert, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    """``meta`` entries to write with the tick (e.g. the daemon's status JSON under ``"status"``, which the
    TUI shows while the daemon is down); the ledger's own keys are refused."""
    state_seconds: tuple[StateSeconds, ...] = ()
    """The interval's GPU seconds per endpoint, worker state and hour (need ``accounting``, like
    ``estimates``)."""
    observed: tuple[ObservedSeconds, ...] = ()
    """The interval's observed seconds per hour (need ``accounting``)."""


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """What the daemon did between ticks (a deadline check): written whole or not at all."""

    at: float
    decisions: tuple[DecisionStep, ...] = ()
    brakes_set: tuple[BrakeState, ...] = ()
    brakes_cleared: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What one control-socket command did; written whole or not at all, with the command closed."""

    command_id: int
    at: float
    state: Literal["done", "failed"]
    result: Any
    """The answer given to the caller (stored as JSON)."""
    decisions: tuple[DecisionStep, ...] = ()
    brakes_set: tuple[BrakeState, ...] = ()
    brakes_cleared: tuple[str, ...] = ()
    alerts: tuple[Alert, ...] = ()
    acknowledged: tuple[str, ...] = ()
    """Keys of alerts a person acknowledged."""
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigChange:
    endpoint_id: str
    changed_fields: tuple[str, ...] | None
    """``None`` for the first observation of an endpoint."""


@dataclass(frozen=True, slots=True)
class RecordedTick:
    """What :meth:`Ledger.record_tick` committed."""

    tick_id: int
    config_changes: tuple[ConfigChange, ...] = ()
    new_alerts: tuple[str, ...] = ()
    """Keys of alerts queued by this tick (duplicates of existing keys are not listed)."""
    refused_billed: tuple[BilledSpend, ...] = ()
    """Billed hours already folded into daily rollups: they cannot replace anything any more, so they are
    left out rather than counted twice. Keep raw retention longer than RunPod's billing delay."""


# ------------------------------------------------------------------------------------------------------------
# What the queries return
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenJobRow:
    """A job the daemon saw and has not seen finish: a candidate for "cancel"."""

    job_id: str
    endpoint_id: str
    status: str
    first_seen_at: float
    started_at: float | None


@dataclass(frozen=True, slots=True)
class TickRow:
    id: int
    started_at: float
    finished_at: float
    ok: bool
    blind: bool
    error: str | None
    endpoints: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ConfigRow:
    id: int
    endpoint_id: str
    observed_at: float
    name: str
    workers_min: int
    workers_max: int
    workers_standby: int
    idle_timeout_s: int
    execution_timeout_ms: int | None
    gpu_pools: tuple[str, ...]
    scaler_type: str
    scaler_value: float
    raw: Mapping[str, Any]
    changed_fields: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class WorkerSessionRow:
    worker_id: str
    endpoint_id: str
    gpu_type_id: str | None
    first_seen_at: float
    last_seen_at: float
    ended_at: float | None
    last_status: str
    initializing_s: float
    running_s: float
    idle_s: float
    estimated_usd: float


@dataclass(frozen=True, slots=True)
class DecisionRow:
    id: int
    tick_id: int | None
    """``None`` once retention removed the tick (decisions outlive raw ticks)."""
    at: float
    rule: str
    action: str
    endpoint_id: str | None
    job_id: str | None
    worker_id: str | None
    mode: str
    outcome: Outcome
    reason: str
    patch: Mapping[str, Any] | None
    previous: Mapping[str, Any] | None
    saved_usd: float
    error: str | None
    dedupe_key: str | None


@dataclass(frozen=True, slots=True)
class AlertRow:
    key: str
    created_at: float
    kind: str
    severity: str
    text: str
    eur: float | None
    state: AlertState
    attempts: int
    last_attempt_at: float | None
    sent_at: float | None
    last_error: str | None
    acknowledged_at: float | None


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: int
    created_at: float
    kind: str
    args: Mapping[str, Any]
    state: CommandState
    result: Any
    done_at: float | None


class MonthTotals(NamedTuple):
    """USD spent in one UTC month, hourly and rolled-up rows together: ``estimate, billed = totals``."""

    estimate_usd: float
    billed_usd: float


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """How many rows :meth:`Ledger.apply_retention` removed or folded, and the checkpoint's answer."""

    ticks: int = 0
    traffic: int = 0
    jobs: int = 0
    worker_sessions: int = 0
    commands: int = 0
    decisions: int = 0
    spend_hours_rolled_up: int = 0
    spend_days_deleted: int = 0
    checkpoint: tuple[int, int, int] | None = None
    """``PRAGMA wal_checkpoint(TRUNCATE)``: (busy, wal pages, pages checkpointed)."""


# ------------------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------------------

MIGRATIONS = Migrations(MIGRATION_SET)

_INITIAL_SCHEMA = (
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE ticks (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
        blind INTEGER NOT NULL CHECK (blind IN (0, 1)),
        error TEXT,
        endpoints INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE endpoint_config (
        id INTEGER PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        observed_at REAL NOT NULL,
        name TEXT NOT NULL,
        workers_min INTEGER NOT NULL,
        workers_max INTEGER NOT NULL,
        workers_standby INTEGER NOT NULL,
        idle_timeout_s INTEGER NOT NULL,
        execution_timeout_ms INTEGER,
        gpu_pools TEXT NOT NULL,
        scaler_type TEXT NOT NULL,
        scaler_value REAL NOT NULL,
        raw TEXT NOT NULL,
        changed_fields TEXT
    )
    """,
    "CREATE INDEX endpoint_config_by_endpoint ON endpoint_config (endpoint_id)",
    """
    CREATE TABLE worker_sessions (
        worker_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        gpu_type_id TEXT,
        first_seen_at REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        ended_at REAL,
        last_status TEXT NOT NULL,
        initializing_s REAL NOT NULL DEFAULT 0,
        running_s REAL NOT NULL DEFAULT 0,
        idle_s REAL NOT NULL DEFAULT 0,
        estimated_usd REAL NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX worker_sessions_by_end ON worker_sessions (ended_at)",
    """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        worker_id TEXT,
        status TEXT NOT NULL,
        first_seen_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        delay_ms INTEGER,
        execution_ms INTEGER,
        source TEXT NOT NULL
    )
    """,
    "CREATE INDEX jobs_by_first_seen ON jobs (first_seen_at)",
    """
    CREATE TABLE spend (
        endpoint_id TEXT NOT NULL,
        hour REAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('estimate', 'billed')),
        usd REAL NOT NULL,
        gpu_seconds REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (endpoint_id, hour, source)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX spend_by_hour ON spend (hour)",
    """
    CREATE TABLE spend_daily (
        endpoint_id TEXT NOT NULL,
        day REAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('estimate', 'billed')),
        usd REAL NOT NULL,
        gpu_seconds REAL NOT NULL,
        hours INTEGER NOT NULL,
        PRIMARY KEY (endpoint_id, day, source)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX spend_daily_by_day ON spend_daily (day)",
    """
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        tick_id INTEGER REFERENCES ticks (id) ON DELETE SET NULL,
        rule TEXT NOT NULL,
        action TEXT NOT NULL,
        endpoint_id TEXT,
        job_id TEXT,
        worker_id TEXT,
        mode TEXT NOT NULL,
        outcome TEXT NOT NULL
            CHECK (outcome IN ('proposed', 'applied', 'failed', 'verified', 'not_verified', 'skipped')),
        reason TEXT NOT NULL,
        patch TEXT,
        previous TEXT,
        saved_usd REAL NOT NULL DEFAULT 0,
        error TEXT,
        dedupe_key TEXT
    )
    """,
    "CREATE INDEX decisions_by_tick ON decisions (tick_id)",
    "CREATE INDEX decisions_by_dedupe_key ON decisions (dedupe_key) WHERE dedupe_key IS NOT NULL",
    """
    CREATE TABLE brake_state (
        endpoint_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('runaway', 'brake', 'cooldown', 'idle', 'manual')),
        since REAL NOT NULL,
        until REAL,
        month REAL,
        previous TEXT
    )
    """,
    """
    CREATE TABLE alerts (
        key TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        text TEXT NOT NULL,
        eur REAL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at REAL,
        sent_at REAL,
        last_error TEXT,
        acknowledged_at REAL
    )
    """,
    "CREATE INDEX alerts_unsent ON alerts (created_at) WHERE state != 'sent'",
    """
    CREATE TABLE traffic (
        endpoint_id TEXT NOT NULL,
        source TEXT NOT NULL,
        minute REAL NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        pings INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (endpoint_id, source, minute)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX traffic_by_minute ON traffic (minute)",
    """
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY,
        created_at REAL NOT NULL,
        kind TEXT NOT NULL,
        args TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'rejected')),
        result TEXT,
        done_at REAL
    )
    """,
    "CREATE INDEX commands_pending ON commands (id) WHERE state = 'pending'",
)


@MIGRATIONS(name="0001_initial_schema")
def _initial_schema(db: Database) -> None:
    # Statement by statement: executescript() would COMMIT and break the migration's transaction.
    for statement in _INITIAL_SCHEMA:
        db.execute(statement)


@MIGRATIONS(name="0002_brake_rule")
def _brake_rule(db: Database) -> None:
    # The rule that set a brake used to live in a meta key beside the brake; now it is the brake's own.
    db.execute("ALTER TABLE brake_state ADD COLUMN rule TEXT")


@MIGRATIONS(name="0003_intended_outcome")
def _intended_outcome(db: Database) -> None:
    # SQLite cannot widen a CHECK constraint in place: rebuild the table with 'intended' allowed.
    db.execute(
        """
        CREATE TABLE decisions_new (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            tick_id INTEGER REFERENCES ticks (id) ON DELETE SET NULL,
            rule TEXT NOT NULL,
            action TEXT NOT NULL,
            endpoint_id TEXT,
            job_id TEXT,
            worker_id TEXT,
            mode TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN
                ('intended', 'proposed', 'applied', 'failed', 'verified', 'not_verified', 'skipped')),
            reason TEXT NOT NULL,
            patch TEXT,
            previous TEXT,
            saved_usd REAL NOT NULL DEFAULT 0,
            error TEXT,
            dedupe_key TEXT
        )
        """
    )
    db.execute("INSERT INTO decisions_new SELECT * FROM decisions")
    db.execute("DROP TABLE decisions")
    db.execute("ALTER TABLE decisions_new RENAME TO decisions")
    db.execute("CREATE INDEX decisions_by_tick ON decisions (tick_id)")
    db.execute("CREATE INDEX decisions_by_dedupe_key ON decisions (dedupe_key) WHERE dedupe_key IS NOT NULL")


@MIGRATIONS(name="0004_report_views")
def _report_views(db: Database) -> None:
    # Views only, no table changes: stable, documented read models for BI tools (Metabase, Datasette) and
    # `runpod-watchdog report` (docs/funders.md documents every column). Money is USD (RunPod's currency;
    # divide by budget.usd_per_eur for euros). Times: epoch seconds (UTC) plus text columns (`*_utc`,
    # `day` YYYY-MM-DD, `month` YYYY-MM) for tools that group by text. Per endpoint and hour, RunPod's bill
    # counts where it exists and the live estimate only where it does not (yet): `basis` says which.
    # Never change a column's meaning: add columns, or new views in a new step.
    views = (
        """
        CREATE VIEW hourly_spend AS
        SELECT endpoint_id,
               hour,
               strftime('%Y-%m-%dT%H:%M:%SZ', hour, 'unixepoch') AS hour_utc,
               date(hour, 'unixepoch') AS day,
               strftime('%Y-%m', hour, 'unixepoch') AS month,
               coalesce(estimate_usd, 0.0) AS estimate_usd,
               billed_usd,
               coalesce(billed_usd, estimate_usd, 0.0) AS usd,
               CASE WHEN billed_usd IS NULL THEN 'estimate' ELSE 'billed' END AS basis,
               CASE WHEN billed_usd IS NULL THEN NULL ELSE billed_usd - coalesce(estimate_usd, 0.0) END
                   AS drift_usd,
               coalesce(estimate_gpu_seconds, 0.0) AS gpu_seconds_total
        FROM (
            SELECT endpoint_id, hour,
                   max(CASE WHEN source = 'estimate' THEN usd END) AS estimate_usd,
                   max(CASE WHEN source = 'billed' THEN usd END) AS billed_usd,
                   max(CASE WHEN source = 'estimate' THEN gpu_seconds END) AS estimate_gpu_seconds
            FROM spend GROUP BY endpoint_id, hour
        )
        """,
        # Hourly rows aggregated per UTC day, plus the days retention folded into spend_daily (there the bill
        # counts for the whole day when the day has any billed hour: the hour-by-hour choice is gone).
        """
        CREATE VIEW daily_spend AS
        SELECT endpoint_id,
               day_start,
               date(day_start, 'unixepoch') AS day,
               strftime('%Y-%m', day_start, 'unixepoch') AS month,
               total(usd) AS usd,
               total(estimate_usd) AS estimate_usd,
               CASE WHEN sum(billed_hours) > 0 THEN total(billed_usd) END AS billed_usd,
               CASE WHEN sum(billed_hours) > 0 THEN total(drift_usd) END AS drift_usd,
               CAST(sum(billed_hours) AS INTEGER) AS billed_hours,
               CAST(sum(estimate_only_hours) AS INTEGER) AS estimate_only_hours,
               CASE WHEN sum(billed_hours) = 0 THEN 'estimate'
                    WHEN sum(estimate_only_hours) = 0 THEN 'billed' ELSE 'mixed' END AS basis,
               total(gpu_seconds_total) AS gpu_seconds_total
        FROM (
            SELECT endpoint_id, CAST((CAST(hour AS INTEGER) / 86400) * 86400 AS REAL) AS day_start, usd,
                   estimate_usd, coalesce(billed_usd, 0.0) AS billed_usd,
                   coalesce(drift_usd, 0.0) AS drift_usd,
                   billed_usd IS NOT NULL AS billed_hours, billed_usd IS NULL AS estimate_only_hours,
                   gpu_seconds_total
            FROM hourly_spend
            UNION ALL
            SELECT endpoint_id, day,
                   coalesce(max(CASE WHEN source = 'billed' THEN usd END),
                            max(CASE WHEN source = 'estimate' THEN usd END), 0.0),
                   coalesce(max(CASE WHEN source = 'estimate' THEN usd END), 0.0),
                   coalesce(max(CASE WHEN source = 'billed' THEN usd END), 0.0),
                   coalesce(max(CASE WHEN source = 'billed' THEN usd END)
                            - coalesce(max(CASE WHEN source = 'estimate' THEN usd END), 0.0), 0.0),
                   coalesce(max(CASE WHEN source = 'billed' THEN hours END), 0),
                   CASE WHEN max(CASE WHEN source = 'billed' THEN hours END) IS NULL
                        THEN coalesce(max(CASE WHEN source = 'estimate' THEN hours END), 0) ELSE 0 END,
                   coalesce(max(CASE WHEN source = 'estimate' THEN gpu_seconds END), 0.0)
            FROM spend_daily GROUP BY endpoint_id, day
        )
        GROUP BY endpoint_id, day_start
        """,
        # Requests per endpoint and UTC day: the larger of the logs' count (all sources) and the /health
        # counters' growth (source '(health)', watchdog.daemon.state.HEALTH_SOURCE), day by day (minute by
        # minute the two disagree on the minute a request is counted in, and a max would count it twice).
        """
        CREATE VIEW daily_requests AS
        SELECT endpoint_id,
               day_start,
               date(day_start, 'unixepoch') AS day,
               strftime('%Y-%m', day_start, 'unixepoch') AS month,
               max(coalesce(sum(CASE WHEN source != '(health)' THEN requests END), 0),
                   coalesce(sum(CASE WHEN source = '(health)' THEN requests END), 0)) AS requests,
               sum(pings) AS pings
        FROM (
            SELECT endpoint_id, CAST((CAST(minute AS INTEGER) / 86400) * 86400 AS REAL) AS day_start, source,
                   requests, pings
            FROM traffic
        )
        GROUP BY endpoint_id, day_start
        """,
        # One row per worker session the daemon saw: each one began with a cold start (INITIALIZING). Seconds
        # are the daemon's poll-resolution measure (a worker seen in a state at a poll counts the interval).
        """
        CREATE VIEW cold_starts AS
        SELECT endpoint_id,
               worker_id,
               gpu_type_id,
               first_seen_at AS started_at,
               strftime('%Y-%m-%dT%H:%M:%SZ', first_seen_at, 'unixepoch') AS started_utc,
               date(first_seen_at, 'unixepoch') AS day,
               strftime('%Y-%m', first_seen_at, 'unixepoch') AS month,
               ended_at,
               initializing_s AS cold_start_seconds,
               running_s,
               idle_s,
               initializing_s + running_s + idle_s AS gpu_seconds_total,
               estimated_usd
        FROM worker_sessions
        """,
        # The seed's three dashboard indicators per endpoint and UTC day, by their names.
        """
        CREATE VIEW daily_indicators AS
        WITH keys AS (
            SELECT endpoint_id, day FROM daily_spend
            UNION SELECT endpoint_id, day FROM daily_requests
            UNION SELECT endpoint_id, day FROM cold_starts
        ),
        cold AS (
            SELECT endpoint_id, day, count(*) AS cold_starts, avg(cold_start_seconds) AS cold_start_seconds,
                   max(cold_start_seconds) AS cold_start_seconds_max
            FROM cold_starts GROUP BY endpoint_id, day
        )
        SELECT keys.endpoint_id,
               keys.day,
               substr(keys.day, 1, 7) AS month,
               coalesce(r.requests, 0) AS requests,
               coalesce(s.usd, 0.0) AS usd,
               s.basis,
               CASE WHEN coalesce(r.requests, 0) > 0 THEN coalesce(s.usd, 0.0) * 1000.0 / r.requests END
                   AS cost_per_1000_requests,
               coalesce(s.gpu_seconds_total, 0.0) AS gpu_seconds_total,
               coalesce(c.cold_starts, 0) AS cold_starts,
               c.cold_start_seconds,
               c.cold_start_seconds_max
        FROM keys
        LEFT JOIN daily_spend AS s ON s.endpoint_id = keys.endpoint_id AND s.day = keys.day
        LEFT JOIN daily_requests AS r ON r.endpoint_id = keys.endpoint_id AND r.day = keys.day
        LEFT JOIN cold AS c ON c.endpoint_id = keys.endpoint_id AND c.day = keys.day
        """,
        """
        CREATE VIEW alert_log AS
        SELECT key,
               kind,
               severity,
               created_at,
               strftime('%Y-%m-%dT%H:%M:%SZ', created_at, 'unixepoch') AS created_utc,
               date(created_at, 'unixepoch') AS day,
               strftime('%Y-%m', created_at, 'unixepoch') AS month,
               text,
               eur,
               state,
               state = 'sent' AS delivered,
               attempts,
               sent_at,
               strftime('%Y-%m-%dT%H:%M:%SZ', sent_at, 'unixepoch') AS sent_utc,
               last_error,
               acknowledged_at
        FROM alerts
        """,
        # Every step of every decision; `counts_as_saving` marks the steps whose saved_usd is counted
        # (proposed in dry-run, applied in enforce: the daemon's own rule for its saved-money metric).
        """
        CREATE VIEW action_log AS
        SELECT id,
               at,
               strftime('%Y-%m-%dT%H:%M:%SZ', at, 'unixepoch') AS at_utc,
               date(at, 'unixepoch') AS day,
               strftime('%Y-%m', at, 'unixepoch') AS month,
               rule,
               action,
               endpoint_id,
               job_id,
               worker_id,
               mode,
               outcome,
               reason,
               saved_usd,
               outcome IN ('proposed', 'applied') AND saved_usd != 0 AS counts_as_saving,
               error,
               dedupe_key
        FROM decisions
        """,
        """
        CREATE VIEW monthly_savings AS
        SELECT month,
               coalesce(endpoint_id, '') AS endpoint_id,
               rule,
               mode,
               count(*) AS actions,
               total(CASE WHEN counts_as_saving THEN saved_usd END) AS saved_usd
        FROM action_log
        WHERE outcome IN ('proposed', 'applied')
        GROUP BY month, coalesce(endpoint_id, ''), rule, mode
        """,
        """
        CREATE VIEW monthly_summary AS
        WITH keys AS (
            SELECT endpoint_id, month FROM daily_spend
            UNION SELECT endpoint_id, month FROM daily_requests
            UNION SELECT endpoint_id, month FROM cold_starts
        ),
        s AS (
            SELECT endpoint_id, month, total(usd) AS usd, total(estimate_usd) AS estimate_usd,
                   total(drift_usd) AS drift_usd, sum(billed_hours) AS billed_hours,
                   sum(estimate_only_hours) AS estimate_only_hours,
                   total(gpu_seconds_total) AS gpu_seconds_total
            FROM daily_spend GROUP BY endpoint_id, month
        ),
        r AS (SELECT endpoint_id, month, sum(requests) AS requests FROM daily_requests GROUP BY 1, 2),
        c AS (
            SELECT endpoint_id, month, count(*) AS cold_starts, avg(cold_start_seconds) AS cold_start_seconds
            FROM cold_starts GROUP BY 1, 2
        ),
        v AS (
            SELECT endpoint_id, month,
                   total(CASE WHEN mode = 'enforce' THEN saved_usd END) AS saved_usd_enforce,
                   total(CASE WHEN mode = 'dry-run' THEN saved_usd END) AS saved_usd_dry_run
            FROM monthly_savings GROUP BY 1, 2
        )
        SELECT keys.endpoint_id,
               keys.month,
               coalesce(s.usd, 0.0) AS usd,
               coalesce(s.estimate_usd, 0.0) AS estimate_usd,
               coalesce(s.drift_usd, 0.0) AS drift_usd,
               coalesce(s.billed_hours, 0) AS billed_hours,
               coalesce(s.estimate_only_hours, 0) AS estimate_only_hours,
               coalesce(r.requests, 0) AS requests,
               CASE WHEN coalesce(r.requests, 0) > 0 THEN coalesce(s.usd, 0.0) * 1000.0 / r.requests END
                   AS cost_per_1000_requests,
               coalesce(s.gpu_seconds_total, 0.0) AS gpu_seconds_total,
               coalesce(c.cold_starts, 0) AS cold_starts,
               c.cold_start_seconds,
               coalesce(v.saved_usd_enforce, 0.0) AS saved_usd_enforce,
               coalesce(v.saved_usd_dry_run, 0.0) AS saved_usd_dry_run
        FROM keys
        LEFT JOIN s ON s.endpoint_id = keys.endpoint_id AND s.month = keys.month
        LEFT JOIN r ON r.endpoint_id = keys.endpoint_id AND r.month = keys.month
        LEFT JOIN c ON c.endpoint_id = keys.endpoint_id AND c.month = keys.month
        LEFT JOIN v ON v.endpoint_id = keys.endpoint_id AND v.month = keys.month
        """,
    )
    for statement in views:
        db.execute(statement)


@MIGRATIONS(name="0005_state_seconds")
def _state_seconds(db: Database) -> None:
    # Two new tables, nothing else touched: the live estimate's GPU seconds per worker state and hour
    # (billed or not), and how much of each hour it observed, so RunPod's hourly bill can be reconciled
    # state by state across restarts (watchdog/reconcile.py). Rows go with retention's raw rows.
    db.execute(
        """
        CREATE TABLE state_seconds (
            endpoint_id TEXT NOT NULL,
            hour REAL NOT NULL,
            state TEXT NOT NULL,
            gpu_seconds REAL NOT NULL,
            usd REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (endpoint_id, hour, state)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX state_seconds_by_hour ON state_seconds (hour)")
    db.execute(
        """
        CREATE TABLE observed_hours (
            hour REAL PRIMARY KEY,
            seconds REAL NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID
        """
    )


SCHEMA_STEPS: tuple[str, ...] = MIGRATIONS.names
"""Names of the migration steps this version knows, oldest first; ``len(SCHEMA_STEPS)`` is the version."""


# ------------------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------------------


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=list)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _require_aligned(value: float, period_s: float, what: str) -> None:
    if not math.isfinite(value) or value % period_s != 0:
        raise LedgerError(f"{what} {value!r} is not the start of a UTC {period_s:g}-second period")


def _month_bounds(month_start: float) -> tuple[float, float]:
    if _month_start_of(month_start) != month_start:
        raise ValueError(f"{month_start!r} is not the start of a UTC month")
    return month_start, next_month_start(month_start)


def _applied_steps(db: Database) -> list[str]:
    return [migration.name for migration in MIGRATIONS.applied(db)]


def _check_not_newer(applied: Sequence[str], path: Path) -> None:
    unknown = [name for name in applied if name not in SCHEMA_STEPS]
    if unknown:
        raise LedgerError(
            f"the ledger {path} was written by a newer runpod-watchdog (unknown schema steps: "
            f"{', '.join(unknown)}); upgrade this installation"
        )


class LedgerReadModel:
    """The queries, shared by the writer (daemon restart) and the read-only reader (TUI, metrics).

    Every query is one SQL statement, so outside a transaction each one sees a committed state and holds no
    lock once it returns.
    """

    path: Path
    _db: Database

    # -- plumbing -------------------------------------------------------------------------------------------

    def _rows(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._db.execute(sql, parameters)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise LedgerError(f"reading the ledger {self.path} failed: {exc}") from exc

    def _meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else None

    # -- queries --------------------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A value stored in ``meta`` (by a tick's ``meta`` or the ledger itself), or None."""
        return self._meta(key)

    def stored_status(self) -> DaemonStatus | None:
        """The DaemonStatus the daemon stored with its last tick (meta ``status``), for readers that run
        while the daemon is down; None if it never stored one."""
        raw = self._meta(STATUS_META_KEY)
        if raw is None:
            return None
        try:
            return DaemonStatus.from_dict(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerError(f"the status stored in {self.path} is unreadable: {exc}") from exc

    def open_jobs(self, endpoint_id: str, limit: int = 20) -> list[OpenJobRow]:
        """Jobs of one endpoint seen queued or running and not seen finishing, oldest first."""
        placeholders = ", ".join("?" for _ in _OPEN_JOB_STATUSES)
        rows = self._rows(
            "SELECT job_id, endpoint_id, status, first_seen_at, started_at FROM jobs"
            f" WHERE endpoint_id = ? AND finished_at IS NULL AND status IN ({placeholders})"
            " ORDER BY coalesce(started_at, first_seen_at) LIMIT ?",
            [endpoint_id, *_OPEN_JOB_STATUSES, limit],
        )
        return [OpenJobRow(**row) for row in rows]

    def schema_steps(self) -> list[str]:
        """Names of the applied migration steps, oldest first."""
        try:
            return _applied_steps(self._db)
        except sqlite3.Error as exc:
            raise LedgerError(f"reading the ledger {self.path} failed: {exc}") from exc

    def last_accounted_at(self) -> float | None:
        """End of the last accounted interval: where the next tick's accounting must start."""
        value = self._meta(_META_LAST_ACCOUNTED)
        return None if value is None else float(value)

    def latest_tick(self) -> TickRow | None:
        """The heartbeat: the last committed tick."""
        rows = self._rows("SELECT * FROM ticks ORDER BY id DESC LIMIT 1")
        return _tick_row(rows[0]) if rows else None

    def ticks_since(self, t: float) -> list[TickRow]:
        """Ticks started at or after ``t``, oldest first."""
        rows = self._rows("SELECT * FROM ticks WHERE started_at >= ? ORDER BY id", [t])
        return [_tick_row(row) for row in rows]

    def month_spend_by_hour(self, month_start: float) -> dict[tuple[str, float, SpendSource], float]:
        """USD per (endpoint, hour start, source) for the hours of the month still kept hourly.

        Hours older than the raw retention are folded into days: use :meth:`month_spend_by_day` or
        :meth:`month_totals` for the whole month.
        """
        start, end = _month_bounds(month_start)
        rows = self._rows(
            "SELECT endpoint_id, hour, source, usd FROM spend WHERE hour >= ? AND hour < ?", [start, end]
        )
        return {(row["endpoint_id"], row["hour"], row["source"]): row["usd"] for row in rows}

    def state_seconds_since(self, t: float) -> list[StateSeconds]:
        """The live estimate's GPU seconds per endpoint, worker state and hour, for hours starting at or
        after ``t`` (kept as long as raw rows)."""
        rows = self._rows(
            "SELECT endpoint_id, hour, state, gpu_seconds, usd FROM state_seconds WHERE hour >= ?"
            " ORDER BY hour, endpoint_id, state",
            [t],
        )
        return [
            StateSeconds(row["endpoint_id"], row["hour"], row["state"], row["gpu_seconds"], row["usd"])
            for row in rows
        ]

    def observed_seconds_since(self, t: float) -> dict[float, float]:
        """Hour start → seconds of it the live estimate observed, for hours starting at or after ``t``."""
        rows = self._rows("SELECT hour, seconds FROM observed_hours WHERE hour >= ?", [t])
        return {row["hour"]: row["seconds"] for row in rows}

    def month_spend_by_day(self, month_start: float) -> dict[tuple[str, float, SpendSource], float]:
        """USD per (endpoint, UTC day start, source) for the whole month, hourly and rolled-up rows merged."""
        start, end = _month_bounds(month_start)
        rows = self._rows(
            """
            SELECT endpoint_id, day, source, total(usd) AS usd FROM (
                SELECT endpoint_id, CAST((CAST(hour AS INTEGER) / 86400) * 86400 AS REAL) AS day, source, usd
                FROM spend WHERE hour >= :start AND hour < :end
                UNION ALL
                SELECT endpoint_id, day, source, usd FROM spend_daily WHERE day >= :start AND day < :end
            ) GROUP BY endpoint_id, day, source
            """,
            {"start": start, "end": end},
        )
        return {(row["endpoint_id"], row["day"], row["source"]): row["usd"] for row in rows}

    def month_totals(self, month_start: float) -> MonthTotals:
        """Estimated and billed USD for the month; exact across rollups (UTC days never straddle months)."""
        start, end = _month_bounds(month_start)
        rows = self._rows(
            """
            SELECT
                (SELECT total(usd) FROM spend
                 WHERE source = 'estimate' AND hour >= :start AND hour < :end)
              + (SELECT total(usd) FROM spend_daily
                 WHERE source = 'estimate' AND day >= :start AND day < :end) AS estimate,
                (SELECT total(usd) FROM spend
                 WHERE source = 'billed' AND hour >= :start AND hour < :end)
              + (SELECT total(usd) FROM spend_daily
                 WHERE source = 'billed' AND day >= :start AND day < :end) AS billed
            """,
            {"start": start, "end": end},
        )
        return MonthTotals(estimate_usd=rows[0]["estimate"], billed_usd=rows[0]["billed"])

    def recent_decisions(self, limit: int = 50) -> list[DecisionRow]:
        """The newest decisions first."""
        rows = self._rows("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", [limit])
        return [_decision_row(row) for row in rows]

    def decisions_with_key(self, dedupe_key: str) -> list[DecisionRow]:
        """Every recorded step of one decision, oldest first (so a restarted daemon does not repeat it)."""
        rows = self._rows("SELECT * FROM decisions WHERE dedupe_key = ? ORDER BY id", [dedupe_key])
        return [_decision_row(row) for row in rows]

    def recent_alerts(self, limit: int = 50) -> list[AlertRow]:
        """The newest alerts first, whatever their state."""
        rows = self._rows("SELECT * FROM alerts ORDER BY created_at DESC, key LIMIT ?", [limit])
        return [_alert_row(row) for row in rows]

    def alert_counts(self) -> tuple[int, int]:
        """(sent, not yet sent) alerts in the ledger."""
        rows = self._rows(
            "SELECT count(*) FILTER (WHERE state = 'sent') AS sent,"
            " count(*) FILTER (WHERE state != 'sent') AS unsent FROM alerts"
        )
        return int(rows[0]["sent"]), int(rows[0]["unsent"])

    def size_bytes(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(f"{self.path}{suffix}")
        return total

    def pending_alerts(self, limit: int = 20) -> list[AlertRow]:
        """Alerts not yet delivered (never tried, or the last attempt failed), oldest first.

        ``attempts`` and ``last_attempt_at`` are there for the sender's back-off.
        """
        rows = self._rows(
            "SELECT * FROM alerts WHERE state != 'sent' ORDER BY created_at, key LIMIT ?", [limit]
        )
        return [_alert_row(row) for row in rows]

    def config_history(self, endpoint_id: str) -> list[ConfigRow]:
        """Every configuration change of one endpoint, oldest first."""
        rows = self._rows("SELECT * FROM endpoint_config WHERE endpoint_id = ? ORDER BY id", [endpoint_id])
        return [_config_row(row) for row in rows]

    def latest_configs(self) -> dict[str, ConfigRow]:
        """The last known configuration of every endpoint ever seen."""
        rows = self._rows(
            "SELECT * FROM endpoint_config"
            " WHERE id IN (SELECT max(id) FROM endpoint_config GROUP BY endpoint_id)"
        )
        return {row["endpoint_id"]: _config_row(row) for row in rows}

    def open_worker_sessions(self) -> list[WorkerSessionRow]:
        """Workers not seen to end, oldest first."""
        rows = self._rows("SELECT * FROM worker_sessions WHERE ended_at IS NULL ORDER BY first_seen_at")
        return [WorkerSessionRow(**row) for row in rows]

    def brake_states(self) -> dict[str, BrakeState]:
        """Endpoints the daemon is currently holding down."""
        rows = self._rows("SELECT * FROM brake_state ORDER BY endpoint_id")
        return {row["endpoint_id"]: _brake_state(row) for row in rows}

    def traffic_since(self, t: float) -> list[TrafficCount]:
        """Per-minute traffic from the minute containing ``t`` on, oldest first."""
        rows = self._rows(
            "SELECT * FROM traffic WHERE minute >= ? ORDER BY minute, endpoint_id, source", [t - t % MINUTE_S]
        )
        return [TrafficCount(**row) for row in rows]

    def pending_commands(self) -> list[CommandRow]:
        """Commands the daemon has not finished, oldest first."""
        rows = self._rows("SELECT * FROM commands WHERE state = 'pending' ORDER BY id")
        return [_command_row(row) for row in rows]

    def command(self, command_id: int) -> CommandRow | None:
        rows = self._rows("SELECT * FROM commands WHERE id = ?", [command_id])
        return _command_row(rows[0]) if rows else None


def _tick_row(row: dict[str, Any]) -> TickRow:
    return TickRow(**{**row, "ok": bool(row["ok"]), "blind": bool(row["blind"])})


def _config_row(row: dict[str, Any]) -> ConfigRow:
    changed = _loads(row["changed_fields"])
    return ConfigRow(
        **{
            **row,
            "gpu_pools": tuple(_loads(row["gpu_pools"])),
            "raw": _loads(row["raw"]),
            "changed_fields": None if changed is None else tuple(changed),
        }
    )


def _decision_row(row: dict[str, Any]) -> DecisionRow:
    return DecisionRow(**{**row, "patch": _loads(row["patch"]), "previous": _loads(row["previous"])})


def _alert_row(row: dict[str, Any]) -> AlertRow:
    return AlertRow(**row)


def _brake_state(row: dict[str, Any]) -> BrakeState:
    return BrakeState(**{**row, "kind": BrakeKind(row["kind"]), "previous": _loads(row["previous"])})


def _command_row(row: dict[str, Any]) -> CommandRow:
    return CommandRow(**{**row, "args": _loads(row["args"]), "result": _loads(row["result"])})


# ------------------------------------------------------------------------------------------------------------
# The writer
# ------------------------------------------------------------------------------------------------------------


class _InstanceLock:
    """``flock`` on ``<ledger>.lock``; the file holds the owner's pid for the error message."""

    def __init__(self, ledger_path: Path) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self, ledger_path: Path) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise LedgerError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LedgerError(
                    f"another runpod-watchdog holds the ledger {ledger_path} (pid {holder})"
                ) from None
            raise LedgerError(f"cannot lock {self.path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        # The file stays: unlinking a lock file races with a process that has just opened it.
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class Ledger(LedgerReadModel):
    """The daemon's read-write handle. Exactly one per ledger file (enforced); use as a context manager."""

    def __init__(self, path: Path, db: Database, lock: _InstanceLock) -> None:
        self.path = path
        self._db = db
        self._lock = lock
        self._identity = _file_identity(path)
        """(device, inode) of the file opened: another file at the path means it was replaced."""

    def check_file(self) -> None:
        """Raise LedgerError if the file at ``path`` is no longer the one this handle writes to: deleted
        (SQLite would go on writing into an unlinked inode, lost at exit) or replaced (a restore, a
        mistaken ``cp``). Cheap: one ``stat``."""
        try:
            identity = _file_identity(self.path)
        except FileNotFoundError:
            raise LedgerError(f"the ledger file {self.path} was deleted while the daemon ran") from None
        if identity != self._identity:
            raise LedgerError(
                f"the ledger file {self.path} was replaced by another file while the daemon ran"
            )

    def reopen(self, *, busy_timeout_ms: int = 5000) -> None:
        """Open the file now at ``path`` (creating it if it is gone) under the same lock, and write there
        from now on. On failure this handle is unchanged and LedgerError says why."""
        _refuse_empty(self.path)
        try:
            db = Database(sqlite3.connect(self.path, timeout=busy_timeout_ms / 1000))
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot reopen the ledger {self.path}: {exc}") from exc
        try:
            _configure_writer(db, self.path, busy_timeout_ms)
            _check_not_newer(_applied_steps(db), self.path)
            MIGRATIONS.apply(db)
        except (sqlite3.Error, LedgerError) as exc:
            db.close()
            raise LedgerError(f"cannot reopen the ledger {self.path}: {exc}") from exc
        old, self._db = self._db, db
        with contextlib.suppress(sqlite3.Error):
            old.close()
        self._identity = _file_identity(self.path)

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_ms: int = 5000) -> Ledger:
        """Lock, open (creating if needed) and migrate the ledger at ``path``.

        Raises:
            LedgerError: another instance holds it, the directory is missing, the file is not a (healthy)
                SQLite database, or it was written by a newer version.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise LedgerError(f"the ledger directory {path.parent} does not exist")
        if path.is_dir():
            raise LedgerError(f"the ledger path {path} is a directory, not a file")
        _refuse_empty(path)
        lock = _InstanceLock(path)
        lock.acquire(path)
        db: Database | None = None
        try:
            db = Database(sqlite3.connect(path, timeout=busy_timeout_ms / 1000))
            _configure_writer(db, path, busy_timeout_ms)
            _check_not_newer(_applied_steps(db), path)
            MIGRATIONS.apply(db)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            lock.release()
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        except BaseException:
            if db is not None:
                db.close()
            lock.release()
            raise
        return cls(path, db, lock)

    def close(self) -> None:
        """Close the database, then release the instance lock (idempotent)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[Database]:
        try:
            with self._db.atomic():
                yield self._db
        except sqlite3.Error as exc:
            raise LedgerError(f"{what} failed in {self.path}: {exc}") from exc

    # -- the tick -------------------------------------------------------------------------------------------

    def record_tick(self, tick: TickRecord) -> RecordedTick:
        """Write everything one tick produced in ONE transaction; on any error nothing of it is kept.

        Raises:
            LedgerError: the accounting interval does not continue the last one, an accrual lies outside
                it, or SQLite refused a row. The ledger is unchanged.
        """
        _validate_tick(tick)
        with self._transaction("recording a tick") as db:
            tick_id = self._insert_tick(db, tick)
            config_changes = self._write_configs(db, tick)
            self._write_workers(db, tick)
            self._write_jobs(db, tick)
            self._write_estimates(db, tick)
            self._write_state_seconds(db, tick)
            refused_billed = self._write_billed(db, tick)
            self._write_traffic(db, tick)
            new_alerts = self._write_changes(db, tick_id, tick.started_at, tick)
        return RecordedTick(
            tick_id=tick_id,
            config_changes=config_changes,
            new_alerts=new_alerts,
            refused_billed=refused_billed,
        )

    @staticmethod
    def _insert_tick(db: Database, tick: TickRecord) -> int:
        cursor = db.execute(
            """
            INSERT INTO ticks (started_at, finished_at, ok, blind, error, endpoints, duration_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [
                tick.started_at,
                tick.finished_at,
                int(tick.ok),
                int(tick.blind),
                tick.error,
                tick.endpoints,
                round((tick.finished_at - tick.started_at) * 1000),
            ],
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _write_configs(self, db: Database, tick: TickRecord) -> tuple[ConfigChange, ...]:
        changes = []
        for config in tick.configs:
            current = {
                "name": config.name,
                "workers_min": config.workers_min,
                "workers_max": config.workers_max,
                "workers_standby": config.workers_standby,
                "idle_timeout_s": config.idle_timeout_s,
                "execution_timeout_ms": config.execution_timeout_ms,
                "gpu_pools": _dumps(list(config.gpu_pools)),
                "scaler_type": config.scaler_type,
                "scaler_value": config.scaler_value,
            }
            last = self._rows(
                "SELECT * FROM endpoint_config WHERE endpoint_id = ? ORDER BY id DESC LIMIT 1",
                [config.endpoint_id],
            )
            if last:
                changed: tuple[str, ...] | None = tuple(
                    name for name in CONFIG_COMPARED_FIELDS if last[0][name] != current[name]
                )
                if not changed:
                    continue
            else:
                changed = None
            db.execute(
                """
                INSERT INTO endpoint_config (endpoint_id, observed_at, name, workers_min, workers_max,
                    workers_standby, idle_timeout_s, execution_timeout_ms, gpu_pools, scaler_type,
                    scaler_value, raw, changed_fields)
                VALUES (:endpoint_id, :observed_at, :name, :workers_min, :workers_max, :workers_standby,
                    :idle_timeout_s, :execution_timeout_ms, :gpu_pools, :scaler_type, :scaler_value, :raw,
                    :changed_fields)
                """,
                {
                    **current,
                    "endpoint_id": config.endpoint_id,
                    "observed_at": tick.started_at,
                    "raw": _dumps(dict(config.raw)),
                    "changed_fields": _dumps(None if changed is None else list(changed)),
                },
            )
            changes.append(ConfigChange(config.endpoint_id, changed))
        return tuple(changes)

    @staticmethod
    def _write_workers(db: Database, tick: TickRecord) -> None:
        for worker in tick.workers:
            db.execute(
                """
                INSERT INTO worker_sessions (worker_id, endpoint_id, gpu_type_id, first_seen_at, last_seen_at,
                    ended_at, last_status, initializing_s, running_s, idle_s, estimated_usd)
                VALUES (:worker_id, :endpoint_id, :gpu_type_id, :seen_at, :seen_at, :ended_at, :status,
                    :initializing_s, :running_s, :idle_s, :usd)
                ON CONFLICT (worker_id) DO UPDATE SET
                    endpoint_id = excluded.endpoint_id,
                    gpu_type_id = coalesce(excluded.gpu_type_id, gpu_type_id),
                    last_seen_at = excluded.last_seen_at,
                    ended_at = excluded.ended_at,
                    last_status = excluded.last_status,
                    initializing_s = initializing_s + excluded.initializing_s,
                    running_s = running_s + excluded.running_s,
                    idle_s = idle_s + excluded.idle_s,
                    estimated_usd = estimated_usd + excluded.estimated_usd
                """,
                {
                    "worker_id": worker.worker_id,
                    "endpoint_id": worker.endpoint_id,
                    "gpu_type_id": worker.gpu_type_id,
                    "seen_at": tick.started_at,
                    "ended_at": worker.ended_at,
                    "status": worker.status,
                    "initializing_s": worker.initializing_s,
                    "running_s": worker.running_s,
                    "idle_s": worker.idle_s,
                    "usd": worker.usd,
                },
            )

    @staticmethod
    def _write_jobs(db: Database, tick: TickRecord) -> None:
        for job in tick.jobs:
            db.execute(
                """
                INSERT INTO jobs (job_id, endpoint_id, worker_id, status, first_seen_at, started_at,
                    finished_at, delay_ms, execution_ms, source)
                VALUES (:job_id, :endpoint_id, :worker_id, :status, :seen_at, :started_at, :finished_at,
                    :delay_ms, :execution_ms, :source)
                ON CONFLICT (job_id) DO UPDATE SET
                    worker_id = coalesce(excluded.worker_id, worker_id),
                    status = excluded.status,
                    started_at = coalesce(excluded.started_at, started_at),
                    finished_at = coalesce(excluded.finished_at, finished_at),
                    delay_ms = coalesce(excluded.delay_ms, delay_ms),
                    execution_ms = coalesce(excluded.execution_ms, execution_ms)
                """,
                {
                    "job_id": job.job_id,
                    "endpoint_id": job.endpoint_id,
                    "worker_id": job.worker_id,
                    "status": job.status,
                    "seen_at": tick.started_at,
                    "started_at": job.started_at,
                    "finished_at": job.finished_at,
                    "delay_ms": job.delay_ms,
                    "execution_ms": job.execution_ms,
                    "source": job.source,
                },
            )

    def _write_estimates(self, db: Database, tick: TickRecord) -> None:
        interval = tick.accounting
        if interval is None:
            return
        last = self.last_accounted_at()
        if last is not None and interval.start != last:
            raise LedgerError(
                f"the tick accounts from {interval.start!r} but the ledger has accounted up to {last!r}; "
                "refusing to count time twice or leave a hole (resume from last_accounted_at())"
            )
        for accrual in tick.estimates:
            db.execute(
                """
                INSERT INTO spend (endpoint_id, hour, source, usd, gpu_seconds, updated_at)
                VALUES (?, ?, 'estimate', ?, ?, ?)
                ON CONFLICT (endpoint_id, hour, source) DO UPDATE SET
                    usd = usd + excluded.usd,
                    gpu_seconds = gpu_seconds + excluded.gpu_seconds,
                    updated_at = excluded.updated_at
                """,
                [accrual.endpoint_id, accrual.hour, accrual.usd, accrual.gpu_seconds, interval.end],
            )
        _set_meta(db, _META_LAST_ACCOUNTED, repr(interval.end))

    @staticmethod
    def _write_state_seconds(db: Database, tick: TickRecord) -> None:
        # Runs after _write_estimates in the same transaction: the interval already continues the chain.
        at = tick.accounting.end if tick.accounting is not None else tick.started_at
        for row in tick.state_seconds:
            db.execute(
                """
                INSERT INTO state_seconds (endpoint_id, hour, state, gpu_seconds, usd, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (endpoint_id, hour, state) DO UPDATE SET
                    gpu_seconds = gpu_seconds + excluded.gpu_seconds,
                    usd = usd + excluded.usd,
                    updated_at = excluded.updated_at
                """,
                [row.endpoint_id, row.hour, row.state, row.gpu_seconds, row.usd, at],
            )
        for observed in tick.observed:
            db.execute(
                """
                INSERT INTO observed_hours (hour, seconds, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (hour) DO UPDATE SET
                    seconds = seconds + excluded.seconds,
                    updated_at = excluded.updated_at
                """,
                [observed.hour, observed.seconds, at],
            )

    def _write_billed(self, db: Database, tick: TickRecord) -> tuple[BilledSpend, ...]:
        if not tick.billed:
            return ()
        rolled_up_before = float(self._meta(_META_ROLLED_UP_BEFORE) or "-inf")
        refused = []
        for billed in tick.billed:
            if billed.hour < rolled_up_before:
                refused.append(billed)
                continue
            db.execute(
                """
                INSERT OR REPLACE INTO spend (endpoint_id, hour, source, usd, gpu_seconds, updated_at)
                VALUES (?, ?, 'billed', ?, ?, ?)
                """,
                [billed.endpoint_id, billed.hour, billed.usd, billed.gpu_seconds, tick.started_at],
            )
        return tuple(refused)

    @staticmethod
    def _write_traffic(db: Database, tick: TickRecord) -> None:
        for count in tick.traffic:
            db.execute(
                """
                INSERT INTO traffic (endpoint_id, source, minute, requests, pings) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (endpoint_id, source, minute) DO UPDATE SET
                    requests = requests + excluded.requests,
                    pings = pings + excluded.pings
                """,
                [count.endpoint_id, count.source, count.minute, count.requests, count.pings],
            )

    def write_meta(self, entries: Mapping[str, str]) -> None:
        """Write ``meta`` entries outside a tick (the last status at shutdown); the ledger's own keys are
        refused."""
        reserved = set(entries) & _RESERVED_META_KEYS
        if reserved:
            raise LedgerError(f"meta keys reserved for the ledger: {', '.join(sorted(reserved))}")
        with self._transaction("writing meta") as db:
            for key, value in entries.items():
                _set_meta(db, key, value)

    def record_changes(self, changes: ChangeRecord) -> tuple[str, ...]:
        """Write what the daemon did between ticks (decisions, brakes, alerts, meta) in ONE transaction,
        the same way a tick writes them; returns the keys of the alerts newly queued."""
        with self._transaction("recording changes") as db:
            return self._write_changes(db, None, changes.at, changes)

    def _write_changes(
        self, db: Database, tick_id: int | None, at: float, changes: TickRecord | CommandRecord | ChangeRecord
    ) -> tuple[str, ...]:
        """What the daemon decided and did, the same way for a tick and for a command: brakes, decision
        steps, alerts (returns the keys newly queued) and meta entries."""
        self._write_brakes(db, changes.brakes_set, changes.brakes_cleared)
        self._write_decisions(db, tick_id, changes.decisions)
        new_alerts = tuple(alert.key for alert in changes.alerts if self._insert_alert(db, alert, at))
        for key, value in changes.meta.items():
            _set_meta(db, key, value)
        return new_alerts

    @staticmethod
    def _write_brakes(db: Database, brakes_set: Sequence[BrakeState], brakes_cleared: Sequence[str]) -> None:
        for endpoint_id in brakes_cleared:
            db.execute("DELETE FROM brake_state WHERE endpoint_id = ?", [endpoint_id])
        for brake in brakes_set:
            db.execute(
                """
                INSERT OR REPLACE INTO brake_state (endpoint_id, kind, since, until, month, previous, rule)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    brake.endpoint_id,
                    brake.kind,
                    brake.since,
                    brake.until,
                    brake.month,
                    _dumps(None if brake.previous is None else dict(brake.previous)),
                    brake.rule,
                ],
            )

    @staticmethod
    def _write_decisions(db: Database, tick_id: int | None, decisions: Sequence[DecisionStep]) -> None:
        for decision in decisions:
            db.execute(
                """
                INSERT INTO decisions (at, tick_id, rule, action, endpoint_id, job_id, worker_id, mode,
                    outcome, reason, patch, previous, saved_usd, error, dedupe_key)
                VALUES (:at, :tick_id, :rule, :action, :endpoint_id, :job_id, :worker_id, :mode, :outcome,
                    :reason, :patch, :previous, :saved_usd, :error, :dedupe_key)
                """,
                {
                    "at": decision.at,
                    "tick_id": tick_id,
                    "rule": decision.rule,
                    "action": decision.action,
                    "endpoint_id": decision.endpoint_id,
                    "job_id": decision.job_id,
                    "worker_id": decision.worker_id,
                    "mode": decision.mode,
                    "outcome": decision.outcome,
                    "reason": decision.reason,
                    "patch": _dumps(None if decision.patch is None else dict(decision.patch)),
                    "previous": _dumps(None if decision.previous is None else dict(decision.previous)),
                    "saved_usd": decision.saved_usd,
                    "error": decision.error,
                    "dedupe_key": decision.dedupe_key,
                },
            )

    @staticmethod
    def _insert_alert(db: Database, alert: Alert, now: float) -> bool:
        cursor = db.execute(
            """
            INSERT OR IGNORE INTO alerts (key, created_at, kind, severity, text, eur)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            [alert.key, now, alert.kind, alert.severity, alert.text, alert.eur],
        )
        return cursor.rowcount == 1

    def record_intents(self, steps: Sequence[DecisionStep]) -> None:
        """Write, in their own transaction and BEFORE acting, the actions a tick is about to take (outcome
        ``intended``): a crash between a RunPod call and the tick's record leaves this trace."""
        if any(step.outcome != Outcome.INTENDED for step in steps):
            raise ValueError("record_intents takes only steps whose outcome is 'intended'")
        with self._transaction("recording intents") as db:
            self._write_decisions(db, None, steps)

    # -- commands from the control socket -------------------------------------------------------------------

    def record_command(self, command: CommandRecord) -> tuple[str, ...]:
        """Write what a control-socket command did, and close it, in ONE transaction (the same changes a
        tick writes: brakes, decision steps, alerts, meta). Returns the keys of the alerts newly queued.

        Raises:
            LedgerError: the command is not pending, or SQLite refused a row. The ledger is unchanged.
        """
        if command.state not in ("done", "failed"):
            raise ValueError(f"a carried-out command finishes as done or failed, not {command.state!r}")
        with self._transaction("recording a command") as db:
            new_alerts = self._write_changes(db, None, command.at, command)
            for key in command.acknowledged:
                if (
                    db.execute(
                        "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, ?) WHERE key = ?",
                        [command.at, key],
                    ).rowcount
                    == 0
                ):
                    raise LedgerError(f"no alert with key {key!r} in the ledger")
            self._finish_command(db, command.command_id, command.state, command.result, command.at)
        return new_alerts

    # -- alert outbox ---------------------------------------------------------------------------------------

    def enqueue_alert(  # noqa: PLR0917 - the outbox's documented call shape
        self, key: str, kind: str, severity: str, text: str, eur: float | None, now: float
    ) -> bool:
        """Queue an alert for sending; False (and nothing changes) if an alert with ``key`` exists."""
        with self._transaction("queueing an alert") as db:
            return self._insert_alert(db, Alert(key, kind, severity, text, eur), now)

    def mark_alert_sent(self, key: str, now: float) -> None:
        """The alert was delivered."""
        self._update_alert(
            key,
            "UPDATE alerts SET state = 'sent', attempts = attempts + 1, last_attempt_at = :now,"
            " sent_at = :now, last_error = NULL WHERE key = :key",
            {"key": key, "now": now},
        )

    def mark_alert_failed(self, key: str, now: float, error: str) -> None:
        """A delivery attempt failed; the alert stays in :meth:`pending_alerts`."""
        self._update_alert(
            key,
            "UPDATE alerts SET state = 'failed', attempts = attempts + 1, last_attempt_at = :now,"
            " last_error = :error WHERE key = :key AND state != 'sent'",
            {"key": key, "now": now, "error": error},
        )

    def acknowledge_alert(self, key: str, now: float) -> None:
        """A person has seen the alert (first acknowledgement wins)."""
        self._update_alert(
            key,
            "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, :now) WHERE key = :key",
            {"key": key, "now": now},
        )

    def _update_alert(self, key: str, sql: str, parameters: dict[str, Any]) -> None:
        with self._transaction("updating an alert") as db:
            if db.execute(sql, parameters).rowcount == 0 and not self._rows(
                "SELECT 1 FROM alerts WHERE key = ?", [key]
            ):
                raise LedgerError(f"no alert with key {key!r} in the ledger")

    def enqueue_command(self, kind: str, args: Mapping[str, Any], now: float) -> int:
        """Record an action requested through the control socket; returns its id."""
        with self._transaction("queueing a command") as db:
            cursor = db.execute(
                "INSERT INTO commands (created_at, kind, args) VALUES (?, ?, ?)",
                [now, kind, _dumps(dict(args))],
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_command(
        self, command_id: int, state: Literal["done", "failed", "rejected"], result: Any, now: float
    ) -> None:
        """Close a pending command with its outcome (``result`` is stored as JSON)."""
        if state not in ("done", "failed", "rejected"):
            raise ValueError(f"a command finishes as done, failed or rejected, not {state!r}")
        with self._transaction("finishing a command") as db:
            self._finish_command(db, command_id, state, result, now)

    @staticmethod
    def _finish_command(db: Database, command_id: int, state: str, result: Any, now: float) -> None:
        cursor = db.execute(
            "UPDATE commands SET state = ?, result = ?, done_at = ? WHERE id = ? AND state = 'pending'",
            [state, _dumps(result), now, command_id],
        )
        if cursor.rowcount == 0:
            raise LedgerError(f"no pending command {command_id} in the ledger")

    # -- retention ------------------------------------------------------------------------------------------

    def apply_retention(
        self, now: float, raw_retention_days: float, rollup_retention_days: float, *, checkpoint: bool = True
    ) -> RetentionResult:
        """Forget raw rows older than ``raw_retention_days``, fold their spend into days, drop old rollups.

        Spend is folded by whole UTC days, so per-month totals do not change. Unfinished jobs, open worker
        sessions, alerts and configuration history are kept whatever their age. Call it now and then
        (hourly is plenty): it ends with an incremental vacuum and a ``wal_checkpoint(TRUNCATE)``.
        """
        if raw_retention_days <= 0 or rollup_retention_days < raw_retention_days:
            raise ValueError("need 0 < raw_retention_days <= rollup_retention_days")
        raw_cutoff = now - raw_retention_days * DAY_S
        rollup_cutoff = now - rollup_retention_days * DAY_S
        fold_before = float(raw_cutoff - raw_cutoff % DAY_S)  # whole UTC days only
        with self._transaction("applying retention") as db:
            ticks = db.execute("DELETE FROM ticks WHERE started_at < ?", [raw_cutoff]).rowcount
            traffic = db.execute("DELETE FROM traffic WHERE minute < ?", [raw_cutoff]).rowcount
            db.execute("DELETE FROM state_seconds WHERE hour < ?", [raw_cutoff])
            db.execute("DELETE FROM observed_hours WHERE hour < ?", [raw_cutoff])
            terminal = ", ".join("?" * len(_TERMINAL_JOB_STATUSES))
            jobs = db.execute(
                "DELETE FROM jobs WHERE coalesce(finished_at, first_seen_at) < ?"
                f" AND (finished_at IS NOT NULL OR status IN ({terminal}))",
                [raw_cutoff, *_TERMINAL_JOB_STATUSES],
            ).rowcount
            workers = db.execute(
                "DELETE FROM worker_sessions WHERE ended_at IS NOT NULL AND ended_at < ?", [raw_cutoff]
            ).rowcount
            commands = db.execute(
                "DELETE FROM commands WHERE state != 'pending' AND done_at < ?", [raw_cutoff]
            ).rowcount
            decisions = db.execute("DELETE FROM decisions WHERE at < ?", [rollup_cutoff]).rowcount
            db.execute(
                """
                INSERT INTO spend_daily (endpoint_id, day, source, usd, gpu_seconds, hours)
                SELECT endpoint_id, CAST((CAST(hour AS INTEGER) / 86400) * 86400 AS REAL), source,
                       total(usd), total(gpu_seconds), count(*)
                FROM spend WHERE hour < ? GROUP BY 1, 2, 3
                ON CONFLICT (endpoint_id, day, source) DO UPDATE SET
                    usd = usd + excluded.usd,
                    gpu_seconds = gpu_seconds + excluded.gpu_seconds,
                    hours = hours + excluded.hours
                """,
                [fold_before],
            )
            rolled = db.execute("DELETE FROM spend WHERE hour < ?", [fold_before]).rowcount
            already = float(self._meta(_META_ROLLED_UP_BEFORE) or "-inf")
            _set_meta(db, _META_ROLLED_UP_BEFORE, repr(max(already, fold_before)))
            days_deleted = db.execute("DELETE FROM spend_daily WHERE day < ?", [rollup_cutoff]).rowcount
        result = RetentionResult(
            ticks=ticks,
            traffic=traffic,
            jobs=jobs,
            worker_sessions=workers,
            commands=commands,
            decisions=decisions,
            spend_hours_rolled_up=rolled,
            spend_days_deleted=days_deleted,
        )
        if checkpoint:
            try:
                self._db.execute("PRAGMA incremental_vacuum").fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"vacuuming the ledger {self.path} failed: {exc}") from exc
            result = dataclasses.replace(result, checkpoint=self.checkpoint())
        return result

    def checkpoint(self) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(TRUNCATE)``: (busy, wal pages, checkpointed pages); busy=1 means a reader
        held an old snapshot for longer than the busy timeout and the WAL could not be reset."""
        try:
            busy, log, done = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"checkpointing the ledger {self.path} failed: {exc}") from exc
        return int(busy), int(log), int(done)


def _refuse_empty(path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise LedgerError(
            f"the ledger {path} is an empty file (0 bytes), not a new ledger: restore it from a backup, "
            "or delete it to start a new one (the month's history would then be RunPod's billing only)"
        )


def _file_identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _set_meta(db: Database, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])


def _configure_writer(db: Database, path: Path, busy_timeout_ms: int) -> None:
    brand_new = db.execute("PRAGMA page_count").fetchone()[0] == 0
    if brand_new:
        # Only possible before the first table exists: lets retention give freed pages back to the filesystem.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.enable_wal()
    db.execute("PRAGMA synchronous = FULL")  # per connection; committed ticks survive power loss
    db.execute("PRAGMA foreign_keys = ON")  # per connection
    problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise LedgerError(f"the ledger {path} is damaged: {'; '.join(problems[:5])}")


def _validate_tick(tick: TickRecord) -> None:
    """The checks that need no database, done before the transaction starts."""
    interval = tick.accounting
    if interval is None and tick.estimates:
        raise LedgerError("estimated spend needs the accounting interval it was derived from")
    if interval is not None and not interval.end > interval.start:
        raise LedgerError(f"empty or reversed accounting interval ({interval.start!r}, {interval.end!r}]")
    for accrual in tick.estimates:
        _require_aligned(accrual.hour, HOUR_S, "spend hour")
        assert interval is not None  # checked above: estimates come with an interval
        if not (accrual.hour < interval.end and accrual.hour + HOUR_S > interval.start):
            raise LedgerError(
                f"an accrual for hour {accrual.hour!r} lies outside the accounted interval "
                f"({interval.start!r}, {interval.end!r}]"
            )
    _validate_state_seconds(tick)
    for billed in tick.billed:
        _require_aligned(billed.hour, HOUR_S, "billed hour")
    for count in tick.traffic:
        _require_aligned(count.minute, MINUTE_S, "traffic minute")
    reserved = _RESERVED_META_KEYS.intersection(tick.meta)
    if reserved:
        raise LedgerError(f"meta keys {sorted(reserved)} belong to the ledger itself")


def _validate_state_seconds(tick: TickRecord) -> None:
    """Per-state seconds and observed hours belong to the tick's accounting interval, like its accruals."""
    interval = tick.accounting
    hours = [*(row.hour for row in tick.state_seconds), *(row.hour for row in tick.observed)]
    if interval is None and hours:
        raise LedgerError("seconds per worker state need the accounting interval they were derived from")
    for hour in hours:
        _require_aligned(hour, HOUR_S, "state seconds hour")
        assert interval is not None  # checked above
        if not (hour < interval.end and hour + HOUR_S > interval.start):
            raise LedgerError(
                f"seconds for hour {hour!r} lie outside the accounted interval "
                f"({interval.start!r}, {interval.end!r}]"
            )


# ------------------------------------------------------------------------------------------------------------
# The read-only reader
# ------------------------------------------------------------------------------------------------------------


def _open_read_only(path: Path, busy_timeout_ms: int, *, immutable: bool) -> tuple[Database, set[str]]:
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True)
    try:
        db = Database(connection)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        return db, set(_applied_steps(db))
    except sqlite3.Error:
        connection.close()
        raise


class LedgerReader(LedgerReadModel):
    """A read-only view for the TUI and the metrics; any number may run beside the daemon.

    Each query is a single autocommit statement; :meth:`consistent` groups several into one short snapshot.
    Never keep a ``consistent()`` block open across a sleep: it would hold back the daemon's checkpoints.
    """

    def __init__(self, path: Path, db: Database) -> None:
        self.path = path
        self._db = db

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_ms: int = 1000) -> LedgerReader:
        """Open ``path`` read-only (``mode=ro``).

        Raises:
            LedgerError: the file does not exist (the daemon never ran with this path), is not a ledger,
                or lacks schema steps this version needs (the daemon has not been upgraded and restarted).
        """
        path = Path(path)
        if not path.is_file():
            raise LedgerError(
                f"no ledger at {path}: start the runpod-watchdog daemon first, or check the ledger path"
            )
        try:
            db, applied = _open_read_only(path, busy_timeout_ms, immutable=False)
        except sqlite3.OperationalError as exc:
            # A reader in the service's group cannot create the -shm file of a stopped daemon's WAL ledger
            # ("attempt to write a readonly database"). With no writer running, reading the file as
            # immutable is safe, and it is exactly the case where the TUI falls back to the ledger.
            if "readonly" not in str(exc) and "unable to open" not in str(exc):
                raise LedgerError(f"cannot read the ledger {path}: {exc}") from exc
            try:
                db, applied = _open_read_only(path, busy_timeout_ms, immutable=True)
            except sqlite3.Error as retry_exc:
                raise LedgerError(f"cannot read the ledger {path}: {retry_exc}") from retry_exc
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {path}: {exc}") from exc
        missing = [name for name in SCHEMA_STEPS if name not in applied]
        if missing:
            db.close()
            raise LedgerError(
                f"{path} is not a runpod-watchdog ledger or its schema is older than this version "
                f"(missing: {', '.join(missing)}); restart the daemon to migrate it"
            )
        return cls(path, db)

    @contextlib.contextmanager
    def consistent(self) -> Iterator[Self]:
        """Run several queries against one snapshot (e.g. one TUI refresh); ends the read transaction on
        exit."""
        try:
            self._db.conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise LedgerError(f"reading the ledger {self.path} failed: {exc}") from exc
        try:
            yield self
        finally:
            if self._db.conn.in_transaction:
                self._db.conn.execute("COMMIT")

    @property
    def in_transaction(self) -> bool:
        """True only inside :meth:`consistent` (a reader that holds a snapshot blocks checkpoints)."""
        return self._db.conn.in_transaction

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
