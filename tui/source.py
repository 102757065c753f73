"""Where the dashboard gets its data, and where its commands go, behind two small protocols.

Why protocols: the dashboard must render the same way whether the daemon answers, is down, or is a test
fixture, so the App only ever sees a :class:`SourceReading` and an :class:`ActionSink`.

- :class:`DaemonSource` asks the daemon over the control socket (live state, 2 s timeout). When the daemon
  is down it falls back to the last :class:`DaemonStatus` the daemon stored in the ledger's ``meta`` table
  and says so (``live=False``), so a sysadmin still sees where the 20 EUR stood when it stopped.
- History the daemon does not keep in memory (spend by hour, config changes, the jobs it saw) comes from the
  ledger, read-only, one short connection per read: the reads run in worker threads and an SQLite
  connection must not cross threads, and a reader must never hold a transaction open (it would hold back
  the daemon's WAL checkpoints).
- Commands never go to RunPod from here: :class:`ControlActions` asks the daemon, which applies, records and
  verifies them.

:class:`StaticSource` and :class:`RecordingActions` are the test doubles (the snapshot tests and the demo
use them too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from watchdog.clock import month_start
from watchdog.control import ControlClient, ControlError
from watchdog.errors import LedgerError
from watchdog.ledger import ConfigRow, LedgerReader, OpenJobRow, WorkerSessionRow
from watchdog.status import DaemonStatus
from watchdog.vocabulary import SpendSource

_HISTORY_LIMIT = 50


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
    problem: str | None = None
    """Why the history is missing or partial (no ledger yet, unreadable...)."""


@dataclass(frozen=True, slots=True)
class KnownAlert:
    """An alert nobody has acknowledged yet, as the "acknowledge" dialog offers it."""

    key: str
    text: str
    state: str
    created_at: float
    eur: float | None = None


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


class ActionSink(Protocol):
    """Where confirmed commands go. ``send`` returns a one-line answer for the user, or raises."""

    def send(self, kind: str, **args: Any) -> str: ...


# ------------------------------------------------------------------------------------------------------------
# The real thing: control socket + ledger
# ------------------------------------------------------------------------------------------------------------


class DaemonSource:
    """Live status from the daemon; the ledger's last stored status when the daemon does not answer."""

    def __init__(self, control_path: str | Path, ledger_path: str | Path, *, timeout_s: float = 2.0) -> None:
        self.control = ControlClient(control_path, timeout_s=timeout_s)
        self.ledger_path = Path(ledger_path)

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
                problem=str(exc),
            )
        return EndpointHistory(
            endpoint_id,
            spend_by_hour=hourly_spend(spend, endpoint_id),
            config_history=tuple(configs[-_HISTORY_LIMIT:]),
            workers=tuple(workers),
            open_jobs=jobs,
        )

    def unacknowledged_alerts(self) -> tuple[KnownAlert, ...]:
        try:
            reader = LedgerReader.open(self.ledger_path)
        except LedgerError:
            return ()
        try:
            rows = reader.recent_alerts(_HISTORY_LIMIT)
        except LedgerError:
            return ()
        finally:
            reader.close()
        return tuple(
            KnownAlert(key=row.key, text=row.text, state=row.state, created_at=row.created_at, eur=row.eur)
            for row in rows
            if row.acknowledged_at is None
        )


class ControlActions:
    """Sends confirmed commands to the daemon over its control socket."""

    def __init__(self, control_path: str | Path, *, timeout_s: float = 2.0) -> None:
        self.control = ControlClient(control_path, timeout_s=timeout_s)

    def send(self, kind: str, **args: Any) -> str:
        result = self.control.command(kind, **args)
        return describe_result(kind, result)


def describe_result(kind: str, result: Mapping[str, Any] | None) -> str:
    """One line out of the daemon's answer: its own ``message`` if it gave one, else its fields."""
    if not result:
        return f"{kind}: accepted by the daemon"
    message = result.get("message")
    if isinstance(message, str):
        return message
    fields = ", ".join(f"{key}={value}" for key, value in sorted(result.items()))
    return f"{kind}: {fields}"


def read_stored_status(ledger_path: str | Path) -> DaemonStatus | None:
    """The DaemonStatus the daemon stored at its last tick, or None if it never stored one.

    Raises:
        LedgerError: no ledger file, or it cannot be read, or the stored JSON is not a status.
    """
    with LedgerReader.open(ledger_path) as reader:
        return reader.stored_status()


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
    ) -> None:
        self.reading = SourceReading(status, live=live, problem=problem)
        self.histories = dict(histories or {})
        self.alerts = tuple(alerts)

    def read(self) -> SourceReading:
        return self.reading

    def endpoint_history(self, endpoint_id: str, now: float) -> EndpointHistory:
        return self.histories.get(endpoint_id, EndpointHistory(endpoint_id, problem="no history recorded"))

    def unacknowledged_alerts(self) -> tuple[KnownAlert, ...]:
        return self.alerts


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
