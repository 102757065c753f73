"""A stand-in daemon for the ledger's crash tests: records ticks as fast as it can until it is killed.

It behaves the way the daemon must after a restart: it resumes accounting from ``last_accounted_at()`` (or from
``ORIGIN`` on a fresh ledger), and only after ``record_tick`` returned does it print ``ack <tick_id> <end>``.
Every number is a small integer or a multiple of 1/4, so float sums in the ledger are exact and the test can
demand exact equality: no tolerance for a lost or doubled interval to hide in.

Usage: ``python tests/ledger_crash_writer.py LEDGER_PATH``
"""

from __future__ import annotations

import sys

from watchdog.ledger import (
    AccountingInterval,
    Alert,
    DecisionStep,
    JobUpdate,
    Ledger,
    SpendAccrual,
    TickRecord,
    TrafficCount,
    WorkerUpdate,
)

ORIGIN = 1_772_409_600.0
"""2026-03-02 00:00 UTC: a month starts one day earlier, the next one is weeks of ticks away."""
STEP_S = 7.0
"""Seconds per tick; 7 does not divide 3600, so some intervals cross an hour and split into two accruals."""
USD_PER_GPU_SECOND = 0.25
WORKERS = {"ep-a": 1, "ep-b": 2}
"""Workers running the whole time, per endpoint: every accounted second costs 3 GPU-seconds."""


def split_by_hour(start: float, end: float) -> list[tuple[float, float]]:
    """``(start, end]`` cut at UTC hour boundaries: ``[(hour_start, seconds), ...]``."""
    pieces = []
    cursor = start
    while cursor < end:
        hour = cursor - cursor % 3600
        piece_end = min(end, hour + 3600)
        pieces.append((hour, piece_end - cursor))
        cursor = piece_end
    return pieces


def build_tick(start: float, end: float) -> TickRecord:
    estimates = tuple(
        SpendAccrual(endpoint_id, hour, seconds * workers * USD_PER_GPU_SECOND, seconds * workers)
        for endpoint_id, workers in WORKERS.items()
        for hour, seconds in split_by_hour(start, end)
    )
    number = round((end - ORIGIN) / STEP_S)
    return TickRecord(
        started_at=end,
        finished_at=end + 0.25,
        ok=True,
        endpoints=len(WORKERS),
        accounting=AccountingInterval(start, end),
        estimates=estimates,
        workers=(WorkerUpdate("w-a", "ep-a", "RUNNING", running_s=end - start),),
        jobs=(JobUpdate(f"job-{number}", "ep-a", "IN_PROGRESS", "status", worker_id="w-a"),),
        traffic=(TrafficCount("ep-a", "log", end - end % 60, requests=1),),
        decisions=(
            (
                DecisionStep(
                    at=end, rule="crash-test", action="none", mode="dry-run", outcome="proposed", reason="x"
                ),
            )
            if number % 10 == 0
            else ()
        ),
        alerts=(Alert(f"hour-{end - end % 3600:.0f}", "heartbeat", "info", "a new hour"),),
    )


def main(path: str) -> None:
    with Ledger.open(path) as ledger:
        start = ledger.last_accounted_at() or ORIGIN
        while True:
            end = start + STEP_S
            recorded = ledger.record_tick(build_tick(start, end))
            sys.stdout.write(f"ack {recorded.tick_id} {end!r}\n")
            sys.stdout.flush()
            start = end


if __name__ == "__main__":
    main(sys.argv[1])
