"""tui_first_paint: the dashboard's time to first paint and its CPU use while idle.

How: the dashboard as the TUI tests see it: ``make_app`` with the StaticSource of
tests/tui/dashboard_fixtures.py (a realistic DaemonStatus, fixed clock, refresh every 1 s like the default
``tui.refresh_s``), at 120x40.

* headless: Textual's ``run_test`` in this process; first paint = from ``run_test`` starting to the budget
  panel showing the month's figure ("16.20 €"). Imports are already done (they are timed separately).
* tmux (the real app in a real terminal, private socket ``-L``): first paint = from ``tmux new-session``
  (Python start-up and imports included: what a user waits for) until ``capture-pane`` shows the figure,
  polled every 20 ms; idle CPU = CPU seconds of the app's process over 10 s of doing nothing, read from
  /proc/PID/stat, as a percentage of one core; plus its RSS.

Skipped (and said so) when tmux is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from bench import REPO, Result, Table, fmt, median, module_main, proc_cpu_s

NAME = "tui_first_paint"
TITLE = "TUI time to first paint and idle CPU (120x40, StaticSource)"
FIXTURES = REPO / "tests" / "tui" / "dashboard_fixtures.py"
FIGURE = "16.20"
"""The month-to-date spend of the fixture's DaemonStatus, as the budget panel prints it."""
SIZE = (120, 40)
POLL_S = 0.02


def fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dashboard_fixtures", FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------------------
# headless


async def headless_once(module: ModuleType) -> float:
    from tui.widgets.budget_panel import BudgetPanel  # noqa: PLC0415

    app = module.dashboard_app()
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(1000):  # at most ~5 s
            if FIGURE in str(app.query_one(BudgetPanel).render()):
                return time.perf_counter() - started
            await pilot.pause(0.005)
    raise RuntimeError("the budget figure never appeared (headless)")


def headless(runs: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    module = fixtures()
    import tui.app  # noqa: F401, PLC0415

    imports = time.perf_counter() - started
    return imports, [asyncio.run(headless_once(module)) for _ in range(runs)]


# ------------------------------------------------------------------------------------------------------------
# tmux


class Tmux:
    def __init__(self) -> None:
        self.socket = f"bench-tui-{os.getpid()}"

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=10,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def kill(self) -> None:
        self("kill-server", check=False)


def tmux_once(idle_s: float) -> dict[str, float]:
    tmux = Tmux()
    env = "TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8"
    command = f"exec env {env} {sys.executable} -m bench.tui_first_paint --serve"
    try:
        started = time.perf_counter()
        tmux(
            "new-session", "-d", "-s", "tui", "-x", str(SIZE[0]), "-y", str(SIZE[1]), "-c", str(REPO), command
        )
        pid = int(tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())
        first_paint = None
        deadline = started + 30.0
        while time.perf_counter() < deadline:
            if FIGURE in tmux("capture-pane", "-p", "-t", "tui", check=False):
                first_paint = time.perf_counter() - started
                break
            time.sleep(POLL_S)
        if first_paint is None:
            raise RuntimeError("the budget figure never appeared in the tmux pane within 30 s")
        result = {"first_paint": first_paint}
        if idle_s > 0:
            time.sleep(1.0)  # let start-up work settle
            cpu0, wall0 = proc_cpu_s(pid), time.perf_counter()
            time.sleep(idle_s)
            cpu1, wall1 = proc_cpu_s(pid), time.perf_counter()
            result["idle_cpu_s"] = cpu1 - cpu0
            result["idle_wall_s"] = wall1 - wall0
            result["idle_pct"] = (cpu1 - cpu0) / (wall1 - wall0) * 100
            result["rss_kb"] = float(_rss_of(pid))
        tmux("send-keys", "-t", "tui", "q", check=False)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
        return result
    finally:
        tmux.kill()


def _rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------------------------------------------------


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    if args is not None and args.serve:
        fixtures().dashboard_app().run()
        sys.exit(0)
    runs = 1 if quick else 5
    imports, paints = headless(runs)
    rows = [
        [
            "headless run_test",
            str(runs),
            fmt(min(paints) * 1000, 0),
            fmt(median(paints) * 1000, 0),
            fmt(max(paints) * 1000, 0),
            "-",
            "-",
        ]
    ]
    notes = [f"headless: importing the fixtures and tui.app took {imports * 1000:.0f} ms (not in the figure)"]
    headline = [("headless first paint ms (median)", fmt(median(paints) * 1000, 0))]
    if shutil.which("tmux") is None:
        notes.append("tmux is not installed: the real-terminal measurement was SKIPPED")
    else:
        tmux_runs = 1 if quick else 3
        idle_s = 2.0 if quick else 10.0
        measured = [tmux_once(idle_s if i == tmux_runs - 1 else 0.0) for i in range(tmux_runs)]
        firsts = [m["first_paint"] for m in measured]
        last = measured[-1]
        rows.append(
            [
                "tmux, real app",
                str(tmux_runs),
                fmt(min(firsts) * 1000, 0),
                fmt(median(firsts) * 1000, 0),
                fmt(max(firsts) * 1000, 0),
                f"{last['idle_cpu_s']:.2f} s / {last['idle_wall_s']:.0f} s = {last['idle_pct']:.2f} %",
                f"{last['rss_kb'] / 1024:.0f}",
            ]
        )
        headline.append(("tmux first paint ms (median, incl. start-up)", fmt(median(firsts) * 1000, 0)))
        headline.append((f"idle CPU over {idle_s:g} s (% of one core)", fmt(last["idle_pct"], 2)))
        notes.append(
            "tmux first paint counts from `tmux new-session` (Python start-up and imports included) and is "
            f"polled every {POLL_S * 1000:.0f} ms; idle = the app refreshing its StaticSource every 1 s"
        )
    table = Table(
        f"First paint = budget figure '{FIGURE} €' on screen ({SIZE[0]}x{SIZE[1]})",
        ["how", "runs", "min ms", "median ms", "max ms", "idle CPU", "RSS MiB"],
        rows,
    )
    return Result(NAME, TITLE, quick, [table], headline, notes)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--serve", action="store_true", help="run the fixture dashboard (used under tmux)")


if __name__ == "__main__":
    sys.exit(module_main(NAME, run, add_args=add_args))
