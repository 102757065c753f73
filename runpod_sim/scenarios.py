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
HISTORY_SESSION_SHAPE = (12, 9, 5)
"""Synthetic history sessions: initializing, busy, idle seconds (a cold start, one job, the idle tail)."""


@dataclass(frozen=True)
class ScenarioParams:
    """Knobs a caller may turn; every scenario ignores the ones that do not concern it."""

    external_workers: bool = False
    """The scenario's main endpoint is served by real runpod SDK processes (worker_kind "external")
    instead of simulated workers: the hung endpoint of hung-job (its translation traffic stays simulated),
    the only endpoint of steady, budget-burn, ping-flood, config-drift and crash-loop (whose image then
    crash-loops only if the real worker fails its own checks). The demo's story ignores it.
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

    @property
    def summary(self) -> str:
        """The description's first sentence (for ``simulate --list-scenarios``)."""
        return self.description.split(". ")[0].rstrip(".") + "."


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


BUILT_IN: tuple[Scenario, ...] = (
    Scenario(
        "steady",
        "Normal life: one A6000 translation endpoint (workersMax 1, idle timeout 5 s, 12 s cold start, "
        "execution timeout 120 s) receiving Poisson traffic of 3000 requests per 30 days, 30 % of them "
        "free tier, each taking 8.5 s on average. Execution alone costs about $8.67 a month; the cold "
        "start and the idle tail of every isolated request roughly triple the bill.",
        install_steady,
    ),
    Scenario(
        "hung-job",
        "A speech-to-text endpoint with no execution timeout runs a job whose handler hangs: its "
        "heartbeat keeps pinging with the job id, so the worker looks alive while it bills 24/7 "
        "(about $29 a day on an A6000) until someone cancels the job. Light translation traffic runs "
        "alongside. With external_workers the hung endpoint waits for a real runpod SDK worker "
        "(the translation endpoint stays simulated).",
        install_hung_job,
    ),
    Scenario(
        "ping-flood",
        "A 'keepwarm-bot' sends a tiny 0.2 s job every 3 s, shorter than the 5 s idle timeout, so the "
        "text-to-speech worker never scales down and bills around the clock (about $490 a month on an "
        "A5000) while the real users send a few dozen requests a day.",
        install_ping_flood,
    ),
    Scenario(
        "config-drift",
        "Steady traffic on an image-captioning endpoint until, some minutes in, someone raises "
        "workersMin to 1, idleTimeout to 300 s and workersMax to 3: an always-on active worker "
        "(about $622 a month) appears without any traffic change.",
        install_config_drift,
    ),
    Scenario(
        "crash-loop",
        "An OCR endpoint whose image fails its health check: every worker goes UNHEALTHY after its "
        "cold start, is restarted after a while and fails again; jobs stay IN_QUEUE, the retried "
        "counter climbs, and each restart's cold start is billed.",
        install_crash_loop,
    ),
    Scenario(
        "budget-burn",
        "The month is already at about 75 % of the budget: closed sessions from the start of the UTC "
        "month to now total 7.4 USD of A6000 time (with 10 USD fixed cost that is 17.4 of 23.2 USD), "
        "and steady translation traffic keeps adding to it.",
        install_budget_burn,
    ),
)
