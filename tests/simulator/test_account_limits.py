"""REST v2 ``GET /v2/account/limits`` and the spend rate RunPod checks when a worker starts.

RunPod (docs "Get account limits", 2026-11-18): ``spendRate`` is "the hourly cap checked when a Pod or
serverless worker starts. The start is refused when the hourly cost of running Pods and serverless workers
plus the new one's cost would exceed it"; ``serverlessWorkers`` is the sum of ``workersMax``. So the cap
never stops a running worker. Prices: an A6000 flex worker costs 0.00034 USD/s = 1.224 USD/h.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from runpod_sim.engine import DEFAULT_SPEND_RATE_USD_PER_HR, SimOptions, Simulator
from runpod_sim.registry import build_simulator
from runpod_sim.scenarios import HUNG_ENDPOINT_ID, STEADY_ENDPOINT_ID, ScenarioParams
from runpod_sim.state import SimEndpoint
from watchdog.clock import ManualClock, from_iso

START = from_iso("2026-06-15T12:00:00Z")
A6000_PER_HR = 0.00034 * 3600
EP = "ep-cap"


async def test_limits_route_matches_the_contract_and_the_account(
    oas: Any, client: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    response = await client.get("/v2/account/limits")
    assert response.status_code == 200, response.text
    body = response.json()
    oas.check(body, "AccountLimits")
    assert body == {
        "spendRate": {"limit": DEFAULT_SPEND_RATE_USD_PER_HR, "current": 0.0},
        "serverlessWorkers": {"limit": 5, "current": 3 + 3},  # ep-alpha and ep-ext, workersMax 3 each
    }
    assert response.headers["RateLimit-Policy"] == '"minute";q=60;w=60'

    await client.post("/v2/ep-alpha/run", json={"input": {"sim": {"duration_s": 60}}})
    clock.advance(2.5)  # the cold start ends: one A6000 runs the job
    await client.patch("/v2/serverless/ep-ext", json={"workers": {"max": 1}})
    body = (await client.get("/v2/account/limits")).json()
    oas.check(body, "AccountLimits")
    assert body["spendRate"]["current"] == pytest.approx(A6000_PER_HR)
    assert body["serverlessWorkers"]["current"] == 3 + 1


async def test_limits_route_errors(oas: Any, client: httpx.AsyncClient) -> None:
    oas.problem(await client.get("/v2/account/limits?bogus=1"), 400)
    oas.problem(await client.post("/v2/account/limits"), 405)
    oas.problem(await client.get("/v2/account/limits", headers={"Authorization": "Bearer wrong"}), 401)
    oas.problem(await client.get("/v2/account/other"), 404)


@pytest.mark.parametrize("options", [SimOptions(spend_rate_usd_per_hr=None)])
async def test_no_cap_is_a_null_limit(oas: Any, client: httpx.AsyncClient) -> None:
    body = (await client.get("/v2/account/limits")).json()
    oas.check(body, "AccountLimits")
    assert body["spendRate"]["limit"] is None


def _capped(cap: float | None, **endpoint: Any) -> tuple[Simulator, ManualClock]:
    clock = ManualClock(START)
    sim = Simulator(clock=clock, options=SimOptions(spend_rate_usd_per_hr=cap))
    fields: dict[str, Any] = {
        "id": EP,
        "name": "capped",
        "workers_max": 3,
        "cold_start_s": 10.0,
        "idle_timeout": 5,
        "scaler_type": "REQUEST_COUNT",
        "scaler_value": 1,
    }
    fields.update(endpoint)
    sim.add_endpoint(SimEndpoint(**fields))
    return sim, clock


def test_a_second_worker_is_refused_while_the_first_runs_and_starts_once_it_stops() -> None:
    sim, clock = _capped(2.0)
    first = sim.submit(EP, {"sim": {"duration_s": 30}})
    second = sim.submit(EP, {"sim": {"duration_s": 30}})
    assert [w.state for w in sim.workers(EP)] == ["INITIALIZING"]  # 1.22 + 1.22 USD/h > 2 USD/h
    assert sim.spend_rate_refusals == 1
    refused = [r for r in sim.access_records if r["kind"] == "worker" and r["status"] == "REFUSED"]
    assert len(refused) == 1 and "spend rate" in refused[0]["reason"]
    assert sim.account_limits().current_spend_per_hr == pytest.approx(A6000_PER_HR)
    clock.advance(10 + 30)  # the first job ends; its worker idles (still running, still counted)
    sim.sync()
    assert first.status == "COMPLETED" and second.status == "IN_PROGRESS"  # the same worker took it
    assert len(sim.workers(EP)) == 1
    third = sim.submit(EP, {"sim": {"duration_s": 1}})
    fourth = sim.submit(EP, {"sim": {"duration_s": 1}})
    assert len(sim.workers(EP)) == 1 and sim.health(EP).in_queue == 2
    clock.advance(30 + 1 + 1)  # the worker ends `second`, then runs `third` and `fourth` one by one
    sim.sync()
    assert (third.status, fourth.status) == ("COMPLETED", "COMPLETED")
    assert len(sim.sessions(EP)) == 1


def test_a_stopped_worker_frees_room_for_a_refused_start_on_another_endpoint() -> None:
    sim, clock = _capped(2.0, workers_max=1)
    sim.add_endpoint(SimEndpoint(id="ep-other", name="other", workers_max=1, cold_start_s=10.0))
    sim.submit(EP, {"sim": {"duration_s": 30}})
    waiting = sim.submit("ep-other", {"sim": {"duration_s": 1}})
    assert sim.workers("ep-other") == [] and waiting.status == "IN_QUEUE"
    clock.advance(10 + 30 + 5)  # cold start, job, idle tail: the first worker stops...
    sim.sync()
    assert sim.workers(EP) == []
    clock.advance(10 + 1)  # ...and the refused endpoint gets its worker at once
    sim.sync()
    assert waiting.status == "COMPLETED" and waiting.delay_time_ms == 55_000


def test_a_running_worker_is_never_stopped_by_a_lower_cap() -> None:
    sim, clock = _capped(None, workers_max=2, execution_timeout_ms=None)
    sim.submit(EP, {"sim": {"hang": True}})
    sim.submit(EP, {"sim": {"hang": True}})
    clock.advance(10)
    assert [w.state for w in sim.workers(EP)] == ["RUNNING", "RUNNING"]
    sim.options.spend_rate_usd_per_hr = 0.5  # now far below what runs
    clock.advance(3600)
    sim.sync()
    assert [w.state for w in sim.workers(EP)] == ["RUNNING", "RUNNING"]
    assert sim.account_limits().current_spend_per_hr == pytest.approx(2 * A6000_PER_HR)
    assert sim.spend_rate_refusals == 0


def test_a_crash_looping_worker_restart_is_a_start_and_is_checked() -> None:
    sim, clock = _capped(2.0, workers_max=1, crash_loop=True)
    sim.submit(EP, {"n": 1})
    clock.advance(10)  # the cold start ends in a failed health check: UNHEALTHY (unbilled, not running)
    assert [w.state for w in sim.workers(EP)] == ["UNHEALTHY"]
    sim.options.spend_rate_usd_per_hr = 1.0
    clock.advance(sim.options.unhealthy_restart_s)
    sim.sync()
    assert sim.workers(EP) == [] and sim.spend_rate_refusals == 1


def test_active_workers_count_at_the_active_price() -> None:
    sim, _ = _capped(2.0, workers_min=1, workers_max=3)
    (active,) = sim.workers(EP)
    assert active.role == "active"
    assert sim.account_limits().current_spend_per_hr == pytest.approx(0.00024 * 3600)
    sim.submit(EP, {"n": 1})  # the active worker will take it
    sim.submit(EP, {"n": 2})  # a second worker is wanted: 0.864 + 1.224 = 2.088 > 2 USD/h, refused
    assert len(sim.workers(EP)) == 1 and sim.spend_rate_refusals == 1


def test_an_external_worker_over_the_cap_is_not_admitted_until_the_cap_allows() -> None:
    sim, _ = _capped(0.5, worker_kind="external", workers_max=1)
    job = sim.submit(EP, {"n": 1})
    assert sim.take_job(EP, "pod-1") is None
    assert sim.workers(EP) == [] and sim.worker_stopped("pod-1") and job.status == "IN_QUEUE"
    assert sim.take_job(EP, "pod-1") is None and sim.spend_rate_refusals == 1  # one refusal logged
    sim.options.spend_rate_usd_per_hr = 2.0
    assert sim.take_job(EP, "pod-1") is job and not sim.worker_stopped("pod-1")


def test_scenario_params_and_build_simulator_set_the_cap() -> None:
    clock = ManualClock(START)
    capped = build_simulator("hung-job", clock=clock, params=ScenarioParams(spend_rate_usd_per_hr=2.0))
    assert capped.options.spend_rate_usd_per_hr == 2.0
    clock.advance(16)  # the hung job's worker (A6000) runs; a translation request then needs a second one
    capped.submit(STEADY_ENDPOINT_ID, {"sim": {"duration_s": 1}})
    assert capped.workers(STEADY_ENDPOINT_ID) == [] and capped.spend_rate_refusals == 1
    assert [w.state for w in capped.workers(HUNG_ENDPOINT_ID)] == ["RUNNING"]
    free = build_simulator("steady", clock=clock, params=ScenarioParams(spend_rate_usd_per_hr=math.inf))
    assert free.options.spend_rate_usd_per_hr is None
    default = build_simulator("steady", clock=clock)
    assert default.options.spend_rate_usd_per_hr == DEFAULT_SPEND_RATE_USD_PER_HR
