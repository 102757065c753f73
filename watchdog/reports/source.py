"""The reports' read-only queries: a :class:`~watchdog.ledger.LedgerReader` that also reads the BI views.

Every query is one SQL statement (the reader's rule: no read transaction held open beside the daemon);
:meth:`ReportLedger.consistent` groups them into one snapshot when a report needs several. Money comes from
the views of ledger migration 0004 (``hourly_spend``, ``daily_spend``...), so the report, Metabase and
Datasette read the same figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.ledger import LedgerReader
from watchdog.reports.views import VIEWS

HEALTH_SOURCE = "(health)"
"""Traffic rows counted from /health counters (``watchdog.daemon.state.HEALTH_SOURCE``)."""
DAEMON_STATE_META_KEY = "daemon_state"
"""Where the daemon saves its month's counters (``watchdog.daemon.state.STATE_META_KEY``)."""


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    endpoint_id: str
    status: str
    first_seen_at: float
    started_at: float | None
    finished_at: float | None
    delay_ms: int | None
    execution_ms: int | None
    source: str

    @property
    def arrived_at(self) -> float | None:
        """When the request was sent: its start minus its queue delay (both RunPod's figures), or None."""
        if self.started_at is None or self.delay_ms is None:
            return None
        return self.started_at - self.delay_ms / 1000.0


@dataclass(frozen=True, slots=True)
class SessionRow:
    worker_id: str
    endpoint_id: str
    gpu_type_id: str | None
    started_at: float
    ended_at: float | None
    cold_start_seconds: float
    running_s: float
    idle_s: float
    estimated_usd: float


class ReportLedger(LedgerReader):
    """A read-only ledger handle with the reports' queries."""

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_ms: int = 1000) -> ReportLedger:
        reader = super().open(path, busy_timeout_ms=busy_timeout_ms)
        assert isinstance(reader, ReportLedger)
        return reader

    def view(
        self, name: str, where: str = "", parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of one BI view (``name`` is one of :data:`watchdog.reports.views.VIEWS`)."""
        if name not in VIEWS:
            raise ValueError(f"unknown view {name!r}")
        sql = f"SELECT * FROM {name}" + (f" WHERE {where}" if where else "")
        return self._rows(sql, parameters or {})

    def hourly_spend(self, start: float, end: float) -> list[dict[str, Any]]:
        return self.view(
            "hourly_spend", "hour >= :start AND hour < :end ORDER BY hour", {"start": start, "end": end}
        )

    def daily_spend(self, start: float, end: float) -> list[dict[str, Any]]:
        return self.view(
            "daily_spend",
            "day_start >= :start AND day_start < :end ORDER BY day_start",
            {"start": start, "end": end},
        )

    def daily_requests(self, start: float, end: float) -> list[dict[str, Any]]:
        return self.view(
            "daily_requests",
            "day_start >= :start AND day_start < :end ORDER BY day_start",
            {"start": start, "end": end},
        )

    def actions(self, start: float, end: float) -> list[dict[str, Any]]:
        return self.view("action_log", "at >= :start AND at < :end ORDER BY id", {"start": start, "end": end})

    def alerts_between(self, start: float, end: float) -> list[dict[str, Any]]:
        return self.view(
            "alert_log",
            "created_at >= :start AND created_at < :end ORDER BY created_at",
            {"start": start, "end": end},
        )

    def sessions(self, start: float, end: float, endpoint_id: str | None = None) -> list[SessionRow]:
        """Worker sessions first seen in [start, end) (each began with a cold start)."""
        rows = self._rows(
            "SELECT worker_id, endpoint_id, gpu_type_id, started_at, ended_at, cold_start_seconds, running_s,"
            " idle_s, estimated_usd FROM cold_starts WHERE started_at >= :start AND started_at < :end"
            " AND (:endpoint IS NULL OR endpoint_id = :endpoint) ORDER BY started_at",
            {"start": start, "end": end, "endpoint": endpoint_id},
        )
        return [SessionRow(**row) for row in rows]

    def jobs(self, start: float, end: float, endpoint_id: str | None = None) -> list[JobRow]:
        """Jobs first seen in [start, end), oldest first."""
        rows = self._rows(
            "SELECT job_id, endpoint_id, status, first_seen_at, started_at, finished_at, delay_ms, "
            "execution_ms,"
            " source FROM jobs WHERE first_seen_at >= :start AND first_seen_at < :end"
            " AND (:endpoint IS NULL OR endpoint_id = :endpoint) ORDER BY first_seen_at, job_id",
            {"start": start, "end": end, "endpoint": endpoint_id},
        )
        return [JobRow(**row) for row in rows]

    def request_minutes(self, start: float, end: float, endpoint_id: str) -> dict[float, int]:
        """Requests per UTC minute of one endpoint: the logs' counts when the logs counted any request in
        [start, end), else the /health counters' growth (which lands on the minute of the poll)."""
        rows = self._rows(
            "SELECT minute, source = :health AS health, sum(requests) AS requests FROM traffic"
            " WHERE endpoint_id = :endpoint AND minute >= :start AND minute < :end AND requests > 0"
            " GROUP BY minute, source = :health ORDER BY minute",
            {"health": HEALTH_SOURCE, "endpoint": endpoint_id, "start": start, "end": end},
        )
        from_logs = any(not row["health"] for row in rows)
        return {row["minute"]: int(row["requests"]) for row in rows if bool(row["health"]) != from_logs}

    def endpoint_ids(self) -> list[str]:
        """Every endpoint the ledger knows (configurations, spend, traffic), sorted."""
        rows = self._rows(
            "SELECT endpoint_id FROM endpoint_config UNION SELECT endpoint_id FROM spend"
            " UNION SELECT endpoint_id FROM traffic UNION SELECT endpoint_id FROM worker_sessions ORDER BY 1"
        )
        return [row["endpoint_id"] for row in rows]

    def tiers(self) -> tuple[str | None, int, int]:
        """(month ``YYYY-MM``, free requests, requests carrying a tier) the daemon saved, or (None, 0, 0)."""
        raw = self.meta(DAEMON_STATE_META_KEY)
        try:
            saved = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            saved = {}
        if not isinstance(saved, dict):
            return None, 0, 0
        tiers = saved.get("tiers") or {}
        month = saved.get("month")
        try:
            return (str(month) if month else None), int(tiers.get("free", 0)), int(tiers.get("tiered", 0))
        except (TypeError, ValueError, AttributeError):
            return None, 0, 0

    def sent_alerts_naming(self, endpoint_id: str, name: str | None = None) -> list[dict[str, Any]]:
        """Delivered alerts whose key or text names the endpoint (by id, or by name when given)."""
        rows = self._rows(
            "SELECT * FROM alert_log WHERE state = 'sent' AND (instr(key, :id) > 0 OR instr(text, :id) > 0"
            " OR (:name IS NOT NULL AND :name != '' AND instr(text, :name) > 0)) ORDER BY created_at",
            {"id": endpoint_id, "name": name},
        )
        return rows

    def first_tick_at(self, since: float) -> float | None:
        """When the daemon first recorded a tick at or after ``since`` (None: never)."""
        rows = self._rows("SELECT min(started_at) AS first FROM ticks WHERE started_at >= ?", [since])
        first = rows[0]["first"] if rows else None
        return None if first is None else float(first)
