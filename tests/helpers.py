"""Test-only helpers that need real time or real processes: a real runpod SDK worker launcher and a
real-time tick loop. (The product + simulator wiring itself lives in :mod:`sim_harness.wiring`.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from runpod_sim.app import DEFAULT_API_KEY
from runpod_sim.serve import worker_env
from watchdog.daemon.service import Daemon
from watchdog.daemon.tick import TickOutcome


@contextlib.contextmanager
def sdk_worker_process(
    sdk_python: Path,
    script: Path,
    env: Mapping[str, str],
    base_url: str,
    *,
    endpoint_id: str,
    worker_id: str,
    mode: str,
    log_path: Path,
    ping_interval_s: float = 1.0,
    api_key: str = DEFAULT_API_KEY,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real runpod SDK serverless worker (``script`` run by the SDK's own interpreter) against the
    simulator at ``base_url``, in its own process group, which is SIGKILLed on exit, always."""
    worker_vars = {
        **env,
        **worker_env(base_url, endpoint_id, worker_id, api_key=api_key),
        "RUNPOD_PING_INTERVAL": str(int(ping_interval_s * 1000)),
        "SIM_WORKER_MODE": mode,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(sdk_python), str(script)],
            env=worker_vars,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


async def tick_until(
    daemon: Daemon,
    until: Callable[[list[TickOutcome]], bool],
    *,
    timeout_s: float,
    poll_s: float = 1.0,
) -> list[TickOutcome]:
    """Tick every ``poll_s`` real seconds (a daemon on a real clock, e.g. against real SDK workers) until
    ``until(outcomes)`` holds; every tick must read RunPod fully. Raises AssertionError on timeout."""
    outcomes: list[TickOutcome] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = time.monotonic()
        outcome = await daemon.tick()
        assert outcome.ok and not outcome.blind, outcome.error
        outcomes.append(outcome)
        if until(outcomes):
            return outcomes
        await asyncio.sleep(max(0.0, poll_s - (time.monotonic() - started)))
    rows = [(row.action, row.outcome) for outcome in outcomes for row in outcome.rows]
    raise AssertionError(f"gave up after {timeout_s:g}s; rows: {rows}")


class StderrProcess:
    """A long-running command with its stderr collected line by line in a thread; ``stop`` sends SIGTERM
    (SIGKILL after 30 s) and returns the exit status."""

    def __init__(self, argv: list[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout=5)
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
