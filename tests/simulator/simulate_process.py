"""``runpod-watchdog simulate`` as a subprocess, for the tests (tests/simulator and tests/test_sdk_oracle.py):
the real CLI (``python -m watchdog simulate ...``), as a user runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from runpod_sim.serve import EXAMPLE_WORKER, READY_PREFIX


def simulate_argv(
    scenario: str,
    *,
    external_workers: bool = False,
    no_graphql: bool = False,
    spend_rate: float | None = None,
    speed: float = 1.0,
) -> list[str]:
    flags = ["--listen", "127.0.0.1:0", "--scenario", scenario, "--speed", str(speed)]
    extra = [
        *(["--external-workers"] if external_workers else []),
        *(["--no-graphql"] if no_graphql else []),
        *(["--spend-rate", str(spend_rate)] if spend_rate is not None else []),
    ]
    return [sys.executable, "-m", "watchdog", "simulate", *flags, *extra]


@dataclass
class Simulate:
    process: subprocess.Popen[str]
    base_url: str
    banner: list[str]
    """Every line printed before the simulator settled (readiness, key, worker instructions)."""
    exports: dict[str, list[str]] = field(default_factory=dict)
    """Endpoint id → its ``export NAME=value`` lines, as printed."""


@contextlib.contextmanager
def running_simulate(argv: list[str], *, expect_workers: bool) -> Iterator[Simulate]:
    """Start ``argv``; read its banner (through the worker instructions when ``expect_workers``); SIGTERM
    it on exit and check it stopped cleanly (exit 0)."""
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().strip()
        assert ready.startswith(READY_PREFIX), (ready, process.stderr.read() if process.poll() else "")
        banner = [ready, process.stdout.readline().rstrip("\n")]
        exports: dict[str, list[str]] = {}
        current: str | None = None
        while expect_workers:
            line = process.stdout.readline()
            assert line, f"simulate ended early: {banner}"
            line = line.rstrip("\n")
            banner.append(line)
            if line.startswith("# endpoint "):
                current = line.removeprefix("# endpoint ").split(":", 1)[0]
                exports[current] = []
            elif line.startswith("export ") and current is not None:
                exports[current].append(line)
            elif EXAMPLE_WORKER in line or "has no endpoint served by external workers" in line:
                break
        yield Simulate(process, ready.removeprefix(READY_PREFIX), banner, exports)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
