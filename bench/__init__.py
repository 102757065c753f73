"""Benchmarks that PRINT figures: speed, memory and accuracy targets are measured here, never by timed tests.

``python -m bench [NAME ...] [--quick]`` runs every benchmark (or the named ones), each in its own Python
process (so one benchmark's memory or warm caches never flatter another's), and prints each benchmark's
table followed by a summary table. ``python -m bench.NAME [--quick]`` runs one in the current process.

Every benchmark module defines ``NAME``, ``TITLE`` and ``run(quick: bool) -> Result``. ``--quick`` is a
tiny run that only checks the benchmark still works (tests/test_bench_smoke.py); its figures mean nothing.
See bench/README.md for what each one measures and the figures measured on the reference machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCHMARKS = (
    "limit_to_billing_stop",
    "runaway_latency",
    "estimate_error",
    "daemon_tick_cost",
    "daemon_cost",
    "log_backlog",
    "metrics_scrape",
    "tui_first_paint",
    "tui_idle",
    "simulator_month",
    "install_size",
)
"""Run order of ``python -m bench``."""

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    left: int = 1
    """Leading columns aligned left (the rest, figures, align right)."""


@dataclass
class Result:
    """What a benchmark hands back: tables to print, notes, and headline figures for the summary."""

    name: str
    title: str
    quick: bool
    tables: list[Table] = field(default_factory=list)
    headline: list[tuple[str, str]] = field(default_factory=list)
    """(figure, value) pairs shown in the final summary table."""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """Wall seconds the benchmark took (filled in by the runner)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = json.loads(text)
        data["tables"] = [Table(**t) for t in data["tables"]]
        data["headline"] = [tuple(h) for h in data["headline"]]
        return cls(**data)


# ------------------------------------------------------------------------------------------------------------
# Measuring


def rss_kb() -> int:
    """Resident set size of this process now, in KiB (``VmRSS`` of /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return peak_rss_kb()


def peak_rss_kb() -> int:
    """Peak resident set size of this process, in KiB (``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        text = stat.read()
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from 1
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Stopwatch:
    """Wall (perf_counter) and process CPU (process_time) seconds since construction."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0


# ------------------------------------------------------------------------------------------------------------
# Printing


def format_table(table: Table) -> str:
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i < table.left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [table.title, line(table.columns), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in table.rows)
    return "\n".join(out)


def format_result(result: Result) -> str:
    quick = "  [--quick: figures not meaningful]" if result.quick else ""
    blocks = [f"== {result.name}: {result.title}{quick}"]
    blocks.extend(format_table(t) for t in result.tables)
    lines = [f"  * {note}" for note in result.notes]
    lines.append(f"  ({result.seconds:.1f} s wall)")
    blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary_table(results: Sequence[Result]) -> Table:
    rows = []
    for result in results:
        first = True
        for label, value in result.headline or [("(no figures)", "")]:
            rows.append([result.name if first else "", label, value])
            first = False
    return Table("SUMMARY", ["benchmark", "figure", "value"], rows, left=2)


# ------------------------------------------------------------------------------------------------------------
# The per-module command line


def module_main(
    name: str,
    run: Callable[..., Result],
    argv: Sequence[str] | None = None,
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """``python -m bench.NAME [--quick] [--result-file PATH]``: run, print, optionally save the JSON.

    With ``add_args`` the module adds its own options and ``run(quick, args)`` receives them."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}")
    parser.add_argument("--quick", action="store_true", help="tiny run: checks it works, figures meaningless")
    parser.add_argument("--result-file", help="also write the result as JSON here (used by python -m bench)")
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args(argv)
    watch = Stopwatch()
    result = run(args.quick, args) if add_args is not None else run(args.quick)
    result.seconds = watch.wall
    print(format_result(result), flush=True)
    if args.result_file:
        Path(args.result_file).write_text(result.to_json(), encoding="utf-8")
    return 0


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def quiet_logs() -> None:
    """The daemon logs at INFO; a benchmark's output is its table."""
    import logging  # noqa: PLC0415

    logging.getLogger("watchdog").setLevel(logging.WARNING)


def python() -> str:
    return sys.executable
