"""The safe first contact, as a new user walks it, with real processes on loopback: ``simulate`` (its
environment printed and written with ``--env-file``, one flag away with ``--simulator``, one line and exit
2 on a busy port), ``plan`` (the diff of what ``run`` would change, nothing changed: checked through the
simulator's ``/_sim/state`` and the job's status), ``run --dry-run`` (nothing changed, proposals recorded),
``run`` refusing to enforce the built-in defaults, a half-pointed set of RunPod URLs refused, and the
dashboard and the demo refusing to start without a terminal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runpod_sim.app import DEFAULT_API_KEY
from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from runpod_sim.serve import runpod_watchdog_env, runpod_watchdog_env_lines
from tests.helpers import StderrProcess
from tests.simulator.simulate_process import Simulate, running_simulate
from watchdog.config import (
    CONFIG_SEARCH_PATH,
    SIMULATOR_API_KEY,
    SYSTEM_CONFIG_PATH,
    ConfigError,
    default_config,
    load_config,
    simulator_environment,
)
from watchdog.ledger import LedgerReader

CLI = [sys.executable, "-m", "watchdog"]
HEADERS = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
PATCH_LINE = f"  {HUNG_ENDPOINT_ID}  executionTimeoutMs none → 120000  [config_drift, patch_config, enforce]"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that points at RunPod, Slack, a config or systemd."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNPOD_", "SLACK_", "CREDENTIALS", "NOTIFY_SOCKET", "JOURNAL_STREAM"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class HungAccount:
    """``simulate --scenario hung-job`` running in real time, with the files a user would have."""

    sim: Simulate
    job_id: str
    config: Path
    env_file: Path
    access_log: Path
    root: Path

    def state(self) -> dict[str, tuple[int, int | None]]:
        body = httpx.get(f"{self.sim.base_url}/_sim/state", timeout=10).json()
        return {e["id"]: (e["workersMax"], e["executionTimeoutMs"]) for e in body["endpoints"]}

    def job_status(self) -> str:
        url = f"{self.sim.base_url}/v2/{HUNG_ENDPOINT_ID}/status/{self.job_id}"
        return str(httpx.get(url, headers=HEADERS, timeout=10).json()["status"])


def _hung_job_heartbeat(access_log: Path) -> str | None:
    if not access_log.exists():
        return None
    for line in access_log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if (
            record.get("kind") == "ping"
            and record.get("endpoint_id") == HUNG_ENDPOINT_ID
            and record["job_id"]
        ):
            return str(record["job_id"])
    return None


@pytest.fixture(scope="module")
def hung(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HungAccount]:
    """The incident, live: a job that hangs on an endpoint with no execution timeout. The simulator runs at
    real speed (the watchdog compares RunPod's timestamps with its own clock); the hung endpoint's runaway
    limit is 1 s in the config, so the job is a runaway as soon as its heartbeat is in the log."""
    root = tmp_path_factory.mktemp("walk")
    access_log = root / "access.jsonl"
    env_file = root / "simulator.env"
    argv = [
        *CLI,
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        "hung-job",
        "--access-log",
        str(access_log),
        "--env-file",
        str(env_file),
    ]
    config = root / "config.toml"
    config.write_text(
        f"""
[[policy.endpoint]]
match = "{HUNG_ENDPOINT_ID}"
max_execution_s = 1
grace_s = 0

[[pings.source]]
name = "simulator"
path = "{access_log}"

[ledger]
path = "{root / "ledger.sqlite3"}"

[metrics]
enabled = false

[control]
socket_path = "{root / "control.sock"}"
""",
        encoding="utf-8",
    )
    with running_simulate(argv, expect_workers=False) as sim:
        deadline = time.monotonic() + 60
        job_id = _hung_job_heartbeat(access_log)
        while job_id is None and time.monotonic() < deadline:
            time.sleep(0.5)
            job_id = _hung_job_heartbeat(access_log)
        assert job_id is not None, "the hung job never sent a heartbeat"
        time.sleep(2.0)  # older than its 1 s limit by the heartbeat's evidence
        yield HungAccount(sim, job_id, config, env_file, access_log, root)


# ----------------------------------------------------------------------------------------------------------
# plan


def test_plan_shows_the_patch_and_the_cancel_with_euros_and_changes_nothing(hung: HungAccount) -> None:
    before = hung.state()
    assert before[HUNG_ENDPOINT_ID] == (1, None)

    result = cli(
        "plan", "--config", str(hung.config), "--simulator", hung.sim.base_url, "--exit-code", cwd=hung.root
    )

    assert result.returncode == 1, result.stderr  # --exit-code: run would change something
    out = result.stdout
    assert PATCH_LINE in out, out
    assert "€/month at risk" in out.split(PATCH_LINE)[1].splitlines()[0]
    cancel = (
        f"  {HUNG_ENDPOINT_ID}  cancel job {hung.job_id}  [runaway_job, cancel_job, enforce]  saves up to "
    )
    assert cancel in out, out
    assert "Nothing was changed." in out
    assert f"config: {hung.config} (given with --config), mode enforce" in out
    assert "Budget: " in out and "Brake: " in out
    assert "Result: " in out and "change(s)" in out

    assert hung.state() == before  # no patch reached the simulator
    assert hung.job_status() == "IN_PROGRESS"  # no cancel either
    assert not (hung.root / "ledger.sqlite3").exists()  # and no ledger was opened

    again = cli("plan", "--config", str(hung.config), "--simulator", hung.sim.base_url, cwd=hung.root)
    assert again.returncode == 0, again.stderr  # without --exit-code: 0 whatever the plan
    assert PATCH_LINE in again.stdout


def test_the_env_file_and_the_printed_lines_point_plan_at_the_simulator_like_the_flag(
    hung: HungAccount,
) -> None:
    lines = runpod_watchdog_env_lines(hung.sim.base_url)
    assert hung.env_file.read_text(encoding="utf-8") == "\n".join(lines) + "\n"
    # the flag sets exactly what the simulator prints (and the key it publishes)
    assert simulator_environment(hung.sim.base_url) == runpod_watchdog_env(hung.sim.base_url)
    assert SIMULATOR_API_KEY == DEFAULT_API_KEY

    sourced = subprocess.run(
        [
            "bash",
            "-c",
            f'. "{hung.env_file}" && exec "$0" -m watchdog plan --config "$1"',
            sys.executable,
            str(hung.config),
        ],
        cwd=hung.root,
        env=clean_env(
            SLACK_WEBHOOK_URL="https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sourced.returncode == 0, sourced.stderr
    assert PATCH_LINE in sourced.stdout
    assert f"cancel job {hung.job_id}" in sourced.stdout


def test_the_simulator_prints_the_lines_to_paste_after_its_banner(tmp_path: Path) -> None:
    argv = [*CLI, "simulate", "--listen", "127.0.0.1:0", "--scenario", "steady"]
    with running_simulate(argv, expect_workers=False) as sim:
        assert sim.process.stdout is not None
        printed = [sim.process.stdout.readline().rstrip("\n") for _ in range(6)]
    assert printed == runpod_watchdog_env_lines(sim.base_url)
    assert f"--simulator {sim.base_url}" in printed[0]
    shell = subprocess.run(
        ["bash", "-c", "\n".join(printed[1:]) + "\nenv -0"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
    for name, value in runpod_watchdog_env(sim.base_url).items():
        assert seen[name] == value
    config = load_config(None, env=seen)  # what every command would then use
    assert {config.runpod.graphql_url, config.runpod.rest_url, config.runpod.runtime_url} == {
        f"{sim.base_url}/graphql",
        f"{sim.base_url}/v2",
    }


# ----------------------------------------------------------------------------------------------------------
# run --dry-run


class _Daemon(StderrProcess):
    """``runpod-watchdog run ...`` with its stderr collected in a thread."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        super().__init__([*CLI, *args], cwd=cwd, env=env)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return True
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                return any(text in line for line in self.lines)
            time.sleep(0.1)
        return False


def test_run_dry_run_records_proposals_and_changes_nothing(hung: HungAccount) -> None:
    before = hung.state()
    daemon = _Daemon(
        ["run", "--dry-run", "--config", str(hung.config), "--simulator", hung.sim.base_url],
        hung.root,
        clean_env(),
    )
    try:
        assert daemon.wait_for("ready: tick 1", 30), daemon.text
        assert daemon.wait_for("Dry-run: would cancel", 30), daemon.text  # the runaway, as a proposal
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text
    assert f"configuration {hung.config} (given with --config)" in daemon.text
    assert (
        f'mode dry-run: --dry-run overrides the configuration ({hung.config}: policy.mode = "enforce") for this run'
        in daemon.text
    )
    assert hung.state() == before
    assert hung.job_status() == "IN_PROGRESS"
    with LedgerReader.open(hung.root / "ledger.sqlite3") as reader:
        decisions = reader.recent_decisions(500)
    assert decisions
    assert {(d.mode, d.outcome) for d in decisions if d.action not in ("alert", "none")} == {
        ("dry-run", "proposed")
    }
    assert any(d.action == "cancel_job" and d.job_id == hung.job_id for d in decisions)
    assert any(d.action == "patch_config" and d.endpoint_id == HUNG_ENDPOINT_ID for d in decisions)


def test_run_refuses_to_enforce_the_built_in_defaults(tmp_path: Path) -> None:
    if SYSTEM_CONFIG_PATH.is_file():
        pytest.skip(f"{SYSTEM_CONFIG_PATH} exists on this machine")
    result = cli("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"no configuration file found (searched {CONFIG_SEARCH_PATH})" in result.stderr
    assert "refusing to enforce the built-in defaults" in result.stderr and "--dry-run" in result.stderr
    assert not any(tmp_path.iterdir())  # no ledger, no socket

    helped = cli("run", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    assert "refuses to enforce the built-in defaults (exit 2) unless --dry-run" in text
    assert "--config PATH, else $RUNPOD_WATCHDOG_CONFIG, else ./config.toml, else" in text


def test_run_dry_run_on_the_built_in_defaults_says_so(hung: HungAccount, tmp_path: Path) -> None:
    if SYSTEM_CONFIG_PATH.is_file():
        pytest.skip(f"{SYSTEM_CONFIG_PATH} exists on this machine")
    daemon = _Daemon(["run", "--dry-run", "--simulator", hung.sim.base_url], tmp_path, clean_env())
    try:
        # SIGTERM only once it runs (before its first tick, the signal handlers are not installed yet)
        daemon.wait_for("ready: tick 1", 30)
    finally:
        code = daemon.stop()
    text = daemon.text
    assert f"no configuration file found (searched {CONFIG_SEARCH_PATH}): using the built-in defaults" in text
    assert "mode dry-run: --dry-run overrides the configuration (the built-in defaults" in text
    # the built-in defaults serve metrics on 127.0.0.1:9877: another test may hold it (then exit 2, said so)
    assert code == 0 or (code == 2 and "metrics endpoint cannot listen" in text), text
    assert hung.job_status() == "IN_PROGRESS"


# ----------------------------------------------------------------------------------------------------------
# The RunPod URLs go together


@pytest.mark.parametrize("command", ["plan", "snapshot", "run", "check-config"])
def test_a_partial_override_is_refused(tmp_path: Path, command: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[metrics]\nenabled = false\n", encoding="utf-8")
    env = clean_env(RUNPOD_API_BASE_URL="http://127.0.0.1:8787", RUNPOD_API_KEY="not-sent-anywhere-123")
    args = [command, str(config)] if command == "check-config" else [command, "--config", str(config)]
    result = cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "environment: RUNPOD_API_BASE_URL: the RunPod URLs point partly at this machine" in result.stderr
    assert "runpod.graphql_url http://127.0.0.1:8787/graphql (from $RUNPOD_API_BASE_URL) is loopback" in (
        result.stderr
    )
    assert "runpod.rest_url https://api.runpod.io/v2 (from " in result.stderr
    assert "--simulator URL" in result.stderr


def test_a_partial_override_in_the_file_is_refused_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[runpod]\nrest_url = "http://localhost:8787/v2"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{config}:2: runpod.rest_url: the RunPod URLs point partly at this machine")
    assert f"(from {config})" in problem


def test_all_three_on_the_simulator_or_none_is_fine() -> None:
    base = "http://127.0.0.1:8787"
    config = default_config(env=simulator_environment(base))
    assert config.runpod.graphql_url == f"{base}/graphql"
    assert config.runpod.rest_url == config.runpod.runtime_url == f"{base}/v2"
    assert default_config(env={}).runpod.rest_url == "https://api.runpod.io/v2"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api.runpod.io", "must be on this machine"),
        ("http://127.0.0.1:8787/v2", "no path"),
        ("127.0.0.1:8787", "http(s) URL"),
    ],
)
def test_simulator_must_be_a_loopback_base_url(tmp_path: Path, url: str, why: str) -> None:
    result = cli("snapshot", "--simulator", url, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("runpod-watchdog snapshot: --simulator: ")
    assert why in result.stderr


# ----------------------------------------------------------------------------------------------------------
# One line, exit 2


def test_simulate_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        result = cli(
            "simulate", "--listen", f"127.0.0.1:{port}", "--env-file", str(tmp_path / "e"), cwd=tmp_path
        )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"runpod-watchdog simulate: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in result.stderr
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("command", ["tui", "demo"])
def test_the_dashboard_and_the_demo_need_a_terminal(tmp_path: Path, command: str) -> None:
    result = cli(command, cwd=tmp_path)  # stdin /dev/null, stdout a pipe
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"runpod-watchdog {command}: not a terminal")
    assert not any(tmp_path.iterdir())
