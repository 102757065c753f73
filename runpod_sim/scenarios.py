"""Named situations the watchdog must handle, each one a reproducible simulated RunPod account.

Why named scenarios: the demo (``runpod-watchdog simulate --scenario X``), the acceptance tests and the
benchmarks must all talk about the *same* incident. Each scenario installs endpoints, client traffic and
timed events into a ``Simulator``; with the same seed it produces the same month, request for request.

All figures are chosen against the non-profit's budget: 20 EUR/month ≈ 23.2 USD, of which ~10 USD is fixed
cost, leaving ~13 USD of GPU time, i.e. about 39,000 A6000 flex seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Protocol

from runpod_sim.engine import Simulator
from runpod_sim.state import BilledSession, JobPolicy, SimEndpoint
from watchdog.clock import month_start

MONTH_S = 30 * 86_400
"""A billing month as the scenarios count it (30 days)."""
A6000 = "NVIDIA RTX A6000"
STEADY_ENDPOINT_ID = "ep-llm-mos"
STEADY_REQUESTS_PER_MONTH = 3000
STEADY_MEAN_SERVICE_S = 8.5
STEADY_SERVICE_SPREAD_S = 1.0
STEADY_FREE_SHARE = 0.3
HUNG_ENDPOINT_ID = "ep-asr-hung"
FLOOD_ENDPOINT_ID = "ep-tts-warm"
DRIFT_ENDPOINT_ID = "ep-img-drift"
CRASH_ENDPOINT_ID = "ep-ocr-crash"
FLEET_ENDPOINT_PREFIX = "ep-fleet"
"""fleet: endpoint ids are ``ep-fleet00000``, ``ep-fleet00001``, ..."""
FLEET_JOB_S = 5.0
FLEET_JOB_EVERY_S = 6.0
"""fleet: a busy endpoint gets a 5 s job every 6 s (the gap, 1 s, is shorter than the 5 s idle timeout): its
one worker is always RUNNING or IDLE, never cold."""
HISTORY_SESSION_SHAPE = (12, 9, 5)
"""Synthetic history sessions: initializing, busy, idle seconds (a cold start, one job, the idle tail)."""


@dataclass(frozen=True)
class ScenarioParams:
    """Knobs a caller may turn; every scenario ignores the ones that do not concern it."""

    external_workers: bool = False
    """The scenario's main endpoint is served by real runpod SDK processes (worker_kind "external")
    instead of simulated workers: the hung endpoint of hung-job (its translation traffic stays simulated),
    the only endpoint of steady, budget-burn, ping-flood, config-drift and crash-loop (whose image then
    crash-loops only if the real worker fails its own checks). The demo's story and the fleets ignore it.
    ``runpod-watchdog simulate --external-workers`` prints the environment such a worker needs."""
    spend_rate_usd_per_hr: float | None = None
    """The account's REST v2 spendRate for this run (``SimOptions.spend_rate_usd_per_hr``); None keeps
    the options' value (80 USD/h by default), ``math.inf`` means no cap."""
    burn_target_usd: float = 7.4
    """budget-burn: GPU spend already billed this month. 20 EUR × 1.16 = 23.2 USD; 75 % is 17.4 USD, minus
    10 USD of fixed cost leaves 7.4 USD of GPU time."""
    drift_after_s: float = 600.0
    """config-drift: when someone raises workersMin/idleTimeout/workersMax."""
    requests_per_month: float = STEADY_REQUESTS_PER_MONTH
    """Rate of the steady translation traffic (steady, budget-burn, and lighter in the others)."""
    fleet_endpoints: int | None = None
    """fleet-N: how many endpoints (None: the N of the scenario's name). In-process callers may pick any
    size; ``simulate --scenario fleet-N`` gets N endpoints (runpod_sim/registry.py)."""


DEFAULT_PARAMS = ScenarioParams()


class Installer(Protocol):
    def __call__(
        self, sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = ...
    ) -> None:
        """Add the scenario's endpoints, traffic and timed events to ``sim``, starting at ``now``."""
        ...


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    install: Installer
    shows: str = ""
    """One line: what the scenario shows a user who runs ``simulate --scenario NAME`` at speed 1 beside
    ``runpod-watchdog run`` with the shipped config.toml (what the daemon does about it, or that there is
    nothing to do). Printed by ``simulate --list-scenarios``."""
    shows_after_s: float | None = None
    """Seconds of real time at speed 1 (simulated seconds at any speed) from the simulator's start until
    :attr:`shows` has happened, with the daemon started with it and ticking every 5 s (the shipped
    ``poll_interval_s``): measured, then rounded up to the next 5 s, and checked by
    tests/simulator/test_scenarios.py (which also refuses None for every listed scenario). None: not
    given."""

    @property
    def summary(self) -> str:
        """The description's first sentence."""
        return self.description.split(". ")[0].rstrip(".") + "."

    @property
    def listing(self) -> str:
        """``simulate --list-scenarios``' text for it: what it shows, then how long that takes at speed 1."""
        shown = "?" if self.shows_after_s is None else format_duration(self.shows_after_s)
        return f"{self.shows or self.summary} [shown after {shown} at speed 1]"


def format_duration(seconds: float) -> str:
    """``5 s``, ``3 min 5 s``, ``30 min``, ``2 h 5 min``: a duration for a person."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(whole, 3600)
    return f"{hours} h" + (f" {round(rest / 60)} min" if rest >= 60 else "")


class AntitheticDurations:
    """Service times uniform on [mean - spread, mean + spread] (whole milliseconds), drawn in mirrored
    pairs: the second of each pair is the first reflected around the mean.

    Why: the acceptance test prices a month of traffic against "3000 requests × 8.5 s". With independent
    draws the month's mean service time would wander by ~0.01 s; mirrored pairs make every pair average
    exactly the mean, so the only noise left in the month's execution seconds is the Poisson job count.
    """

    def __init__(self, mean_s: float, spread_s: float) -> None:
        self.mean_s = mean_s
        self.spread_s = spread_s
        self._mirror: float | None = None

    def __call__(self, rng: random.Random) -> float:
        if self._mirror is not None:
            duration, self._mirror = self._mirror, None
            return duration
        offset = round(rng.uniform(-self.spread_s, self.spread_s), 3)
        self._mirror = self.mean_s - offset
        return self.mean_s + offset


def _child_rng(rng: random.Random) -> random.Random:
    return random.Random(rng.getrandbits(64))


def steady_endpoint(now: float) -> SimEndpoint:
    """The team's translation LLM: one A6000, max 1 worker, 5 s idle timeout, 120 s execution timeout."""
    return SimEndpoint(
        id=STEADY_ENDPOINT_ID,
        name="Translation LLM (A6000)",
        gpu_ids="AMPERE_48",
        gpu_type_ids=(A6000,),
        workers_min=0,
        workers_max=1,
        idle_timeout=5,
        execution_timeout_ms=120_000,
        cold_start_s=12.0,
        default_duration_s=STEADY_MEAN_SERVICE_S,
        created_at=now - 90 * 86_400,
    )


def _add_translation_traffic(
    sim: Simulator, endpoint_id: str, *, rng: random.Random, requests_per_month: float
) -> None:
    """Poisson arrivals; service times with a mean of exactly 8.5 s (see ``AntitheticDurations``)."""
    durations = AntitheticDurations(STEADY_MEAN_SERVICE_S, STEADY_SERVICE_SPREAD_S)
    texts = (
        "Bonjour, comment allez-vous ?",
        "Where is the health centre?",
        "The harvest was good this year.",
    )

    def translation_request(request_rng: random.Random) -> dict[str, Any]:
        return {
            "task": "translate",
            "text": request_rng.choice(texts),
            "sim": {"duration_s": durations(request_rng)},
        }

    sim.add_traffic(
        endpoint_id,
        actor="translate-app",
        rate_per_s=requests_per_month / MONTH_S,
        input_factory=translation_request,
        free_share=STEADY_FREE_SHARE,
        rng=_child_rng(rng),
    )


def _served_by(endpoint: SimEndpoint, params: ScenarioParams) -> SimEndpoint:
    """``endpoint``, served by real SDK workers when ``params.external_workers``."""
    return replace(endpoint, worker_kind="external") if params.external_workers else endpoint


def install_steady(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> None:
    sim.add_endpoint(_served_by(steady_endpoint(now), params))
    _add_translation_traffic(sim, STEADY_ENDPOINT_ID, rng=rng, requests_per_month=params.requests_per_month)


def install_hung_job(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> None:
    endpoint = sim.add_endpoint(
        SimEndpoint(
            id=HUNG_ENDPOINT_ID,
            name="Speech to text (no execution timeout)",
            gpu_ids="AMPERE_48",
            gpu_type_ids=(A6000,),
            workers_max=1,
            idle_timeout=5,
            execution_timeout_ms=None,
            cold_start_s=15.0,
            default_duration_s=20.0,
            worker_kind="external" if params.external_workers else "simulated",
            created_at=now - 30 * 86_400,
        )
    )
    job = sim.submit(
        endpoint.id,
        {"audio_url": "https://example.invalid/meeting.ogg", "hang": True, "sim": {"hang": True}},
        policy=JobPolicy(ttl_ms=7 * 86_400_000),
        source="batch-transcriber",
        tier="paid",
    )
    sim.log_access(
        kind="request",
        endpoint_id=endpoint.id,
        route=f"/v2/{endpoint.id}/run",
        method="POST",
        status=200,
        source="batch-transcriber",
        job_id=job.id,
        tier="paid",
        duration_ms=2,
    )
    sim.add_endpoint(steady_endpoint(now))
    _add_translation_traffic(
        sim, STEADY_ENDPOINT_ID, rng=rng, requests_per_month=params.requests_per_month / 3
    )


def tts_endpoint(now: float) -> SimEndpoint:
    """The team's text-to-speech endpoint: one A5000, max 1 worker, 5 s idle, 60 s execution timeout."""
    return SimEndpoint(
        id=FLOOD_ENDPOINT_ID,
        name="Text to speech",
        gpu_ids="AMPERE_24",
        gpu_type_ids=("NVIDIA RTX A5000",),
        workers_max=1,
        idle_timeout=5,
        execution_timeout_ms=60_000,
        cold_start_s=10.0,
        default_duration_s=4.0,
        created_at=now - 60 * 86_400,
    )


def install_ping_flood(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> None:
    sim.add_endpoint(_served_by(tts_endpoint(now), params))
    sim.add_traffic(
        FLOOD_ENDPOINT_ID,
        actor="keepwarm-bot",
        interarrival=lambda _rng: 3.0,
        input_factory=lambda _rng: {"text": ".", "keepwarm": True, "sim": {"duration_s": 0.2}},
        free_share=1.0,
        rng=_child_rng(rng),
        # A real bot is never in step with the watchdog's reads; on whole seconds from the scenario's start,
        # reads every 5 s would find every third 0.2 s job running at the very instant of its arrival.
        start_at=now + 1.3,
    )
    sim.add_traffic(
        FLOOD_ENDPOINT_ID,
        actor="tts-app",
        rate_per_s=1500 / MONTH_S,
        input_factory=lambda r: {
            "text": "Read this aloud.",
            "sim": {"duration_s": round(r.uniform(2, 6), 3)},
        },
        free_share=STEADY_FREE_SHARE,
        rng=_child_rng(rng),
    )


def install_config_drift(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> None:
    endpoint = replace(steady_endpoint(now), id=DRIFT_ENDPOINT_ID, name="Image captioning (A6000)")
    sim.add_endpoint(_served_by(endpoint, params))
    _add_translation_traffic(sim, DRIFT_ENDPOINT_ID, rng=rng, requests_per_month=params.requests_per_month)

    def raise_limits(target: Simulator) -> None:
        target.update_endpoint(DRIFT_ENDPOINT_ID, {"workers_min": 1, "idle_timeout": 300, "workers_max": 3})

    sim.schedule(now + params.drift_after_s, raise_limits, label="someone raises workersMin/idleTimeout/max")


def install_crash_loop(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> None:
    sim.add_endpoint(
        _served_by(
            SimEndpoint(
                id=CRASH_ENDPOINT_ID,
                name="Document OCR (broken image)",
                gpu_ids="AMPERE_16",
                gpu_type_ids=("NVIDIA RTX A4000",),
                workers_max=2,
                idle_timeout=5,
                execution_timeout_ms=300_000,
                cold_start_s=20.0,
                default_duration_s=6.0,
                crash_loop=True,
                created_at=now - 14 * 86_400,
            ),
            params,
        )
    )
    sim.add_traffic(
        CRASH_ENDPOINT_ID,
        actor="ocr-app",
        rate_per_s=1 / 600,
        input_factory=lambda _rng: {"document_url": "https://example.invalid/form.pdf"},
        free_share=STEADY_FREE_SHARE,
        rng=_child_rng(rng),
    )


def synthesize_month_history(
    sim: Simulator, endpoint_id: str, *, now: float, target_usd: float, gpu_type_id: str = A6000
) -> list[BilledSession]:
    """Closed sessions spread evenly from the start of ``now``'s UTC month to ``now``, each a cold start,
    one 9 s job and the 5 s idle tail (26 billed seconds), totalling ``target_usd`` to the billed second.

    If the month is younger than one session the history is placed in the day before ``now``."""
    price = sim.prices.usd_per_s(gpu_type_id)
    total_s = round(target_usd / price)
    session_s = sum(HISTORY_SESSION_SHAPE)
    lengths = [session_s] * (total_s // session_s)
    if total_s % session_s:
        lengths.append(total_s % session_s)
    window_start = month_start(now)
    if now - window_start < session_s + 1:
        window_start = now - 86_400
    spacing = (now - window_start - session_s) / max(1, len(lengths))
    sessions = []
    for index, length in enumerate(lengths):
        started = window_start + index * spacing
        initializing, busy, idle = HISTORY_SESSION_SHAPE if length == session_s else (0, length, 0)
        sessions.append(
            sim.record_session(
                BilledSession(
                    worker_id=f"hist{index:06d}",
                    endpoint_id=endpoint_id,
                    gpu_type_id=gpu_type_id,
                    active=False,
                    started_at=started,
                    stopped_at=started + length,
                    initializing_s=initializing,
                    busy_s=busy,
                    idle_s=idle,
                )
            )
        )
    return sessions


def install_budget_burn(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> None:
    sim.add_endpoint(_served_by(steady_endpoint(now), params))
    synthesize_month_history(sim, STEADY_ENDPOINT_ID, now=now, target_usd=params.burn_target_usd)
    _add_translation_traffic(sim, STEADY_ENDPOINT_ID, rng=rng, requests_per_month=params.requests_per_month)


def fleet_busy_count(endpoints: int) -> int:
    """How many of a fleet's endpoints carry traffic: 1 in 100, at least 2 (never more than the fleet)."""
    return min(endpoints, max(2, endpoints // 100))


def fleet_endpoint(index: int, now: float) -> SimEndpoint:
    """One fleet endpoint, compliant with the default policy: A6000, workers max 1, workers min 0, idle
    timeout 5 s, execution timeout 120 s."""
    return SimEndpoint(
        id=f"{FLEET_ENDPOINT_PREFIX}{index:05d}",
        name=f"fleet-{index}",
        gpu_ids="AMPERE_48",
        gpu_type_ids=(A6000,),
        workers_min=0,
        workers_max=1,
        idle_timeout=5,
        execution_timeout_ms=120_000,
        cold_start_s=12.0,
        default_duration_s=FLEET_JOB_S,
        created_at=now - 30 * 86_400,
    )


def install_fleet(
    sim: Simulator,
    *,
    now: float,
    rng: random.Random,
    params: ScenarioParams = DEFAULT_PARAMS,
    default_endpoints: int = 10,
) -> None:
    """``params.fleet_endpoints`` (else ``default_endpoints``) compliant endpoints; the first
    :func:`fleet_busy_count` of them get a 5 s job every 6 s, the others stay idle (no worker at all)."""
    endpoints = params.fleet_endpoints if params.fleet_endpoints is not None else default_endpoints
    if endpoints < 1:
        raise ValueError(f"a fleet needs at least one endpoint, not {endpoints}")
    busy = fleet_busy_count(endpoints)
    for index in range(endpoints):
        endpoint = sim.add_endpoint(fleet_endpoint(index, now))
        if index < busy:
            sim.add_traffic(
                endpoint.id,
                actor=f"fleet-client-{index}",
                interarrival=lambda _rng: FLEET_JOB_EVERY_S,
                input_factory=lambda _rng: {"sim": {"duration_s": FLEET_JOB_S}},
                free_share=STEADY_FREE_SHARE,
                rng=_child_rng(rng),
            )


FLEET_MAX_ENDPOINTS = 10_000
"""The largest ``fleet-N`` (a sanity bound: 10,000 endpoints already take a few seconds to install)."""
FLEET_LISTED = 10
"""The fleet size ``simulate --list-scenarios`` shows; every other ``fleet-N`` is built on demand."""


def fleet_size(name: str) -> int | None:
    """N for a scenario name ``fleet-N`` (1 <= N <= ``FLEET_MAX_ENDPOINTS``, no leading zero), else None."""
    prefix, _, digits = name.partition("-")
    if prefix != "fleet" or not digits.isdigit() or not digits.isascii() or digits.startswith("0"):
        return None
    size = int(digits)
    return size if size <= FLEET_MAX_ENDPOINTS else None


def fleet_scenario(endpoints: int) -> Scenario:
    """``fleet-N``: the benchmarks' many-endpoint account (the watchdog's own cost at N endpoints)."""

    def install(
        sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
    ) -> None:
        install_fleet(sim, now=now, rng=rng, params=params, default_endpoints=endpoints)

    busy = fleet_busy_count(endpoints)
    return Scenario(
        f"fleet-{endpoints}",
        f"A fleet of {endpoints:,} compliant A6000 endpoints (workers max 1, idle timeout 5 s, execution "
        f"timeout 120 s), all idle but {busy}, each of which gets a 5 s job every 6 s so its one worker "
        "never cools down: the account the benchmarks measure the watchdog's own cost on (its CPU, memory "
        f"and REST calls per tick at that many endpoints). Nothing in it breaks a rule. Any size from 1 to "
        f"{FLEET_MAX_ENDPOINTS:,} is known as fleet-N (bench/daemon_cost uses fleet-10 and fleet-1000); "
        "only one size is listed.",
        install,
        shows=(
            f"{endpoints:,} compliant endpoints, {busy} always warm (any fleet-N, N <= "
            f"{FLEET_MAX_ENDPOINTS:,}, exists): nothing to correct; it shows the watchdog's own CPU, memory "
            "and REST calls per tick (bench/daemon_cost)"
        ),
        shows_after_s=5.0,
    )


BUILT_IN: tuple[Scenario, ...] = (
    Scenario(
        "steady",
        "Normal life: one A6000 translation endpoint (workersMax 1, idle timeout 5 s, 12 s cold start, "
        "execution timeout 120 s) receiving Poisson traffic of 3000 requests per 30 days, 30 % of them "
        "free tier, each taking 8.5 s on average. Execution alone costs about $8.67 a month; the cold "
        "start and the idle tail of every isolated request roughly triple the bill.",
        install_steady,
        shows=(
            "normal life, nothing to correct: the first tick finds the endpoint compliant; a request comes "
            "about every 14 min (Poisson), warms the worker for ~26 billed s, and the estimate follows it"
        ),
        shows_after_s=900.0,
    ),
    Scenario(
        "hung-job",
        "A speech-to-text endpoint with no execution timeout runs a job whose handler hangs: its "
        "heartbeat keeps pinging with the job id, so the worker looks alive while it bills 24/7 "
        "(about $29 a day on an A6000) until someone cancels the job. Light translation traffic runs "
        "alongside. With external_workers the hung endpoint waits for a real runpod SDK worker "
        "(the translation endpoint stays simulated).",
        install_hung_job,
        shows=(
            "a job that never ends on an endpoint with no execution timeout: the first tick patches the "
            "shipped 120 s timeout onto it, so the platform stops the job 120 s after its start (15 s cold "
            "start), before the runaway deadline (start + max_execution_s 120 + grace_s 30) would cancel it"
        ),
        shows_after_s=140.0,
    ),
    Scenario(
        "ping-flood",
        "A 'keepwarm-bot' sends a tiny 0.2 s job every 3 s, shorter than the 5 s idle timeout, so the "
        "text-to-speech worker never scales down and bills around the clock (about $490 a month on an "
        "A5000) while the real users send a few dozen requests a day.",
        install_ping_flood,
        shows=(
            "a keep-warm bot (a 0.2 s job every 3 s) keeps a worker billing 24/7: with the access log as a "
            "[[pings.source]] (simulate --access-log) a keep_warm alert once the bot has run for "
            "keep_warm_window_min (30 min); without one nothing is flagged"
        ),
        shows_after_s=1810.0,
    ),
    Scenario(
        "config-drift",
        "Steady traffic on an image-captioning endpoint until, some minutes in, someone raises "
        "workersMin to 1, idleTimeout to 300 s and workersMax to 3: an always-on active worker "
        "(about $622 a month) appears without any traffic change.",
        install_config_drift,
        shows=(
            "10 min in someone raises workersMin to 1, idleTimeout to 300 s and workersMax to 3: the next "
            "tick patches all three back (config drift, three alerts) and the tick after verifies it"
        ),
        shows_after_s=610.0,
    ),
    Scenario(
        "crash-loop",
        "An OCR endpoint whose image fails its health check: every worker goes UNHEALTHY after its "
        "cold start, is restarted after a while and fails again; jobs stay IN_QUEUE, the retried "
        "counter climbs, and each restart's cold start is billed.",
        install_crash_loop,
        shows=(
            "an image failing its health check: the first tick patches workersMax 2 -> 1 and the timeout; "
            "a crash-loop alert ~3 min in (seed 0), the scale to zero once that patch's 300 s cool-down ends"
        ),
        shows_after_s=310.0,
    ),
    Scenario(
        "budget-burn",
        "The month is already at about 75 % of the budget: closed sessions from the start of the UTC "
        "month to now total 7.4 USD of A6000 time (with 10 USD fixed cost that is 17.4 of 23.2 USD), "
        "and steady translation traffic keeps adding to it.",
        install_budget_burn,
        shows=(
            "the month already at ~75 % of the 20 EUR budget: the first tick sends the 50 % alert with a "
            "forecast over budget; the 80 % alert takes about 1.4 more days of this traffic"
        ),
        shows_after_s=5.0,
    ),
    fleet_scenario(FLEET_LISTED),
)
