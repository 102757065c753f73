"""tui_idle: the dashboard's CPU while nobody touches it, attached to a LIVE daemon (real processes).

tui_first_paint measures the app on a StaticSource; a user's dashboard reads a daemon that ticks every 5 s,
through its control socket and its ledger. This measures that, as a user runs it:

- ``runpod-watchdog simulate --scenario fleet-10`` (``--scenario``) on 127.0.0.1, its REST quota on;
- ``runpod-watchdog run --config X`` against it (bench/daemon_cost's configuration: the defaults but for the
  simulator's URLs and its own ledger, control socket and metrics port), until its first tick;
- ``runpod-watchdog tui --config X`` (the same file: the dashboard finds the daemon's socket and ledger in
  it) in a real terminal: tmux on a private socket (``-L``), 120x40, ``TERM=xterm-256color``;
- once the status bar says "DAEMON UP" and ``SETTLE_S`` more seconds have passed, the dashboard's CPU is
  read from /proc/PID/stat over ``--seconds`` (default 60) of doing nothing, as % of one core; its RSS at
  the end; the daemon's CPU over the same window (what the dashboard's reads cost it besides its ticks);
  and whether the bar still said "DAEMON UP" at the end (the dashboard was live the whole time).
- BASELINE, side by side in the same run (a second tmux session on the same server, same size, started
  with the dashboard and measured over the same window): :data:`BASELINE_APP`, the least a Textual app
  that refreshes every second can be (one Static whose text changes each second, nothing read). The ratio
  dashboard / baseline is what the dashboard's own work (the status reads, its widgets) adds to Textual's
  floor.

Both see the packages of a server install (daemon_cost ``server_env``: numpy, which only this venv's
``report`` extra brings, is hidden). Nothing else of this harness runs meanwhile; the harness waits (up to
``--quiet-wait`` s) for the machine's load to fall under half a core before each run and reports the
machine's load during the window (2 cores). 3 runs, min / median / max. Skipped (and said so) when tmux
is not installed.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import REPO, Result, Table, fmt, median, module_main, proc_cpu_s
from bench._processes import stop
from bench.daemon_cost import (
    cli,
    daemon_config,
    free_port,
    ledger_rows,
    machine_jiffies,
    server_env,
    start_daemon,
    start_simulator,
    wait_quiet,
)
from bench.log_backlog import status_kb
from bench.tui_first_paint import Tmux

NAME = "tui_idle"
TITLE = "dashboard idle CPU attached to a live daemon (real tui under tmux, real daemon and simulator)"
TARGET_PCT = 1.0
SIZE = (120, 40)
LIVE = "DAEMON UP"
SETTLE_S = 5.0
BASELINE_APP = """
import time
from textual.app import App, ComposeResult
from textual.widgets import Static
class Floor(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("baseline", id="clock")
    def on_mount(self) -> None:
        self.set_interval(1.0, lambda: self.query_one("#clock", Static).update(time.strftime("%H:%M:%S")))
Floor().run()
"""
"""The baseline: a Textual app redrawing one line every second (the dashboard's refresh interval)."""


@dataclass
class IdleRun:
    tui_pct: float = math.nan
    tui_cpu_s: float = 0.0
    wall_s: float = 0.0
    first_paint_s: float = math.nan
    rss_mib: float = math.nan
    daemon_pct: float = math.nan
    machine_cores: float = math.nan
    quiet_before: float = math.nan
    live_at_end: bool = False
    base_pct: float = math.nan
    base_rss_mib: float = math.nan
    ticks: int = 0
    note: str = ""


def one_run(scenario: str, seconds: float, settle_s: float, quiet_before: float) -> IdleRun:
    figures = IdleRun(quiet_before=quiet_before)
    tmux = Tmux()
    with tempfile.TemporaryDirectory(prefix="bench-tui-idle-") as tmp:
        folder = Path(tmp)
        ledger = folder / "ledger.sqlite3"
        with open(folder / "processes.log", "w", encoding="utf-8") as out:
            sim, url = start_simulator(scenario, out)
            daemon: subprocess.Popen[str] | None = None
            try:
                config_path = folder / "config.toml"
                config_path.write_text(daemon_config(folder, url, free_port()), encoding="utf-8")
                daemon = start_daemon(config_path, out)
                deadline = time.monotonic() + 120
                while not ledger_rows(ledger, "SELECT 1 FROM ticks LIMIT 1"):
                    if daemon.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the daemon never ticked (exit {daemon.poll()})")
                    time.sleep(0.1)
                shim = server_env({}, folder)["PYTHONPATH"]  # the dashboard too sees a server install
                env = f"TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 PYTHONPATH={shim}"
                command = " ".join([f"exec env {env}", *cli(), "tui", "--config", str(config_path)])
                started = time.perf_counter()
                width, height = str(SIZE[0]), str(SIZE[1])
                tmux("new-session", "-d", "-s", "tui", "-x", width, "-y", height, "-c", str(REPO), command)
                pid = int(tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())
                base_env = "TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8"
                base_command = f"exec env {base_env} {sys.executable} -c {shlex.quote(BASELINE_APP)}"
                tmux("new-session", "-d", "-s", "base", "-x", width, "-y", height, "-c", str(REPO),
                     base_command)  # fmt: skip
                base_pid = int(tmux("display-message", "-p", "-t", "base", "#{pane_pid}").strip())
                while LIVE not in tmux("capture-pane", "-p", "-t", "tui", check=False):
                    if time.perf_counter() - started > 30:
                        screen = tmux("capture-pane", "-p", "-t", "tui", check=False)
                        raise RuntimeError(f"the dashboard never showed {LIVE!r} within 30 s:\n{screen}")
                    time.sleep(0.02)
                figures.first_paint_s = time.perf_counter() - started
                time.sleep(settle_s)
                ticks0 = len(ledger_rows(ledger, "SELECT id FROM ticks"))
                busy0, total0 = machine_jiffies()
                painted = time.perf_counter()
                while ":" not in tmux("capture-pane", "-p", "-t", "base", check=False):  # its clock, HH:MM:SS
                    if time.perf_counter() - painted > 30:
                        raise RuntimeError("the baseline Textual app never painted within 30 s")
                    time.sleep(0.05)
                base0 = proc_cpu_s(base_pid)
                tui0, daemon0, wall0 = proc_cpu_s(pid), proc_cpu_s(daemon.pid), time.perf_counter()
                time.sleep(seconds)
                tui1, daemon1, wall1 = proc_cpu_s(pid), proc_cpu_s(daemon.pid), time.perf_counter()
                base1 = proc_cpu_s(base_pid)
                figures.base_pct = (base1 - base0) / (wall1 - wall0) * 100
                figures.base_rss_mib = status_kb(base_pid, "VmRSS") / 1024
                busy1, total1 = machine_jiffies()
                figures.wall_s = wall1 - wall0
                figures.tui_cpu_s = tui1 - tui0
                figures.tui_pct = figures.tui_cpu_s / figures.wall_s * 100
                figures.daemon_pct = (daemon1 - daemon0) / figures.wall_s * 100
                figures.machine_cores = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
                figures.rss_mib = status_kb(pid, "VmRSS") / 1024
                figures.ticks = len(ledger_rows(ledger, "SELECT id FROM ticks")) - ticks0
                figures.live_at_end = LIVE in tmux("capture-pane", "-p", "-t", "tui", check=False)
                tmux("send-keys", "-t", "tui", "q", check=False)
                for _ in range(100):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.05)
            except (RuntimeError, OSError, ValueError) as exc:
                figures.note = str(exc)
            finally:
                tmux.kill()
                if daemon is not None:
                    stop(daemon)
                stop(sim)
        if figures.note:
            tail = (folder / "processes.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            print(f"[tui_idle] {figures.note}\n{tail}", file=sys.stderr)
    return figures


def spread(values: list[float], digits: int) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    return f"{fmt(min(values), digits)} / {fmt(median(values), digits)} / {fmt(max(values), digits)}"


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    if shutil.which("tmux") is None:
        table = Table("tui_idle", ["figure", "value"], [["tmux", "not installed: SKIPPED"]])
        return Result(NAME, TITLE, quick, [table], [("idle CPU %", "skipped (no tmux)")], [])
    runs = args.runs if args is not None and args.runs else (1 if quick else 3)
    seconds = args.seconds if args is not None and args.seconds else (5.0 if quick else 60.0)
    scenario = args.scenario if args is not None and args.scenario else "fleet-10"
    quiet_wait = args.quiet_wait if args is not None and args.quiet_wait is not None else (0 if quick else 60)
    settle = 2.0 if quick else SETTLE_S
    results = []
    for _ in range(runs):
        load = wait_quiet(quiet_wait)[0] if quiet_wait > 0 else math.nan
        results.append(one_run(scenario, seconds, settle, load))
    good = [r for r in results if not r.note]
    pcts = [r.tui_pct for r in good]
    bases = [r.base_pct for r in good]
    ratio = f"{median(pcts) / median(bases):.2f}" if pcts and bases and median(bases) > 0 else "-"
    within = sum(1 for v in pcts if v <= TARGET_PCT)
    met = ("met" if median(pcts) <= TARGET_PCT else "MISSED") if pcts else "n/a"
    summary = Table(
        f"min / median / max over {len(good)} of {runs} run(s), {seconds:g} s each, {SIZE[0]}x{SIZE[1]}; "
        "baseline = a Textual app redrawing one line a second, side by side in the same tmux server",
        ["figure", "target", "min / median / max", "baseline", "ratio", "within", "verdict"],
        [
            ["dashboard idle CPU, % of one core", f"<= {TARGET_PCT:g}", spread(pcts, 2), spread(bases, 2),
             ratio, f"{within}/{len(pcts)}", met],
            ["dashboard RSS MiB (end)", "-", spread([r.rss_mib for r in good], 1),
             spread([r.base_rss_mib for r in good], 1), "", "", ""],
            ["time to 'DAEMON UP' on screen s", "-", spread([r.first_paint_s for r in good], 2), "", "", "",
             ""],
            ["daemon CPU % meanwhile (its ticks + the dashboard's reads)", "-",
             spread([r.daemon_pct for r in good], 2), "", "", "", ""],
        ],
    )  # fmt: skip
    rows = [
        [
            str(i + 1),
            "FAILED" if r.note else f"{r.tui_cpu_s:.2f} s / {r.wall_s:.0f} s = {r.tui_pct:.2f} %",
            "-" if r.note else f"{r.rss_mib:.1f}",
            "-" if r.note else f"{r.base_pct:.2f} %",
            "-" if r.note else f"{r.daemon_pct:.2f}",
            "-" if r.note else str(r.ticks),
            "-" if r.note else ("yes" if r.live_at_end else "NO"),
            "-" if r.note else f"{r.machine_cores:.2f}",
            "-" if math.isnan(r.quiet_before) else f"{r.quiet_before:.2f}",
        ]
        for i, r in enumerate(results)
    ]
    per_run = Table(
        "Per run",
        ["run", "dashboard CPU", "RSS MiB", "baseline CPU", "daemon CPU %", "daemon ticks",
         "DAEMON UP at end", "machine cores busy", "before"],
        rows,
    )  # fmt: skip
    notes = [
        f"scenario {scenario}; the real `runpod-watchdog tui --config X` under tmux (private socket), "
        "attached to the real daemon's control socket and ledger; CPU from /proc/PID/stat of the dashboard",
        f"the window opens {settle:g} s after the status bar first said {LIVE!r}; 'machine cores busy' = the "
        "whole machine's load during it (2 cores), 'before' = its load just before the run started",
    ]
    notes += [f"run {i + 1} FAILED: {r.note[:500]}" for i, r in enumerate(results) if r.note]
    headline = [
        (f"dashboard idle CPU % on a live daemon (<= {TARGET_PCT:g})", fmt(median(pcts), 2) if pcts else "-"),
        ("ratio dashboard / Textual baseline, idle CPU", ratio),
        ("dashboard RSS MiB", fmt(median([r.rss_mib for r in good]), 1) if good else "-"),
    ]
    return Result(NAME, TITLE, quick, [summary, per_run], headline, notes)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="idle seconds measured per run (60; --quick 5)")
    parser.add_argument("--runs", type=int, help="runs (3; --quick 1)")
    parser.add_argument("--scenario", help="the simulator's scenario (fleet-10)")
    parser.add_argument(
        "--quiet-wait", type=float, help="seconds to wait for a quiet machine before a run (60)"
    )


if __name__ == "__main__":
    sys.exit(module_main(NAME, run, add_args=add_args))
