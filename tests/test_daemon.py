"""The daemon's shell: control commands, config reload, and a real ``runpod-watchdog run`` process under a
fake systemd (NOTIFY_SOCKET) against a real loopback simulator."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runpod_sim.app import DEFAULT_API_KEY, RateLimits
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID
from runpod_sim.serve import serve_in_thread
from sim_harness.wiring import GENEROUS_RUNTIME_LIMITS, daemon_against
from watchdog.clock import ManualClock, SystemClock, from_iso
from watchdog.control import ControlClient, ControlServer
from watchdog.daemon.evaluate import endpoint_limits
from watchdog.ledger import LedgerReader

START = from_iso("2026-06-15T12:00:00Z")


async def test_control_socket_pause_and_restore(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock)
    async with daemon_against(sim, tmp_path) as daemon:
        await daemon.tick()
        server = ControlServer(tmp_path / "c.sock", daemon.status_ref, daemon.command)
        await server.start()
        try:
            client = ControlClient(tmp_path / "c.sock")
            status = await asyncio.to_thread(client.status)
            assert status is not None and status.endpoints[0].id == STEADY_ENDPOINT_ID
            result = await asyncio.to_thread(client.command, "pause", endpoint_id=STEADY_ENDPOINT_ID)
            assert result["ok"] and result["results"][0]["outcome"] == "applied"
            assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 0
            clock.advance(5)
            outcome = await daemon.tick()  # writes the brake and verifies the pause
            assert daemon.ledger.brake_states()[STEADY_ENDPOINT_ID].kind == "manual"
            assert outcome.status is not None and outcome.status.endpoints[0].paused == "manual"
            assert any(r.action == "pause" and r.outcome == "verified" for r in outcome.rows)
            result = await asyncio.to_thread(client.command, "restore", endpoint_id=STEADY_ENDPOINT_ID)
            assert result["ok"]
            assert sim.endpoint(STEADY_ENDPOINT_ID).workers_max == 1
            clock.advance(5)
            await daemon.tick()
            assert daemon.ledger.brake_states() == {}
            manual = [r for r in daemon.ledger.recent_decisions() if r.rule == "manual"]
            assert {(r.action, r.outcome) for r in manual} >= {
                ("pause", "applied"),
                ("pause", "verified"),
                ("restore", "applied"),
            }
            result = await asyncio.to_thread(
                client.command, "set_rule_mode", rule="runaway_job", mode="dry-run"
            )
            assert result["mode"] == "dry-run"
            assert (
                endpoint_limits(
                    daemon.config, sim_endpoint_config(daemon), daemon.state.rule_overrides
                ).mode_for("runaway_job")
                == "dry-run"
            )
            from watchdog.control import ControlError

            with pytest.raises(ControlError, match="not held"):
                await asyncio.to_thread(client.command, "restore", endpoint_id="ep-nope")
        finally:
            await server.close()


def sim_endpoint_config(daemon):
    from watchdog.models import EndpointConfig

    return EndpointConfig(STEADY_ENDPOINT_ID, "x", 0, 1, 5, 120_000)


async def test_reload_with_an_invalid_config_keeps_the_old_one_and_alerts(tmp_path: Path) -> None:
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock)
    bad = tmp_path / "bad.toml"
    bad.write_text("[budget]\nmonthly_eur = -3\n")
    async with daemon_against(sim, tmp_path) as daemon:
        await daemon.tick()
        before = daemon.config
        assert await daemon.reload(str(bad)) is False
        assert daemon.config is before
        alerts = [a for a in daemon.ledger.recent_alerts() if a.kind == "config"]
        assert len(alerts) == 1 and "monthly_eur" in alerts[0].text
        clock.advance(5)
        assert (await daemon.tick()).ok


def _config_toml(tmp_path: Path, base_url: str) -> str:
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
enabled = false

[control]
socket_path = "{tmp_path / "ctl.sock"}"
"""


class _NotifyListener:
    """Collects sd_notify datagrams in a thread, like systemd does (a unix datagram queue holds only
    ``net.unix.max_dgram_qlen`` messages, so an unread socket would block the sender)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines.extend(self.sock.recv(4096).decode().splitlines())
            except TimeoutError:
                continue

    def wait_for(self, prefixes: tuple[str, ...], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(any(line.startswith(p) for line in list(self.lines)) for p in prefixes):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.slow
def test_run_process_speaks_sd_notify_survives_a_bad_sighup_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    sim = build_simulator("hung-job", clock=SystemClock())
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    config_path = tmp_path / "config.toml"
    notify_path = tmp_path / "notify.sock"
    with serve_in_thread(sim, rate_limits=limits) as base_url:
        notify = _NotifyListener(notify_path)
        config_path.write_text(_config_toml(tmp_path, base_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
        env.update(
            RUNPOD_API_KEY=DEFAULT_API_KEY,
            NOTIFY_SOCKET=str(notify_path),
            WATCHDOG_USEC="400000",
            PYTHONUNBUFFERED="1",
        )
        env.pop("JOURNAL_STREAM", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert notify.wait_for(("READY=1", "WATCHDOG=1", "STATUS=tick "), 30), notify.lines
            text = "\n".join(notify.lines)
            assert "READY=1" in text, text
            assert "WATCHDOG=1" in text, text
            assert "STATUS=tick " in text and "€" in text, text
            # an invalid config on SIGHUP: still running, alert queued
            config_path.write_text("[budget]\nmonthly_eur = 0\n")
            process.send_signal(signal.SIGHUP)
            time.sleep(2.5)
            assert process.poll() is None
            process.send_signal(signal.SIGTERM)
            _stdout, stderr = process.communicate(timeout=30)
        finally:
            notify.close()
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr
    assert "config reload" in stderr and "monthly_eur" in stderr
    assert DEFAULT_API_KEY not in stderr
    with LedgerReader.open(tmp_path / "ledger.sqlite3") as reader:
        assert len(reader.ticks_since(0)) >= 2
        assert any(a.kind == "config" for a in reader.recent_alerts())
        assert reader.meta("status")
        # the hung endpoint's missing execution timeout was patched in enforce mode
        assert any(
            r.rule == "config_drift" and r.endpoint_id == HUNG_ENDPOINT_ID for r in reader.recent_decisions()
        )


def test_missing_api_key_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
    config_path = tmp_path / "config.toml"
    config_path.write_text(_config_toml(tmp_path, "http://127.0.0.1:9"))
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "RUNPOD_API_KEY" in result.stderr


def test_rejected_api_key_exits_2(tmp_path: Path) -> None:
    sim = build_simulator("steady", clock=SystemClock())
    with serve_in_thread(sim) as base_url:
        config_path = tmp_path / "config.toml"
        config_path.write_text(_config_toml(tmp_path, base_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
        env["RUNPOD_API_KEY"] = "wrong-key-0123456789"
        result = subprocess.run(
            [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert "rejected the API key" in result.stderr
    assert "wrong-key-0123456789" not in result.stderr


async def test_snapshot_prints_endpoints_workers_health_and_billing(tmp_path: Path) -> None:
    from sim_harness.wiring import sim_config, sim_transport
    from watchdog.config import Secret
    from watchdog.snapshot import snapshot_text

    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    clock.advance(120)
    text = await snapshot_text(
        sim_config(tmp_path), Secret(DEFAULT_API_KEY), transport=sim_transport(sim), now=clock.now()
    )
    assert HUNG_ENDPOINT_ID in text and "execution timeout NONE" in text
    assert "1 running" in text and "1 in progress" in text
    assert "Billed this month" in text and "€" in text


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS"))}
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra)
    return env


def test_a_metrics_port_already_in_use_is_a_startup_error(tmp_path: Path) -> None:
    """It used to start a daemon nobody could scrape, with one line in the log."""
    sim = build_simulator("steady", clock=SystemClock())
    with socket.socket() as taken, serve_in_thread(sim) as base_url:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config_path = tmp_path / "config.toml"
        text = _config_toml(tmp_path, base_url).replace("enabled = false", f'listen = "127.0.0.1:{port}"')
        config_path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)],
            env=_clean_env(RUNPOD_API_KEY=DEFAULT_API_KEY),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_daemon_writes_owner_group_files_whatever_the_umask_and_never_dumps_core(tmp_path: Path) -> None:
    """Files the daemon writes are created owner/group only, and core dumps (which held the API key) are
    disabled by the process itself, not only by the unit."""
    sim = build_simulator("steady", clock=SystemClock())
    limits = RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=100_000)
    with serve_in_thread(sim, rate_limits=limits) as base_url:
        config_path = tmp_path / "config.toml"
        config_path.write_text(_config_toml(tmp_path, base_url))
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)],
            env=_clean_env(RUNPOD_API_KEY=DEFAULT_API_KEY),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            umask=0,  # the laxest umask a start script could leave
        )
        try:
            ledger = tmp_path / "ledger.sqlite3"
            deadline = time.monotonic() + 30
            while not ledger.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)
            limits_text = Path(f"/proc/{process.pid}/limits").read_text()
            modes = {
                p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir() if p.name.startswith("ledger")
            }
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    core = next(line for line in limits_text.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core
    assert modes and all(mode & 0o007 == 0 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}


async def test_run_dry_run_never_acts_not_by_an_old_override_a_reload_or_a_command(tmp_path: Path) -> None:
    """``run --dry-run`` used to be undone by a SIGHUP (the file's mode came back) and by a rule set to
    enforce from the dashboard in an earlier run; now nothing changes at RunPod for the whole run."""
    from watchdog.config import dry_run_everywhere
    from watchdog.daemon.commands import CommandRejected
    from watchdog.vocabulary import Mode

    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock)
    (job,) = sim._jobs[HUNG_ENDPOINT_ID].values()
    policy = {"max_execution_s": 30.0, "grace_s": 0.0}
    enforcing = tmp_path / "enforce.toml"
    async with daemon_against(sim, tmp_path, policy=policy) as daemon:
        daemon.config = dry_run_everywhere(daemon.config)
        daemon.state.rule_overrides["runaway_job"] = Mode.ENFORCE  # saved from an earlier run's dashboard
        enforcing.write_text(
            f'[ledger]\npath = "{daemon.config.ledger.resolved_path}"\n'
            '[policy]\nmode = "enforce"\nmax_execution_s = 30.0\ngrace_s = 0.0\n',
            encoding="utf-8",
        )
        assert await daemon.reload(str(enforcing))
        assert daemon.config.policy.dry_run_only and daemon.config.policy.mode == Mode.DRY_RUN
        rows = []
        for _ in range(30):
            sim.sync()
            rows += (await daemon.tick()).rows
            rows += (await daemon.check_deadlines()).rows
            clock.advance(5)
        assert rows and all(r.outcome != "applied" for r in rows), [r for r in rows if r.outcome == "applied"]
        assert any(r.action == "cancel_job" and r.outcome == "proposed" for r in rows)
        assert sim.job(HUNG_ENDPOINT_ID, job.id).status == "IN_PROGRESS"
        assert sim.endpoint(HUNG_ENDPOINT_ID).execution_timeout_ms is None  # not patched either
        for kind, args in (
            ("pause", {"endpoint_id": HUNG_ENDPOINT_ID}),
            ("cancel_job", {"endpoint_id": HUNG_ENDPOINT_ID, "job_id": job.id}),
            ("set_rule_mode", {"rule": "config_drift", "mode": "enforce"}),
        ):
            with pytest.raises(CommandRejected, match="dry_run_only"):
                await daemon.command(kind, args)
        assert sim.endpoint(HUNG_ENDPOINT_ID).workers_max == 1
