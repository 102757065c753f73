"""daemon_tick_cost: CPU and wall time per daemon tick, and RSS, with 10 and 1,000 endpoints.

How: a Simulator on a ManualClock with N compliant A6000 endpoints (workers max 1, idle timeout 5 s,
execution timeout 120 s): all idle but ``max(2, N // 100)`` busy ones (a 5 s job every 6 s, so a worker
is RUNNING or IDLE). The real daemon (default config, enforce) talks to it in-process through
``httpx.ASGITransport`` with a real SQLite ledger; the clock advances 5 s between ticks. After a warm-up we
time each tick: CPU = ``time.process_time`` delta (all threads of the process), wall = ``perf_counter``.
Each size runs in its own process so RSS (``VmRSS``) is that size's alone.

The in-process figures include the simulator answering the HTTP calls (2 per endpoint per tick: workers
and /health). A timing wrapper around the ASGI app measures the share spent inside the simulator app
("sim ms"); "daemon ms" = wall - sim ms. That split is only valid if app calls never interleave (they do
not suspend in between); the wrapper checks it and prints "n/a" otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import REPO, Result, Table, fmt, median, module_main, peak_rss_kb, percentile, quiet_logs, rss_kb
from runpod_sim.app import RateLimits, create_app
from runpod_sim.engine import Simulator
from runpod_sim.scenarios import A6000
from runpod_sim.state import SimEndpoint
from sim_harness.wiring import sim_config, sim_secrets
from watchdog.clock import ManualClock, from_iso
from watchdog.daemon.service import Daemon

NAME = "daemon_tick_cost"
TITLE = "daemon CPU/wall per tick and RSS, 10 vs 1,000 endpoints (in-process simulator)"
START = from_iso("2026-06-10T08:00:00Z")
TICK_S = 5.0


class TimedApp:
    """ASGI wrapper: wall seconds spent inside the app, and whether two calls were ever in flight at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds = 0.0
        self.in_flight = 0
        self.interleaved = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.in_flight += 1
        if self.in_flight > 1:
            self.interleaved = True
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.perf_counter() - started
            self.in_flight -= 1


def build_sim(clock: ManualClock, endpoints: int) -> tuple[Simulator, int]:
    sim = Simulator(clock=clock, seed=0)
    busy = max(2, endpoints // 100)
    for index in range(endpoints):
        endpoint_id = f"ep-bench{index:05d}"
        sim.add_endpoint(
            SimEndpoint(
                id=endpoint_id,
                name=f"bench-{index}",
                gpu_type_ids=(A6000,),
                workers_max=1,
                idle_timeout=5,
                execution_timeout_ms=120_000,
                cold_start_s=12.0,
                created_at=START - 30 * 86_400,
            )
        )
        if index < busy:
            sim.add_traffic(
                endpoint_id,
                actor="bench-client",
                interarrival=lambda _rng: 6.0,
                input_factory=lambda _rng: {"sim": {"duration_s": 5.0}},
                rng=random.Random(index),
            )
    return sim, busy


async def measure(endpoints: int, warmup: int, ticks: int) -> dict[str, Any]:
    rss_start = rss_kb()
    clock = ManualClock(START)
    sim, busy = build_sim(clock, endpoints)
    clock.advance(60.0)  # the busy endpoints' workers are warm when the daemon starts
    sim.sync()
    rss_sim = rss_kb()
    limits = RateLimits(runtime_per_window={}, rest_per_window=10**9)
    limits.runtime_per_window = {k: 10**9 for k in ("run", "runsync", "status", "stream", "cancel", "health")}
    timed = TimedApp(create_app(sim, rate_limits=limits))
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp:
        config = sim_config(Path(tmp))
        daemon = Daemon(config, sim_secrets(), clock=clock, transport=httpx.ASGITransport(app=timed))
        await daemon.open()
        try:
            for _ in range(warmup):
                await daemon.tick()
                clock.advance(TICK_S)
            rss_warm = rss_kb()
            cpu_ms, wall_ms, sim_ms = [], [], []
            calls_before = sum(daemon.state.counters.api_calls.values())
            not_ok = 0
            actions = 0
            for _ in range(ticks):
                sim_before = timed.seconds
                cpu0, wall0 = time.process_time(), time.perf_counter()
                outcome = await daemon.tick()
                cpu_ms.append((time.process_time() - cpu0) * 1000)
                wall_ms.append((time.perf_counter() - wall0) * 1000)
                sim_ms.append((timed.seconds - sim_before) * 1000)
                not_ok += 0 if outcome.ok else 1
                actions += len(outcome.actions)
                clock.advance(TICK_S)
            calls = sum(daemon.state.counters.api_calls.values()) - calls_before
            ledger_bytes = ledger_size(Path(tmp))
        finally:
            await daemon.close()
    return {
        "endpoints": endpoints,
        "busy": busy,
        "ticks": ticks,
        "cpu_ms": cpu_ms,
        "wall_ms": wall_ms,
        "sim_ms": sim_ms,
        "interleaved": timed.interleaved,
        "rss_start_kb": rss_start,
        "rss_sim_kb": rss_sim,
        "rss_warm_kb": rss_warm,
        "rss_end_kb": rss_kb(),
        "peak_kb": peak_rss_kb(),
        "calls_per_tick": calls / ticks,
        "not_ok": not_ok,
        "actions": actions,
        "ledger_bytes": ledger_bytes,
    }


def ledger_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("ledger.sqlite3*"))


def child(endpoints: int, warmup: int, ticks: int) -> dict[str, Any]:
    """One size in a fresh process (RSS must not carry over from another size)."""
    command = [
        sys.executable,
        "-m",
        "bench.daemon_tick_cost",
        "--child",
        str(endpoints),
        str(warmup),
        str(ticks),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"daemon_tick_cost child ({endpoints} endpoints) failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    if args is not None and args.child:
        quiet_logs()
        endpoints, warmup, ticks = args.child
        print(json.dumps(asyncio.run(measure(endpoints, warmup, ticks))))
        sys.exit(0)
    sizes = [(10, 2, 5), (50, 2, 5)] if quick else [(10, 10, 120), (1000, 3, 25)]
    results = [child(*size) for size in sizes]
    rows = []
    for r in results:
        sim = "n/a" if r["interleaved"] else fmt(median(r["sim_ms"]), 1)
        daemon_wall = (
            "n/a"
            if r["interleaved"]
            else fmt(median([w - s for w, s in zip(r["wall_ms"], r["sim_ms"], strict=True)]), 1)
        )
        rows.append(
            [
                str(r["endpoints"]),
                str(r["busy"]),
                str(r["ticks"]),
                fmt(median(r["cpu_ms"]), 1),
                fmt(percentile(r["cpu_ms"], 95), 1),
                fmt(median(r["wall_ms"]), 1),
                fmt(percentile(r["wall_ms"], 95), 1),
                sim,
                daemon_wall,
                f"{r['calls_per_tick']:.0f}",
                f"{r['rss_sim_kb'] / 1024:.1f}",
                f"{r['rss_warm_kb'] / 1024:.1f}",
                f"{r['rss_end_kb'] / 1024:.1f}",
                f"{r['ledger_bytes'] / 1024:.0f}",
            ]
        )
    small, large = results[0], results[-1]
    size_ratio = large["endpoints"] / small["endpoints"]
    ratio_cpu = median(large["cpu_ms"]) / median(small["cpu_ms"])
    ratio_wall = median(large["wall_ms"]) / median(small["wall_ms"])
    ratio_rss = large["rss_warm_kb"] / small["rss_warm_kb"]
    label = f"{large['endpoints']}/{small['endpoints']}"
    table = Table(
        "Per tick (ms) and process memory (MiB); ledger in KiB",
        [
            "endpoints",
            "busy",
            "ticks",
            "cpu med",
            "cpu p95",
            "wall med",
            "wall p95",
            "sim med",
            "daemon med",
            "calls/tick",
            "RSS sim",
            "RSS warm",
            "RSS end",
            "ledger KiB",
        ],
        rows,
    )
    ratios = Table(
        f"Ratio {label} (endpoints x{size_ratio:g})",
        ["figure", "ratio"],
        [
            ["CPU ms per tick (median)", fmt(ratio_cpu, 1)],
            ["wall ms per tick (median)", fmt(ratio_wall, 1)],
            ["RSS after warm-up", fmt(ratio_rss, 2)],
        ],
    )
    headline = [
        (
            f"{r['endpoints']} endpoints: CPU ms/tick med/p95, RSS MiB",
            f"{fmt(median(r['cpu_ms']), 1)}/{fmt(percentile(r['cpu_ms'], 95), 1)}, "
            f"{r['rss_warm_kb'] / 1024:.0f}",
        )
        for r in results
    ]
    headline.append((f"ratio {label} CPU/tick", fmt(ratio_cpu, 1)))
    notes = [
        "cpu/wall include the in-process simulator serving the calls; 'sim med' is the wall time inside the "
        "simulator's ASGI app, 'daemon med' = wall - sim (the daemon's own share, client included)",
        "RSS sim = process after building the simulator (before the daemon): RSS warm - RSS sim ~ the daemon",
        f"ticks not ok: {', '.join(str(r['not_ok']) for r in results)}; actions taken: "
        f"{', '.join(str(r['actions']) for r in results)} (all endpoints compliant: expected 0)",
        f"at a 5 s poll interval a {large['endpoints']}-endpoint tick uses "
        f"{median(large['cpu_ms']) / 50:.0f} % of one core (in-process figure, simulator included)",
    ]
    return Result(NAME, TITLE, quick, [table, ratios], headline, notes)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--child", nargs=3, type=int, metavar=("ENDPOINTS", "WARMUP", "TICKS"), help=argparse.SUPPRESS
    )


if __name__ == "__main__":
    sys.exit(module_main(NAME, run, add_args=add_args))
