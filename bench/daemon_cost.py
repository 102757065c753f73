"""daemon_cost: the watchdog's own cost as a user runs it: RSS, CPU, REST calls per tick, 10 and 1,000
endpoints.

Every figure comes from REAL processes on 127.0.0.1, as the issue "The watchdog's own cost" asks:

- ``runpod-watchdog simulate --scenario fleet-10`` (or ``fleet-1000``) in one process: N compliant A6000
  endpoints (workers max 1, idle timeout 5 s, execution timeout 120 s), all idle but ``max(2, N // 100)``
  that get a 5 s job every 6 s (runpod_sim/scenarios.py ``install_fleet``, daemon_tick_cost's shape), with
  the simulator's REST quota ON exactly as a user gets it (``RateLimits()``: 60 REST v2 calls a minute);
- ``runpod-watchdog run --config X`` in another: the default configuration (enforce, 5 s poll, Prometheus
  exporter on, control socket on) but for the simulator's URLs, a ledger, socket and metrics port of its own;
- the LEAN BASELINE (bench/_lean_poller.py, run as a script so not even ``bench`` is imported), side by side
  at 10 endpoints against its own simulator: httpx + prometheus_client making the same calls as one of the
  daemon's ticks with the same client and pool, exporting a gauge. It is the floor: what any Python poller
  of this API costs before the watchdog does anything.

What is measured, from outside, never by the daemon about itself:

- RSS: ``VmRSS`` of /proc/PID/status sampled every second (0.1 s at 1,000 endpoints) from the process start;
  "after M min" is the sample at M minutes; the slope is the least-squares fit of the samples from
  ``--minutes`` to ``--slope-minutes`` (MiB per minute); "flat" = under ``FLAT_MIB_PER_MIN``. ``VmHWM``
  (peak) is read at the end.
- CPU: utime + stime of /proc/PID/stat. The window starts ``SETTLE_S`` after the first tick (start-up, ~1 s
  of imports, is excluded and shown apart) and ends at ``--minutes`` (10 endpoints) or ``--slope-minutes``
  (1,000). % of a core = CPU s / wall s. CPU per tick = all CPU of the window / ticks finished in it (what a
  tick really costs, the work between ticks included); "in-tick" CPU attributes the 0.1 s samples to each
  tick's [started_at, finished_at] from the ledger (upper bound: up to 2 samples of margin).
- REST calls: counted AT THE SIMULATOR. ``/_sim/state`` has no call counts and the access log has no REST
  lines (runpod_sim/app.py logs only the runtime and worker APIs), so the harness installs, through the
  simulator's public ``POST /_sim/faults``, no-op "slow" rules with a 0 s delay (one per REST v2 prefix, one
  for /graphql, one for the rest of /v2): the simulator counts every request a rule matches (``hits``),
  before its rate limiter, and ``GET /_sim/faults`` reads them. They delay nothing and change no answer.
  They are read every second on the monotonic grid the simulator's quota windows use (CLOCK_MONOTONIC is
  system-wide: ``floor(t / 60) * 60``), so each quota window's count is exact to within a few ms. Within
  the quota = no window over ``RateLimits().rest_per_window`` and no 429 in the daemon's own
  ``runpod_watchdog_api_calls_total`` (scraped once, after the CPU figures were taken).

Concurrency and the 2-core machine: at 10 endpoints the daemon and its lean baseline run at the same time
(four light processes: the two pollers each use well under 1 % of a core, their simulators a few %); the
runs themselves, and every 1,000-endpoint run, go one after another, never beside another benchmark run of
this harness. Before each measured run the harness waits (up to ``--quiet-wait`` s) for the machine's
other load to fall under half a core, and every run reports the machine's total CPU load during its window
(/proc/stat) beside its own processes' share, so a figure taken on a busy machine says so.

``--profile cpu|mem`` adds one run of the daemon at 1,000 endpoints under :data:`WRAPPER` (``python -c``:
``watchdog.cli.main`` under cProfile, or with tracemalloc on and a snapshot taken on SIGUSR1, selected by the
harness-only environment variables ``BENCH_DAEMON_CPROFILE`` / ``BENCH_DAEMON_TRACEMALLOC``); its figures
are not the measured ones (profiling slows the daemon).

Durations: ``--minutes`` (default 5: 10-endpoint runs, and the 1,000-endpoint RSS's first mark),
``--slope-minutes`` (default 10), ``--runs`` (default 3). The whole default run takes ~50 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench import REPO, Result, Table, fmt, median, module_main, percentile, proc_cpu_s
from bench._processes import clean_env, stop
from bench._processes import start_simulator as start_simulator_process
from bench.log_backlog import status_kb
from runpod_sim.app import REST_V2_PREFIXES, RateLimits

NAME = "daemon_cost"
TITLE = "the real daemon's own cost: RSS, CPU, REST calls per tick at 10 and 1,000 endpoints (real processes)"

API_KEY = "bench-daemon-cost-api-key-2026"
"""Long on purpose: the client refuses any answer that echoes its key, so a short key inside a worker id
("k1" in "pjso2krv6sk1wj") would make the daemon blind."""
SMALL, LARGE = "fleet-10", "fleet-1000"
POLL_S = 5.0
SETTLE_S = 15.0
"""Seconds after the first tick before the CPU window opens (start-up excluded)."""
QUOTA = RateLimits()
FLAT_MIB_PER_MIN = 0.1
TARGET_RSS_SMALL_MIB = 38.0
TARGET_RSS_LARGE_MIB = 57.0
TARGET_CPU_PCT = 0.3
TARGET_CPU_PER_TICK_S = 0.5
LEAN = REPO / "bench" / "_lean_poller.py"
LEAN_READY = "lean-poller ready"
QUIET_CORES = 0.5
"""Other load (in cores) under which the machine counts as quiet before a measured run."""
CPROFILE_ENV = "BENCH_DAEMON_CPROFILE"
TRACEMALLOC_ENV = "BENCH_DAEMON_TRACEMALLOC"
"""Read only by :data:`WRAPPER` (a profiled run of this harness), never by watchdog/."""


# ------------------------------------------------------------------------------------------------------------
# Processes


def cli() -> list[str]:
    """``runpod-watchdog`` as installed beside this interpreter (what a user runs), else ``python -m``."""
    script = Path(sys.executable).parent / "runpod-watchdog"
    return [str(script)] if script.exists() else [sys.executable, "-m", "watchdog"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_simulator(scenario: str, out: IO[str], api_key: str = API_KEY) -> tuple[subprocess.Popen[str], str]:
    """``runpod-watchdog simulate --scenario SCENARIO`` on a free loopback port; returns it and its URL."""
    command = [*cli(), "simulate", "--listen", "127.0.0.1:0", "--scenario", scenario, "--api-key", api_key]
    return start_simulator_process(command, out, what=f"the simulator ({scenario})", timeout_s=60)


def daemon_config(folder: Path, url: str, metrics_port: int, poll_s: float = POLL_S) -> str:
    """The default configuration, but for the simulator's URLs and this run's own files and port."""
    return f"""
[runpod]
graphql_url = "{url}/graphql"
rest_url = "{url}/v2"
runtime_url = "{url}/v2"
poll_interval_s = {poll_s}

[ledger]
path = "{folder / "ledger.sqlite3"}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[control]
socket_path = "{folder / "control.sock"}"
"""


WRAPPER = """
import cProfile, os, signal, sys, time, tracemalloc
stats_path = os.environ.get("BENCH_DAEMON_CPROFILE")
snapshot_path = os.environ.get("BENCH_DAEMON_TRACEMALLOC")
if snapshot_path:
    tracemalloc.start(12)
    taken = [0]
    def dump(_signum, _frame):
        taken[0] += 1
        tracemalloc.take_snapshot().dump(snapshot_path + ".tmp")
        os.replace(snapshot_path + ".tmp", f"{snapshot_path}.{taken[0]}")
    signal.signal(signal.SIGUSR1, dump)
from watchdog.cli import main
profiler = cProfile.Profile(time.process_time) if stats_path else None
if profiler is not None:
    profiler.enable()
try:
    code = main(sys.argv[1:])
finally:
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(stats_path)
sys.exit(code)
"""
"""The profiling wrapper: ``watchdog.cli.main`` under cProfile counting CPU time (``BENCH_DAEMON_CPROFILE`` =
where the stats go), or with tracemalloc on (``BENCH_DAEMON_TRACEMALLOC`` = PATH: each SIGUSR1 writes a
snapshot to PATH.1, PATH.2, ...; ``BENCH_PSTATS_COPY`` = PATH keeps a copy of a ``--profile cpu`` run's
pstats file for ``python -m pstats``). Run with ``python -c`` so that nothing but the daemon's own modules is
imported; only this harness sets those variables, nothing in watchdog/ reads them."""


HIDDEN_ON_A_SERVER = ("numpy",)
"""Modules of this development venv that a server install (``pip install runpod-watchdog``, no extras) does
not have: numpy comes with the ``report`` extra (matplotlib). sqlite_utils imported it whenever it was
importable (+12 MiB of RSS at start-up, measured 2026-11-30) until the ledger moved to stdlib sqlite3;
the stub stays so that a library that starts importing it again cannot inflate the figures unnoticed."""


def server_env(env: dict[str, str], folder: Path) -> dict[str, str]:
    """``env`` for a process that must see the packages of a server install: a directory put first on
    PYTHONPATH holds one stub package per :data:`HIDDEN_ON_A_SERVER` name whose import raises ImportError,
    exactly what a missing package raises (``--with-extras``: not done)."""
    shim = folder / "server-install"
    for name in HIDDEN_ON_A_SERVER:
        (shim / name).mkdir(parents=True, exist_ok=True)
        (shim / name / "__init__.py").write_text(
            f'raise ImportError("{name} is not installed on a server (hidden by bench.daemon_cost)")\n',
            encoding="utf-8",
        )
    env["PYTHONPATH"] = str(shim)
    return env


def start_daemon(
    config_path: Path,
    out: IO[str],
    *,
    wrap_env: dict[str, str] | None = None,
    as_server: bool = True,
) -> subprocess.Popen[str]:
    """``runpod-watchdog run --config X`` (or, with ``wrap_env``, :data:`WRAPPER` around the same main);
    ``as_server``: with :func:`server_env` (the shim goes next to the config)."""
    env = clean_env()
    if as_server:
        env = server_env(env, config_path.parent)
    env["RUNPOD_API_KEY"] = API_KEY
    command = [*cli(), "run", "--config", str(config_path)]
    if wrap_env:
        env.update(wrap_env)
        command = [sys.executable, "-c", WRAPPER, "run", "--config", str(config_path)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out, text=True)


def start_lean(
    url: str, metrics_port: int, out: IO[str], ready: threading.Event, ticks: list[float]
) -> subprocess.Popen[str]:
    env = clean_env()
    env["RUNPOD_API_KEY"] = API_KEY
    command = [
        sys.executable,
        str(LEAN),
        "--base-url",
        url,
        "--metrics-port",
        str(metrics_port),
        "--interval",
        str(POLL_S),
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=out, text=True)

    def read() -> None:
        assert process.stdout is not None
        for text in process.stdout:
            if text.startswith(LEAN_READY):
                ready.set()
            elif text.startswith("tick "):
                ticks.append(time.monotonic())

    threading.Thread(target=read, daemon=True).start()
    return process


# ------------------------------------------------------------------------------------------------------------
# Counting calls at the simulator


def counting_rules() -> list[tuple[str, str]]:
    """(label, fnmatch pattern) of the no-op rules, in match order (a request counts for the first only)."""
    rules = [("rest", f"/v2/{prefix}") for prefix in sorted(REST_V2_PREFIXES)]
    rules += [("rest", f"/v2/{prefix}/*") for prefix in sorted(REST_V2_PREFIXES)]
    return [*rules, ("graphql", "/graphql"), ("runtime", "/v2/*")]


def http_json(url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def install_counters(url: str) -> None:
    rules = [
        {"kind": "slow", "pattern": pattern, "count": None, "delay": 0} for _, pattern in counting_rules()
    ]
    http_json(f"{url}/_sim/faults", {"add": rules})


def read_counters(url: str) -> dict[str, int]:
    labels = dict((pattern, label) for label, pattern in counting_rules())
    counts = {"rest": 0, "graphql": 0, "runtime": 0}
    for rule in http_json(f"{url}/_sim/faults")["rules"]:
        label = labels.get(rule["pattern"])
        if label is not None and rule["kind"] == "slow":
            counts[label] += int(rule["hits"])
    return counts


# ------------------------------------------------------------------------------------------------------------
# Sampling from outside


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_busy_cores(seconds: float) -> float:
    busy0, total0 = machine_jiffies()
    time.sleep(seconds)
    busy1, total1 = machine_jiffies()
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


def wait_quiet(limit_s: float) -> tuple[float, float]:
    """Wait (up to ``limit_s``) for the machine's load to fall under ``QUIET_CORES``; (load, waited s)."""
    started = time.monotonic()
    load = machine_busy_cores(3.0)
    while load > QUIET_CORES and time.monotonic() - started < limit_s:
        time.sleep(7.0)
        load = machine_busy_cores(3.0)
    return load, time.monotonic() - started


@dataclass
class Sample:
    mono: float
    wall: float
    rss_kb: int
    cpu_s: float


class Sampler:
    """RSS and CPU of one process every ``every_s``; the simulator's call counters on the 1 s grid."""

    def __init__(self, pid: int, sim_pid: int, sim_url: str, every_s: float) -> None:
        self.pid, self.sim_pid, self.sim_url, self.every_s = pid, sim_pid, sim_url, every_s
        self.samples: list[Sample] = []
        self.counts: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._count, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                cpu = proc_cpu_s(self.pid)
                self.samples.append(Sample(time.monotonic(), time.time(), status_kb(self.pid, "VmRSS"), cpu))
            self._stop.wait(self.every_s)

    def _count(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._stop.wait(math.floor(now) + 1.005 - now)  # just past each whole monotonic second
            asked = time.monotonic()  # the simulator's snapshot is taken after this instant
            with contextlib.suppress(OSError, ValueError, KeyError):
                self.counts.append((asked, read_counters(self.sim_url)))

    def at(self, mono: float) -> Sample | None:
        """The last sample at or before ``mono``."""
        before = [s for s in self.samples if s.mono <= mono]
        return before[-1] if before else None

    def count_before(self, mono: float) -> dict[str, int] | None:
        """The last counter reading asked for before ``mono``, or None."""
        found = None
        for asked, counts in self.counts:
            if asked >= mono:
                break
            found = counts
        return found

    def count_after(self, mono: float) -> dict[str, int] | None:
        """The first counter reading asked for at or after ``mono`` (a window's edge), or None."""
        for asked, counts in self.counts:
            if asked >= mono:
                return counts
        return None


# ------------------------------------------------------------------------------------------------------------
# One run of one process


@dataclass
class RunFigures:
    kind: str
    """"daemon" or "lean"."""
    scenario: str
    endpoints: int
    note: str = ""
    rss_at_mib: dict[str, float] = field(default_factory=dict)
    """minutes (as text) → VmRSS MiB then."""
    hwm_mib: float = 0.0
    anon_file_mib: tuple[float, float] = (math.nan, math.nan)
    """RssAnon and RssFile (MiB) at the end of the window: the process's own memory vs mapped files."""
    slope_mib_per_min: float | None = None
    startup_cpu_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    ticks: int = 0
    ticks_ok: int = 0
    ticks_blind: int = 0
    tick_ms: list[int] = field(default_factory=list)
    in_tick_cpu_s: list[float] = field(default_factory=list)
    rest: int = 0
    graphql: int = 0
    runtime: int = 0
    windows: list[int] = field(default_factory=list)
    """REST calls in each whole quota window inside the measured span."""
    rest_by_tick: list[int] = field(default_factory=list)
    """REST calls from one tick's start to the next one's (counter readings of the 1 s grid just before each
    start: a tick's calls come at its start, the daemon is quiet between ticks)."""
    daemon_429: int | None = None
    daemon_calls: int | None = None
    actions: int = 0
    """Decisions the daemon recorded (the ledger's ``decisions``); ``applied``: those it carried out."""
    applied: int = 0
    decisions: list[str] = field(default_factory=list)
    """The distinct "rule action outcome" the daemon recorded."""
    sim_cpu_s: float = 0.0
    machine_cores: float = 0.0
    """Average busy cores of the whole machine during the CPU window."""
    quiet_before: float = 0.0
    last_error: str = ""

    @property
    def cpu_pct(self) -> float:
        return self.cpu_s / self.wall_s * 100 if self.wall_s else math.nan

    @property
    def cpu_per_tick_s(self) -> float:
        return self.cpu_s / self.ticks if self.ticks else math.nan

    def per_tick(self, calls: int) -> float:
        return calls / self.ticks if self.ticks else math.nan


def ledger_rows(ledger: Path, query: str) -> list[tuple[Any, ...]]:
    if not ledger.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute(query).fetchall()
    except sqlite3.Error:
        return []


def scrape_calls(port: int) -> tuple[int, int] | None:
    """(all RunPod calls, 429 answers) from the daemon's ``runpod_watchdog_api_calls_total``, or None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode("utf-8", "replace")
    except OSError:
        return None
    total = limited = 0
    for line in text.splitlines():
        if line.startswith("runpod_watchdog_api_calls_total{"):
            value = int(float(line.rsplit(" ", 1)[1]))
            total += value
            if 'status="429"' in line:
                limited += value
    return total, limited


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points, or None with fewer than 3."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else None


def measure(
    kind: str,
    scenario: str,
    marks_min: Sequence[float],
    end_min: float,
    *,
    settle_s: float = SETTLE_S,
    sample_every_s: float = 1.0,
    quiet_before: float = 0.0,
    wrap_env: dict[str, str] | None = None,
    as_server: bool = True,
    at_window: Callable[[subprocess.Popen[str]], None] | None = None,
    after: Callable[[subprocess.Popen[str], Path], None] | None = None,
) -> RunFigures:
    """One process (``kind``) against its own simulator, from spawn to ``end_min`` minutes."""
    endpoints = int(scenario.rsplit("-", 1)[1])
    figures = RunFigures(kind, scenario, endpoints, quiet_before=quiet_before)
    with tempfile.TemporaryDirectory(prefix=f"bench-daemon-cost-{kind}-") as tmp:
        folder = Path(tmp)
        ledger = folder / "ledger.sqlite3"
        with open(folder / "processes.log", "w", encoding="utf-8") as out:
            sim, url = start_simulator(scenario, out)
            target: subprocess.Popen[str] | None = None
            sampler: Sampler | None = None
            metrics_port = free_port()
            lean_ready = threading.Event()
            lean_ticks: list[float] = []
            try:
                install_counters(url)
                sim_cpu0 = proc_cpu_s(sim.pid)
                t0 = time.monotonic()
                if kind == "daemon":
                    config_path = folder / "config.toml"
                    config_path.write_text(daemon_config(folder, url, metrics_port), encoding="utf-8")
                    target = start_daemon(config_path, out, wrap_env=wrap_env, as_server=as_server)
                else:
                    target = start_lean(url, metrics_port, out, lean_ready, lean_ticks)
                sampler = Sampler(target.pid, sim.pid, url, sample_every_s)
                sampler.start()
                ready_at = None
                while ready_at is None:
                    if target.poll() is not None:
                        raise RuntimeError(f"{kind} exited at start-up (exit {target.returncode})")
                    if time.monotonic() - t0 > 120:
                        raise RuntimeError(f"{kind}: no first tick within 120 s")
                    if (kind == "daemon" and ledger_rows(ledger, "SELECT 1 FROM ticks LIMIT 1")) or (
                        kind == "lean" and lean_ready.is_set()
                    ):
                        ready_at = time.monotonic()
                    time.sleep(0.1)
                window_start = ready_at + settle_s
                window_end = t0 + end_min * 60
                while time.monotonic() < window_start:
                    time.sleep(0.05)
                if at_window is not None:
                    at_window(target)
                cpu0, wall_start = proc_cpu_s(target.pid), time.time()
                busy0, total0 = machine_jiffies()
                figures.startup_cpu_s = cpu0
                counts0 = read_counters(url)
                while time.monotonic() < window_end:
                    if target.poll() is not None:
                        raise RuntimeError(f"{kind} exited early (exit {target.returncode})")
                    time.sleep(min(0.2, max(0.0, window_end - time.monotonic())))
                cpu1, wall_end = proc_cpu_s(target.pid), time.time()
                busy1, total1 = machine_jiffies()
                counts1 = read_counters(url)
                figures.cpu_s, figures.wall_s = cpu1 - cpu0, wall_end - wall_start
                figures.machine_cores = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
                figures.sim_cpu_s = proc_cpu_s(sim.pid) - sim_cpu0
                figures.hwm_mib = status_kb(target.pid, "VmHWM") / 1024
                figures.anon_file_mib = (
                    status_kb(target.pid, "RssAnon") / 1024,
                    status_kb(target.pid, "RssFile") / 1024,
                )
                sampler.finish()
                for mark in marks_min:
                    sample = sampler.at(t0 + mark * 60)
                    figures.rss_at_mib[f"{mark:g}"] = sample.rss_kb / 1024 if sample else math.nan
                if len(marks_min) >= 2:
                    first, last = t0 + marks_min[0] * 60, t0 + marks_min[-1] * 60
                    points = [
                        ((s.mono - t0) / 60, s.rss_kb / 1024)
                        for s in sampler.samples
                        if first <= s.mono <= last
                    ]
                    figures.slope_mib_per_min = slope(points)
                for label in ("rest", "graphql", "runtime"):
                    setattr(figures, label, counts1[label] - counts0[label])
                w = QUOTA.rest_window_s
                first_window = math.ceil(window_start / w) * w
                edges = [first_window + k * w for k in range(int((window_end - first_window) // w) + 1)]
                at_edges = [sampler.count_after(edge) for edge in edges]
                figures.windows = [
                    b["rest"] - a["rest"]
                    for a, b in itertools.pairwise(at_edges)
                    if a is not None and b is not None
                ]
                if kind == "daemon":
                    ticks = ledger_rows(
                        ledger, "SELECT started_at, finished_at, ok, blind, duration_ms, error FROM ticks"
                    )
                    inside = [t for t in ticks if wall_start <= t[1] <= wall_end]
                    figures.ticks = len(inside)
                    figures.ticks_ok = sum(1 for t in inside if t[2])
                    figures.ticks_blind = sum(1 for t in inside if t[3])
                    figures.tick_ms = [int(t[4]) for t in inside]
                    errors = [t[5] for t in inside if t[5]]
                    figures.last_error = (errors[-1] or "")[:160] if errors else ""
                    by_wall = sorted(sampler.samples, key=lambda s: s.wall)
                    for started, finished, *_ in inside:
                        before = [s for s in by_wall if s.wall <= started]
                        after_s = [s for s in by_wall if s.wall >= finished]
                        if before and after_s:
                            figures.in_tick_cpu_s.append(after_s[0].cpu_s - before[-1].cpu_s)
                    offset = time.time() - time.monotonic()
                    starts = [sampler.count_before(t[0] - offset) for t in inside]
                    figures.rest_by_tick = [
                        b["rest"] - a["rest"]
                        for a, b in itertools.pairwise(starts)
                        if a is not None and b is not None
                    ]
                    decided = ledger_rows(ledger, "SELECT rule, action, outcome, endpoint_id FROM decisions")
                    figures.actions = len(decided)
                    figures.applied = sum(1 for row in decided if row[2] in ("applied", "verified"))
                    figures.decisions = sorted(
                        {f"{rule} {action} {outcome}" for rule, action, outcome, _ in decided}
                    )
                    scraped = scrape_calls(metrics_port)
                    if scraped is not None:
                        figures.daemon_calls, figures.daemon_429 = scraped
                    if after is not None:
                        after(target, folder)
                else:
                    figures.ticks = sum(1 for t in lean_ticks if window_start <= t <= window_end)
            except (RuntimeError, OSError) as exc:
                figures.note = str(exc)
            finally:
                if sampler is not None:
                    sampler.finish()
                if target is not None:
                    stop(target)
                stop(sim)
        if figures.note:
            tail = (folder / "processes.log").read_text(encoding="utf-8", errors="replace")[-2500:]
            figures.note += f"; its log ends with:\n{tail}"
            print(f"[{kind} {scenario}] {figures.note}", file=sys.stderr)
    return figures


# ------------------------------------------------------------------------------------------------------------
# Profiling (optional, one extra run)


def short(filename: str, width: int) -> str:
    """A traced file name relative to the repository (or site-packages), cut to ``width`` from the left."""
    name = filename.replace(str(REPO) + "/", "")
    for marker in ("site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    return name[-width:]


def wait_for(path: Path, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def smaps_rss(pid: int) -> list[tuple[str, int]]:
    """RSS KiB per mapping (a file, ``[heap]``, ``[anon]`` for nameless anonymous maps), largest first."""
    totals: dict[str, int] = {}
    name = "[anon]"
    with (
        contextlib.suppress(OSError),
        open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as smaps,
    ):
        for line in smaps:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
                name = fields[5] if len(fields) > 5 else "[anon]"
            elif fields and fields[0] == "Rss:":
                totals[name] = totals.get(name, 0) + int(fields[1])
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


def profile_run(what: str, minutes: float, quick: bool, as_server: bool = True) -> list[Table]:
    import pstats  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    scenario = SMALL if quick else LARGE
    with tempfile.TemporaryDirectory(prefix="bench-daemon-profile-") as tmp:
        path = Path(tmp) / ("daemon.pstats" if what == "cpu" else "daemon.tracemalloc")
        env = {CPROFILE_ENV: str(path)} if what == "cpu" else {TRACEMALLOC_ENV: str(path)}
        rss: list[float] = []
        maps: list[tuple[str, int]] = []

        def first_snapshot(process: subprocess.Popen[str]) -> None:
            if what == "mem":
                rss.append(status_kb(process.pid, "VmRSS") / 1024)
                process.send_signal(signal.SIGUSR1)
                wait_for(Path(f"{path}.1"))

        def last_snapshot(process: subprocess.Popen[str], _folder: Path) -> None:
            if what == "mem":
                rss.append(status_kb(process.pid, "VmRSS") / 1024)
                maps.extend(smaps_rss(process.pid))
                process.send_signal(signal.SIGUSR1)
                wait_for(Path(f"{path}.2"))

        figures = measure(
            "daemon",
            scenario,
            [minutes],
            minutes,
            settle_s=3.0 if quick else SETTLE_S,
            wrap_env=env,
            as_server=as_server,
            at_window=first_snapshot,
            after=last_snapshot,
        )
        if what == "cpu":
            if os.environ.get("BENCH_PSTATS_COPY") and path.exists():
                shutil.copy(path, os.environ["BENCH_PSTATS_COPY"])
            if figures.note or not path.exists():
                return [
                    Table("profile (cpu) failed", ["why"], [[figures.note[:300] or "no profile written"]])
                ]
            return cpu_tables(pstats.Stats(str(path)), scenario, minutes, figures)
        if figures.note or not Path(f"{path}.2").exists():
            return [Table("profile (mem) failed", ["why"], [[figures.note[:300] or "no snapshot written"]])]
        first = tracemalloc.Snapshot.load(f"{path}.1")
        last = tracemalloc.Snapshot.load(f"{path}.2")
    traced = sum(stat.size for stat in last.statistics("filename"))
    traced0 = sum(stat.size for stat in first.statistics("filename"))
    files = [
        [short(stat.traceback[0].filename, 70), f"{stat.size / 2**20:.2f}", str(stat.count)]
        for stat in last.statistics("filename")[:15]
    ]
    growth = [
        [
            f"{short(stat.traceback[0].filename, 64)}:{stat.traceback[0].lineno}",
            f"{stat.size_diff / 2**20:+.3f}",
            f"{stat.size / 2**20:.3f}",
            f"{stat.count_diff:+d}",
        ]
        for stat in last.compare_to(first, "lineno")[:15]
    ]
    mapped = [[short(name, 70), f"{kib / 1024:.1f}"] for name, kib in maps[:15]]
    window = f"{SETTLE_S if not quick else 3.0:g} s after the first tick -> {minutes:g} min"
    return [
        Table(
            f"tracemalloc of the daemon, {scenario}, at {minutes:g} min: {traced / 2**20:.1f} MiB of Python "
            f"allocations traced ({traced0 / 2**20:.1f} MiB at the window's start); RSS "
            + " -> ".join(f"{v:.1f}" for v in rss)
            + " MiB (tracemalloc's own overhead included): top 15 files",
            ["file", "MiB", "blocks"],
            files,
        ),
        Table(
            f"growth over the window ({window}): top 15 lines",
            ["line", "MiB diff", "MiB", "blocks diff"],
            growth,
        ),
        Table("RSS by mapping at the end (/proc/PID/smaps): top 15", ["mapping", "RSS MiB"], mapped),
    ]


def cpu_tables(stats: Any, scenario: str, minutes: float, figures: RunFigures) -> list[Table]:
    entries = stats.stats
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = []
    for key, (_cc, calls, tottime, cumtime, _callers) in sorted(
        entries.items(), key=lambda item: item[1][2], reverse=True
    )[:25]:
        where = f"{Path(key[0]).name}:{key[1]} {key[2]}"
        rows.append(
            [where[:90], str(calls), fmt(tottime, 2), f"{tottime / total * 100:.1f} %", fmt(cumtime, 2)]
        )
    by_file: dict[str, float] = {}
    for key, value in entries.items():
        name = short(key[0], 60) if key[0] != "~" else f"(built-in) {key[2]}"[:60]
        by_file[name] = by_file.get(name, 0.0) + value[2]
    file_rows = [
        [name, fmt(own, 2), f"{own / total * 100:.1f} %"]
        for name, own in sorted(by_file.items(), key=lambda item: item[1], reverse=True)[:20]
    ]
    title = (
        f"cProfile (CPU time, main thread) of the daemon, {scenario}, {minutes:g} min, start-up included "
        f"({total:.1f} CPU s, {figures.ticks} ticks in the window): top 25 functions by own time"
    )
    return [
        Table(title, ["function", "calls", "own s", "share", "cum s"], rows),
        Table("own CPU time by file (top 20)", ["file", "own s", "share"], file_rows),
    ]


# ------------------------------------------------------------------------------------------------------------
# Report


def spread(values: Sequence[float], digits: int = 1) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    return f"{fmt(min(values), digits)} / {fmt(median(values), digits)} / {fmt(max(values), digits)}"


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    runs = args.runs if args is not None and args.runs else (1 if quick else 3)
    minutes = args.minutes if args is not None and args.minutes else (0.35 if quick else 5.0)
    slope_minutes = (
        args.slope_minutes if args is not None and args.slope_minutes else (0.4 if quick else 10.0)
    )
    quiet_wait = (
        args.quiet_wait if args is not None and args.quiet_wait is not None else (0.0 if quick else 60.0)
    )
    settle = 3.0 if quick else SETTLE_S
    as_server = not (args is not None and args.with_extras)
    if args is not None and args.profile_only:
        what = args.profile_only
        tables = profile_run(what, args.profile_minutes or (0.3 if quick else 3.0), quick, as_server)
        note = (
            "profiled run only (cProfile or tracemalloc slow the daemon: these are not the measured figures)"
        )
        return Result(NAME, TITLE, quick, tables, [(f"profile ({what})", "see the tables")], [note])
    large_every = 0.1
    small: list[RunFigures] = []
    lean: list[RunFigures] = []
    large: list[RunFigures] = []

    def small_pair() -> tuple[RunFigures, RunFigures]:
        load = wait_quiet(quiet_wait)[0] if quiet_wait > 0 else math.nan
        with ThreadPoolExecutor(2) as pool:
            d = pool.submit(
                measure,
                "daemon",
                SMALL,
                [minutes],
                minutes,
                settle_s=settle,
                quiet_before=load,
                as_server=as_server,
            )
            b = pool.submit(measure, "lean", SMALL, [minutes], minutes, settle_s=settle, quiet_before=load)
            return d.result(), b.result()

    def large_one() -> RunFigures:
        marks = [minutes, slope_minutes] if slope_minutes > minutes else [slope_minutes / 2, slope_minutes]
        load = wait_quiet(quiet_wait)[0] if quiet_wait > 0 else math.nan
        return measure(
            "daemon",
            LARGE,
            marks,
            slope_minutes,
            settle_s=settle,
            sample_every_s=large_every,
            quiet_before=load,
            as_server=as_server,
        )

    if quick:  # figures are meaningless in --quick: the two sizes go side by side to stay under a minute
        with ThreadPoolExecutor(2) as pool:
            pair, big = pool.submit(small_pair), pool.submit(large_one)
            d, b = pair.result()
            small.append(d)
            lean.append(b)
            large.append(big.result())
    else:
        for _ in range(runs):
            d, b = small_pair()
            small.append(d)
            lean.append(b)
        for _ in range(runs):
            large.append(large_one())

    good_small = [r for r in small if not r.note]
    good_lean = [r for r in lean if not r.note]
    good_large = [r for r in large if not r.note]
    mark_small = f"{minutes:g}"
    marks_large = list(good_large[0].rss_at_mib) if good_large else [f"{minutes:g}", f"{slope_minutes:g}"]
    q, w = QUOTA.rest_per_window, QUOTA.rest_window_s
    per_tick_quota = q / w * POLL_S
    tables = [
        target_table(runs, good_small, good_lean, good_large, mark_small, marks_large, per_tick_quota),
        detail_table([*small, *lean, *large]),
    ]
    notes = [
        "every process is real: runpod-watchdog simulate / run (and bench/_lean_poller.py) on 127.0.0.1, "
        f"the simulator's REST quota on ({q} calls per {w:g} s, RateLimits() defaults)",
        f"quota per {POLL_S:g} s tick = {q} / {w:g} s x {POLL_S:g} s = {per_tick_quota:g} REST calls; REST "
        "calls are counted at the simulator (no-op fault rules' hits), before its rate limiter: refused "
        "calls count too",
        "at 10 endpoints the daemon and the lean baseline run side by side (light processes); 1,000-endpoint "
        "runs run alone; 'machine cores busy' is the whole machine's load during the window (2 cores), "
        "'(before)' the load measured just before the run started (nothing of this run alive yet)",
        f"CPU windows open {settle:g} s after the first tick (the CPU used before is shown apart); CPU per "
        "tick = all the process's CPU in the window / ticks finished in it",
        (
            "the daemon sees the packages of a server install: "
            f"{', '.join(HIDDEN_ON_A_SERVER)} (this venv's report extra) hidden from it (--with-extras: not)"
            if as_server
            else "--with-extras: the daemon may import everything this venv has (numpy too)"
        ),
    ]
    for r in [*small, *lean, *large]:
        if r.note:
            notes.append(f"FAILED {r.kind} {r.scenario}: {r.note[:600]}")
        elif r.last_error:
            notes.append(f"{r.kind} {r.scenario}: last tick error: {r.last_error}")
        if r.decisions:
            notes.append(f"{r.kind} {r.scenario}: decisions recorded: {'; '.join(r.decisions)[:300]}")
    if args is not None and args.profile:
        tables += profile_run(args.profile, args.profile_minutes or (0.3 if quick else 3.0), quick, as_server)

    def med(runs_: Sequence[RunFigures], get: Callable[[RunFigures], float | None], digits: int = 1) -> str:
        values = [v for v in (get(r) for r in runs_) if v is not None and not math.isnan(v)]
        return fmt(median(values), digits) if values else "-"

    headline = [
        (
            f"RSS MiB 10 ep after {mark_small} min: daemon / lean (<= {TARGET_RSS_SMALL_MIB:g})",
            f"{med(good_small, lambda r: r.rss_at_mib[mark_small])} / "
            f"{med(good_lean, lambda r: r.rss_at_mib[mark_small])}",
        ),
        (
            f"RSS MiB 1,000 ep at {' / '.join(marks_large)} min (<= {TARGET_RSS_LARGE_MIB:g})",
            " / ".join(med(good_large, lambda r, m=m: r.rss_at_mib[m]) for m in marks_large),  # type: ignore[misc]
        ),
        ("RSS slope 1,000 ep MiB/min (flat)", med(good_large, lambda r: r.slope_mib_per_min, 3)),
        (
            "ratio daemon / lean at 10 ep: RSS, CPU",
            f"{ratio_of(good_small, good_lean, lambda r: r.rss_at_mib.get(mark_small))}, "
            f"{ratio_of(good_small, good_lean, lambda r: r.cpu_pct)}",
        ),
        (
            f"CPU % 10 ep: daemon / lean (<= {TARGET_CPU_PCT:g})",
            f"{med(good_small, lambda r: r.cpu_pct, 3)} / {med(good_lean, lambda r: r.cpu_pct, 3)}",
        ),
        (
            f"CPU s per tick 1,000 ep (<= {TARGET_CPU_PER_TICK_S:g})",
            med(good_large, lambda r: r.cpu_per_tick_s, 3),
        ),
        (
            f"REST calls per tick 10 / 1,000 ep (quota {per_tick_quota:g})",
            f"{med(good_small, lambda r: r.per_tick(r.rest))} / "
            f"{med(good_large, lambda r: r.per_tick(r.rest))}",
        ),
    ]
    return Result(NAME, TITLE, quick, tables, headline, notes)


def ratio_of(
    runs: Sequence[RunFigures], base: Sequence[RunFigures], get: Callable[[RunFigures], float | None]
) -> str:
    """median(runs) / median(base) of one figure, or "-"."""
    a, b = values(runs, get), values(base, get)
    return f"{median(a) / median(b):.2f}" if a and b and median(b) > 0 else "-"


@dataclass
class Figure:
    """One row of the targets table."""

    label: str
    target: str
    get: Callable[[RunFigures], float | None]
    ok: Callable[[float], bool] | None = None
    digits: int = 1


def values(runs: Sequence[RunFigures], get: Callable[[RunFigures], float | None]) -> list[float]:
    return [v for v in (get(r) for r in runs) if v is not None and not math.isnan(v)]


def target_table(  # noqa: PLR0917
    runs: int,
    small: Sequence[RunFigures],
    lean: Sequence[RunFigures],
    large: Sequence[RunFigures],
    mark_small: str,
    marks_large: Sequence[str],
    per_tick_quota: float,
) -> Table:
    q, w = QUOTA.rest_per_window, QUOTA.rest_window_s

    def ok_pct(r: RunFigures) -> float | None:
        return r.ticks_ok / r.ticks * 100 if r.ticks and r.kind == "daemon" else None

    def busiest(r: RunFigures) -> float | None:
        return float(max(r.windows)) if r.windows else None

    def busiest_tick(r: RunFigures) -> float | None:
        return float(max(r.rest_by_tick)) if r.rest_by_tick else None

    def refused(r: RunFigures) -> float | None:
        return None if r.daemon_429 is None else float(r.daemon_429)

    rss_small = TARGET_RSS_SMALL_MIB
    rss_large = TARGET_RSS_LARGE_MIB
    quota_ok: Callable[[float], bool] = lambda v: v <= per_tick_quota  # noqa: E731
    small_rows = [
        Figure(
            f"RSS MiB after {mark_small} min",
            f"<= {rss_small:g}",
            lambda r: r.rss_at_mib.get(mark_small),
            lambda v: v <= rss_small,
        ),
        Figure("peak RSS MiB (VmHWM)", "-", lambda r: r.hwm_mib),
        Figure(
            f"CPU % of a core, {POLL_S:g} s tick",
            f"<= {TARGET_CPU_PCT:g}",
            lambda r: r.cpu_pct,
            lambda v: v <= TARGET_CPU_PCT,
            3,
        ),
        Figure("CPU s per tick (all CPU / ticks)", "-", lambda r: r.cpu_per_tick_s, None, 4),
        Figure(
            "REST calls per tick", f"<= {per_tick_quota:g} (quota)", lambda r: r.per_tick(r.rest), quota_ok
        ),
        Figure("REST calls of the busiest tick", "-", busiest_tick, None, 0),
        Figure(f"REST calls in the busiest {w:g} s window", f"<= {q}", busiest, lambda v: v <= q, 0),
        Figure("429 answers the daemon got (whole run)", "0", refused, lambda v: v == 0, 0),
        Figure("ticks ok, % of the window's ticks", "-", ok_pct, None, 0),
    ]
    large_rows = [
        *(
            Figure(
                f"RSS MiB at {mark} min",
                f"<= {rss_large:g}",
                lambda r, m=mark: r.rss_at_mib.get(m),  # type: ignore[misc]
                lambda v: v <= rss_large,
            )
            for mark in marks_large
        ),
        Figure(
            f"RSS slope MiB/min, {marks_large[0]}->{marks_large[-1]} min",
            f"flat (< {FLAT_MIB_PER_MIN:g})",
            lambda r: r.slope_mib_per_min,
            lambda v: v < FLAT_MIB_PER_MIN,
            3,
        ),
        Figure("peak RSS MiB (VmHWM)", "-", lambda r: r.hwm_mib),
        Figure(
            "CPU s per tick (all CPU / ticks)",
            f"<= {TARGET_CPU_PER_TICK_S:g}",
            lambda r: r.cpu_per_tick_s,
            lambda v: v <= TARGET_CPU_PER_TICK_S,
            3,
        ),
        Figure("CPU % of a core", "-", lambda r: r.cpu_pct, None, 2),
        Figure(
            "REST calls per tick", f"<= {per_tick_quota:g} (quota)", lambda r: r.per_tick(r.rest), quota_ok
        ),
        Figure("REST calls of the busiest tick", "-", busiest_tick, None, 0),
        Figure(f"REST calls in the busiest {w:g} s window", f"<= {q}", busiest, lambda v: v <= q, 0),
        Figure("429 answers the daemon got (whole run)", "0", refused, lambda v: v == 0, 0),
        Figure("ticks ok, % of the window's ticks", "-", ok_pct, None, 0),
    ]
    rows: list[list[str]] = []
    for size, figures, baseline in (("10", small_rows, lean), ("1,000", large_rows, None)):
        for index, figure in enumerate(figures):
            daemon = values(small if size == "10" else large, figure.get)
            base = values(baseline, figure.get) if baseline is not None else []
            within, met = "-", "-"
            ratio = ""
            if baseline is not None:
                ratio = (
                    f"{median(daemon) / median(base):.2f}" if daemon and base and median(base) > 0 else "-"
                )
            if figure.ok is not None and daemon:
                within = f"{sum(1 for v in daemon if figure.ok(v))}/{len(daemon)}"
                met = "met" if figure.ok(median(daemon)) else "MISSED"
            elif figure.ok is not None:
                met = "n/a"
            rows.append(
                [
                    f"{size} endpoints" if index == 0 else "",
                    figure.label,
                    figure.target,
                    spread(daemon, figure.digits),
                    spread(base, figure.digits) if baseline is not None else "",
                    ratio,
                    within,
                    met,
                ]
            )
    return Table(
        f"min / median / max over {runs} run(s); verdict on the median, 'within' = runs within the target; "
        "ratio = daemon / lean baseline (medians, side by side in this run)",
        ["size", "figure", "target", "daemon", "lean baseline", "ratio", "within", "verdict"],
        rows,
        left=3,
    )


def detail_table(runs: Sequence[RunFigures]) -> Table:
    w = QUOTA.rest_window_s
    rows = []
    for index, r in enumerate(runs):
        if r.note:
            rows.append([r.kind, r.scenario, str(index + 1), "FAILED", *["-"] * 10])
            continue
        in_tick = (
            f"{median(r.in_tick_cpu_s):.3f} / {percentile(r.in_tick_cpu_s, 95):.3f}"
            if r.in_tick_cpu_s
            else "-"
        )
        rows.append(
            [
                r.kind,
                r.scenario,
                str(index + 1),
                f"{r.ticks} ({r.ticks_ok} ok, {r.ticks_blind} blind)" if r.kind == "daemon" else str(r.ticks),
                f"{median(r.tick_ms):.0f} / {max(r.tick_ms)}" if r.tick_ms else "-",
                in_tick,
                f"{r.startup_cpu_s:.2f}",
                f"{r.anon_file_mib[0]:.1f} / {r.anon_file_mib[1]:.1f}",
                f"{r.per_tick(r.rest):.1f} / {r.per_tick(r.graphql):.1f} / {r.per_tick(r.runtime):.1f}",
                " ".join(str(n) for n in r.windows[:10]) or "-",
                "-" if r.daemon_429 is None else f"{r.daemon_429} of {r.daemon_calls}",
                f"{r.sim_cpu_s / r.wall_s * 100:.1f}" if r.wall_s else "-",
                f"{r.machine_cores:.2f}" + ("" if math.isnan(r.quiet_before) else f" ({r.quiet_before:.2f})"),
                f"{r.actions} ({r.applied})" if r.kind == "daemon" else "-",
            ]
        )
    return Table(
        "Per run (window = the CPU window)",
        [
            "process",
            "scenario",
            "run",
            "ticks in window",
            "tick ms med/max",
            "in-tick CPU s med/p95",
            "CPU s before window",
            "RSS anon / file MiB",
            "per tick REST/GraphQL/runtime",
            f"REST per {w:g} s window",
            "429s at daemon",
            "sim CPU %",
            "machine cores busy (before)",
            "decisions (applied)",
        ],
        rows,
        left=3,
    )


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, help="10-endpoint runs, and the first RSS mark at 1,000 (5)")
    parser.add_argument("--slope-minutes", type=float, help="length of the 1,000-endpoint runs (10)")
    parser.add_argument("--runs", type=int, help="runs of each size (3; --quick 1)")
    parser.add_argument(
        "--quiet-wait", type=float, help="seconds to wait for a quiet machine before a run (60)"
    )
    parser.add_argument(
        "--profile", choices=("cpu", "mem"), help="add one profiled 1,000-endpoint daemon run"
    )
    parser.add_argument(
        "--profile-only", choices=("cpu", "mem"), help="only the profiled run, no measurement"
    )
    parser.add_argument("--profile-minutes", type=float, help="length of the profiled run (3)")
    parser.add_argument(
        "--with-extras",
        action="store_true",
        help="let the daemon import what this venv has beyond a server install (numpy)",
    )


if __name__ == "__main__":
    sys.exit(module_main(NAME, run, add_args=add_args))
