"""log_backlog: the daemon's RSS and tick durations while it works off a 1,000,000-line access-log backlog.

Why: an adversarial tester appended 1,000,000 lines to a watched log and the daemon's RSS went from 50 MB
to 440 MB while its loop froze for 10 s; on the 1 GB VPS it runs on, a 1 GB log read from byte 0 would
need about 4 GB. ``LogTailer.read_new()`` now reads a fixed byte budget per call and the daemon calls it
once per source per tick, so a backlog costs ticks, not memory. This measures that on the REAL processes,
as a user runs them:

- ``runpod-watchdog simulate --scenario steady`` in one subprocess on 127.0.0.1 (a free port), writing its
  access log to a file; ``runpod-watchdog run --config X`` in another, RUNPOD_API_KEY in its environment,
  the config's ``[runpod]`` URLs pointing at the simulator and one ``[[pings.source]]`` on that access log
  with ``start_at = "start"``;
- *backlog* runs: before the processes start, the access log is filled with N lines (by default the
  compact ``{"ts": epoch, "endpoint_id", "kind", "source"}`` lines of the issue, ~100 bytes: the most events
  per byte read; ``--format sim`` writes the simulator's own ~230-byte lines): 90 % requests from 40
  sources, 10 % heartbeat pings, times spread over the last hour, so every line is a valid event the whole
  daemon processes, not a cheap refusal; the simulator appends its own live lines after them;
- *baseline* runs, in the same invocation: the same two processes and config with an empty access log;
- the daemon's RSS is sampled every 50 ms from ``/proc/PID/status`` (``VmRSS``; ``VmHWM``, the kernel's
  high-water mark, is read before SIGTERM); tick durations come from its ledger (``ticks.duration_ms``);
  the backlog is worked off when the position the daemon saves with each tick (``meta`` ``daemon_state``,
  ``log_positions``) reaches the backlog's size. Time to work it off = from the first tick's start to the
  end of the tick that finished it.

The poll interval is the product's default, 5 s (``--poll``; the simulator's REST quota, 60 calls a
minute, rules out much less): a tick's work does not depend on it, only the wall time to work off the
backlog does (about backlog / 1 MiB x poll interval).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import REPO, Result, Table, fmt, median, module_main, proc_cpu_s
from bench._processes import clean_env, stop
from bench._processes import start_simulator as start_simulator_process

NAME = "log_backlog"
TITLE = "daemon RSS and tick durations working off a 1,000,000-line log backlog (real processes)"

API_KEY = "bench-log-backlog-key"
ENDPOINT_ID = "ep-llm-mos"  # the steady scenario's endpoint: the flood lands on a real endpoint
TARGET_RSS_MB = 80.0
TARGET_TICK_S = 5.0
"""No tick longer than one poll interval at the product's default (5 s)."""
RSS_GUARD_MB = 3000.0
"""A daemon above this is killed (the machine must survive a regression)."""
STATE_META_KEY = "daemon_state"


@dataclass
class RunFigures:
    kind: str
    lines: int
    backlog_bytes: int
    rss_first_tick_mb: float = 0.0
    rss_peak_mb: float = 0.0
    hwm_mb: float = 0.0
    tick_ms: list[int] = field(default_factory=list)
    workoff_s: float | None = None
    workoff_ticks: int | None = None
    cpu_s: float = 0.0
    offset: int = 0
    note: str = ""


# ------------------------------------------------------------------------------------------------------------
# The backlog


def write_backlog(path: Path, lines: int, end: float, style: str = "compact") -> int:
    """``lines`` access-log lines, times spread over the hour before ``end``; 90 % requests from 40 sources,
    10 % heartbeat pings of one worker naming one job.

    ``style``: "compact" (``{"ts": epoch, "endpoint_id", "kind", "source"}``, ~100 bytes: the most events per
    byte, so the heaviest ticks) or "sim" (the simulator's own format, ~230 bytes, RFC 3339 times)."""
    rng = random.Random(7)
    sources = [f"10.0.{i // 8}.{i % 8 + 10}" for i in range(40)]
    start = end - 3600.0
    step = 3600.0 / max(1, lines)
    with open(path, "w", encoding="utf-8") as handle:
        batch: list[str] = []
        for index in range(lines):
            ts = start + index * step
            ping = index % 10 == 9
            if style == "sim":
                when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
                route = f"/v2/{ENDPOINT_ID}/ping/w-bench0001" if ping else f"/v2/{ENDPOINT_ID}/run"
                record: dict[str, object] = {
                    "ts": when, "kind": "ping" if ping else "request", "endpoint_id": ENDPOINT_ID,
                    "route": route, "method": "GET" if ping else "POST", "status": 200,
                    "source": None if ping else rng.choice(sources),
                    "worker_id": "w-bench0001" if ping else None,
                    "job_id": "job-bench-hung" if ping else f"job-{index:012d}",
                    "tier": None if ping else rng.choice(("free", "paid")), "duration_ms": rng.randint(1, 40),
                }  # fmt: skip
            elif ping:
                record = {"ts": round(ts, 3), "endpoint_id": ENDPOINT_ID, "kind": "ping",
                          "worker_id": "w-bench0001", "job_id": "job-bench-hung"}  # fmt: skip
            else:
                record = {"ts": round(ts, 3), "endpoint_id": ENDPOINT_ID, "kind": "request",
                          "source": rng.choice(sources)}  # fmt: skip
            batch.append(json.dumps(record, separators=(",", ":")))
            if len(batch) == 10_000:
                handle.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            handle.write("\n".join(batch) + "\n")
    return path.stat().st_size


# ------------------------------------------------------------------------------------------------------------
# The two processes


def config_toml(folder: Path, base_url: str, log_path: Path, poll_s: float) -> str:
    return f"""
[runpod]
graphql_url = "{base_url}/graphql"
rest_url = "{base_url}/v2"
runtime_url = "{base_url}/v2"
poll_interval_s = {poll_s}
billing_interval_s = {max(60.0, poll_s)}

[ledger]
path = "{folder / "ledger.sqlite3"}"

[metrics]
enabled = false

[control]
socket_path = "{folder / "ctl.sock"}"

[[pings.source]]
name = "gateway"
path = "{log_path}"
start_at = "start"
"""


def start_simulator(log_path: Path, out: IO[str]) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "watchdog", "simulate", "--listen", "127.0.0.1:0", "--scenario", "steady",
        "--api-key", API_KEY, "--access-log", str(log_path),
    ]  # fmt: skip
    return start_simulator_process(command, out)


def start_daemon(config_path: Path, out: IO[str]) -> subprocess.Popen[str]:
    env = clean_env()
    env["RUNPOD_API_KEY"] = API_KEY
    command = [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out, text=True)


def status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for text in status:
                if text.startswith(key + ":"):
                    return int(text.split()[1])
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------------------------------------
# Reading the daemon's ledger (read only, from outside)


def ledger_ticks(ledger: Path) -> list[tuple[float, float, int]]:
    """(started_at, finished_at, duration_ms) of every tick so far."""
    if not ledger.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=2)) as db:
            return db.execute("SELECT started_at, finished_at, duration_ms FROM ticks ORDER BY id").fetchall()
    except sqlite3.Error:
        return []


def saved_offset(ledger: Path) -> int | None:
    """The log position the daemon saved with its last tick, or None."""
    if not ledger.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=2)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", [STATE_META_KEY]).fetchone()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    position = json.loads(row[0]).get("log_positions", {}).get("gateway")
    return int(position[1]) if position else None


# ------------------------------------------------------------------------------------------------------------
# One run


def one_run(  # noqa: PLR0917
    kind: str, lines: int, style: str, poll_s: float, limit_s: float, baseline_ticks: int
) -> RunFigures:
    with tempfile.TemporaryDirectory(prefix="bench-log-backlog-") as tmp:
        folder = Path(tmp)
        log_path = folder / "access.log"
        backlog_bytes = write_backlog(log_path, lines, time.time(), style) if kind == "backlog" else 0
        if kind != "backlog":
            log_path.touch()
        figures = RunFigures(kind, lines if kind == "backlog" else 0, backlog_bytes)
        ledger = folder / "ledger.sqlite3"
        with open(folder / "processes.log", "w", encoding="utf-8") as out:
            sim, url = start_simulator(log_path, out)
            daemon: subprocess.Popen[str] | None = None
            try:
                config_path = folder / "config.toml"
                config_path.write_text(config_toml(folder, url, log_path, poll_s), encoding="utf-8")
                daemon = start_daemon(config_path, out)
                figures = watch(daemon, ledger, figures, poll_s, limit_s, baseline_ticks)
            finally:
                if daemon is not None:
                    stop(daemon)
                stop(sim)
            if daemon is not None and daemon.returncode not in (0, -signal.SIGKILL) and not figures.note:
                figures.note = f"daemon exited {daemon.returncode}"
        ticks = ledger_ticks(ledger)
        if figures.note:
            tail = (folder / "processes.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            print(f"[{kind}] {figures.note}\n{tail}", file=sys.stderr)
    if ticks:
        first_start = ticks[0][0]
        if figures.workoff_ticks is not None:
            done = ticks[: figures.workoff_ticks]
            figures.workoff_s = done[-1][1] - first_start
            figures.tick_ms = [t[2] for t in done]
        else:
            figures.tick_ms = [t[2] for t in ticks]
    return figures


def watch(  # noqa: PLR0917
    daemon: subprocess.Popen[str],
    ledger: Path,
    figures: RunFigures,
    poll_s: float,
    limit_s: float,
    baseline_ticks: int,
) -> RunFigures:
    """Sample until the backlog is worked off (or ``baseline_ticks`` ticks passed, or the time limit)."""
    started = time.monotonic()
    next_check = started
    while True:
        if daemon.poll() is not None:
            figures.note = f"daemon exited early ({daemon.returncode})"
            break
        rss_mb = status_kb(daemon.pid, "VmRSS") / 1024
        figures.rss_peak_mb = max(figures.rss_peak_mb, rss_mb)
        if rss_mb > RSS_GUARD_MB:
            daemon.kill()
            figures.note = f"killed at {rss_mb:.0f} MB RSS (guard {RSS_GUARD_MB:.0f} MB)"
            break
        now = time.monotonic()
        if now >= next_check:
            next_check = now + min(0.25, poll_s / 4)
            ticks = ledger_ticks(ledger)
            if ticks and not figures.rss_first_tick_mb:
                figures.rss_first_tick_mb = rss_mb
            if figures.kind == "backlog":
                offset = saved_offset(ledger)
                figures.offset = offset or 0
                if offset is not None and offset >= figures.backlog_bytes:
                    figures.workoff_ticks = len(ticks)
                    break
            elif len(ticks) >= baseline_ticks:
                break
            if now - started > limit_s:
                figures.note = f"time limit {limit_s:.0f} s reached"
                break
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        figures.cpu_s = proc_cpu_s(daemon.pid)
    figures.hwm_mb = status_kb(daemon.pid, "VmHWM") / 1024
    return figures


# ------------------------------------------------------------------------------------------------------------
# Report


def spread(values: list[float], digits: int = 1) -> str:
    if not values:
        return "-"
    return f"{fmt(min(values), digits)} / {fmt(median(values), digits)} / {fmt(max(values), digits)}"


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    lines = args.lines if args is not None and args.lines else (20_000 if quick else 1_000_000)
    runs = args.runs if args is not None and args.runs else (1 if quick else 3)
    poll_s = args.poll if args is not None and args.poll else (3.0 if quick else 5.0)
    style = args.format if args is not None and args.format else "compact"
    limit_s = 40.0 if quick else 1800.0
    baseline_ticks = 3 if quick else 12
    results: list[RunFigures] = []
    for _ in range(runs):
        results.append(one_run("baseline", 0, style, poll_s, limit_s, baseline_ticks))
        results.append(one_run("backlog", lines, style, poll_s, limit_s, baseline_ticks))
    base = [r for r in results if r.kind == "baseline"]
    back = [r for r in results if r.kind == "backlog"]
    backlog_mb = back[0].backlog_bytes / 2**20

    def row(label: str, rs: list[RunFigures], target: str = "") -> list[list[str]]:
        return [
            [label, "peak RSS MB (sampled VmRSS)", spread([r.rss_peak_mb for r in rs]), target],
            ["", "peak RSS MB (VmHWM)", spread([r.hwm_mb for r in rs]), target],
            ["", "RSS MB after the first tick", spread([r.rss_first_tick_mb for r in rs]), ""],
            ["", "median tick s", spread([median(r.tick_ms) / 1000 for r in rs if r.tick_ms], 3), ""],
            [
                "",
                "longest tick s",
                spread([max(r.tick_ms) / 1000 for r in rs if r.tick_ms], 3),
                f"<= {TARGET_TICK_S:g} s",
            ],
            ["", "ticks measured", spread([float(len(r.tick_ms)) for r in rs], 0), ""],
            ["", "daemon CPU s (whole run)", spread([r.cpu_s for r in rs]), ""],
        ]

    rows = row("baseline (no backlog)", base, f"<= {TARGET_RSS_MB:g}")
    rows += row(f"backlog {lines:,} lines", back, f"<= {TARGET_RSS_MB:g}")
    done = [r for r in back if r.workoff_s is not None]
    rows.append(
        ["", f"time to work off s (poll {poll_s:g} s)", spread([r.workoff_s or 0.0 for r in done]), ""]
    )
    rows.append(["", "ticks to work it off", spread([float(r.workoff_ticks or 0) for r in done], 0), ""])
    if poll_s != 5.0:
        at_5 = spread([5.0 * (r.workoff_ticks or 0) for r in done])
        rows.append(["", "... at the default 5 s poll (ticks x 5 s)", at_5, ""])
    table = Table(
        f"min / median / max over {runs} run(s) each; backlog {backlog_mb:.0f} MiB, "
        f"poll interval {poll_s:g} s",
        ["daemon", "figure", "min / median / max", "target"],
        rows,
        left=2,
    )
    worst_rss = max(max(r.rss_peak_mb, r.hwm_mb) for r in back)
    worst_tick = max((max(r.tick_ms) for r in back if r.tick_ms), default=0) / 1000
    base_hwm = median([r.hwm_mb for r in base])
    workoff = f"{median([r.workoff_s or 0.0 for r in done]):.0f} ({poll_s:g})" if done else "not done"
    back_hwm = median([r.hwm_mb for r in back])
    headline = [
        ("backlog peak RSS MB med (max) / baseline", f"{back_hwm:.0f} ({worst_rss:.0f}) / {base_hwm:.0f}"),
        ("backlog longest tick s (target 5)", fmt(worst_tick, 2)),
        ("work-off s med (poll s)", workoff),
    ]  # fmt: skip
    notes = [
        f"targets: RSS <= {TARGET_RSS_MB:g} MB: "
        + ("met" if worst_rss <= TARGET_RSS_MB else f"MISSED ({worst_rss:.0f} MB)")
        + f"; no tick over {TARGET_TICK_S:g} s: "
        + ("met" if worst_tick <= TARGET_TICK_S else f"MISSED ({worst_tick:.2f} s)"),
        f'backlog: {lines:,} lines, {back[0].backlog_bytes:,} bytes, {style} format, start_at = "start"; '
        "tick figures of a backlog run cover the ticks until it was worked off",
        "both processes are real subprocesses (python -m watchdog simulate / run) on 127.0.0.1",
    ]
    for r in results:
        if r.note:
            notes.append(f"{r.kind} run: {r.note} (offset {r.offset:,} of {r.backlog_bytes:,})")
        elif r.kind == "backlog" and r.workoff_s is None:
            notes.append(f"backlog run not worked off (offset {r.offset:,} of {r.backlog_bytes:,})")
    return Result(NAME, TITLE, quick, [table], headline, notes)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines", type=int, help="backlog lines (default 1,000,000; --quick 20,000)")
    parser.add_argument("--runs", type=int, help="runs of each kind (default 3; --quick 1)")
    parser.add_argument("--poll", type=float, help="the daemon's poll_interval_s (default 5; --quick 3)")
    parser.add_argument("--format", choices=("compact", "sim"), help="backlog line format (default compact)")


if __name__ == "__main__":
    sys.exit(module_main(NAME, run, add_args=add_args))
