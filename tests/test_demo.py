"""``runpod-watchdog demo``: the real command, as a newcomer runs it.

- headless: the story as text, every beat in order, within the time limit, exit 0, the simulator's port
  free afterwards and no temporary file left behind;
- in tmux (120x40): the dashboard shows the story (budget over 80 %, the hung job caught and the money
  saved, the timeout patched, the flood flagged), q stops everything cleanly.

Both run the installed entry point in a subprocess with ``TMPDIR`` pointed at the test's directory, so
"nothing left behind" is checkable. Plus fast in-process checks of the story's scenario.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from runpod_sim.app import DEFAULT_API_KEY

BIN = Path(sys.executable).with_name("runpod-watchdog")
HEADLESS_LIMIT_S = 120.0
"""The story takes about 50 s; the default --duration is 90 s; this is the wall-clock bound of the test."""
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")

BEAT_PATTERNS = (
    ("budget_80", re.compile(r"^\[day 24 \d\d:\d\d\] Budget 80 % reached: \d+\.\d\d € of 20\.00 €")),
    (
        "hung_job_caught",
        re.compile(r"^\[day 24 \d\d:\d\d\] Caught hung job \S+ on ep-asr-hung .*saved ~\d+\.\d\d €"),
    ),
    ("worker_stopped", re.compile(r"^\[day 24 \d\d:\d\d\] The hung job's worker \S+ stopped")),
    (
        "timeout_patched",
        re.compile(r"^\[day 24 \d\d:\d\d\] Patched execution timeout 600 s onto ep-asr-hung"),
    ),
    (
        "flood_flagged",
        re.compile(r"^\[day 24 \d\d:\d\d\] Ping flood from keepwarm-bot flagged on ep-tts-warm"),
    ),
)


def _port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` any more: a new server can bind and listen on it (SO_REUSEADDR, as every
    server sets, so connections in TIME_WAIT, which are TCP's normal aftermath, do not count)."""
    if port in _all_listening_ports():
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def _tcp_table() -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows.extend(line.split() for line in Path(table).read_text().splitlines()[1:])
        except OSError:
            continue
    return rows


def _all_listening_ports() -> set[int]:
    return {int(f[1].rsplit(":", 1)[1], 16) for f in _tcp_table() if f[3] == "0A"}


def _listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` listens on (Linux /proc: its socket inodes matched against /proc/net/tcp*)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with_target = (
                os.readlink(f"/proc/{pid}/fd/{fd}") if os.path.exists(f"/proc/{pid}/fd/{fd}") else ""
            )
            if with_target.startswith("socket:["):
                inodes.add(with_target[8:-1])
    except (FileNotFoundError, PermissionError):
        return set()
    return {int(f[1].rsplit(":", 1)[1], 16) for f in _tcp_table() if f[3] == "0A" and f[9] in inodes}


def _descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, set()).add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "SLACK_", "WATCHDOG_"))}
    env["TMPDIR"] = str(tmp_path)
    env.pop("NOTIFY_SOCKET", None)
    return env


def _leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rpwd-demo-"))


# ------------------------------------------------------------------------------------------------------------
# In-process: the story's scenario
# ------------------------------------------------------------------------------------------------------------


def test_demo_scenario_is_registered_and_opens_at_about_75_percent() -> None:
    from runpod_sim import registry, story
    from watchdog.clock import ManualClock

    assert "demo" in registry.SCENARIOS
    clock = ManualClock(story.story_start(time.time()))
    sim = registry.build_simulator("demo", clock=clock)
    month_start = clock.now() - 23 * 86_400 - 14 * 3600
    visible = sum(b.gpu_usd for b in sim.billing(start=month_start, end=clock.now() + 3600, bucket_s=3600))
    assert (10.0 + visible) / 23.2 == pytest.approx(story.START_RATIO, abs=0.01)
    hidden = sim.billed_usd_total() - visible
    assert hidden == pytest.approx(story.batch_usd(sim), rel=0.01)  # the lunch batch, behind the billing lag
    assert [e.id for e in sim.endpoints()] == ["ep-llm-mos", "ep-tts-warm"]
    clock.advance(story.KEEPWARM_AT_S + 60)
    sim.sync()
    hung = sim.endpoint("ep-asr-hung")
    assert hung.execution_timeout_ms is None
    assert sim.health("ep-asr-hung").in_progress == 1
    sources = {r.get("source") for r in sim.access_records if r.get("endpoint_id") == "ep-tts-warm"}
    assert "keepwarm-bot" in sources


def test_simulate_lists_the_demo_scenario() -> None:
    result = subprocess.run(
        [str(BIN), "simulate", "--list-scenarios"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("demo\t") for line in result.stdout.splitlines())


# ------------------------------------------------------------------------------------------------------------
# The real command, headless
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_headless_demo_tells_the_whole_story_in_order(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN), "demo", "--headless"],
        capture_output=True,
        text=True,
        timeout=HEADLESS_LIMIT_S + 30,
        env=_demo_env(tmp_path),
        check=False,
    )
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, f"exit {result.returncode}\n{out}\n{result.stderr}"
    assert elapsed < HEADLESS_LIMIT_S, out
    lines = out.splitlines()
    positions = {}
    for beat, pattern in BEAT_PATTERNS:
        matches = [i for i, line in enumerate(lines) if pattern.search(line)]
        assert len(matches) == 1, f"beat {beat}: {len(matches)} lines\n{out}"
        positions[beat] = matches[0]
    order = [beat for beat, _ in BEAT_PATTERNS]
    assert positions["budget_80"] < positions["hung_job_caught"] < positions["timeout_patched"], out
    assert positions["hung_job_caught"] < positions["worker_stopped"], out
    assert max(positions[b] for b in order[:-1]) < positions["flood_flagged"], out
    saved = float(re.search(r"saved ~(\d+\.\d\d) €", lines[positions["hung_job_caught"]]).group(1))
    assert saved > 50, "the hung job would have billed until the month's end"
    assert lines[-2].startswith("Summary: the whole story was told"), out
    assert lines[-1].startswith("Stopped cleanly"), out
    assert DEFAULT_API_KEY not in out + result.stderr
    port = int(URL.search(lines[0]).group(1))
    assert _port_is_free(port), f"port {port} still bound after exit"
    assert _leftovers(tmp_path) == [], "temporary files left behind"


@pytest.mark.slow
def test_headless_demo_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(BIN), "demo", "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_demo_env(tmp_path),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        port = int(URL.search(first).group(1))
        deadline = time.monotonic() + 20
        while port not in _listening_ports(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port in _listening_ports(process.pid)
        time.sleep(3)  # a few ticks in
        process.send_signal(2)
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Interrupted" in rest and "Stopped cleanly" in rest, rest
    assert _port_is_free(port)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------------------
# The real command, on a terminal (tmux)
# ------------------------------------------------------------------------------------------------------------

SCREEN_NEEDLES = {
    "budget over 80 %": re.compile(r"WARN ▲ 80 %|Budget 80 % reached"),
    "hung job caught": re.compile(r"Hung job caught|cancel_job \(applied\)"),
    "money saved": re.compile(r"saved ~\d+\.\d\d €"),
    "timeout patched": re.compile(r"Timeout patched|execution_timeout_ms"),
    "flood flagged": re.compile(r"Flood flagged|keep_warm\) from keepwarm-bot"),
}


def _tmux(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-L", server, "-f", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.slow
def test_demo_dashboard_in_tmux_tells_the_story_and_quits_on_q(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("SKIPPED LOUDLY: tmux is not installed, so the demo's on-screen story was NOT checked")
    server = f"rpwd-demo-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "demo-exit-code"
    # The pane's shell waits for the demo and writes its exit code: the test does not depend on when tmux
    # reaps the pane's process (pane_dead turns 1 when the pty closes, the status may come later).
    command = f"env TMPDIR={tmp_path} TERM=xterm-256color {BIN} demo; echo $? > {exit_file}"
    pid = None
    try:
        started = _tmux(
            server, "start-server", ";", "new-session", "-d", "-s", "demo", "-x", "120", "-y", "40", command
        )
        assert started.returncode == 0, started.stderr
        shell = int(_tmux(server, "display-message", "-p", "-t", "demo", "#{pane_pid}").stdout.strip())
        deadline = time.monotonic() + 20
        while pid is None and time.monotonic() < deadline:
            pid = next((p for p in _descendants(shell) if b"demo" in _cmdline(p)), None)
            time.sleep(0.1)
        assert pid is not None, "the demo process did not start"
        seen: dict[str, float] = {}
        screens: list[str] = []
        port = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120 and len(seen) < len(SCREEN_NEEDLES):
            screen = _tmux(server, "capture-pane", "-p", "-t", "demo").stdout
            screens.append(screen)
            if port is None and (match := URL.search(screen)):
                port = int(match.group(1))
            for name, needle in SCREEN_NEEDLES.items():
                if name not in seen and needle.search(screen):
                    seen[name] = time.monotonic() - t0
            if not _alive(pid):
                break
            time.sleep(0.5)
        missing = [name for name in SCREEN_NEEDLES if name not in seen]
        assert not missing, (
            f"never on screen: {missing}\n--- last screen ---\n{screens[-1] if screens else ''}"
        )
        assert port is not None, "the simulator's URL was never shown"
        assert port in _listening_ports(pid)
        family = _descendants(pid) | {pid}
        _tmux(server, "send-keys", "-t", "demo", "q")
        deadline = time.monotonic() + 30
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        after = _tmux(server, "capture-pane", "-p", "-t", "demo").stdout
        states = {p: _state(p) for p in family}
        assert exit_file.exists(), f"the demo did not exit within 30 s of q; processes {states}\n{after}"
        time.sleep(0.2)  # the shell has written the code a moment after it reaped the demo
        assert exit_file.read_text().strip() == "0", f"exit code {exit_file.read_text()!r}\n{after}"
        assert not [p for p in family if _alive(p)], f"processes left running after q: {states}"
        assert _port_is_free(port), f"port {port} still bound after q"
        assert _leftovers(tmp_path) == [], "temporary files left behind"
        print(f"on screen after (real s): {seen}")
        assert all(seen[name] < 110 for name in seen), seen
    finally:
        _tmux(server, "kill-server")
        if pid is not None and _alive(pid):
            os.kill(pid, 9)


# ------------------------------------------------------------------------------------------------------------
# Repeatable: the same story every run (issue 12)
# ------------------------------------------------------------------------------------------------------------


async def _tell_story_once(limit_s: float) -> dict[str, object]:
    """The demo's headless story in-process (the same DemoStack, DemoDaemon and StoryDriver as the command),
    until every beat was told; what a run must repeat, and the hung job's real-time visibility."""
    import asyncio

    from sim_harness.demo import DemoStack, StoryDriver

    async with DemoStack() as stack:
        driver = StoryDriver(stack, lambda _beat, _line: None)
        stack.run_daemon(driver)
        await asyncio.wait_for(driver.done.wait(), timeout=limit_s)
        return {
            "told": [(t.tick, t.beat, round(t.at, 3), t.text) for t in driver.told],
            "decisions": [(s.tick, s.rule, s.action, s.endpoint_id, s.outcome, s.at) for s in driver.seen],
            "acts": dict(driver.acts),
            "hung_visible_s": driver.hung_visible_s,
            "beats_real_s": dict(driver.beats),
        }


@pytest.mark.slow
def test_demo_story_is_the_same_every_run() -> None:
    """Three runs at once (in one event loop, so they also compete for the CPU): the same lines, decisions
    (rule, action, endpoint, outcome, simulated instant) and acts, tick for tick; no run has a decision the
    others lack (e.g. a keep-warm scale_to_zero or a cold-start alert); the hung job runs past its limit,
    uncaught, for at least 5 real seconds before the tick that cancels it."""
    import asyncio

    async def three() -> list[dict[str, object]]:
        return list(await asyncio.gather(*(_tell_story_once(HEADLESS_LIMIT_S) for _ in range(3))))

    runs = asyncio.run(three())
    first = runs[0]
    for other in runs[1:]:
        assert other["told"] == first["told"]
        assert other["decisions"] == first["decisions"]
        assert other["acts"] == first["acts"]
    told = first["told"]
    assert isinstance(told, list)
    beats = [beat for _, beat, _, _ in told if beat is not None]
    assert beats == ["budget_80", "hung_job_caught", "timeout_patched", "worker_stopped", "flood_flagged"]
    for run in runs:
        visible = run["hung_visible_s"]
        assert isinstance(visible, float) and visible >= 5.0, run["hung_visible_s"]
        print(
            f"hung job past its limit, uncaught: {visible:.1f} real s; beats (real s): {run['beats_real_s']}"
        )
    decisions = first["decisions"]
    assert isinstance(decisions, list)
    for decision in decisions:
        print(decision)
