"""``python -m bench [NAME ...] [--quick]``: run all (or the named) benchmarks and print a summary table.

Each benchmark runs in its own Python process (``python -m bench.NAME --result-file ...``) so RSS and CPU
figures belong to that benchmark alone. Exit status: 0 when every benchmark ran, 1 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BENCHMARKS, REPO, Result, format_table, summary_table

DEFAULT_TIMEOUT_S = 7200.0
"""Seconds one benchmark may take before it counts as hung. The full runs are long: daemon_cost's default
(3 runs each of 5 min at 10 endpoints and 10 min at 1,000) takes about 50 minutes, so a limit of 15 min
killed it in every ``make bench``."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all): {BENCHMARKS}"
    )
    parser.add_argument("--quick", action="store_true", help="tiny runs that only check each benchmark works")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds allowed to one benchmark ({DEFAULT_TIMEOUT_S:.0f}: daemon_cost alone takes 50 min)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    results: list[Result] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names:
            result_file = Path(tmp) / f"{name}.json"
            command = [sys.executable, "-m", f"bench.{name}", "--result-file", str(result_file)]
            if args.quick:
                command.append("--quick")
            started = time.perf_counter()
            try:
                code = subprocess.run(command, cwd=REPO, timeout=args.timeout, check=False).returncode
            except subprocess.TimeoutExpired:
                code = -1
                print(f"!! {name}: timed out after {args.timeout:.0f} s", flush=True)
            print(flush=True)
            if code != 0 or not result_file.exists():
                failed.append(name)
                print(f"!! {name} failed (exit {code}, {time.perf_counter() - started:.1f} s)", flush=True)
                continue
            results.append(Result.from_json(result_file.read_text(encoding="utf-8")))
    print(format_table(summary_table(results)))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
