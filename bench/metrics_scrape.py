"""metrics_scrape: what /metrics costs with 10 and 1,000 endpoints, ours beside client_python alone.

How: a realistic ``DaemonStatus`` with N endpoints (workers in several states, queues, cold starts, two
GPU types, a few paused, suspicious or out of policy, every rule's actions, API calls by route). Ours:
``watchdog.metrics.start_exporter`` on 127.0.0.1:0, the daemon's exporter (rendered once per status in its
renderer thread, served as bytes by its own HTTP thread). Baseline: prometheus_client alone,
``start_http_server`` (``watchdog.metrics.serve_metrics``) with a registry whose collector builds the same
series from the status at every scrape (``watchdog.metrics.build_registry``), as client_python's
custom-collector docs do it.

Scrapes come from another process (like Prometheus): ``RUNS`` runs of ``SCRAPES`` back-to-back scrapes, each
a fresh connection sending Prometheus's request head (``Accept-Encoding: gzip``) and reading the answer to
its end; latency = connect to last byte. Meanwhile this process's main thread runs an asyncio loop (a
stand-in for the daemon's tick loop) that sleeps 5 ms at a time and records how late it wakes: "loop lag
max" is the worst stall the scrapes caused it. "render" is one rendering of the status (ours: once per
tick, in the renderer thread; the baseline does it inside every scrape); "loop lag in renders" is the
same stall while the renderer thread renders 5 new statuses one after the other (a tick's publication).

Series per endpoint = samples carrying an ``endpoint`` label / N (every other series is account-wide).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench import REPO, Result, Table, fmt, median, module_main, percentile
from watchdog.metrics import MetricsPublisher, build_registry, render, serve_metrics, start_exporter
from watchdog.status import BudgetView, DaemonStatus, EndpointView, StatusRef, StatusTargets
from watchdog.vocabulary import RULE_ACTIONS

NAME = "metrics_scrape"
TITLE = "/metrics: series, bytes, render and scrape latency, 10 vs 1,000 endpoints (ours vs client_python)"
NOW = 1_780_000_000.0
REQUEST = (
    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.42.0\r\n"
    b"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    b"text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
    b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"
)
"""What Prometheus 2.42 sends (its openmetrics preference makes prometheus_client answer OpenMetrics)."""
GPU_TYPES = ("NVIDIA RTX A4000", "NVIDIA RTX A6000")


# --------------------------------------------------------------------------------------------------------
# A realistic status


def endpoint(index: int) -> EndpointView:
    busy = index % 7 == 0
    samples = 10 + index % 40
    # cumulative counts per COLD_START_BUCKETS_S edge: most between 5 and 15 s, a tail above 20 s
    shares = (0.0, 0.02, 0.1, 0.45, 0.85, 0.93, 0.97, 0.99, 1.0, 1.0)
    buckets = tuple(round(samples * share) for share in shares)
    requests_24h = 50 + (index * 37) % 900
    return EndpointView(
        id=f"ep-{index:05d}{'abcdefgh'[index % 8]}x7q",
        name=f"team-model-{index}",
        mode="enforce" if index % 3 else "dry-run",
        workers={"RUNNING": 1 if busy else 0, "IDLE": index % 2, "THROTTLED": 1 if index % 50 == 0 else 0},
        jobs={
            "completed": 1000 + index,
            "failed": index % 5,
            "inProgress": 1 if busy else 0,
            "inQueue": index % 4 if busy else 0,
            "retried": index % 3,
        },
        oldest_work_s=42.0 + index % 300 if busy else None,
        work_limit_s=600.0,
        cold_start_p50_s=9.5,
        cold_start_p95_s=19.0,
        cold_start_buckets=buckets,
        cold_start_sum_s=samples * 11.3,
        cold_start_count=samples,
        gpu_seconds_today=300.0 + index,
        gpu_seconds_month=22_000.0 + index * 13.7,
        gpu_seconds_by_type={GPU_TYPES[index % 2]: 22_000.0 + index * 13.7},
        spend_month_eur=6.45 + index * 0.013,
        requests_month=2300 + index,
        requests_24h=requests_24h,
        pings_1h=360 if index % 25 == 0 else 0,
        requests_1h=requests_24h // 24,
        cost_per_1000_month_usd=3.25 + (index % 10) / 10,
        cost_per_1000_24h_usd=2.9 + (index % 13) / 10,
        config={"workers_min": 0, "workers_max": 1, "workers_standby": 1, "idle_timeout_s": 5},
        compliance={
            "execution_timeout": index % 11 != 0,
            "idle_timeout": True,
            "max_workers": True,
            "min_standby": index % 17 != 0,
        },
        paused="brake" if index % 97 == 0 else None,
        suspicious=("203.0.113.7 pings 52/min",) if index % 25 == 0 else (),
        rate_per_min=tuple((index + minute) % 9 for minute in range(60)),
    )


def build_status(endpoints: int) -> DaemonStatus:
    budget = BudgetView(
        month="2026-06",
        monthly_eur=20.0 * max(1, endpoints // 10),
        usd_per_eur=1.16,
        spent_eur=16.2,
        fixed_eur=8.62,
        variable_eur=7.58,
        estimate_eur=7.58,
        billed_eur=7.1,
        used_ratio=0.81,
        forecast_eur=19.4,
        days_left=4.5,
        eur_per_day_allowed=0.84,
        free_share_eur=2.27,
        free_share=0.3,
        free_share_measured=False,
        thresholds=(0.5, 0.8, 1.0),
        thresholds_crossed=(0.5, 0.8),
    )
    actions = {
        f"{rule}|{action}|enforce|verified": 3 for rule, names in RULE_ACTIONS.items() for action in names
    }
    routes = ("GET /v2/serverless", "GET /v2/{id}/health", "GET /v2/{id}/workers", "POST /graphql")
    return DaemonStatus(
        started_at=NOW - 86_400,
        last_tick_at=NOW - 2,
        last_tick_ok=True,
        last_tick_duration_s=0.8,
        tick_interval_s=5.0,
        blind=False,
        blind_reason="",
        mode="enforce",
        budget=budget,
        endpoints=tuple(endpoint(i) for i in range(endpoints)),
        api_calls={f"{route}|{code}": 1000 * endpoints for route in routes for code in (200, 429)},
        actions=actions,
        saved_usd={"runaway_job|enforce": 4.1, "idle_leak|dry-run": 0.7},
        alerts_sent=12,
        ledger_bytes=12_000_000,
        last_billing_at=NOW - 300,
        last_ok_at=NOW - 2,
        targets=StatusTargets(3.0, 15.0, (0.5, 0.8, 1.0), 0.9),
    )


def series_counts(text: str, endpoints: int) -> tuple[int, float]:
    """(all samples, samples with an endpoint label per endpoint)."""
    total = per_endpoint = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            total += 1
            if "endpoint" in sample.labels:
                per_endpoint += 1
    return total, per_endpoint / endpoints


# --------------------------------------------------------------------------------------------------------
# The scraping client (a separate process, like Prometheus)


def scrape_once(port: int) -> tuple[float, int]:
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(REQUEST)
        received = 0
        head = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            if not head:
                head = chunk[:12]
            received += len(chunk)
    elapsed = time.perf_counter() - began
    if not head.startswith(b"HTTP/1.") or b" 200" not in head:
        raise RuntimeError(f"scrape answered {head!r}")
    return elapsed, received


def client(port: int, runs: int, scrapes: int) -> dict[str, Any]:
    scrape_once(port)  # warm-up
    per_run = []
    wire = 0
    for _ in range(runs):
        latencies = []
        for _ in range(scrapes):
            elapsed, wire = scrape_once(port)
            latencies.append(elapsed)
        per_run.append(latencies)
    return {"runs": per_run, "wire_bytes": wire}


def loop_lag_while(work: Any) -> float:
    """Runs ``work()`` in a thread while this thread's asyncio loop sleeps 5 ms at a time; the worst lateness
    of a wake-up, in seconds (how long the work held the loop's thread back)."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run_work() -> None:
        try:
            work()
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    async def watch() -> float:
        worst = 0.0
        thread = threading.Thread(target=run_work)
        thread.start()
        while not done.is_set():
            began = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - began - 0.005)
        thread.join()
        return worst

    lag = asyncio.run(watch())
    if failure:
        raise failure[0]
    return lag


def scrape_from_another_process(port: int, runs: int, scrapes: int) -> tuple[dict[str, Any], float]:
    """The client process's answer and the worst loop lag in this process while it scraped."""
    answer: dict[str, Any] = {}

    def run_client() -> None:
        command = [sys.executable, "-m", "bench.metrics_scrape", "--client"]
        command += [str(port), str(runs), str(scrapes)]
        finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
        if finished.returncode != 0:
            raise RuntimeError(f"the scraping client failed:\n{finished.stderr[-3000:]}")
        answer.update(json.loads(finished.stdout.strip().splitlines()[-1]))

    lag = loop_lag_while(run_client)
    return answer, lag


def render_lag(endpoints: int, renders: int = 5) -> float:
    """Worst loop lag while the renderer thread renders ``renders`` statuses published one after another."""
    statuses = [build_status(endpoints) for _ in range(renders)]
    ref = StatusRef(statuses[0])
    publisher = MetricsPublisher(ref, with_process_metrics=False)
    publisher.start()
    try:

        def publish_all() -> None:
            for status in statuses[1:]:
                ref.set(status)
                publisher.wait_current(60)

        return loop_lag_while(publish_all)
    finally:
        publisher.stop()


# --------------------------------------------------------------------------------------------------------
# Measuring one size


def timed(function: Any, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - began)
    return seconds


def measure(endpoints: int, runs: int, scrapes: int) -> dict[str, Any]:
    status = build_status(endpoints)
    ref = StatusRef(status)
    clock = lambda: NOW  # noqa: E731 - a fixed clock: data_age is the same in both exporters
    render_repeat = 5 if endpoints >= 1000 else 50
    ours_render = timed(lambda: render(status), render_repeat)
    baseline_registry = build_registry(ref, clock=clock)
    baseline_render = timed(lambda: generate_latest(baseline_registry), render_repeat)

    publisher = MetricsPublisher(ref, clock=clock)
    publisher.refresh()
    text = publisher.body().decode()
    gz = publisher.body(gzip=True)
    assert gzip.decompress(gz).decode().split("# HELP process_")[0] == text.split("# HELP process_")[0]
    total, per_endpoint = series_counts(text, endpoints)

    server = start_exporter(ref, "127.0.0.1:0", clock=clock)
    try:
        ours, ours_lag = scrape_from_another_process(server.server_port, runs, scrapes)
    finally:
        server.shutdown()
    baseline_server, baseline_thread = serve_metrics(baseline_registry, "127.0.0.1:0")
    try:
        # fewer scrapes for the baseline at 1,000 endpoints: each one renders everything again
        base_scrapes = max(5, scrapes // 10) if endpoints >= 1000 else scrapes
        base, base_lag = scrape_from_another_process(baseline_server.server_port, runs, base_scrapes)
    finally:
        baseline_server.shutdown()
        baseline_thread.join(timeout=10)
    baseline_text = generate_latest(baseline_registry).decode()
    base_total, base_per_endpoint = series_counts(baseline_text, endpoints)
    return {
        "endpoints": endpoints,
        "series": total,
        "per_endpoint": per_endpoint,
        "bytes": len(text),
        "gzip_bytes": len(gz),
        "ours_render_s": ours_render,
        "ours": ours,
        "ours_lag_s": ours_lag,
        "render_lag_s": render_lag(endpoints),
        "base_series": base_total,
        "base_per_endpoint": base_per_endpoint,
        "base_bytes": len(baseline_text),
        "base_render_s": baseline_render,
        "base": base,
        "base_lag_s": base_lag,
    }


def _ms(values: list[float]) -> str:
    """min/median/p99/max in ms."""
    return "/".join(
        fmt(v * 1000, 2) for v in (min(values), median(values), percentile(values, 99), max(values))
    )


def _run_medians(runs: list[list[float]]) -> str:
    return ", ".join(fmt(statistics.median(r) * 1000, 2) for r in runs)


def floor(runs: int, scrapes: int) -> tuple[dict[str, Any], float]:
    """The machine's floor: a minimal asyncio server in a thread answering 5 bytes, the same client."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    ready = threading.Event()
    port: list[int] = []
    stop: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        done = asyncio.Event()
        stop.append((asyncio.get_running_loop(), done))
        ready.set()
        async with server:
            await done.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        return scrape_from_another_process(port[0], runs, scrapes)
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(10)


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    if args is not None and args.client:
        port, runs, scrapes = args.client
        print(json.dumps(client(port, runs, scrapes)))
        sys.exit(0)
    sizes = (10, 50) if quick else (10, 1000)
    runs, scrapes = (3, 5) if quick else (3, 200)
    results = [measure(n, runs, scrapes) for n in sizes]
    base_floor, floor_lag = floor(runs, scrapes)
    floor_all = [s for run_ in base_floor["runs"] for s in run_]
    rows = [
        [
            "floor: 5-byte asyncio server",
            "",
            "",
            "5",
            f"{base_floor['wire_bytes']:,}",
            "",
            f"{runs}x{scrapes}",
            _ms(floor_all),
            _run_medians(base_floor["runs"]),
            fmt(floor_lag * 1000, 1),
            "",
        ]
    ]
    for r in results:
        for who, key, lag, render_key, in_renders in (
            ("ours", "ours", "ours_lag_s", "ours_render_s", fmt(r["render_lag_s"] * 1000, 1)),
            ("client_python", "base", "base_lag_s", "base_render_s", "(in scrapes)"),
        ):
            latencies = [s for run_ in r[key]["runs"] for s in run_]
            rows.append(
                [
                    f"{r['endpoints']} endpoints, {who}",
                    f"{r['per_endpoint' if key == 'ours' else 'base_per_endpoint']:.0f}",
                    f"{r['series' if key == 'ours' else 'base_series']:,}",
                    f"{r['bytes' if key == 'ours' else 'base_bytes']:,}",
                    f"{r[key]['wire_bytes']:,}",
                    _ms(r[render_key]).rsplit("/", 2)[0],
                    f"{len(r[key]['runs'])}x{len(r[key]['runs'][0])}",
                    _ms(latencies),
                    _run_medians(r[key]["runs"]),
                    fmt(r[lag] * 1000, 1),
                    in_renders,
                ]
            )
    table = Table(
        "scrapes from another process, each a new connection; ms as min/median[/p99/max]",
        [
            "exporter",
            "series/endpoint",
            "series",
            "text bytes",
            "wire bytes",
            "render ms",
            "runs x scrapes",
            "scrape ms",
            "run medians ms",
            "loop lag in scrapes ms",
            "loop lag in renders ms",
        ],
        rows,
    )
    big = results[-1]
    ours_big = [s for run_ in big["ours"]["runs"] for s in run_]
    base_big = [s for run_ in big["base"]["runs"] for s in run_]
    return Result(
        NAME,
        TITLE,
        quick,
        tables=[table],
        headline=[
            (f"{big['endpoints']} endpoints: series per endpoint (<= 15)", f"{big['per_endpoint']:.0f}"),
            (
                f"{big['endpoints']} endpoints: scrape ms median (ours; <= 2 whatever the size)",
                fmt(median(ours_big) * 1000, 2),
            ),
            (
                f"{big['endpoints']} endpoints: scrape ms median (client_python)",
                fmt(median(base_big) * 1000, 2),
            ),
            (f"{big['endpoints']} endpoints: render ms median", fmt(median(big["ours_render_s"]) * 1000, 1)),
        ],
        notes=[
            "wire bytes: what the client read; ours answers gzip (Prometheus sends Accept-Encoding: gzip), "
            "client_python answers OpenMetrics, gzipped, to the same Accept header",
            "render: ours once per published status in the renderer thread; client_python in every scrape",
            "loop lag: worst lateness of a 5 ms asyncio sleep in the exporter's process (where the daemon's "
            "tick loop runs) during the scrapes, or while 5 statuses are rendered one after another",
            "the floor row is this machine's noise: its p99/max are what any server gets here",
            "before this change (the issue): 1,000 endpoints = 39,355 series (39 per endpoint), 3 MB, 319 ms "
            "per scrape",
        ],
    )


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--client", nargs=3, type=int, metavar=("PORT", "RUNS", "SCRAPES"), help=argparse.SUPPRESS
    )


def main(argv: list[str] | None = None) -> int:
    return module_main(NAME, run, argv, _add_args)


if __name__ == "__main__":
    raise SystemExit(main())
