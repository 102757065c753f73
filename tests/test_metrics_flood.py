"""A flood of scrapes and hostile connections against the REAL daemon's /metrics port (``python -m watchdog
run`` polling the simulator on loopback every second), the reproduction of "the watchdog's own cost":
200 back-to-back scrapes once starved the tick loop until the daemon went blind.

For the whole attack (~12 s), from another process (this test):

- 8 threads scrape back to back (new connection each time, the whole answer read);
- 200 connections send half a request head and then nothing (slowloris), and 50 more connect and send
  nothing at all, reopened as the server drops them;
- 20 clients send a full request and never read the answer.

What must hold: ticks keep landing in the ledger every poll, all of them ok (the daemon never goes blind);
a well-behaved scrape made every half second always gets its 200; the daemon's threads and open files stay
bounded (no thread or descriptor per attacker connection); every attacker connection is eventually closed
by the server; and the daemon logs no traceback. Not timed: the bounds are generous, the figures are in
bench/metrics_scrape.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from runpod_sim.app import DEFAULT_API_KEY, RateLimits
from runpod_sim.registry import build_simulator
from runpod_sim.serve import serve_in_thread
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS
from watchdog.clock import SystemClock
from watchdog.control import ControlClient, ControlError
from watchdog.ledger import LedgerReader

ATTACK_SECONDS = 12.0
SCRAPER_THREADS = 8
SLOWLORIS = 200
SILENT = 50
NON_READERS = 20
MAX_DAEMON_THREADS = 40
"""The daemon's own threads (loop, renderer, HTTP, ledger and Slack workers...): far fewer than attackers."""
MAX_DAEMON_FDS = 200
"""Its descriptors: the ledger, RunPod's pool, logs, the control socket and at most the metrics cap."""


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config_toml(tmp_path: Path, base_url: str, metrics_port: int) -> str:
    return f"""
[runpod]
graphql_url = "{base_url}/graphql"
rest_url = "{base_url}/v2"
runtime_url = "{base_url}/v2"
poll_interval_s = 1.0
billing_interval_s = 5.0
max_retries = 0

[ledger]
path = "{tmp_path / "ledger.sqlite3"}"

[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"

[control]
socket_path = "{tmp_path / "ctl.sock"}"
"""


def _scrape(port: int, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as answer:
            return answer.status == 200 and b"runpod_watchdog_last_tick_ok" in answer.read()
    except OSError:
        return False


def _connect(port: int, data: bytes, *, rcvbuf: int | None = None) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(2.0)
    try:
        sock.connect(("127.0.0.1", port))
        if data:
            sock.sendall(data)
    except OSError:
        sock.close()
        return None
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (without reading what it may have sent)."""
    sock.setblocking(False)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False  # open, nothing sent: still held
    except OSError:
        return True  # reset
    if not data:
        return True
    # an answer (the 503, or the start of a response the client never reads): closed once it is drained
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def _proc_counts(pid: int) -> tuple[int, int]:
    """(threads, open descriptors) of a process."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


class _Attack:
    """The attacker's threads; ``stop()`` ends them and returns how many scrapes the flood completed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stopping = threading.Event()
        self.flood_scrapes = 0
        self.flood_failures = 0
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._flood, daemon=True) for _ in range(SCRAPER_THREADS)] + [
            threading.Thread(target=self._hold, daemon=True)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _flood(self) -> None:
        while not self.stopping.is_set():
            ok = _scrape(self.port, timeout_s=5.0)
            with self.lock:
                if ok:
                    self.flood_scrapes += 1
                else:
                    self.flood_failures += 1

    def _hold(self) -> None:
        """Keeps SLOWLORIS + SILENT idle connections and NON_READERS non-reading ones open, reopening the
        ones the server drops."""
        kinds = (
            [(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", None)] * SLOWLORIS
            + [(b"", None)] * SILENT
            + [(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n", 4096)] * NON_READERS
        )
        live: list[tuple[socket.socket, bytes, int | None] | None] = [None] * len(kinds)
        while not self.stopping.is_set():
            for index, (data, rcvbuf) in enumerate(kinds):
                current = live[index]
                if current is not None and not _closed(current[0]):
                    continue
                sock = _connect(self.port, data, rcvbuf=rcvbuf)
                if sock is not None:
                    live[index] = (sock, data, rcvbuf)
                    with self.lock:
                        self.held.append(sock)
            self.stopping.wait(0.2)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


@contextlib.contextmanager
def _daemon(tmp_path: Path, base_url: str, metrics_port: int) -> Iterator[subprocess.Popen[bytes]]:
    config_path = tmp_path / "config.toml"
    config_path.write_text(_config_toml(tmp_path, base_url, metrics_port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
    env.update(RUNPOD_API_KEY=DEFAULT_API_KEY, PYTHONUNBUFFERED="1")
    for name in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(name, None)
    with (tmp_path / "daemon.stderr").open("wb") as stderr:
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
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_first_tick(client: ControlClient, process: subprocess.Popen[bytes], metrics_port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the daemon exited before serving"
        with contextlib.suppress(ControlError):
            status = client.status()
            if status is not None and status.last_tick_at is not None and _scrape(metrics_port):
                return
        time.sleep(0.2)
    raise AssertionError("the daemon never ticked and served /metrics")


@pytest.mark.slow
def test_a_scrape_flood_and_hostile_connections_stop_neither_ticks_nor_metrics(tmp_path: Path) -> None:
    sim = build_simulator("steady", clock=SystemClock())
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    metrics_port = _free_loopback_port()
    attack = _Attack(metrics_port)
    with (
        serve_in_thread(sim, rate_limits=limits) as base_url,
        _daemon(tmp_path, base_url, metrics_port) as process,
    ):
        _wait_first_tick(ControlClient(tmp_path / "ctl.sock", timeout_s=3.0), process, metrics_port)
        attack_started = time.time()
        attack.start()
        probes: list[tuple[float, bool]] = []
        worst_threads = worst_fds = 0
        try:
            while time.time() - attack_started < ATTACK_SECONDS:
                probes.append((time.time() - attack_started, _scrape(metrics_port)))
                threads, fds = _proc_counts(process.pid)
                worst_threads, worst_fds = max(worst_threads, threads), max(worst_fds, fds)
                assert process.poll() is None, "the daemon died under the attack"
                time.sleep(0.5)
        finally:
            attack.stop()
        attack_ended = time.time()
        # what the attacker still holds is closed by the server within its request timeout (5 s)
        deadline = time.monotonic() + 15
        with attack.lock:
            held = list(attack.held)
        open_ones = held
        while open_ones and time.monotonic() < deadline:
            open_ones = [sock for sock in open_ones if not _closed(sock)]
            time.sleep(0.2)
        for sock in held:
            sock.close()
        assert process.poll() is None
        with LedgerReader.open(tmp_path / "ledger.sqlite3") as reader:
            ticks = [t for t in reader.ticks_since(attack_started) if t.started_at <= attack_ended]
    stderr = (tmp_path / "daemon.stderr").read_bytes()
    assert process.returncode == 0, stderr[-4000:]
    summary = (
        f"{len(ticks)} ticks in {attack_ended - attack_started:.1f} s, {attack.flood_scrapes} flood scrapes ({attack.flood_failures} failed), "
        f"{len(held)} hostile connections, worst {worst_threads} threads / {worst_fds} fds"
    )
    print(f"\nscrape flood: {summary}")
    # 1 s polls for 12 s: the loop never stalled and the daemon never went blind
    assert len(ticks) >= ATTACK_SECONDS * 0.6, (summary, probes)
    assert all(t.ok for t in ticks), ticks
    gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(ticks)]
    assert max(gaps, default=0.0) < 4.0, gaps
    # /metrics answered a well-behaved scraper throughout, and the flood itself was served
    assert probes and all(ok for _t, ok in probes), probes
    assert attack.flood_scrapes >= 100, summary
    # no thread or descriptor per attacker connection
    assert worst_threads <= MAX_DAEMON_THREADS, summary
    assert worst_fds <= MAX_DAEMON_FDS, summary
    assert not open_ones, f"{len(open_ones)} attacker connections still held by the daemon ({summary})"
    assert len(held) >= SLOWLORIS + SILENT + NON_READERS, summary
    assert b"Traceback" not in stderr, stderr[:4000]
