"""Ledgers of simulated months for the report tests, built once per test session.

Two kinds:

- :func:`steady_month`: the ``steady`` scenario lived for a whole month (30 days of June 2026) by the
  simulator on a ManualClock (0.2 CPU s), then written into a real ledger with ``Ledger.record_tick`` the
  way a daemon polling every few seconds would have recorded it: one tick per hour, every worker session
  (cold start, running, idle seconds), every job (start, finish, queue delay, execution time, worker-log
  evidence), requests per minute with their tier, the live estimate per hour (session seconds × price +
  the daemon's 0.5 s rounding term per ended session) and RunPod's hourly billing (``sim.billing``), except
  the last ``UNBILLED_HOURS`` hours (billing lags: those hours have the estimate only). The simulator's own
  record (``sim.billed_usd_total()``, ``sim.sessions()``, the jobs) is kept beside it as ground truth.
  Driving the real daemon for a month takes minutes; this takes about a second.
- :func:`daemon_month`: the REAL daemon (in process, on the simulator's ManualClock) against the
  ``hung-job`` scenario in dry-run, with its access log: what the daemon itself writes, incidents and
  would-have-saved money included.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from runpod_sim.engine import Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import MONTH_S, STEADY_ENDPOINT_ID
from runpod_sim.state import BilledSession, SimJob
from sim_harness.wiring import daemon_against
from watchdog.clock import ManualClock, from_iso
from watchdog.ledger import (
    AccountingInterval,
    Alert,
    BilledSpend,
    ConfigObservation,
    DecisionStep,
    JobUpdate,
    Ledger,
    SpendAccrual,
    TickRecord,
    TrafficCount,
    WorkerUpdate,
)
from watchdog.money import EXPECTED_SESSION_ROUNDING_S
from watchdog.vocabulary import Outcome

START = from_iso("2026-06-01T00:00:00Z")
MONTH = "2026-06"
HOUR_S = 3600.0
UNBILLED_HOURS = 6
"""The month's last hours have no billing yet (RunPod's bill lags): the report counts the estimate there."""
TRAFFIC_SOURCE = "translate-app"
SAVED_USD = 0.42
"""The one synthetic decision's saving (an idle leak stopped in enforce), so the savings views have a row."""


@dataclass
class SteadyMonth:
    ledger_path: Path
    sim: Simulator
    jobs: list[SimJob]
    """Every job that finished in the month (the simulator's record), in finishing order."""
    sessions: list[BilledSession]
    billed_usd: float
    """sim.billed_usd_total(): the ground truth."""
    billed_hours_usd: float
    """What sim.billing reported for the hours written as billed."""
    unbilled_estimate_usd: float
    """The estimate written for the unbilled last hours."""
    price: float
    free_jobs: int


def _session_seconds_in(session: BilledSession, start: float, end: float) -> float:
    stop = session.stopped_at if session.stopped_at is not None else START + MONTH_S
    return max(0.0, min(stop, end) - max(session.started_at, start))


def build_steady_month(directory: Path, *, seed: int = 0, with_jobs: bool = True) -> SteadyMonth:
    """``with_jobs=False`` leaves the jobs out: a ledger whose daemon saw the traffic counts only."""
    directory.mkdir(parents=True, exist_ok=True)
    clock = ManualClock(START)
    sim = build_simulator("steady", clock=clock, seed=seed)
    jobs: list[SimJob] = []
    sim.add_job_listener(jobs.append)
    clock.advance(MONTH_S)
    sim.sync()
    sessions = sim.sessions()
    price = sim.prices.usd_per_s(sessions[0].gpu_type_id)
    endpoint = sim.endpoint(STEADY_ENDPOINT_ID)
    hours = [START + i * HOUR_S for i in range(int(MONTH_S // HOUR_S))]
    billed_until = hours[-UNBILLED_HOURS]
    buckets = sim.billing(start=START, end=billed_until, bucket_s=int(HOUR_S))
    billed_by_hour = {b.start: b.total_usd for b in buckets}
    sessions_by_hour: dict[float, list[BilledSession]] = defaultdict(list)
    for session in sessions:
        sessions_by_hour[session.started_at - session.started_at % HOUR_S].append(session)
    jobs_by_hour: dict[float, list[SimJob]] = defaultdict(list)
    traffic: dict[float, dict[float, int]] = defaultdict(lambda: defaultdict(int))
    for job in jobs:
        jobs_by_hour[job.submitted_at - job.submitted_at % HOUR_S].append(job)
        minute = job.submitted_at - job.submitted_at % 60
        traffic[minute - minute % HOUR_S][minute] += 1
    free = sum(1 for job in jobs if job.tier == "free")
    unbilled_estimate = 0.0
    ledger_path = directory / "ledger.sqlite3"
    for stale in directory.glob("ledger.sqlite3*"):
        stale.unlink()  # always a fresh ledger: its accounting chain starts with this month
    with Ledger.open(ledger_path) as ledger:
        for index, hour in enumerate(hours):
            end = hour + HOUR_S
            seconds = sum(_session_seconds_in(s, hour, end) for s in sessions)
            ended = sum(1 for s in sessions if s.stopped_at is not None and hour <= s.stopped_at < end)
            estimate = (seconds + EXPECTED_SESSION_ROUNDING_S * ended) * price
            estimates = (SpendAccrual(STEADY_ENDPOINT_ID, hour, estimate, seconds),) if seconds > 0 else ()
            if hour >= billed_until:
                unbilled_estimate += estimate
            workers = tuple(
                WorkerUpdate(
                    worker_id=s.worker_id,
                    endpoint_id=s.endpoint_id,
                    status="IDLE",
                    gpu_type_id=s.gpu_type_id,
                    initializing_s=s.initializing_s,
                    running_s=s.busy_s,
                    idle_s=s.idle_s,
                    usd=(s.initializing_s + s.busy_s + s.idle_s + EXPECTED_SESSION_ROUNDING_S) * price,
                    ended_at=s.stopped_at,
                )
                for s in sessions_by_hour.get(hour, ())
            )
            job_rows = tuple(
                JobUpdate(
                    job_id=j.id,
                    endpoint_id=j.endpoint_id,
                    status=j.status,
                    source="worker_log",
                    worker_id=j.worker_id,
                    started_at=j.started_at,
                    finished_at=j.finished_at,
                    delay_ms=j.delay_time_ms,
                    execution_ms=j.execution_time_ms,
                )
                for j in jobs_by_hour.get(hour, ())
                if with_jobs
            )
            counts = tuple(
                TrafficCount(STEADY_ENDPOINT_ID, TRAFFIC_SOURCE, minute, requests=n)
                for minute, n in sorted(traffic.get(hour, {}).items())
            )
            billed = (
                (BilledSpend(STEADY_ENDPOINT_ID, hour, billed_by_hour[hour]),)
                if hour in billed_by_hour
                else ()
            )
            configs = ()
            alerts: tuple[Alert, ...] = ()
            decisions: tuple[DecisionStep, ...] = ()
            if index == 0:
                configs = (
                    ConfigObservation(
                        endpoint_id=endpoint.id,
                        name=endpoint.name,
                        workers_min=endpoint.workers_min,
                        workers_max=endpoint.workers_max,
                        idle_timeout_s=endpoint.idle_timeout,
                        execution_timeout_ms=endpoint.execution_timeout_ms,
                        gpu_pools=(endpoint.gpu_ids,),
                        scaler_type=endpoint.scaler_type,
                        scaler_value=endpoint.scaler_value,
                    ),
                )
            if index == 30:
                alerts = (
                    Alert(
                        key=f"cost1000:{STEADY_ENDPOINT_ID}:2026-06-02",
                        kind="cost",
                        severity="warning",
                        text=f"{endpoint.name} ({STEADY_ENDPOINT_ID}): cost per 1000 requests above $3",
                        eur=None,
                    ),
                )
                key = f"idle_leak:scale_to_zero:{STEADY_ENDPOINT_ID}"
                decisions = tuple(
                    DecisionStep(
                        at=end - 1,
                        rule="idle_leak",
                        action="scale_to_zero",
                        mode="enforce",
                        outcome=outcome,
                        reason="a worker stayed idle past its idle timeout",
                        endpoint_id=STEADY_ENDPOINT_ID,
                        saved_usd=SAVED_USD if outcome == Outcome.APPLIED else 0.0,
                        dedupe_key=key,
                    )
                    for outcome in (Outcome.INTENDED, Outcome.APPLIED, Outcome.VERIFIED)
                )
            meta = {}
            if index == len(hours) - 1:
                tiers = {"free": free, "tiered": len(jobs)}
                meta["daemon_state"] = json.dumps({"month": MONTH, "tiers": tiers})
            ledger.record_tick(
                TickRecord(
                    started_at=hour,  # the hour's rows are stamped with its start (sessions begin in it)
                    finished_at=hour,
                    ok=True,
                    endpoints=1,
                    accounting=AccountingInterval(hour, end),
                    estimates=estimates,
                    billed=billed,
                    configs=configs,
                    workers=workers,
                    jobs=job_rows,
                    traffic=counts,
                    decisions=decisions,
                    alerts=alerts,
                    meta=meta,
                )
            )
            if alerts:
                ledger.mark_alert_sent(alerts[0].key, end)
        ledger.checkpoint()
    return SteadyMonth(
        ledger_path=ledger_path,
        sim=sim,
        jobs=jobs,
        sessions=sessions,
        billed_usd=sim.billed_usd_total(),
        billed_hours_usd=sum(billed_by_hour.values()),
        unbilled_estimate_usd=unbilled_estimate,
        price=price,
        free_jobs=free,
    )


@functools.cache
def steady_month(directory: Path, *, with_jobs: bool = True) -> SteadyMonth:
    """The steady month, built once per directory (i.e. once per test session)."""
    return build_steady_month(directory, with_jobs=with_jobs)


@dataclass
class DaemonMonth:
    ledger_path: Path
    sim: Simulator
    config_overrides: dict[str, dict[str, object]]
    end: float


DAEMON_START = from_iso("2026-06-15T12:00:00Z")


async def _live_daemon(directory: Path) -> DaemonMonth:
    clock = ManualClock(DAEMON_START)
    log = directory / "access.log"
    sim = build_simulator("hung-job", clock=clock, seed=1, access_log_path=str(log))
    clock.advance(60)  # the job already hangs when the daemon starts
    overrides: dict[str, dict[str, object]] = {"policy": {"mode": "dry-run"}}
    async with daemon_against(sim, directory, log_path=log, **overrides) as daemon:
        for _ in range(60):  # five minutes at the daemon's 5 s poll: the runaway is proposed
            await daemon.tick()
            clock.advance(5)
        for _ in range(6 * 60):  # then six hours at one tick a minute
            await daemon.tick()
            clock.advance(60)
        end = clock.now()
    return DaemonMonth(directory / "ledger.sqlite3", sim, overrides, end)


@functools.cache
def daemon_month(directory: Path) -> DaemonMonth:
    """The real daemon's ledger of a hung job in dry-run (built once per directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_live_daemon(directory))


def write_config(directory: Path, ledger_path: Path, extra: str = "") -> Path:
    """A config file whose ledger is ``ledger_path`` (the commands are run the way a user runs them)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(f'[ledger]\npath = "{ledger_path}"\n{extra}', encoding="utf-8")
    return path
