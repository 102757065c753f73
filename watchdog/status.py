"""The daemon's published state: one immutable ``DaemonStatus`` swapped whole at the end of every tick.

Readers never see half a tick and never block the loop: the metrics renderer turns each new object into
the /metrics exposition once, in its own thread (no RunPod, no SQLite), the control socket serialises it
for the TUI, and the demo prints from it. ``to_dict``/``from_dict`` give the JSON form the control socket
carries.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

COLD_START_BUCKETS_S: tuple[float, ...] = (1, 2.5, 5, 10, 15, 20, 30, 60, 120, 300)
"""Histogram buckets for cold starts; 15 s is the team's target, so it is a bucket edge."""


@dataclass(frozen=True, slots=True)
class BudgetView:
    month: str
    """``YYYY-MM`` (UTC)."""
    monthly_eur: float
    usd_per_eur: float
    spent_eur: float
    """Fixed costs (in full) + variable month-to-date (per hour, the larger of estimate and billed)."""
    fixed_eur: float
    variable_eur: float
    estimate_eur: float
    """Variable spend from the daemon's live estimate alone."""
    billed_eur: float
    """Variable spend as RunPod's billing reports it (lags)."""
    used_ratio: float
    forecast_eur: float
    days_left: float
    eur_per_day_allowed: float
    free_share_eur: float
    """What the requests offered free to learners cost this month."""
    free_share: float
    """The share of requests offered free behind that figure."""
    free_share_measured: bool
    """True when the share was measured from the logs' tier field, False when it is the configured one."""
    thresholds: tuple[float, ...]
    """The configured alert thresholds (``budget.alert_thresholds``)."""
    thresholds_crossed: tuple[float, ...] = ()
    forecast_overrun: bool = False
    spent_today_eur: float = 0.0
    """Variable spend of the current UTC day (per hour the larger of estimate and billed)."""
    daily_allowance_eur: float | None = None
    """What the day may spend before the day's brake (``budget.daily_allowance``); None when it is off."""


@dataclass(frozen=True, slots=True)
class EndpointView:
    id: str
    name: str
    mode: str
    """``enforce`` or ``dry-run`` (the endpoint's effective default)."""
    workers: dict[str, int]
    """Live workers by REST v2 status (RUNNING, IDLE, INITIALIZING, THROTTLED, UNHEALTHY)."""
    jobs: dict[str, int]
    """/health job counters: completed, failed, inProgress, inQueue, retried."""
    oldest_work_s: float | None
    work_limit_s: float
    cold_start_p50_s: float | None
    cold_start_p95_s: float | None
    cold_start_buckets: tuple[int, ...]
    """Cumulative counts per COLD_START_BUCKETS_S edge (Prometheus histogram semantics), then +Inf."""
    cold_start_sum_s: float
    cold_start_count: int
    gpu_seconds_today: float
    gpu_seconds_month: float
    gpu_seconds_by_type: dict[str, float]
    """Month-to-date GPU seconds per GPU type id (a counter within the month)."""
    spend_month_eur: float
    requests_month: int
    requests_24h: int
    pings_1h: int
    requests_1h: int
    cost_per_1000_month_usd: float | None
    cost_per_1000_24h_usd: float | None
    config: dict[str, Any]
    """workers_min, workers_max, workers_standby, idle_timeout_s, execution_timeout_ms."""
    compliance: dict[str, bool]
    """execution_timeout, idle_timeout, max_workers, min_standby → True when within policy."""
    paused: str | None = None
    """Why the watchdog holds it at workers_max 0 (runaway, brake, cooldown, manual), if it does."""
    suspicious: tuple[str, ...] = ()
    """Plain-words findings of the ping and request watch."""
    rate_per_min: tuple[int, ...] = ()
    """Requests + pings per minute over the last hour, oldest first (for the sparkline)."""
    data_age_s: float = 0.0
    """How old the tick's ``/health`` and workers of this endpoint were (0: read this tick; an idle
    endpoint of a large fleet waits its turn, never beyond ``policy.stale_after_s``)."""


@dataclass(frozen=True, slots=True)
class EventView:
    at: float
    kind: str
    """``action``, ``proposal`` (dry-run), ``alert``, ``drift``, ``traffic``, ``blind``."""
    endpoint_id: str | None
    text: str
    eur: float | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class StatusTargets:
    """The configured targets readers compare against (so no reader hard-codes its own copy)."""

    cost_per_1000_usd: float
    """``slack.cost_per_1000_alert_usd``."""
    cold_start_s: float
    """``slack.cold_start_alert_s``."""
    budget_thresholds: tuple[float, ...]
    """``budget.alert_thresholds``."""
    brake_at: float
    """``budget.brake_at``."""


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    started_at: float
    last_tick_at: float | None
    last_tick_ok: bool
    last_tick_duration_s: float
    tick_interval_s: float
    blind: bool
    blind_reason: str
    mode: str
    budget: BudgetView | None
    endpoints: tuple[EndpointView, ...] = ()
    events: tuple[EventView, ...] = ()
    api_calls: dict[str, int] = field(default_factory=dict)
    """``"ROUTE|STATUS"`` → count since start (STATUS ``error`` for transport failures)."""
    actions: dict[str, int] = field(default_factory=dict)
    """``"rule|action|mode|outcome"`` → count since start."""
    saved_usd: dict[str, float] = field(default_factory=dict)
    """``"rule|mode"`` → money saved (enforce) or that would have been saved (dry-run)."""
    alerts_sent: int = 0
    alerts_pending: int = 0
    ledger_bytes: int = 0
    last_billing_at: float | None = None
    last_ok_at: float | None = None
    """When RunPod was last read completely; a blind tick moves ``last_tick_at`` but not this."""
    targets: StatusTargets | None = None
    """None only in a status stored by an older version."""
    ledger_problem: str | None = None
    """Why the ledger refuses writes (None while it works): the daemon then guards from memory."""
    alerts_undelivered: int = 0
    """Alerts the dispatcher holds and has not delivered (Slack down, webhook refused)."""
    slack_webhook: str = "absent"
    """``ok``, ``retrying``, ``dead`` (refused, re-probed) or ``absent`` (no webhook: to the log)."""
    bad_records: dict[str, int] = field(default_factory=dict)
    """Kind → hostile or malformed records skipped since start (log lines, job ids, job answers)."""
    balance_usd: float | None = None
    """The account's balance (GraphQL; None while unknown: see ``account_problem``)."""
    spend_per_hr_usd: float | None = None
    spend_rate_cap_usd_per_hr: float | None = None
    """RunPod's hourly spend cap (REST v2 ``/account/limits``), checked only when a worker starts."""
    account_problem: str = ""
    """Why the balance is unknown ("" while it is known or not read yet)."""
    quota_wait: str = ""
    """How RunPod's rate limit held the last tick's read up ("" when it did not): that tick saw RunPod
    completely but is not ok (``last_tick_ok`` is False)."""
    rest_calls_last_minute: int = 0
    """REST v2 calls the daemon's reads made over the last minute (actions and deadline checks aside)."""
    rest_quota_per_minute: float = 0.0
    """RunPod's REST v2 quota in calls a minute: its ``RateLimit-Policy`` header, else the assumed 60
    (0 in a status stored by an older version)."""

    def to_dict(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives, without its deep copy of every leaf value (the leaves are
        immutable here): 1,000 endpoints' status took seconds."""
        return cast(dict[str, Any], _plain(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DaemonStatus:
        budget = data.get("budget")
        return cls(
            **{
                **data,
                "budget": BudgetView(
                    **{
                        **budget,
                        "thresholds": tuple(budget["thresholds"]),
                        "thresholds_crossed": tuple(budget["thresholds_crossed"]),
                    }
                )
                if budget
                else None,
                "endpoints": tuple(
                    EndpointView(
                        **{
                            **e,
                            "cold_start_buckets": tuple(e["cold_start_buckets"]),
                            "suspicious": tuple(e["suspicious"]),
                            "rate_per_min": tuple(e["rate_per_min"]),
                        }
                    )
                    for e in data.get("endpoints", ())
                ),
                "events": tuple(EventView(**e) for e in data.get("events", ())),
                "targets": _targets(data.get("targets")),
            }
        )


def _plain(value: object) -> object:
    """``value`` with every dataclass turned into a dict of its fields, containers rebuilt (same type),
    leaves shared."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def _targets(data: dict[str, Any] | None) -> StatusTargets | None:
    if not data:
        return None
    return StatusTargets(**{**data, "budget_thresholds": tuple(data["budget_thresholds"])})


def status_json(status: DaemonStatus) -> str:
    """The compact JSON form the control socket carries and the ledger stores."""
    return json.dumps(status.to_dict(), separators=(",", ":"), default=str)


class StatusRef:
    """Holds the current DaemonStatus; the loop swaps it, readers (other threads too) just read it.

    Each ``set`` bumps a version and calls the subscribers (the metrics renderer's wake-up), so a reader
    that does work per status does it once per tick, in its own thread, without polling."""

    def __init__(self, status: DaemonStatus | None = None) -> None:
        self._lock = threading.Lock()
        self._status = status
        self._version = 0
        self._subscribers: tuple[Callable[[], None], ...] = ()

    def get(self) -> DaemonStatus | None:
        with self._lock:
            return self._status

    def set(self, status: DaemonStatus) -> None:
        with self._lock:
            self._status = status
            self._version += 1
            subscribers = self._subscribers
        for notify in subscribers:
            notify()

    def get_versioned(self) -> tuple[int, DaemonStatus | None]:
        """The current status and its version (0 before the first ``set``)."""
        with self._lock:
            return self._version, self._status

    def subscribe(self, notify: Callable[[], None]) -> Callable[[], None]:
        """Call ``notify()`` after every ``set``, on the setter's thread (the event loop): it must only
        signal another thread (``threading.Event.set``), never do the work itself. Returns the function
        that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, notify)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(n for n in self._subscribers if n is not notify)

        return unsubscribe
