"""Which endpoints' ``/health`` a tick reads (:func:`watchdog.daemon.fetch.health_reads`): every endpoint
that is not idle, every tick; idle ones all while they are few, in turns beyond
``IDLE_HEALTH_READS_PER_TICK``, and never one left older than the stale-data bound.

WHY: each HTTP call costs about 1.5 ms of CPU; reading 1,000 endpoints' ``/health`` every 5 s took 1.9 s
of CPU a tick on this machine (target 0.5 s). The turns are simulated here tick by tick on the pure
function, with the same bookkeeping the tick does (what was read now has age 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from watchdog.daemon.fetch import IDLE_HEALTH_READS_PER_TICK, ReadPlan, health_reads, idle_health_turns
from watchdog.models import Health, Worker
from watchdog.vocabulary import WorkerStatus

POLL_S = 5.0
STALE_S = 30.0
START = 1_781_000_000.0
IDLE = Health(jobs_completed=40, jobs_failed=1)
"""Counters from the past, nothing now: idle."""


def run_ticks(
    ids: list[str],
    health: dict[str, Health],
    ticks: int,
    *,
    urgent: frozenset[str] = frozenset(),
    carrying_workers: Mapping[str, tuple[Worker, ...]] | None = None,
) -> tuple[list[set[str]], dict[str, float]]:
    """Each tick's reads over ``ticks`` ticks from a first tick that reads everything, and the last read
    time of each endpoint."""
    read_at: dict[str, float] = {}
    seen: list[set[str]] = []
    for tick in range(ticks):
        now = START + tick * POLL_S
        known = {e: health[e] for e in read_at}
        read, carried = health_reads(
            ids,
            ReadPlan(
                stale_after_s=STALE_S,
                poll_interval_s=POLL_S,
                last_health=known,
                health_read_at=dict(read_at),
                urgent_endpoints=urgent,
                last_workers=carrying_workers or {},
            ),
            now,
        )
        assert set(read).isdisjoint(carried) and set(read) | set(carried) == set(ids)
        assert all(carried[e] == now - read_at[e] for e in carried)
        read_at.update(dict.fromkeys(read, now))
        seen.append(set(read))
    return seen, read_at


def test_a_small_fleet_reads_every_endpoint_every_tick() -> None:
    ids = [f"ep-{i:03d}" for i in range(10)]
    seen, _ = run_ticks(ids, dict.fromkeys(ids, IDLE), 12)
    assert all(s == set(ids) for s in seen)


def test_a_large_idle_fleet_takes_turns_within_the_stale_bound() -> None:
    ids = [f"ep-{i:04d}" for i in range(1000)]
    seen, _ = run_ticks(ids, dict.fromkeys(ids, IDLE), 60)
    assert seen[0] == set(ids)  # never read: all of them
    turns = math.ceil(1000 * POLL_S / (STALE_S - POLL_S))
    assert turns == idle_health_turns(1000, POLL_S, STALE_S) == 200
    assert [len(s) for s in seen[1:]] == [turns] * 59  # a steady rotation: 200 a tick, no burst
    last: dict[str, float] = {}
    for tick, read in enumerate(seen):
        now = START + tick * POLL_S
        last.update(dict.fromkeys(read, now))
        # the next tick's look still finds every endpoint's /health within the bound
        assert max(now + POLL_S - at for at in last.values()) <= STALE_S


def test_busy_urgent_and_worker_carrying_endpoints_are_read_every_tick() -> None:
    ids = [f"ep-{i:04d}" for i in range(500)]
    health = dict.fromkeys(ids, IDLE)
    health["ep-0007"] = Health(jobs_in_queue=1)
    health["ep-0008"] = Health(workers_initializing=1)
    health["ep-0009"] = Health(jobs_in_progress=1)
    worker = Worker(id="w-1", status=WorkerStatus.IDLE)
    seen, _ = run_ticks(
        ids,
        health,
        20,
        urgent=frozenset({"ep-0100"}),
        carrying_workers={"ep-0200": (worker,)},
    )
    always = {"ep-0007", "ep-0008", "ep-0009", "ep-0100", "ep-0200"}
    assert all(always <= s for s in seen)
    assert all(len(s) == len(always) + IDLE_HEALTH_READS_PER_TICK for s in seen[1:])


def test_after_a_gap_every_endpoint_past_the_bound_is_read_at_once() -> None:
    """Blind ticks read nothing: what would outlive the bound by the next tick is read whatever the turns."""
    ids = [f"ep-{i:04d}" for i in range(1000)]
    long_ago = START - 3600
    read, carried = health_reads(
        ids,
        ReadPlan(
            stale_after_s=STALE_S,
            poll_interval_s=POLL_S,
            last_health=dict.fromkeys(ids, IDLE),
            health_read_at={e: long_ago if e < "ep-0300" else START - 10 for e in ids},
        ),
        START,
    )
    assert sorted(read)[:300] == ids[:300] and len(read) == 300
    assert set(carried) == set(ids[300:]) and set(carried.values()) == {10.0}
