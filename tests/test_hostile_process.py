"""The robustness issue's worst classes, reproduced against the REAL daemon process (``python -m watchdog
run``) polling the simulator on loopback, and read back the way a sysadmin would: ``/metrics`` over HTTP,
the ledger file, the exit code and stderr.

- A poisoned log line (a heartbeat whose job id cannot go in a URL) used to fail every tick, across
  restarts, with no blind alert and ``/metrics`` still saying the last tick was ok, while the hung job ran
  on. Now the line is counted and skipped, the ticks stay ok and the hung job is cancelled.
- A 429 storm with a long ``Retry-After`` and a huge ``max_retries`` used to hold a tick (and SIGTERM) for
  minutes without a blind alert. Now a tick's read ends at its deadline (a blind tick, alerted), and
  SIGTERM abandons a read waiting out a ``Retry-After`` at once.
- A read RunPod's quota held up but that completed is not a blind tick (the rules still act on complete
  data), but it is never recorded as ok, and ``runpod_watchdog_quota_limited`` says why.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runpod_sim.app import DEFAULT_API_KEY, RateLimits
from runpod_sim.faults import FaultRule, Faults
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from runpod_sim.serve import serve_in_thread
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS
from watchdog.clock import SystemClock
from watchdog.ledger import LedgerReader

pytestmark = pytest.mark.slow


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, base_url: str, metrics_port: int, extra: str = "", poll_s: float = 1.0) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[runpod]
graphql_url = "{base_url}/graphql"
rest_url = "{base_url}/v2"
runtime_url = "{base_url}/v2"
poll_interval_s = {poll_s}
billing_interval_s = 5.0
request_timeout_s = 5.0
max_retries = 8
retry_after_cap_s = 60.0

[ledger]
path = "{tmp_path / "ledger.sqlite3"}"

[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"

[control]
socket_path = "{tmp_path / "ctl.sock"}"
{extra}
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def _daemon(config_path: Path, stderr_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
    env.update(RUNPOD_API_KEY=DEFAULT_API_KEY, PYTHONUNBUFFERED="1")
    for name in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(name, None)
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _metrics(port: int) -> dict[str, float]:
    """``name{labels}`` → value, from a real scrape (empty when the daemon does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(runpod_watchdog_[^\s]+) ([^\s]+)", line)
        if match:
            samples[match[1]] = float(match[2])
    return samples


def _wait_for(
    what: str, check: Callable[[], bool], process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the daemon exited while waiting for {what}"
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> float:
    """SIGTERM, then the seconds the daemon took to exit (it must exit 0)."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=timeout_s)
    assert process.returncode == 0, process.returncode
    return time.monotonic() - sent


def test_a_poisoned_heartbeat_line_never_stops_the_real_daemon(tmp_path: Path) -> None:
    sim = build_simulator("hung-job", clock=SystemClock())
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()
    log_path = tmp_path / "access.jsonl"
    poison = {"ts": time.time(), "kind": "ping", "endpoint_id": HUNG_ENDPOINT_ID, "worker_id": "w1"}
    lines = [{**poison, "job_id": bad} for bad in ("job 42", "a/b", "x" * 300)]
    log_path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    metrics_port = _free_loopback_port()
    extra = f"""
[policy]
max_execution_s = 3
grace_s = 0

[[pings.source]]
name = "gateway"
path = "{log_path}"
start_at = "start"
"""
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    with serve_in_thread(sim, rate_limits=limits) as base_url:
        config_path = _config(tmp_path, base_url, metrics_port, extra)
        with _daemon(config_path, tmp_path / "stderr") as process:
            # The hung job starts after its worker's 15 s cold start; its worker's heartbeat then names it,
            # in the same file after the poisoned lines; it runs past 3 s and is cancelled by id.
            _wait_for(
                "the hung job to start",
                lambda: sim.job(HUNG_ENDPOINT_ID, job.id).status == "IN_PROGRESS",
                process,
                timeout_s=60,
            )
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({**poison, "ts": time.time(), "job_id": job.id}) + "\n")
            _wait_for(
                "the hung job to be cancelled",
                lambda: sim.job(HUNG_ENDPOINT_ID, job.id).status == "CANCELLED",
                process,
                timeout_s=30,
            )
            scraped = _metrics(metrics_port)
            _stop(process, timeout_s=30)
    stderr = (tmp_path / "stderr").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in stderr, stderr[-4000:]
    assert scraped["runpod_watchdog_last_tick_ok"] == 1.0, scraped
    assert scraped["runpod_watchdog_blind"] == 0.0
    skipped = sum(v for k, v in scraped.items() if k.startswith("runpod_watchdog_bad_records_total"))
    assert skipped >= 3, scraped
    with LedgerReader.open(tmp_path / "ledger.sqlite3") as reader:
        ticks = reader.ticks_since(0)
        assert ticks and all(t.ok for t in ticks), [t.error for t in ticks if not t.ok]
        cancels = [d for d in reader.recent_decisions() if d.action == "cancel_job"]
    assert {d.job_id for d in cancels} == {job.id}


def test_sigterm_during_a_429_storm_is_honoured_at_once_and_the_storm_is_a_blind_alert(
    tmp_path: Path,
) -> None:
    sim = build_simulator("steady", clock=SystemClock())
    faults = Faults()
    metrics_port = _free_loopback_port()
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    with serve_in_thread(sim, rate_limits=limits, faults=faults) as base_url:
        config_path = _config(tmp_path, base_url, metrics_port)
        with _daemon(config_path, tmp_path / "stderr") as process:
            _wait_for("a first ok tick", lambda: _metrics(metrics_port).get("runpod_watchdog_last_tick_ok") == 1.0,
                      process, timeout_s=30)  # fmt: skip
            # Every REST call now answers 429 asking for 8 s: a read waits once (8 s of its 10 s budget),
            # is refused again, and gives up rather than wait past its deadline (max_retries = 8 would
            # otherwise hold the tick for over a minute).
            faults.add(FaultRule(kind="rate_limit", pattern="/v2/*", count=None, retry_after_s=8.0))
            storm = time.monotonic()
            _wait_for("a blind tick", lambda: _metrics(metrics_port).get("runpod_watchdog_blind") == 1.0,
                      process, timeout_s=30)  # fmt: skip
            blind_after = time.monotonic() - storm
            scraped = _metrics(metrics_port)
            # The next tick is now waiting out a Retry-After: SIGTERM must not wait for it.
            hits = faults.snapshot()
            _wait_for("a tick waiting out a 429", lambda: faults.snapshot() != hits, process, timeout_s=30)
            stop_took = _stop(process, timeout_s=30)
    stderr = (tmp_path / "stderr").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in stderr, stderr[-4000:]
    assert blind_after < 25, blind_after  # at most one budget plus one interval
    assert scraped["runpod_watchdog_last_tick_ok"] == 0.0
    assert stop_took < 3.0, stop_took
    assert "deadline reached" in stderr
    with LedgerReader.open(tmp_path / "ledger.sqlite3") as reader:
        blind_alerts = [a for a in reader.recent_alerts() if a.kind == "blind"]
        ticks = reader.ticks_since(0)
    assert len(blind_alerts) == 1, blind_alerts  # one alert for the episode
    assert "429" in blind_alerts[0].text or "rate" in blind_alerts[0].text.lower()
    assert ticks[-1].blind  # the read abandoned at SIGTERM recorded nothing (no half tick)


def test_a_read_the_quota_held_up_is_complete_but_never_an_ok_tick(tmp_path: Path) -> None:
    sim = build_simulator("steady", clock=SystemClock())
    faults = Faults()
    metrics_port = _free_loopback_port()
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    with serve_in_thread(sim, rate_limits=limits, faults=faults) as base_url:
        # 4 s ticks: the held-up tick's status stays published for about 3 s, long enough to scrape.
        config_path = _config(tmp_path, base_url, metrics_port, poll_s=4.0)
        with _daemon(config_path, tmp_path / "stderr") as process:
            _wait_for("a first ok tick", lambda: _metrics(metrics_port).get("runpod_watchdog_last_tick_ok") == 1.0,
                      process, timeout_s=30)  # fmt: skip
            started = time.time()
            # One 429 asking for 1 s: the read waits, retries and completes.
            faults.add(FaultRule(kind="rate_limit", pattern="/v2/serverless", count=1, retry_after_s=1.0))
            _wait_for("the quota to show", lambda: _metrics(metrics_port).get("runpod_watchdog_quota_limited") == 1.0,
                      process, timeout_s=30)  # fmt: skip
            scraped = _metrics(metrics_port)
            _wait_for("an ok tick again", lambda: _metrics(metrics_port).get("runpod_watchdog_last_tick_ok") == 1.0,
                      process, timeout_s=30)  # fmt: skip
            _stop(process, timeout_s=30)
    assert scraped["runpod_watchdog_last_tick_ok"] == 0.0
    assert scraped["runpod_watchdog_blind"] == 0.0  # complete data: the rules still acted on it
    with LedgerReader.open(tmp_path / "ledger.sqlite3") as reader:
        held_up = [t for t in reader.ticks_since(started) if not t.ok]
    assert len(held_up) == 1, held_up
    assert not held_up[0].blind
    assert held_up[0].error is not None and "rate limit held the read up" in held_up[0].error
