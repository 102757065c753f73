"""The one value every dashboard widget renders, and the few formatters they share.

Widgets never read a clock or a socket: the App builds a :class:`DashboardState` from each reading plus its
injected clock, so the same state always draws the same screen (that is what makes snapshots stable).
Times are shown in UTC, like the daemon's ledger and logs, so a sysadmin can match them line for line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from watchdog.status import DaemonStatus, EndpointView, StatusTargets


@dataclass(frozen=True, slots=True)
class DashboardState:
    """What the dashboard shows: the last status it got, how fresh it is, and the last problem."""

    status: DaemonStatus | None
    live: bool
    """The daemon answered the last read (False: the status came from the ledger, or there is none)."""
    problem: str | None
    now: float
    stale_after_s: float

    @property
    def targets(self) -> StatusTargets | None:
        """The daemon's configured targets (None before the first status, or from a very old one)."""
        return self.status.targets if self.status is not None else None

    @property
    def tick_age_s(self) -> float | None:
        if self.status is None or self.status.last_tick_at is None:
            return None
        return max(0.0, self.now - self.status.last_tick_at)

    @property
    def stale(self) -> bool:
        age = self.tick_age_s
        return not self.live or age is None or age > self.stale_after_s

    def endpoint(self, endpoint_id: str) -> EndpointView | None:
        if self.status is None:
            return None
        return next((e for e in self.status.endpoints if e.id == endpoint_id), None)


def eur(amount: float) -> str:
    return f"{amount:,.2f} €"


def usd(amount: float) -> str:
    return f"${amount:,.2f}"


def utc_clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + " UTC"


def utc_stamp(ts: float) -> str:
    return time.strftime("%m-%d %H:%M", time.gmtime(ts))


def duration(seconds: float) -> str:
    """Short human durations: ``45 s``, ``10m``, ``12m05s``, ``1h02m``, ``3d04h``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if secs == 0 else f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def mode_word(mode: str) -> str:
    return "ENFORCE" if mode == "enforce" else "DRY-RUN"


def percent(ratio: float) -> str:
    return f"{ratio * 100:.0f} %"
