"""Time as an injectable dependency.

Money and policy logic never read the clock: they take ``now`` (UTC epoch seconds) as an argument. The I/O
shells (daemon, simulator) own a ``Clock`` so tests can run a simulated month in seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

HOUR_S = 3_600.0
DAY_S = 86_400.0


class Clock(Protocol):
    def now(self) -> float:
        """UTC epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds that only ever move forward at the rate of real time (in this clock's seconds): the
        measure of elapsed time, which a wall-clock step does not change."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Runs ``speed`` times faster than real time, starting at ``start`` (default: now).

    ``ScaledClock(speed=60)`` lives a simulated hour in a real minute.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._real_origin = time.monotonic()
        self._sim_origin = time.time() if start is None else start

    def now(self) -> float:
        return self._sim_origin + (time.monotonic() - self._real_origin) * self.speed

    def monotonic(self) -> float:
        return (time.monotonic() - self._real_origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock that only moves when told to; for deterministic tests."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._elapsed = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds
        self._elapsed += seconds

    def step_wall_clock(self, seconds: float) -> None:
        """The wall clock jumps (either way) while elapsed time does not: an NTP step, a hand-set date."""
        self._now += seconds

    def set(self, now: float) -> None:
        if now < self._now:
            raise ValueError("time does not go backwards")
        self._elapsed += now - self._now
        self._now = now

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def to_iso(ts: float) -> str:
    """Epoch seconds → RFC 3339 UTC with a ``Z`` (the form RunPod's APIs use)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def from_iso(text: str) -> float:
    """RFC 3339 (``Z`` or offset) → epoch seconds. Raises ValueError on anything else."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def month_start(ts: float) -> float:
    """Start of the UTC calendar month containing ``ts``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_month_start(ts: float) -> float:
    moment = datetime.fromtimestamp(month_start(ts), tz=UTC)
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1).timestamp()
    return moment.replace(month=moment.month + 1).timestamp()


def hour_start(ts: float) -> float:
    return ts - (ts % 3600)
