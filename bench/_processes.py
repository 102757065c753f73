"""The benchmarks' real processes: ``runpod-watchdog simulate`` on a free loopback port and the daemon
beside it, started with an environment that cannot reach a real account or a real Slack, and stopped with
SIGTERM (SIGKILL after a timeout). One place for what log_backlog, runaway_latency, daemon_cost and tui_idle
all need."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import IO

from bench import REPO

READY_PREFIX = "runpod-simulator ready: "
"""The line ``simulate`` prints once it serves, followed by its URL."""


def clean_env() -> dict[str, str]:
    """This environment without RunPod, Slack, credentials or systemd variables, and unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
    for name in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_simulator(
    command: list[str], out: IO[str], *, what: str = "the simulator", timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """Start ``command`` (a ``simulate --listen 127.0.0.1:0 ...`` command line), wait for its ready line and
    return the process and its URL; refused unless the URL is on loopback. Its stdout stays drained."""
    process = subprocess.Popen(
        command, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=out, text=True
    )
    found: list[str] = []

    def read_ready() -> None:
        assert process.stdout is not None
        for text in process.stdout:
            if text.startswith(READY_PREFIX) and not found:
                found.append(text[len(READY_PREFIX) :].strip())

    threading.Thread(target=read_ready, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{what} did not start (exit {process.returncode}; see its stderr)")
        time.sleep(0.02)
    if not found[0].startswith("http://127.0.0.1:"):
        stop(process)
        raise RuntimeError(f"{what} is not on loopback: {found[0]}")
    return process, found[0]


def stop(process: subprocess.Popen[str], timeout_s: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
