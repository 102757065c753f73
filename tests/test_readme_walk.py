"""The README's "Using it", walked as written, in a fresh virtual environment, against the simulator.

What a new user does after the two set-up commands, with real processes on loopback only:

* a fresh ``.venv`` in a scratch directory (``python3 -m venv`` and ``pip install 'runpod-watchdog[sim]'``
  from a copy of this checkout), next to a copy of the shipped ``config.toml`` (one change: metrics on a
  free port, since 9877 may be taken on a developer's machine);
* the rehearsal the safe walk describes: ``simulate --scenario hung-job --env-file sim.env`` (plus
  ``--listen 127.0.0.1:0``: 8787 may be taken) and ``. ./sim.env``;
* then the README's walk block, each line run as written through bash after its activation line:
  ``check-config``, ``snapshot``, ``plan`` (before the hung job is a runaway: the patch and the check to
  come; after it: the README's transcript, cancel and patch), ``run --dry-run`` with ``tui`` under tmux
  while it runs (then ``q``, and SIGTERM: exit 0), and ``run`` (enforce).

Every transcript the section shows (``$ command`` then its output, ``…`` for what differs from run to run)
is matched line by line against the real output, and every step's effect is checked against the
simulator's ground truth (``GET /_sim/state``): plan and dry-run change nothing, enforce cancels the hung
job and patches its endpoint. The hung job becomes a runaway 150 s after it starts (the shipped 120 s +
30 s grace), so the walk takes about three minutes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from runpod_sim.scenarios import HUNG_ENDPOINT_ID
from tests.helpers import StderrProcess
from tests.simulator.simulate_process import Simulate, running_simulate

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WALK = [
    ". .venv/bin/activate",
    "runpod-watchdog check-config config.toml",
    "runpod-watchdog snapshot",
    "runpod-watchdog plan",
    "runpod-watchdog run --dry-run",
    "runpod-watchdog tui",
    "runpod-watchdog run",
    "runpod-watchdog simulate --scenario hung-job",
]
"""The walk block as this test knows how to check it: a change to the README's walk must come with one here."""
SIM_ENV = ". ./sim.env"
REHEARSAL = "runpod-watchdog simulate --scenario hung-job --env-file sim.env"
DEFAULT_SIM = "127.0.0.1:8787"
RUNAWAY_AFTER_S = 120 + 30  # the shipped policy.max_execution_s + policy.grace_s


# ----------------------------------------------------------------------------------------------------------
# Reading the section


@dataclass(frozen=True)
class Block:
    lang: str
    lines: list[str]


def using_it_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Using it\n")
    return text[start : text.index("\n## ", start + 1)]


FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def fenced_blocks(section: str) -> list[Block]:
    """Every fenced block, dedented by its fence's indentation (blocks inside list items)."""
    blocks = []
    for match in FENCE.finditer(section):
        indent = match.group(1)
        lines = [line.removeprefix(indent) for line in match.group(3).splitlines()]
        blocks.append(Block(match.group(2), lines))
    return blocks


def commands(block: Block) -> list[str]:
    """A sh block's commands, comments dropped, as the shell splits them."""
    return [shlex.join(words) for line in block.lines if (words := shlex.split(line, comments=True))]


def walk_block(section: str) -> list[str]:
    found = [commands(b) for b in fenced_blocks(section) if b.lang == "sh"]
    walks = [c for c in found if c and c[0] == WALK[0]]
    assert len(walks) == 1, f"one sh block starting with {WALK[0]!r} expected in 'Using it', found {found}"
    return walks[0]


def transcripts(section: str) -> dict[str, list[str]]:
    """``$ command`` blocks: the command → the output lines shown under it."""
    shown = {}
    for block in fenced_blocks(section):
        if block.lines and block.lines[0].startswith("$ "):
            shown[block.lines[0].removeprefix("$ ")] = block.lines[1:]
    return shown


def line_pattern(expected: str) -> re.Pattern[str]:
    """A README line as a pattern for one whole output line: ``…`` stands for anything."""
    return re.compile(".*?".join(re.escape(part) for part in expected.split("…")))


def assert_shows(expected: list[str], output: str, what: str) -> None:
    """Every line the README shows (blank and lone ``…`` lines aside) is a line of the output, in order."""
    lines = output.splitlines()
    at = 0
    for want in expected:
        if want.strip() in ("", "…"):
            continue
        pattern = line_pattern(want)
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        assert at < len(lines), (
            f"{what}: the README's line {want!r} is not in the output (in order):\n{output}"
        )
        at += 1


def test_the_section_starts_with_the_safe_walk_and_shows_the_month_chart() -> None:
    section = using_it_section()
    assert walk_block(section) == WALK
    first_block = section.index("```")
    image = section.index("![")
    assert image < first_block and "month chart" in section[image : section.index("\n", image)]
    assert "(docs/dashboard.svg)" in section
    svg = (REPO / "docs" / "dashboard.svg").read_text(encoding="utf-8")
    assert "The&#160;month&#160;(s:&#160;larger)" in svg  # the chart's panel is in the screenshot
    # the numbered steps are the walk's, in its order
    steps = re.findall(r"^\d\. \*\*`(runpod-watchdog [^`]+)`", section, re.MULTILINE)
    assert steps == [c for c in WALK if c.split()[1] in ("snapshot", "plan", "run")], steps
    assert f"`{REHEARSAL}`" in section and f"`{SIM_ENV}`" in section
    assert "daily_allowance = true" in section and "[budget]" in section
    assert REHEARSAL in transcripts(section)


# ----------------------------------------------------------------------------------------------------------
# The walk


def clean_env() -> dict[str, str]:
    """The test's environment without a virtual environment, a Python path, RunPod, Slack or systemd."""
    drop = ("RUNPOD_", "SLACK_", "CREDENTIALS", "NOTIFY_SOCKET", "JOURNAL_STREAM", "VIRTUAL_ENV", "PYTHON")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONUNBUFFERED"] = "1"
    env["TERM"] = "xterm-256color"
    return env


@dataclass
class Walk:
    root: Path
    """The scratch directory: .venv, config.toml, sim.env, the ledger."""
    section: str
    install_s: float

    def script(self, command: str, *, sim_env: bool = True, exec_: bool = False) -> str:
        steps = [WALK[0], *([SIM_ENV] if sim_env else []), ("exec " if exec_ else "") + command]
        return " && ".join(steps)

    def sh(self, command: str, *, sim_env: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", self.script(command, sim_env=sim_env)],
            cwd=self.root,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


class Daemon(StderrProcess):
    """A long-running command of the walk (``exec``'d by bash, so SIGTERM reaches it), stderr collected."""

    def __init__(self, walk: Walk, command: str) -> None:
        super().__init__(["bash", "-c", walk.script(command, exec_=True)], cwd=walk.root, env=clean_env())

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in list(self.lines)):
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.text}"
            assert time.monotonic() < deadline, f"{text!r} not logged in {timeout_s} s:\n{self.text}"
            time.sleep(0.1)


def fresh_environment(root: Path) -> float:
    """``python3 -m venv .venv`` and ``pip install '<checkout>[sim]'`` (from a copy: building in the checkout
    would leave build/ behind); returns the seconds it took."""
    source = root.parent / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".cache", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(root / ".venv")], check=True, timeout=120)
    install = subprocess.run(
        [
            str(root / ".venv" / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{source}[sim]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return time.monotonic() - started


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Walk:
    root = tmp_path_factory.mktemp("readme") / "walk"
    root.mkdir()
    install_s = fresh_environment(root)
    print(f"\nfresh virtual environment with runpod-watchdog[sim]: {install_s:.1f} s")
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    metrics = 'listen = "127.0.0.1:9877"'
    assert shipped.count(metrics) == 1
    (root / "config.toml").write_text(shipped.replace(metrics, 'listen = "127.0.0.1:0"'), encoding="utf-8")
    return Walk(root, using_it_section(), install_s)


@dataclass
class Account:
    """The rehearsal's simulator and its ground truth."""

    sim: Simulate

    def state(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.sim.base_url}/_sim/state", timeout=10).json()
        return body

    def hung(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The hung endpoint and its job (None before it was submitted)."""
        state = self.state()
        endpoint = next(e for e in state["endpoints"] if e["id"] == HUNG_ENDPOINT_ID)
        job = next((j for j in state["jobs"] if j["endpointId"] == HUNG_ENDPOINT_ID), None)
        return endpoint, job

    def assert_untouched(self, job_id: str) -> None:
        state = self.state()
        endpoint = next(e for e in state["endpoints"] if e["id"] == HUNG_ENDPOINT_ID)
        assert (endpoint["workersMax"], endpoint["executionTimeoutMs"]) == (1, None), endpoint
        job = next(j for j in state["jobs"] if j["id"] == job_id)
        assert job["status"] == "IN_PROGRESS", job
        assert state["cancelRequests"] == [] and state["endpointChanges"] == [], state


@contextlib.contextmanager
def rehearsal(walk: Walk) -> Iterator[Account]:
    """The safe walk's rehearsal as written, on a free port: ``simulate ... --env-file sim.env``; its
    printed lines and sim.env are the README's transcript (with the port it got)."""
    script = f"cd {shlex.quote(str(walk.root))} && " + walk.script(
        f"{REHEARSAL} --listen 127.0.0.1:0", sim_env=False, exec_=True
    )
    with running_simulate(["bash", "-c", script], expect_workers=False) as sim:
        assert sim.process.stdout is not None
        printed = [*sim.banner, *(sim.process.stdout.readline().rstrip("\n") for _ in range(6))]
        shown = transcripts(walk.section)[REHEARSAL]
        listen = sim.base_url.removeprefix("http://")
        assert listen.startswith("127.0.0.1:")
        assert printed == [line.replace(DEFAULT_SIM, listen) for line in shown]
        assert (walk.root / "sim.env").read_text(encoding="utf-8").splitlines() == printed[2:]
        yield Account(sim)


SCREEN = {
    "the daemon, in dry-run": re.compile(r"● DAEMON UP · tick \d+ s ago · sees RunPod · DRY-RUN"),
    "the budget": re.compile(r"Budget .*\n.*\d{4}-\d\d: \d+\.\d\d € of 20\.00 € \(\d+ %\)"),
    "the month chart": re.compile(r"The month \(s: larger\)(.|\n)*┤"),
    "the hung endpoint": re.compile(r"Speech to text .* DRY-RUN .*\n.*ep-asr-hung"),
    "the other endpoint": re.compile(r"Translation LLM .* DRY-RUN .*\n.*ep-llm-mos"),
    "a proposal": re.compile(r"DRIFT +ep-asr-hung: Fix configuration.* PROPOSED"),
}


def dashboard(walk: Walk) -> str:
    """``runpod-watchdog tui`` as written, in another terminal (tmux, 120x40, without sim.env: the dashboard
    talks to the daemon, never to RunPod): the screen once it shows the daemon's state; then ``q``."""
    server = f"rpwd-readme-{os.getpid()}-{time.monotonic_ns()}"
    exit_file = walk.root / "tui-exit-code"
    pane = f"bash -c {shlex.quote(walk.script(WALK[5], sim_env=False))}; echo $? > {exit_file}"
    env = {k: v for k, v in clean_env().items() if k != "TMUX"}

    def tmux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", server, "-f", "/dev/null", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    try:
        started = tmux("new-session", "-d", "-s", "walk", "-x", "120", "-y", "40", "-c", str(walk.root), pane)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 30
        screen = ""
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", "walk").stdout
            if all(needle.search(screen) for needle in SCREEN.values()) or exit_file.exists():
                break
            time.sleep(0.5)
        missing = [name for name, needle in SCREEN.items() if not needle.search(screen)]
        assert not missing, f"never on the dashboard: {missing}\n--- screen ---\n{screen}"
        tmux("send-keys", "-t", "walk", "q")
        deadline = time.monotonic() + 20
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.2)  # the shell writes the code a moment after the file appears
        assert exit_file.exists(), "the dashboard did not quit on q"
        assert exit_file.read_text(encoding="utf-8").strip() == "0"
        return screen
    finally:
        tmux("kill-server")


def test_the_walk_runs_as_written_against_the_simulator(walk: Walk) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("SKIPPED LOUDLY: tmux is not installed, so the README's walk was NOT checked")
    started = time.monotonic()
    shown = transcripts(walk.section)
    assert walk_block(walk.section) == WALK
    where = walk.sh("command -v runpod-watchdog", sim_env=False)
    assert where.stdout.strip() == str(walk.root / ".venv" / "bin" / "runpod-watchdog"), where

    with rehearsal(walk) as account:
        # check-config: exit 0 and a one-line summary
        checked = walk.sh(WALK[1])
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.count("\n") == 1, checked.stdout
        assert checked.stdout.startswith("config.toml: OK — budget 20.00 EUR/month") and "mode enforce" in (
            checked.stdout
        )

        # snapshot: one read
        snapshot = walk.sh(WALK[2])
        assert snapshot.returncode == 0, snapshot.stderr
        assert_shows(shown[WALK[2]], snapshot.stdout, WALK[2])

        # plan while the hung job is younger than the runaway limit: the patch, and the cancel to come
        deadline = time.monotonic() + 60
        endpoint, job = account.hung()
        while job is None or job["status"] != "IN_PROGRESS":
            assert time.monotonic() < deadline, f"the hung job never started: {job}"
            time.sleep(0.5)
            endpoint, job = account.hung()
        job_id = str(job["id"])
        early = walk.sh(WALK[3])
        assert early.returncode == 0, early.stderr
        patch = next(line for line in shown[WALK[3]] if "executionTimeoutMs none → 120000" in line)
        assert_shows([patch], early.stdout, "plan, early")
        assert "Runaway checks to come (if the work still runs then):" in early.stdout, early.stdout
        to_come = re.search(
            rf"  {HUNG_ENDPOINT_ID}  cancel job {re.escape(job_id)} at (\S+Z)\n", early.stdout
        )
        assert to_come is not None, early.stdout
        runaway_at = datetime.fromisoformat(to_come.group(1)).timestamp()
        assert 0 < runaway_at - job["startedAt"] <= RUNAWAY_AFTER_S + 1
        account.assert_untouched(job_id)

        # plan once the job is a runaway: the README's transcript, the cancel and the patch
        time.sleep(max(0.0, runaway_at + 1 - time.time()))
        deadline = time.monotonic() + 30
        plan = walk.sh(WALK[3])
        while "[runaway_job, cancel_job, enforce]" not in plan.stdout and time.monotonic() < deadline:
            time.sleep(1)
            plan = walk.sh(WALK[3])
        assert plan.returncode == 0, plan.stderr
        assert_shows(shown[WALK[3]], plan.stdout, WALK[3])
        assert f"cancel job {job_id}  [runaway_job" in plan.stdout
        assert walk.sh(f"{WALK[3]} --exit-code").returncode == 1  # run would change something
        one_flag = walk.sh(f"runpod-watchdog plan --simulator {account.sim.base_url}", sim_env=False)
        assert one_flag.returncode == 0, one_flag.stderr
        assert_shows(shown[WALK[3]], one_flag.stdout, "plan --simulator")
        assert not (walk.root / "runpod-watchdog.sqlite3").exists()  # plan opens no ledger
        account.assert_untouched(job_id)

        # run --dry-run: proposals only; the dashboard while it runs
        dry = Daemon(walk, WALK[4])
        try:
            dry.wait_for("ready: tick 1", 60)
            dry.wait_for(f"Dry-run: would cancel job on {HUNG_ENDPOINT_ID}", 30)
            dry.wait_for(f"Dry-run: would patch config on {HUNG_ENDPOINT_ID}", 30)
            mode_line = re.search(r"`(mode dry-run: [^`]+)`", walk.section)
            assert mode_line is not None
            said = line_pattern(" ".join(mode_line.group(1).split()))
            assert any(said.search(line) for line in dry.lines), dry.text
            screen = dashboard(walk)
            assert dry.process.poll() is None, "q in the dashboard must not stop the daemon"
        finally:
            code = dry.stop()
        assert code == 0, dry.text
        assert any(line.endswith("INFO watchdog.daemon: stopped") for line in dry.lines), dry.text
        account.assert_untouched(job_id)

        # run: enforce, the README's transcript; the job cancelled and the endpoint patched at RunPod
        enforce = Daemon(walk, WALK[6])
        try:
            enforce.wait_for("ready: tick 1", 60)
            deadline = time.monotonic() + 30
            endpoint, job = account.hung()
            while endpoint["executionTimeoutMs"] is None or job is None or job["status"] == "IN_PROGRESS":
                assert time.monotonic() < deadline, f"not enforced in 30 s: {endpoint} {job}\n{enforce.text}"
                time.sleep(0.5)
                endpoint, job = account.hung()
        finally:
            code = enforce.stop()
        assert code == 0, enforce.text
        assert_shows(shown[WALK[6]], enforce.text, WALK[6])
        state = account.state()
        assert endpoint["executionTimeoutMs"] == 120_000 and endpoint["workersMax"] == 1, endpoint
        assert job is not None and job["id"] == job_id and job["status"] == "CANCELLED", job
        cancels = [(c["jobId"], c["status"]) for c in state["cancelRequests"]]
        assert (job_id, 200) in cancels and {c for c, _ in cancels} == {job_id}, state
        assert state["endpointChanges"], state

    print(
        f"README walk: fresh environment {walk.install_s:.1f} s, walk {time.monotonic() - started:.1f} s"
        f"\n--- the dashboard ---\n{screen}"
    )
