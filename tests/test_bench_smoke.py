"""Every benchmark still runs: each in its tiny ``--quick`` mode, as ``python -m bench`` would run it.

WHY: benchmarks are not run by CI otherwise, and an unexercised benchmark rots (an API it uses changes and
nobody notices until the figures are needed). These tests check that each one runs to the end and produces
its tables and headline figures. They assert NO timing and no figure: speed and accuracy are read from the
benchmarks' printed output (bench/README.md), never asserted by a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import BENCHMARKS, Result

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_every_benchmark_module_is_listed() -> None:
    """A benchmark left out of ``BENCHMARKS`` is never run by ``python -m bench`` nor smoke-tested here.
    Modules whose name starts with ``_`` are helpers (bench/_lean_poller.py: daemon_cost's baseline)."""
    modules = {path.stem for path in (REPO / "bench").glob("*.py") if not path.stem.startswith("_")}
    assert modules == set(BENCHMARKS)
    assert len(BENCHMARKS) == len(set(BENCHMARKS))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_in_quick_mode(name: str, tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick", "--result-file", str(result_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"== {name}:" in done.stdout
    result = Result.from_json(result_file.read_text(encoding="utf-8"))
    assert result.name == name and result.quick
    assert result.tables and all(table.rows for table in result.tables)
    assert result.headline


def test_runner_prints_each_benchmark_and_a_summary() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "simulator_month", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "== simulator_month:" in done.stdout
    assert "SUMMARY" in done.stdout.split("== simulator_month:")[1]


def test_runner_refuses_an_unknown_benchmark() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "no_such_bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown benchmark" in done.stderr
