"""A fleet of many endpoints under RunPod's REST quota (60 calls a minute): the quota-aware reads keep the
daemon inside it, every tick, without going blind, and a runaway in the fleet is still cancelled on time.

WHY: the REST v2 quota is per API key and tiny (OAS2's example policy, 60 a minute, 5 calls per 5 s tick),
while a naive tick reads one REST ``/workers`` list per endpoint: 100 endpoints would be 100 calls a tick,
the quota gone in the first tick and every later tick blind or held up. The daemon reads ``/health`` (the
job runtime's quota, not REST) for every busy endpoint every tick and for idle ones in turns beyond
``IDLE_HEALTH_READS_PER_TICK``, REST ``/workers`` only where ``/health`` counts workers, and spends what a token bucket at 80 % of the quota allows on what can wait
(watchdog/daemon/fetch.py). This test runs the real daemon against the in-process simulator with the
simulator's quota ON and measured on the test's ManualClock (``RateLimits(clock=clock.now)``), for 30
simulated minutes of 5 s ticks, and counts every call the simulator answered.

The deadline timer of ``Daemon.run`` (``_watch_deadlines``) is played by the loop: when a runaway deadline
falls before the next tick, the clock is set to it and ``check_deadlines`` is called, as the timer would.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runpod_sim.app import REST_V2_PREFIXES, RateLimits
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import FLEET_ENDPOINT_PREFIX, fleet_busy_count
from runpod_sim.state import JobPolicy
from sim_harness.wiring import sim_config, sim_secrets, sim_transport
from watchdog.clock import ManualClock, from_iso
from watchdog.daemon.fetch import IDLE_HEALTH_READS_PER_TICK
from watchdog.daemon.service import Daemon
from watchdog.vocabulary import Action, Outcome

pytestmark = pytest.mark.slow

START = from_iso("2026-06-15T12:00:00Z")
TICK_S = 5.0
MINUTES = 30
ENDPOINTS = 120
QUOTA = RateLimits()
"""What a user gets: 60 REST v2 calls per 60 s window (the runtime's own limits stay the defaults too)."""
POLICY = {"max_execution_s": 60.0, "grace_s": 10.0, "required_execution_timeout_s": 3600}
"""A 70 s limit, below the fleet's 120 s execution timeout: the daemon, not the platform, must stop it."""
RUNAWAY_AT_S = 600.0
"""When the hung job is submitted (10 minutes in: the fleet's reads are in their steady state)."""
RUNAWAY_ENDPOINT = f"{FLEET_ENDPOINT_PREFIX}{ENDPOINTS // 2:05d}"
"""An endpoint that was idle until then (the busy ones are the first few)."""


@dataclass(frozen=True)
class Call:
    at: float
    method: str
    path: str
    status: int

    @property
    def rest(self) -> bool:
        segments = self.path.strip("/").split("/")
        return len(segments) >= 2 and segments[0] == "v2" and segments[1] in REST_V2_PREFIXES


class Recording(httpx.AsyncBaseTransport):
    """The simulator's transport, recording every call it answered (simulated time, path, status)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: ManualClock) -> None:
        self.inner, self.clock = inner, clock
        self.calls: list[Call] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.calls.append(Call(self.clock.now(), request.method, request.url.path, response.status_code))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_fleet_under_the_rest_quota_is_never_blind_and_a_runaway_is_cancelled_on_time(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    sim = build_simulator(f"fleet-{ENDPOINTS}", clock=clock, seed=1)
    ids = sorted(endpoint.id for endpoint in sim.endpoints())
    assert len(ids) == ENDPOINTS and RUNAWAY_ENDPOINT in ids
    quota = RateLimits(clock=clock.now)  # the defaults, counted in simulated seconds
    assert (quota.rest_per_window, quota.rest_window_s) == (QUOTA.rest_per_window, QUOTA.rest_window_s)
    transport = Recording(sim_transport(sim, rate_limits=quota), clock)
    config = sim_config(tmp_path, policy=POLICY, runpod={"billing_interval_s": 300.0})
    assert config.runpod.poll_interval_s == TICK_S and not config.pings.source  # the shipped reads

    daemon = Daemon(config, sim_secrets(), clock=clock, transport=transport)
    await daemon.open()
    outcomes = []
    health_by_tick: list[set[str]] = []
    cancels = []
    job = None
    try:
        end = START + MINUTES * 60
        while clock.now() < end:
            if job is None and clock.now() - START >= RUNAWAY_AT_S:
                job = sim.submit(
                    RUNAWAY_ENDPOINT,
                    {"audio_url": "https://example.invalid/a.ogg", "sim": {"hang": True}},
                    policy=JobPolicy(ttl_ms=86_400_000),
                    source="batch-transcriber",
                    tier="paid",
                )
            sim.sync()
            before = len(transport.calls)
            outcome = await daemon.tick()
            outcomes.append(outcome)
            health_by_tick.append(
                {
                    c.path.split("/")[2]
                    for c in transport.calls[before:]
                    if c.path.endswith("/health") and c.status == 200
                }
            )
            next_tick = clock.now() + TICK_S
            # the deadline timer: any deadline due before the next tick fires at its time
            while daemon.state.deadlines and daemon.state.deadlines[0].at < next_tick:
                clock.set(max(clock.now(), daemon.state.deadlines[0].at))
                sim.sync()
                fired = await daemon.check_deadlines()
                cancels += [
                    r for r in fired.rows if r.action == Action.CANCEL_JOB and r.outcome == Outcome.APPLIED
                ]
            clock.set(next_tick)
    finally:
        await daemon.close()

    ticks = len(outcomes)
    assert ticks == MINUTES * 60 / TICK_S

    # 1. no tick is blind, and none was held up by the quota (ok = complete and not waiting on RunPod)
    assert [o.tick_id for o in outcomes if o.blind] == []
    assert [(o.tick_id, o.error) for o in outcomes if not o.ok] == []

    # 2. the simulator never refused a call, and no quota window ever counted more REST calls than it allows
    assert Counter(c.status for c in transport.calls if c.status == 429) == Counter()
    rest = [c for c in transport.calls if c.rest]
    per_window = Counter(math.floor(c.at / QUOTA.rest_window_s) for c in rest)
    assert max(per_window.values()) <= QUOTA.rest_per_window, sorted(per_window.values())
    # the planner's own share: 80 % of the quota for reads (plus the few calls an action or a deadline
    # takes): far below one REST read per endpoint per tick (ENDPOINTS x 12 = 1,440 a minute)
    assert len(rest) <= QUOTA.rest_per_window * MINUTES

    # 3. /health (the runtime API, not the REST quota): idle endpoints beyond IDLE_HEALTH_READS_PER_TICK
    # take turns, yet no endpoint's /health is ever older than the stale-data bound's last look
    stale_s = config.policy.stale_after_s
    read_at: dict[str, float] = {}
    oldest = []
    for i, seen in enumerate(health_by_tick):
        at = START + i * TICK_S
        read_at.update(dict.fromkeys(seen, at))
        assert set(read_at) == set(ids), (i, sorted(set(ids) - set(read_at))[:5])
        oldest.append(max(at - read_at[e] for e in ids))
    assert max(oldest) <= stale_s - TICK_S, max(oldest)
    assert max(oldest) > 0  # idle ones did wait their turn: fewer reads than endpoints x ticks
    per_tick = [len(seen) for seen in health_by_tick[1:]]
    assert max(per_tick) < ENDPOINTS and min(per_tick) >= IDLE_HEALTH_READS_PER_TICK, sorted(set(per_tick))
    # ... and the status publishes each endpoint's data age and the quota's use
    status = outcomes[-1].status
    assert status is not None
    ages = [ep.data_age_s for ep in status.endpoints]
    assert 0 < max(ages) <= stale_s - TICK_S and min(ages) == 0, sorted(set(ages))
    assert status.rest_quota_per_minute == QUOTA.rest_per_window * 60 / QUOTA.rest_window_s
    assert status.last_tick_at is not None
    last_minute = [c for c in rest if status.last_tick_at - 60 < c.at <= status.last_tick_at]
    assert 0 < status.rest_calls_last_minute <= len(last_minute) <= QUOTA.rest_per_window, len(last_minute)
    # ... and the busy endpoints' workers are listed (REST) often enough to be counted
    busy = ids[: fleet_busy_count(ENDPOINTS)]
    workers_reads: defaultdict[str, int] = defaultdict(int)
    for c in rest:
        parts = c.path.strip("/").split("/")
        if len(parts) == 4 and parts[1] == "serverless" and parts[3] == "workers":
            workers_reads[parts[2]] += 1
    assert all(workers_reads[endpoint_id] > 0 for endpoint_id in busy), dict(workers_reads)

    # 4. the runaway in the fleet is cancelled by id, within its deadline + one tick
    assert job is not None
    final = sim.job(RUNAWAY_ENDPOINT, job.id)
    assert final.status == "CANCELLED", final.status
    assert final.started_at is not None
    assert [r.job_id for r in cancels] == [job.id]
    deadline = final.started_at + POLICY["max_execution_s"] + POLICY["grace_s"]
    assert deadline <= cancels[0].at <= deadline + TICK_S, cancels[0].at - deadline
    # nothing else in the (compliant) fleet was touched
    acted = {(r.endpoint_id, r.action) for o in outcomes for r in o.actions}
    assert acted <= {(RUNAWAY_ENDPOINT, Action.CANCEL_JOB)}, acted
