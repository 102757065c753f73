"""simulator_month: CPU seconds for the simulator engine to live a steady month (the engine's baseline).

How: ``build_simulator("steady")`` on a ManualClock at 2026-06-01, ``clock.advance(30 days)``, ``sync()``:
the discrete-event engine processes every arrival, cold start, job, idle timeout and heartbeat of the month.
Repeated and reported as min/median CPU seconds (``time.process_time``). A day of ``ping-flood`` (a job
every 3 s: the busiest scenario) is shown beside it as the heavy case.
"""

from __future__ import annotations

import sys

from bench import Result, Stopwatch, Table, fmt, median, module_main, rss_kb
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import MONTH_S
from watchdog.clock import ManualClock, from_iso

NAME = "simulator_month"
TITLE = "CPU seconds to simulate a month (engine baseline)"
START = from_iso("2026-06-01T00:00:00Z")
DAY_S = 86_400


def live(scenario: str, seconds: float) -> dict[str, float]:
    watch = Stopwatch()
    clock = ManualClock(START)
    sim = build_simulator(scenario, clock=clock, seed=0)
    clock.advance(seconds)
    sim.sync()
    cpu, wall = watch.cpu, watch.wall
    events = next(sim._seq)  # events scheduled over the run (the engine's heap sequence counter)
    return {
        "cpu": cpu,
        "wall": wall,
        "events": float(events),
        "sessions": float(len(sim.sessions())),
        "requests": float(sum(s.sent for s in sim.traffic_sources())),
        "billed": sim.billed_usd_total(),
    }


def run(quick: bool) -> Result:
    cases = (
        [("steady", 3 * DAY_S, 1), ("ping-flood", 3600, 1)]
        if quick
        else [
            ("steady", MONTH_S, 7),
            ("ping-flood", DAY_S, 3),
        ]
    )
    rows = []
    headline = []
    for scenario, seconds, repeats in cases:
        runs = [live(scenario, seconds) for _ in range(repeats)]
        cpus = [r["cpu"] for r in runs]
        last = runs[-1]
        span = f"{seconds / DAY_S:g} d" if seconds >= DAY_S else f"{seconds / 3600:g} h"
        per_event_us = median(cpus) / max(1.0, last["events"]) * 1e6
        rows.append(
            [
                scenario,
                span,
                str(repeats),
                fmt(min(cpus), 3),
                fmt(median(cpus), 3),
                fmt(median([r["wall"] for r in runs]), 3),
                f"{last['events']:.0f}",
                fmt(per_event_us, 1),
                f"{last['requests']:.0f}",
                f"{last['sessions']:.0f}",
                fmt(last["billed"], 2),
            ]
        )
        if scenario == "steady":
            headline.append((f"steady {span}: CPU s (median of {repeats})", fmt(median(cpus), 3)))
            if not quick:
                headline.append(("steady month: simulated s per CPU s", f"{seconds / median(cpus):,.0f}"))
        else:
            headline.append((f"{scenario} {span}: CPU s", fmt(median(cpus), 3)))
    table = Table(
        "Simulator engine (ManualClock jump + sync)",
        [
            "scenario",
            "span",
            "runs",
            "cpu min s",
            "cpu med s",
            "wall med s",
            "events",
            "us/event",
            "requests",
            "sessions",
            "billed $",
        ],
        rows,
    )
    notes = [
        "events = entries pushed on the engine's heap (arrivals, finishes, idle checks, heartbeats...)",
        f"process RSS at the end: {rss_kb() / 1024:.0f} MiB",
    ]
    return Result(NAME, TITLE, quick, [table], headline, notes)


if __name__ == "__main__":
    sys.exit(module_main(NAME, run))
