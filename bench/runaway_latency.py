"""runaway_latency: a runaway job's limit crossed -> cancel sent, and -> billing stopped (real processes).

The issue: once a job's start is known, its deadline (start + ``max_execution_s`` + ``grace_s``) is a
timer, not a poll: the cancel is sent within 1 s of the deadline whatever the tick interval, then
verified; billing stops within the endpoint's idle timeout + 1 s of it. This measures that on the REAL
daemon and simulator, as a user runs them. It takes over the role of ``limit_to_billing_stop`` (in-process,
ManualClock, heartbeats from an access log), which cannot see a timer firing between ticks.

How, and why each choice:

* Two subprocesses per run, as a user runs them: ``python -m watchdog simulate --scenario hung-job
  --listen 127.0.0.1:0 --seed S --api-key K`` (real time, speed 1, the simulator's default REST quota of
  60 calls a minute ON) and ``python -m watchdog run --config X`` with ``RUNPOD_API_KEY`` in its
  environment. Loopback only. The key is long on purpose: the daemon's client scrubs the key out of every
  answer, so a short key that happens to occur inside a worker id corrupts that id and the daemon goes
  blind (seen with the key "k1" and the worker id "pjso2krv6sk1wj").
* The config's ``[runpod]`` URLs point at the simulator and there is NO ``[[pings.source]]``: the daemon
  must learn the job and its start from RunPod itself (the worker log stream's "Started." line, the job's
  ``/status``, the worker list), not from a heartbeat file. When it cannot identify the job it falls back
  to scaling the endpoint to zero for "unidentified work": that is reported as "scale to zero", never as
  a cancel (and it misses the cancel target).
* ``[policy]`` ``max_execution_s`` 20 (a run is short), ``grace_s`` 10 (``--grace``; the choice of
  tests/daemon/test_deadlines.py), ``required_execution_timeout_s`` 3600: the daemon's config-drift
  patch of the hung endpoint's missing execution timeout is then far above the limit, so the platform's
  own timeout never stops the job first, even when the daemon starts before the job (the patch would
  then reach the job).
* Phase: the daemon is started at a seeded random offset from the hung job's start, uniform in
  [-10 s, +15 s] (shorter after the start for short limits, so the daemon is up 5 s before the deadline).
  25 s is more than the longest tick interval, so every position of the tick grid relative to the
  deadline is drawn; before the start the daemon sees the job begin, after it the daemon must find a
  job already running. The scenario's job starts 15 s (its cold start) after the simulator; the phase
  shown is re-measured from the job's true start.
* Tick intervals 1, 5 and 15 s (``poll_interval_s``). 5 daemon runs of each (``--runs``) and 3 baseline
  runs (``--baseline-runs``: the platform's timeout does not vary), seeds 1, 2, ... (the simulator's
  ``--seed``; the phase is drawn from the seed and the interval). p100 is the largest of the runs.
* Ground truth, read from the simulator's ``GET /_sim/state`` (never from the daemon): the job's
  ``startedAt``; crossing = start + ``max_execution_s`` (the issue's "from max_execution_s") and the
  deadline = start + ``max_execution_s`` + ``grace_s`` (the issue's "limit crossed"); cancel sent = the
  first ``cancelRequests`` entry for that job id (when the simulator received it, whatever it answered;
  a refused one is flagged); billing stopped = ``stoppedAt`` of the billed session of the job's worker.
  How the job was stopped: CANCELLED after a cancel = "cancel by id"; TIMED_OUT = "platform timeout";
  FAILED "worker stopped" after an ``endpointChanges`` entry setting ``workersMax`` to 0 = "scale to
  zero" (its time is that change's). The daemon's own ledger gives the start's evidence (``jobs.source``:
  worker_log, status, worker_running, heartbeat, first_seen), the start it believes (``jobs.started_at``:
  its deadline's error, shown apart from the timer's own delay), its verification (``decisions``) and its
  ticks not ok (blind or held up by the quota). The ledger's decision times are NOT used: a deadline's
  steps are stamped with the deadline, not with the moment the cancel went out.
* Baseline, side by side in the same invocation, same processes and config: the hung endpoint's own
  execution timeout set to ``max_execution_s`` (REST PATCH ``timeout`` right after the simulator starts,
  before the job does), so the platform stops the job by itself; measured the same way. Ratio = billed
  seconds of the hung worker's session, daemon / platform timeout (what the watchdog costs over the
  platform doing the job itself).
* Several pairs at once (``--parallel``, default 3: the reference machine has 2 cores; each pair is two
  mostly idle processes), daemon and baseline runs interleaved so both see the same contention. The
  1-minute load average is sampled and printed.

``--quick``: tick 5 s, one run of each kind, ``max_execution_s`` 5 and ``grace_s`` 2: it only proves the
benchmark works.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from bench import REPO, Result, Table, fmt, median, module_main
from bench._processes import clean_env, stop
from bench._processes import start_simulator as start_simulator_process

NAME = "runaway_latency"
TITLE = "runaway limit crossed -> cancel sent, -> billing stopped (real daemon and simulator processes)"

API_KEY = "bench-runaway-latency-key-0123456789"
HUNG_ENDPOINT_ID = "ep-asr-hung"  # runpod_sim.scenarios.HUNG_ENDPOINT_ID (not imported: the sim is a process)
HUNG_COLD_START_S = 15.0
"""The hung-job scenario's cold start: its job starts this long after the simulator (checked after)."""
INTERVALS = (1.0, 5.0, 15.0)
MAX_EXECUTION_S = 20.0
GRACE_S = 10.0
"""tests/daemon/test_deadlines.py's grace (its limit is 60 s; ours is 20 s so that a run is short)."""
REQUIRED_TIMEOUT_S = 3600
PHASE_BEFORE_S = 10.0
PHASE_AFTER_S = 15.0
STARTUP_MARGIN_S = 5.0
"""The daemon is started at least this long before the deadline (Python start-up, first tick)."""
CANCEL_TARGET_S = 1.0
BILLING_SLACK_S = 1.0
"""Billing target: the endpoint's idle timeout + this, after the deadline."""
GIVE_UP_AFTER_S = 90.0
"""A run ends this long after the deadline even if the job was not stopped (reported as such)."""
VERIFY_WAIT_S = 20.0
"""After billing stopped, how long to wait for the daemon's verification row (plus one tick)."""
STATE_POLL_S = 0.5

DAEMON = "daemon"
BASELINE = "platform timeout"


@dataclass
class Run:
    kind: str
    interval: float
    seed: int
    phase_wanted: float
    max_execution_s: float
    grace_s: float
    phase: float | None = None
    """Daemon start minus the job's true start (s)."""
    job_id: str = ""
    daemon_start: float | None = None
    """The job's start as the daemon's ledger has it (``jobs.started_at``)."""
    stopped_by: str = "not stopped"
    job_status: str = ""
    start: float | None = None
    cancel_at: float | None = None
    cancel_status: int | None = None
    action_at: float | None = None
    """When the job's stop was set off: the cancel, the scale to zero or the platform's timeout."""
    billing_stop: float | None = None
    billed_s: int | None = None
    idle_timeout: float = 5.0
    evidence: str = "-"
    verified_after: float | None = None
    verify_outcome: str = "-"
    ticks: tuple[int, int, int] = (0, 0, 0)
    """The daemon's ticks: recorded, not ok (blind or quota-limited), blind."""
    load: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def deadline(self) -> float | None:
        return None if self.start is None else self.start + self.max_execution_s + self.grace_s

    @property
    def start_error(self) -> float | None:
        """The daemon's idea of the start minus the true start (s): its deadline is off by as much."""
        if self.daemon_start is None or self.start is None:
            return None
        return self.daemon_start - self.start

    @property
    def after_own_deadline(self) -> float | None:
        """The cancel's receipt after the deadline the daemon computed from its own start (s): the timer's
        own delay, without the error on the start."""
        if self.daemon_start is None or self.cancel_at is None:
            return None
        return self.cancel_at - (self.daemon_start + self.max_execution_s + self.grace_s)

    def after(self, when: float | None, *, grace: bool) -> float | None:
        if when is None or self.start is None:
            return None
        return when - (self.start + self.max_execution_s + (self.grace_s if grace else 0.0))


# ------------------------------------------------------------------------------------------------------------
# The two processes (as bench/log_backlog.py runs them)


def start_simulator(seed: int, out: IO[str]) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "watchdog", "simulate", "--listen", "127.0.0.1:0", "--scenario", "hung-job",
        "--api-key", API_KEY, "--seed", str(seed),
    ]  # fmt: skip
    return start_simulator_process(command, out)


def start_daemon(config_path: Path, out: IO[str]) -> subprocess.Popen[str]:
    env = clean_env()
    env["RUNPOD_API_KEY"] = API_KEY
    command = [sys.executable, "-m", "watchdog", "run", "--config", str(config_path)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out, text=True)


def config_toml(folder: Path, base_url: str, run: Run) -> str:
    return f"""
[runpod]
graphql_url = "{base_url}/graphql"
rest_url = "{base_url}/v2"
runtime_url = "{base_url}/v2"
poll_interval_s = {run.interval}

[ledger]
path = "{folder / "ledger.sqlite3"}"

[metrics]
enabled = false

[control]
socket_path = "{folder / "ctl.sock"}"

[policy]
max_execution_s = {run.max_execution_s}
grace_s = {run.grace_s}
required_execution_timeout_s = {REQUIRED_TIMEOUT_S}
"""


# ------------------------------------------------------------------------------------------------------------
# Ground truth (the simulator) and the daemon's ledger


def sim_state(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/_sim/state")
    answer.raise_for_status()
    state = answer.json()
    assert isinstance(state, dict)
    return state


def hung_job(state: dict[str, Any]) -> dict[str, Any]:
    jobs = [j for j in state["jobs"] if j["endpointId"] == HUNG_ENDPOINT_ID]
    if len(jobs) != 1:
        raise RuntimeError(f"expected the scenario's one hung job, found {len(jobs)}")
    job: dict[str, Any] = jobs[0]
    return job


def job_sessions(state: dict[str, Any], job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in state["sessions"] if s["workerId"] == job["workerId"]]


def is_over(state: dict[str, Any]) -> bool:
    """The hung job has ended and its worker no longer bills."""
    job = hung_job(state)
    if job["status"] in ("IN_QUEUE", "IN_PROGRESS"):
        return False
    sessions = job_sessions(state, job)
    return bool(sessions) and all(s["stoppedAt"] is not None for s in sessions)


@dataclass
class LedgerFacts:
    """What the daemon's own ledger says (read only, from outside)."""

    evidence: str = "-"
    """``jobs.source`` of the hung job: how the daemon knows its start."""
    started_at: float | None = None
    """``jobs.started_at``: the start the daemon believes (its deadline counts from it)."""
    steps: list[tuple[float, str, str]] = field(default_factory=list)
    """(at, action, outcome) of the runaway rule's decisions, in order."""
    ticks: int = 0
    ticks_not_ok: int = 0
    """Ticks recorded not ok: blind, or a read RunPod's quota held up."""
    ticks_blind: int = 0


def read_ledger(ledger: Path, job_id: str) -> LedgerFacts:
    facts = LedgerFacts()
    if not ledger.exists():
        return facts
    try:
        with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute("SELECT source, started_at FROM jobs WHERE job_id = ?", [job_id]).fetchone()
            steps = db.execute(
                "SELECT at, action, outcome FROM decisions WHERE rule = 'runaway_job' ORDER BY id"
            ).fetchall()
            ticks = db.execute("SELECT count(*), total(ok = 0), total(blind) FROM ticks").fetchone()
    except sqlite3.Error as exc:
        facts.evidence = f"(ledger: {exc})"
        return facts
    facts.evidence = row[0] if row else "(not in jobs)"
    facts.started_at = row[1] if row else None
    facts.steps = [(float(at), str(action), str(outcome)) for at, action, outcome in steps]
    facts.ticks, facts.ticks_not_ok, facts.ticks_blind = int(ticks[0]), int(ticks[1]), int(ticks[2])
    return facts


def classify(run: Run, state: dict[str, Any]) -> None:
    """How the hung job was stopped, and when that was set off, from the simulator's records."""
    job = hung_job(state)
    run.job_status = job["status"]
    run.start = job["startedAt"]
    cancels = [c for c in state["cancelRequests"] if c["jobId"] == job["id"]]
    if cancels:
        run.cancel_at, run.cancel_status = cancels[0]["at"], cancels[0]["status"]
    zeroed = [
        c["at"]
        for c in state["endpointChanges"]
        if c["endpointId"] == HUNG_ENDPOINT_ID and c["changes"].get("workersMax", [None, None])[1] == 0
    ]
    if job["status"] == "CANCELLED" and cancels:
        run.stopped_by, run.action_at = "cancel by id", run.cancel_at
    elif job["status"] == "TIMED_OUT":
        run.stopped_by, run.action_at = "platform timeout", job["finishedAt"]
    elif job["status"] == "FAILED" and zeroed:
        run.stopped_by, run.action_at = "scale to zero", zeroed[0]
    elif job["status"] in ("IN_QUEUE", "IN_PROGRESS"):
        run.stopped_by = "not stopped"
    else:
        run.stopped_by = f"other ({job['status']}: {job['error']})"
        run.action_at = job["finishedAt"]
    sessions = job_sessions(state, job)
    stops = [s["stoppedAt"] for s in sessions]
    if sessions and all(s is not None for s in stops):
        run.billing_stop = max(stops)
    run.billed_s = sum(s["billedSeconds"] for s in sessions) if sessions else None
    ep = next(e for e in state["endpoints"] if e["id"] == HUNG_ENDPOINT_ID)
    run.idle_timeout = float(ep["idleTimeout"])


# ------------------------------------------------------------------------------------------------------------
# One run


def one_run(run: Run, keep: Path | None = None) -> Run:
    """One (simulator, daemon) pair in a temporary folder (under ``keep``, and kept, when given)."""
    with tempfile.TemporaryDirectory(prefix="bench-runaway-") as tmp:
        folder = Path(tmp)
        if keep is not None:
            folder = keep / f"{run.kind.replace(' ', '-')}-tick{run.interval:g}-seed{run.seed}"
            folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "processes.log", "w", encoding="utf-8") as out:
            sim, url = start_simulator(run.seed, out)
            daemon: subprocess.Popen[str] | None = None
            try:
                with httpx.Client(base_url=url, timeout=10) as http:
                    daemon = drive(run, folder, url, http, out)
            except Exception as exc:
                run.note = f"{type(exc).__name__}: {exc}"
            finally:
                if daemon is not None:
                    stop(daemon)
                stop(sim)
        if daemon is not None and run.start is not None:
            facts = read_ledger(folder / "ledger.sqlite3", run.job_id)
            run.evidence, steps, run.daemon_start = facts.evidence, facts.steps, facts.started_at
            run.ticks = (facts.ticks, facts.ticks_not_ok, facts.ticks_blind)
            applied = [at for at, _, outcome in steps if outcome == "applied"]
            checked = [(at, outcome) for at, _, outcome in steps if outcome in ("verified", "not_verified")]
            if applied and checked:
                run.verified_after = checked[0][0] - applied[0]
                run.verify_outcome = checked[0][1]
            elif applied:
                run.verify_outcome = "none yet"
        if run.note or (daemon is not None and daemon.returncode not in (0, None)):
            tail = (folder / "processes.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            print(f"[{run.kind} tick {run.interval:g} s seed {run.seed}] {run.note}\n{tail}", file=sys.stderr)
    return run


def drive(run: Run, folder: Path, url: str, http: httpx.Client, out: IO[str]) -> subprocess.Popen[str] | None:
    """Set the run up, start the daemon at its phase, follow the simulator until the job's billing stopped
    (and the daemon verified), then classify. Returns the daemon process (the caller stops it)."""
    job = hung_job(sim_state(http))
    run.job_id = job["id"]
    if run.kind == BASELINE:
        patched = http.patch(
            f"/v2/serverless/{HUNG_ENDPOINT_ID}",
            json={"timeout": int(run.max_execution_s * 1000)},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        patched.raise_for_status()
    config_path = folder / "config.toml"
    config_path.write_text(config_toml(folder, url, run), encoding="utf-8")
    expected_start = job["submittedAt"] + HUNG_COLD_START_S
    time.sleep(max(0.0, expected_start + run.phase_wanted - time.time()))
    launched = time.time()
    daemon = start_daemon(config_path, out)
    limit = run.max_execution_s + run.grace_s
    give_up = expected_start + limit + GIVE_UP_AFTER_S
    state = sim_state(http)
    over_at: float | None = None
    ledger = folder / "ledger.sqlite3"
    while time.time() < give_up:
        if daemon.poll() is not None:
            run.note = f"daemon exited early ({daemon.returncode})"
            break
        state = sim_state(http)
        run.load.append(os.getloadavg()[0])
        if over_at is None and is_over(state):
            over_at = time.time()
            if run.kind == BASELINE:
                break
        if over_at is not None:
            # Billing stopped; the daemon verifies its action a tick or so later: wait for that row.
            outcomes = {outcome for _, _, outcome in read_ledger(ledger, run.job_id).steps}
            waited = time.time() - over_at
            if outcomes & {"verified", "not_verified"} or waited > VERIFY_WAIT_S + run.interval:
                break
        time.sleep(STATE_POLL_S)
    classify(run, state)
    (folder / "sim_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")  # for --keep
    if run.start is not None:
        run.phase = launched - run.start
    return daemon


# ------------------------------------------------------------------------------------------------------------
# Report


def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    return f"{fmt(min(values), digits)} / {fmt(median(values), digits)} / {fmt(max(values), digits)}"


def counted(values: list[str]) -> str:
    return ", ".join(f"{name} x{n}" for name, n in sorted(Counter(values).items()))


def parallel_of(quick: bool, args: argparse.Namespace | None) -> int:
    """(daemon, simulator) pairs run at once."""
    return 2 if quick else (args.parallel if args is not None and args.parallel else 3)


def measure(quick: bool, args: argparse.Namespace | None) -> list[Run]:
    max_exec = 5.0 if quick else MAX_EXECUTION_S
    grace = 2.0 if quick else GRACE_S
    if args is not None and args.max_execution is not None:
        max_exec = args.max_execution
    if args is not None and args.grace is not None:
        grace = args.grace
    runs = 1 if quick else (args.runs if args is not None and args.runs else 5)
    base_runs = 1 if quick else (args.baseline_runs if args is not None and args.baseline_runs else 3)
    intervals = (5.0,) if quick else INTERVALS
    if args is not None and args.intervals:
        intervals = tuple(args.intervals)
    parallel = parallel_of(quick, args)
    seed0 = args.seed if args is not None and args.seed is not None else 1
    after = max(0.0, min(PHASE_AFTER_S, max_exec + grace - STARTUP_MARGIN_S))
    plan: list[Run] = []
    for index in range(max(runs, base_runs)):
        for interval in intervals:
            seed = seed0 + index
            rng = random.Random(f"{seed}/{interval}")
            phase = rng.uniform(-PHASE_BEFORE_S, after)
            if index < runs:
                plan.append(Run(DAEMON, interval, seed, phase, max_exec, grace))
            if index < base_runs:
                plan.append(Run(BASELINE, interval, seed, phase, max_exec, grace))
    keep = Path(args.keep).resolve() if args is not None and args.keep else None
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda r: one_run(r, keep), plan))


def run(quick: bool, args: argparse.Namespace | None = None) -> Result:
    results = measure(quick, args)
    first = results[0]
    max_exec, grace = first.max_execution_s, first.grace_s
    idle = first.idle_timeout
    billing_target = idle + BILLING_SLACK_S
    intervals = sorted({r.interval for r in results})
    parallel = parallel_of(quick, args)

    cancel_rows: list[list[str]] = []
    billing_rows: list[list[str]] = []
    headline: list[tuple[str, str]] = []
    for interval in intervals:
        base = [r for r in results if r.interval == interval and r.kind == BASELINE]
        base_billed = [float(r.billed_s) for r in base if r.billed_s is not None]
        for kind in (DAEMON, BASELINE):
            group = [r for r in results if r.interval == interval and r.kind == kind]
            if not group:
                continue
            stopped = counted([r.stopped_by for r in group])
            action = [r for r in group if r.action_at is not None]
            act_deadline = [r.after(r.action_at, grace=True) or 0.0 for r in action]
            act_exec = [r.after(r.action_at, grace=False) or 0.0 for r in action]
            cancelled = [r for r in group if r.stopped_by == "cancel by id"]
            refused = [r for r in cancelled if r.cancel_status is not None and r.cancel_status >= 300]
            billing = [r for r in group if r.billing_stop is not None]
            bill_deadline = [r.after(r.billing_stop, grace=True) or 0.0 for r in billing]
            bill_exec = [r.after(r.billing_stop, grace=False) or 0.0 for r in billing]
            start_errors = [e for r in group if (e := r.start_error) is not None]
            own = [e for r in cancelled if (e := r.after_own_deadline) is not None]
            if kind == DAEMON:
                all_cancelled = len(cancelled) == len(group)
                cancel_met = all_cancelled and max(act_deadline, default=99.0) <= CANCEL_TARGET_S
                cancel_verdict = "met" if cancel_met else "MISSED"
                if not all_cancelled:
                    cancel_verdict += f" ({len(group) - len(cancelled)} of {len(group)} not cancelled by id)"
                billing_met = (
                    len(billing) == len(group) and max(bill_deadline, default=99.0) <= billing_target
                )
                billing_verdict = "met" if billing_met else "MISSED"
                verified = [r.verified_after for r in group if r.verified_after is not None]
                verify = counted([r.verify_outcome for r in group])
                if verified:
                    verify += f" after {fmt(median(verified), 1)} s (med)"
            else:
                cancel_verdict = billing_verdict = "(baseline)"
                verify = "-"
            ratio = "-"
            mine = [float(r.billed_s) for r in group if r.billed_s is not None]
            if mine and base_billed:
                ratio = fmt(median(mine) / median(base_billed), 2)
            cancel_rows.append(
                [
                    kind,
                    f"{interval:g}",
                    str(len(group)),
                    stopped + (f" ({len(refused)} refused)" if refused else ""),
                    counted([r.evidence for r in group]) if kind == DAEMON else "-",
                    spread(act_deadline),
                    spread(act_exec),
                    cancel_verdict,
                    spread(start_errors) if kind == DAEMON else "-",
                    spread(own) if kind == DAEMON else "-",
                    verify,
                    f"{sum(r.ticks[1] for r in group)} of {sum(r.ticks[0] for r in group)}",
                ]
            )
            billing_rows.append(
                [
                    kind,
                    f"{interval:g}",
                    str(len(billing)),
                    spread(bill_deadline),
                    spread(bill_exec),
                    billing_verdict,
                    spread(mine, 0),
                    ratio,
                ]
            )
            if kind == DAEMON:
                how = counted([r.stopped_by for r in group])
                headline.append(
                    (
                        f"tick {interval:g} s: cancel p100 s after deadline (target {CANCEL_TARGET_S:g})",
                        f"{fmt(max(act_deadline), 2) if act_deadline else '-'} {cancel_verdict.split(' ')[0]}"
                        + ("" if how.startswith("cancel by id") and "," not in how else f" [{how}]"),
                    )
                )
                headline.append(
                    (
                        f"tick {interval:g} s: billing stop p100 s after deadline "
                        f"(target {billing_target:g})",
                        f"{fmt(max(bill_deadline), 2) if bill_deadline else '-'} {billing_verdict}",
                    )
                )
                headline.append((f"tick {interval:g} s: billed s, daemon / platform timeout", ratio))

    limit_text = f"max_execution_s {max_exec:g} + grace_s {grace:g}"
    tables = [
        Table(
            f"Limit crossed -> the job's stop set off (cancel received by the simulator; scale to zero: the "
            f"workersMax 0 change; baseline: the platform's timeout). s, min / median / p100; "
            f"deadline = start + {limit_text}",
            [
                "stopped by",
                "tick s",
                "runs",
                "how the job was stopped",
                "start evidence (ledger)",
                "after deadline",
                "after max_exec",
                f"target <= {CANCEL_TARGET_S:g} s",
                "daemon's start - true start",
                "cancel after daemon's deadline",
                "daemon's verification",
                "ticks not ok",
            ],
            cancel_rows,
            left=1,
        ),
        Table(
            "Limit crossed -> the hung worker's billing stopped (its session's stoppedAt). s, min / median "
            f"/ p100; target <= idle timeout {idle:g} + {BILLING_SLACK_S:g} s after the deadline",
            [
                "stopped by",
                "tick s",
                "runs",
                "after deadline",
                "after max_exec",
                f"target <= {billing_target:g} s",
                "billed s of the hung worker",
                "ratio to baseline",
            ],
            billing_rows,
            left=1,
        ),
        Table(
            "Every run",
            [
                "kind",
                "tick s",
                "seed",
                "phase s",
                "stopped by",
                "evidence",
                "start err s",
                "action - deadline s",
                "billing stop - deadline s",
                "billed s",
                "verified",
                "ticks (not ok)",
                "note",
            ],
            [
                [
                    r.kind,
                    f"{r.interval:g}",
                    str(r.seed),
                    fmt(r.phase, 1) if r.phase is not None else "-",
                    r.stopped_by
                    + (f" (HTTP {r.cancel_status})" if r.cancel_status not in (None, 200) else ""),
                    r.evidence,
                    fmt(r.start_error, 2) if r.start_error is not None else "-",
                    fmt(r.after(r.action_at, grace=True) or 0.0, 2) if r.action_at is not None else "-",
                    fmt(r.after(r.billing_stop, grace=True) or 0.0, 2) if r.billing_stop is not None else "-",
                    str(r.billed_s) if r.billed_s is not None else "-",
                    r.verify_outcome,
                    f"{r.ticks[0]} ({r.ticks[1]})",
                    r.note[:60],
                ]
                for r in results
            ],
            left=1,
        ),
    ]
    loads = [x for r in results for x in r.load]
    phases = [r.phase for r in results if r.phase is not None] or [0.0]
    notes = [
        f"grace_s = {grace:g} (--grace; default {GRACE_S:g}, tests/daemon/test_deadlines.py's choice), "
        f"max_execution_s = {max_exec:g}: 'after deadline' counts from start + {max_exec:g} + {grace:g} s, "
        f"'after max_exec' from start + {max_exec:g} s (= after deadline + {grace:g})",
        "times are the simulator's ground truth (GET /_sim/state): the job's startedAt, the cancel's "
        "receipt, the worker session's stoppedAt; the daemon's ledger only gives the start's evidence, the "
        "verification and the tick counts",
        "baseline: the same processes and config, the hung endpoint's executionTimeout set to "
        f"max_execution_s ({max_exec:g} s) before the job starts: the platform stops it (and its worker) "
        "by itself",
        "no [[pings.source]]: the daemon learns the job from RunPod only; 'scale to zero' = the daemon "
        "could not identify the job and set workersMax 0 (unidentified work), never counted as a cancel",
        "daemon's start - true start: the ledger's jobs.started_at minus the simulator's startedAt (its "
        "deadline is off by as much); cancel after daemon's deadline: the cancel's receipt minus that "
        "start + max_execution_s + grace_s, i.e. the timer's own delay (its 0.1 s margin included)",
        f"phase (daemon started - job started, 'Every run'): drawn in [-{PHASE_BEFORE_S:g}, "
        f"+{max(0.0, min(PHASE_AFTER_S, max_exec + grace - STARTUP_MARGIN_S)):g}] s, measured "
        f"{fmt(min(phases), 1)} to {fmt(max(phases), 1)} s",
        f"up to {parallel} (daemon, simulator) pairs ran at once on {os.cpu_count()} cores; 1-min load "
        f"average during the runs: median {fmt(median(loads), 2) if loads else '-'}, "
        f"max {fmt(max(loads), 2) if loads else '-'}",
        "the simulator's REST quota is on (60 calls a minute per key): 'ticks not ok' counts the daemon's "
        "ticks recorded not ok (blind, or a read the quota held up), from its ledger",
    ]
    for r in results:
        if r.note:
            notes.append(f"{r.kind} tick {r.interval:g} s seed {r.seed}: {r.note}")
    notes.append(f"command: .venv/bin/python -m bench.{NAME} {command_args()}".rstrip())
    return Result(NAME, TITLE, quick, tables, headline, notes)


def command_args() -> str:
    """This process's options, without ``--result-file`` (the runner's temporary file)."""
    argv = sys.argv[1:]
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--result-file":
            skip = True
        elif not arg.startswith("--result-file="):
            shown.append(arg)
    return " ".join(shown)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, help="daemon runs per tick interval (default 5; --quick 1)")
    parser.add_argument("--baseline-runs", type=int, help="baseline runs per tick interval (default 3)")
    parser.add_argument("--intervals", type=float, nargs="+", help="tick intervals, s (default 1 5 15)")
    parser.add_argument("--grace", type=float, help=f"policy grace_s (default {GRACE_S:g}; --quick 2)")
    parser.add_argument(
        "--max-execution", type=float, help=f"policy max_execution_s (default {MAX_EXECUTION_S:g}; --quick 5)"
    )
    parser.add_argument("--parallel", type=int, help="(daemon, simulator) pairs at once (default 3)")
    parser.add_argument("--seed", type=int, help="first seed (default 1)")
    parser.add_argument(
        "--keep", help="keep each run's folder (config, ledger, processes.log) under this one"
    )


if __name__ == "__main__":
    sys.exit(module_main(NAME, run, add_args=add_args))
