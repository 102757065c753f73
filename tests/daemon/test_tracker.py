"""The tracker's busy ratio: what the keep-warm detector weighs a steady stream of requests against.

One /health answer is an instant: a worker busy half the time reads idle at one tick in two, and a bot's
tiny job can fall on a read. The ratio averages the answers over the detector's window instead."""

from __future__ import annotations

import pytest

from watchdog.daemon.tracker import BUSY_KEEP_MINUTES, Tracker
from watchdog.models import Health

T0 = 1_780_000_000.0
"""A whole minute."""
RUNNING = Health(workers_running=1)
IDLE = Health(workers_idle=1)


def _read(tracker: Tracker, answers: list[Health], every_s: float = 5.0, start: float = T0) -> float:
    now = start
    for health in answers:
        tracker.observe_health("ep", health, now)
        now += every_s
    return now - every_s


def test_a_worker_busy_half_the_time_reads_half_busy_whatever_the_last_answer() -> None:
    tracker = Tracker()
    now = _read(tracker, [RUNNING, IDLE] * 30)
    assert tracker.health["ep"] == IDLE  # the last instant alone would say "idle": keep-warm
    assert tracker.busy_ratio("ep", now - 300) == pytest.approx(0.5)


def test_a_bot_job_caught_by_one_read_does_not_make_the_worker_busy() -> None:
    tracker = Tracker()
    now = _read(tracker, [IDLE] * 59 + [RUNNING])
    assert tracker.busy_ratio("ep", now - 300) == pytest.approx(1 / 60)


def test_only_the_window_counts_and_no_warm_worker_is_unknown() -> None:
    tracker = Tracker()
    _read(tracker, [RUNNING] * 24)  # two busy minutes
    later = T0 + 600
    now = _read(tracker, [IDLE] * 24, start=later)
    assert tracker.busy_ratio("ep", later) == 0.0
    assert tracker.busy_ratio("ep", T0) == pytest.approx(0.5)
    assert tracker.busy_ratio("other", T0) is None
    cold = Tracker()
    _read(cold, [Health()] * 10)
    assert cold.busy_ratio("ep", T0) is None
    assert now > later


def test_the_samples_are_bounded_and_forgotten_with_the_endpoint() -> None:
    tracker = Tracker()
    now = _read(tracker, [IDLE] * (12 * 3 * BUSY_KEEP_MINUTES))  # three hours at 5 s
    assert len(tracker.busy["ep"]) == BUSY_KEEP_MINUTES
    tracker.prune(now + BUSY_KEEP_MINUTES * 60 + 61)
    assert "ep" not in tracker.busy
