"""Where the dashboard gets its data, and where its commands go, behind two small protocols.

Why protocols: the dashboard must render the same way whether the daemon answers, is down, or is a test
fixture, so the App only ever sees a :class:`SourceReading` and an :class:`ActionSink`.

- :class:`DaemonSource` asks the daemon over the control socket (live state, 2 s timeout). When the daemon
  is down it falls back to the last :class:`DaemonStatus` the daemon stored in the ledger's ``meta`` table
  and says so (``live=False``), so a sysadmin still sees where the 20 EUR stood when it stopped.
- History the daemon does not keep in memory (spend by hour and by day, config changes, the jobs it saw,
  the alerts' real delivery state) comes from the ledger, read-only, one short connection per read: the
  reads run in worker threads and an SQLite connection must not cross threads, and a reader must never
  hold a transaction open (it would hold back the daemon's WAL checkpoints).
- Commands never go to RunPod from here: :class:`ControlActions` asks the daemon, which applies, records and
  verifies them.
- The endpoint screen's what-if (:meth:`StatusSource.whatif`) replays the ledger's recorded arrivals with
  :mod:`watchdog.reports.whatif`, the ``runpod-watchdog whatif`` command's own functions, so both show the
  same figures; it is CPU work (about a second for a week), so it runs in a worker thread, once per visit or
  when asked, never per refresh.

:class:`StaticSource` and :class:`RecordingActions` are the test doubles (the snapshot tests and the demo
use them too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from watchdog.clock import month_start
from watchdog.config import Config, default_config
from watchdog.control import ControlClient, ControlError
from watchdog.errors import LedgerError
from watchdog.ledger import AlertRow, ConfigRow, LedgerReader, OpenJobRow, WorkerSessionRow
from watchdog.reports.source import ReportLedger
from watchdog.reports.whatif import (
    MIN_ARRIVALS,
    SPEED_FACTORS,
    NoExecutionTime,
    Options,
    WhatIfError,
    load_inputs,
    whatif_options,
)
from watchdog.status import DaemonStatus
from watchdog.vocabulary import SpendSource

_HISTORY_LIMIT = 50
WHATIF_DAYS = 7.0
"""The endpoint screen's what-if replays the last week (``runpod-watchdog whatif ENDPOINT --days 7``)."""


# ------------------------------------------------------------------------------------------------------------
# What a read returns
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceReading:
    """One refresh: the status to show, whether it is the daemon's live word, and what went wrong."""

    status: DaemonStatus | None
    live: bool
    """True when the daemon answered just now; False for a status recovered from the ledger (or none)."""
    problem: str | None = None
    """Plain words for the sysadmin ("the daemon is not running (no control socket at …)")."""


@dataclass(frozen=True, slots=True)
class HourSpend:
    hour: float
    """Start of the UTC hour."""
    estimate_usd: float
    billed_usd: float | None
    """None when RunPod has not billed this hour yet (billing lags)."""


OpenJob = OpenJobRow
"""A job the daemon saw and has not seen finish: a candidate for "cancel"."""


@dataclass(frozen=True, slots=True)
class EndpointHistory:
    """The ledger's memory of one endpoint, for the detail screen and the cancel dialog."""

    endpoint_id: str
    spend_by_hour: tuple[HourSpend, ...] = ()
    """This month's hours still kept hourly, oldest first."""
    config_history: tuple[ConfigRow, ...] = ()
    """Every observed configuration change, oldest first."""
    workers: tuple[WorkerSessionRow, ...] = ()
    """Workers the daemon has not seen end, oldest first."""
    open_jobs: tuple[OpenJob, ...] = ()
    """Jobs in queue or in progress, oldest first."""
    spend_by_day: tuple[DaySpend, ...] = ()
    """This month's spend of this endpoint per UTC day, oldest first."""
    problem: str | None = None
    """Why the history is missing or partial (no ledger yet, unreadable...)."""


@dataclass(frozen=True, slots=True)
class KnownAlert:
    """An alert as the ledger holds it: its real delivery state and whether someone acknowledged it."""

    key: str
    text: str
    state: str
    """``pending`` (not delivered yet), ``sent`` or ``failed`` (the last attempt failed; retried)."""
    created_at: float
    eur: float | None = None
    kind: str = ""
    sent_at: float | None = None
    acknowledged_at: float | None = None
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DaySpend:
    """One endpoint's spend on one UTC day: per hour the larger of the live estimate and RunPod's bill
    where the ledger still keeps hours, else the larger of the day's two totals."""

    endpoint_id: str
    day: float
    """Start of the UTC day."""
    usd: float


@dataclass(frozen=True, slots=True)
class WhatIfView:
    """The what-if of one endpoint: the options replayed, or why there are none (one line)."""

    endpoint_id: str
    options: Options | None = None
    usd_per_eur: float = 1.0
    """The rate the budget was converted at (``budget.usd_per_eur``): every figure is shown in euros."""
    monthly_eur: float = 0.0
    days: float = WHATIF_DAYS
    problem: str | None = None
    """Too few recorded requests, no ledger...: said instead of figures (then ``options`` is None)."""


@dataclass(frozen=True, slots=True)
class LedgerView:
    """What the ledger adds to the daemon's status, read once per new status (not once per refresh)."""

    alerts: tuple[KnownAlert, ...] = ()
    """The newest alerts first, whatever their state."""
    spend_by_day: tuple[DaySpend, ...] = ()
    """This month's spend per endpoint and UTC day, oldest first."""
    problem: str | None = None
    """Why the ledger could not be read (then the tuples are empty)."""


# ------------------------------------------------------------------------------------------------------------
# The protocols the App depends on
# ------------------------------------------------------------------------------------------------------------


class StatusSource(Protocol):
    """What the dashboard reads. Every method is called from a worker thread and may block (briefly)."""

    def read(self) -> SourceReading:
        """The current status. Should not raise for "daemon down"; the App survives it if it does."""
        ...

    def endpoint_history(self, endpoint_id: str, now: float) -> EndpointHistory:
        """Spend by hour for the month containing ``now``, config changes, open workers and jobs."""
        ...

    def unacknowledged_alerts(self) -> tuple[KnownAlert, ...]:
        """Alerts the daemon raised that nobody has acknowledged, newest first."""
        ...

    def ledger_view(self, now: float) -> LedgerView:
        """The alerts' real states and the month's spend by day; a problem instead of raising."""
        ...

    def whatif(self, endpoint_id: str, now: float) -> WhatIfView:
        """The last :data:`WHATIF_DAYS` days of recorded arrivals replayed against other settings (CPU
        work: about a second); a problem instead of raising."""
        ...


class ActionSink(Protocol):
    """Where confirmed commands go. ``send`` returns a one-line answer for the user, or raises."""

    def send(self, kind: str, **args: Any) -> str: ...


# ------------------------------------------------------------------------------------------------------------
# The real thing: control socket + ledger
# ------------------------------------------------------------------------------------------------------------


class DaemonSource:
    """Live status from the daemon; the ledger's last stored status when the daemon does not answer."""

    def __init__(
        self,
        control_path: str | Path,
        ledger_path: str | Path,
        *,
        timeout_s: float = 2.0,
        config: Config | None = None,
    ) -> None:
        self.control = ControlClient(control_path, timeout_s=timeout_s)
        self.ledger_path = Path(ledger_path)
        self.config = config if config is not None else default_config(env={})
        """The budget and price table the what-if prices options with (the dashboard's configuration)."""

    def read(self) -> SourceReading:
        try:
            status = self.control.status()
        except ControlError as down:
            try:
                stored = read_stored_status(self.ledger_path)
            except LedgerError as unreadable:
                return SourceReading(None, live=False, problem=f"{down}; {unreadable}")
            if stored is None:
                return SourceReading(None, live=False, problem=f"{down}; the ledger holds no status yet")
            return SourceReading(stored, live=False, problem=str(down))
        if status is None:
            return SourceReading(None, live=True, problem="the daemon is up but has not finished a tick yet")
        return SourceReading(status, live=True)

    def endpoint_history(self, endpoint_id: str, now: float) -> EndpointHistory:
        try:
            reader = LedgerReader.open(self.ledger_path)
        except LedgerError as exc:
            return EndpointHistory(endpoint_id, problem=str(exc))
        try:
            # One short snapshot so the spend, config and worker lists agree with each other.
            with reader.consistent():
                spend = reader.month_spend_by_hour(month_start(now))
                by_day = daily_spend(reader.month_spend_by_day(month_start(now)), endpoint_id)
                configs = reader.config_history(endpoint_id)
                workers = [w for w in reader.open_worker_sessions() if w.endpoint_id == endpoint_id]
        except LedgerError as exc:
            return EndpointHistory(endpoint_id, problem=str(exc))
        finally:
            reader.close()
        try:
            jobs = read_open_jobs(self.ledger_path, endpoint_id)
        except LedgerError as exc:
            return EndpointHistory(
                endpoint_id,
                spend_by_hour=hourly_spend(spend, endpoint_id),
                config_history=tuple(configs[-_HISTORY_LIMIT:]),
                workers=tuple(workers),
                spend_by_day=by_day,
                problem=str(exc),
            )
        return EndpointHistory(
            endpoint_id,
            spend_by_hour=hourly_spend(spend, endpoint_id),
            config_history=tuple(configs[-_HISTORY_LIMIT:]),
            workers=tuple(workers),
            open_jobs=jobs,
            spend_by_day=by_day,
        )

    def unacknowledged_alerts(self) -> tuple[KnownAlert, ...]:
        try:
            with LedgerReader.open(self.ledger_path) as reader:
                rows = reader.recent_alerts(_HISTORY_LIMIT)
        except LedgerError:
            return ()
        return tuple(known_alert(row) for row in rows if row.acknowledged_at is None)

    def ledger_view(self, now: float) -> LedgerView:
        try:
            with LedgerReader.open(self.ledger_path) as reader, reader.consistent():
                rows = reader.recent_alerts(_HISTORY_LIMIT)
                by_day = reader.month_spend_by_day(month_start(now))
        except LedgerError as exc:
            return LedgerView(problem=str(exc))
        return LedgerView(
            alerts=tuple(known_alert(row) for row in rows), spend_by_day=daily_spend(by_day, None)
        )

    def whatif(self, endpoint_id: str, now: float) -> WhatIfView:
        return read_whatif(self.ledger_path, self.config, endpoint_id, now)


class ControlActions:
    """Sends confirmed commands to the daemon over its control socket."""

    def __init__(self, control_path: str | Path, *, timeout_s: float = 2.0) -> None:
        self.control = ControlClient(control_path, timeout_s=timeout_s)

    def send(self, kind: str, **args: Any) -> str:
        result = self.control.command(kind, **args)
        return describe_result(kind, result)


COMMAND_WORDS: dict[str, str] = {
    "pause": "Pause",
    "restore": "Restore",
    "cancel_job": "Cancel job",
    "set_rule_mode": "Rule mode",
    "ack_alert": "Acknowledge alert",
}

OUTCOME_WORDS: dict[str, str] = {
    "intended": "in progress",
    "proposed": "proposed only (dry-run)",
    "applied": "done",
    "failed": "FAILED",
    "verified": "done and verified",
    "not_verified": "done, NOT verified",
    "skipped": "skipped (nothing to do)",
}
"""A decision step's outcome (``watchdog.vocabulary.Outcome``) in the words a sysadmin reads."""


def describe_result(kind: str, result: Mapping[str, Any] | None) -> str:
    """The daemon's answer to a command in plain words (never a Python dict): its own ``message`` if it
    gave one, else what it did per endpoint."""
    what = COMMAND_WORDS.get(kind, kind.replace("_", " ").capitalize())
    if not result:
        return f"{what}: accepted by the daemon"
    message = result.get("message")
    if isinstance(message, str):
        return message
    if kind == "ack_alert" and result.get("acknowledged"):
        return f"Alert {result['acknowledged']} acknowledged: no more reminders."
    if kind == "set_rule_mode" and result.get("rule"):
        mode = str(result.get("mode", "?")).upper()
        return f"Rule {result['rule']} is now {mode}."
    results = result.get("results")
    if isinstance(results, list):
        if not results:
            return f"{what}: nothing to do"
        parts = []
        for item in results:
            if not isinstance(item, Mapping):
                continue
            outcome = OUTCOME_WORDS.get(str(item.get("outcome")), str(item.get("outcome", "?")))
            action = COMMAND_WORDS.get(str(item.get("action")), str(item.get("action", what)))
            line = f"{action} {item.get('endpoint_id') or ''}".strip() + f": {outcome}"
            if item.get("error"):
                line += f" ({item['error']})"
            parts.append(line)
        return "; ".join(parts) or f"{what}: accepted by the daemon"
    if result.get("ok") is False:
        return f"{what}: the daemon reports it did not complete"
    return f"{what}: accepted by the daemon"


def known_alert(row: AlertRow) -> KnownAlert:
    return KnownAlert(
        key=row.key,
        text=row.text,
        state=str(row.state),
        created_at=row.created_at,
        eur=row.eur,
        kind=row.kind,
        sent_at=row.sent_at,
        acknowledged_at=row.acknowledged_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )


def daily_spend(
    spend: Mapping[tuple[str, float, SpendSource], float], endpoint_id: str | None
) -> tuple[DaySpend, ...]:
    """Fold ``LedgerReader.month_spend_by_day`` rows into the larger of estimate and billed per endpoint
    and day (all endpoints when ``endpoint_id`` is None), oldest first."""
    best: dict[tuple[str, float], float] = {}
    for (row_endpoint, day, _source), usd in spend.items():
        if endpoint_id is not None and row_endpoint != endpoint_id:
            continue
        best[(row_endpoint, day)] = max(best.get((row_endpoint, day), 0.0), usd)
    return tuple(
        DaySpend(endpoint, day, usd) for (endpoint, day), usd in sorted(best.items(), key=lambda i: i[0][1])
    )


def read_stored_status(ledger_path: str | Path) -> DaemonStatus | None:
    """The DaemonStatus the daemon stored at its last tick, or None if it never stored one.

    Raises:
        LedgerError: no ledger file, or it cannot be read, or the stored JSON is not a status.
    """
    with LedgerReader.open(ledger_path) as reader:
        return reader.stored_status()


def read_whatif(
    ledger_path: str | Path, config: Config, endpoint_id: str, now: float, *, days: float = WHATIF_DAYS
) -> WhatIfView:
    """``runpod-watchdog whatif ENDPOINT --days 7`` as data: the ledger read in one short snapshot, then
    the replays (no ledger connection held while they run)."""
    budget = config.budget
    view = WhatIfView(endpoint_id, usd_per_eur=budget.usd_per_eur, monthly_eur=budget.monthly_eur, days=days)
    try:
        with ReportLedger.open(ledger_path) as ledger:
            inputs = load_inputs(ledger, config, endpoint=endpoint_id, days=days, now=now)
    except NoExecutionTime:
        return replace(
            view,
            problem=f"no request with a recorded execution time for {endpoint_id} in the last {days:g} days "
            "(runpod-watchdog whatif --exec-s SECONDS can assume one)",
        )
    except (LedgerError, WhatIfError) as exc:
        return replace(view, problem=str(exc))
    if len(inputs.arrivals) < MIN_ARRIVALS:
        return replace(
            view,
            problem=f"only {len(inputs.arrivals)} requests recorded in the last {days:g} days: too few to "
            f"replay (it takes {MIN_ARRIVALS})",
        )
    return replace(view, options=whatif_options(inputs, config, speeds=SPEED_FACTORS))


def read_open_jobs(ledger_path: str | Path, endpoint_id: str, limit: int = 20) -> tuple[OpenJob, ...]:
    """Jobs of one endpoint the daemon saw queued or running and has not seen finish, oldest first."""
    with LedgerReader.open(ledger_path) as reader:
        return tuple(reader.open_jobs(endpoint_id, limit))


def hourly_spend(
    spend: Mapping[tuple[str, float, SpendSource], float], endpoint_id: str
) -> tuple[HourSpend, ...]:
    """Fold ``LedgerReader.month_spend_by_hour`` rows for one endpoint into one row per hour."""
    estimates: dict[float, float] = {}
    billed: dict[float, float] = {}
    for (row_endpoint, hour, source), usd in spend.items():
        if row_endpoint != endpoint_id:
            continue
        (billed if source == "billed" else estimates)[hour] = usd
    hours = sorted(set(estimates) | set(billed))
    return tuple(HourSpend(hour, estimates.get(hour, 0.0), billed.get(hour)) for hour in hours)


# ------------------------------------------------------------------------------------------------------------
# Test doubles
# ------------------------------------------------------------------------------------------------------------


class StaticSource:
    """Always returns the same reading; for tests, snapshots and demos."""

    def __init__(
        self,
        status: DaemonStatus | None,
        *,
        live: bool = True,
        problem: str | None = None,
        histories: Mapping[str, EndpointHistory] | None = None,
        alerts: Sequence[KnownAlert] = (),
        spend_by_day: Sequence[DaySpend] = (),
        ledger_problem: str | None = None,
        whatifs: Mapping[str, WhatIfView] | None = None,
    ) -> None:
        self.reading = SourceReading(status, live=live, problem=problem)
        self.histories = dict(histories or {})
        self.whatifs = dict(whatifs or {})
        self.alerts = tuple(alerts)
        self.ledger = (
            LedgerView(problem=ledger_problem)
            if ledger_problem is not None
            else LedgerView(self.alerts, tuple(spend_by_day))
        )

    def read(self) -> SourceReading:
        return self.reading

    def endpoint_history(self, endpoint_id: str, now: float) -> EndpointHistory:
        return self.histories.get(endpoint_id, EndpointHistory(endpoint_id, problem="no history recorded"))

    def unacknowledged_alerts(self) -> tuple[KnownAlert, ...]:
        return tuple(alert for alert in self.alerts if alert.acknowledged_at is None)

    def ledger_view(self, now: float) -> LedgerView:
        return self.ledger

    def whatif(self, endpoint_id: str, now: float) -> WhatIfView:
        return self.whatifs.get(
            endpoint_id,
            WhatIfView(endpoint_id, problem=f"no request recorded in the last {WHATIF_DAYS:g} days"),
        )


@dataclass
class RecordingActions:
    """An ActionSink that records what it was asked to send; ``failure`` makes every send raise it."""

    reply: str = "accepted by the daemon"
    failure: Exception | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def send(self, kind: str, **args: Any) -> str:
        self.calls.append((kind, dict(args)))
        if self.failure is not None:
            raise self.failure
        return f"{kind}: {self.reply}"
