"""The demo's story: the non-profit's incident, replayed on a simulated RunPod account in about a minute.

It is day 24 of the month, 14:00 UTC, and the bill stands at about 75 % of the 20 EUR budget (synthesised
billed history on the translation endpoint, as "budget-burn" does: the 10 USD of fixed cost count in full,
and 20 EUR × 1.16 = 23.2 USD). Light live traffic reaches a translation and a text-to-speech endpoint.
Then, in this order:

1. **The bill catches up**: RunPod's billing lags (here by 30 minutes). A batch translation ran on two GPUs
   from 13:30 to 14:00 and lands on the bill as the lag catches up, so the spend climbs through 80 %.
2. **The hung job**: a volunteer deploys a speech-to-text endpoint from an old template, with *no execution
   timeout*, and starts a batch transcription whose handler hangs. Its heartbeat keeps pinging with the job
   id, so the worker looks alive while it bills (about 29 USD a day on an A6000) until someone cancels it.
3. **The ping flood**: a "keepwarm-bot" sends a tiny 0.2 s job every 3 s to the text-to-speech endpoint,
   shorter than its 5 s idle timeout, so that worker never scales down either.

The acts are functions of the simulator (:func:`deploy_hung_job`, :func:`start_keepwarm_bot`). The
``demo`` scenario (``runpod-watchdog simulate --scenario demo``) schedules them at fixed simulated times
(:data:`HUNG_JOB_AT_S`, :data:`KEEPWARM_AT_S` after the start). ``runpod-watchdog demo`` instead installs the
story with ``scheduled=False`` and plays each act right after the daemon's tick that closed the previous
one (:mod:`sim_harness.demo`): the newcomer then sees the beats in order, and the daemon meets the hung job
only once it is already past its limit, so the same tick cancels it *then* patches the missing timeout
(the runaway rule ranks before config drift), which is what the watchdog does to the seed incident.

The registry (:mod:`runpod_sim.registry`) lists it beside the built-in scenarios.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.scenarios import (
    A6000,
    DEFAULT_PARAMS,
    FLOOD_ENDPOINT_ID,
    HUNG_ENDPOINT_ID,
    STEADY_ENDPOINT_ID,
    AntitheticDurations,
    Scenario,
    ScenarioParams,
    steady_endpoint,
    synthesize_month_history,
    tts_endpoint,
)
from runpod_sim.state import BilledSession, JobPolicy, SimEndpoint
from watchdog.clock import Clock, ScaledClock
from watchdog.prices import DEFAULT_PRICES, PriceTable

NAME = "demo"
BUDGET_EUR = 20.0
USD_PER_EUR = 1.16
FIXED_USD = 10.0
START_RATIO = 0.755
"""Share of the budget on the bill when the story starts (fixed cost included, lagging billing)."""
START_DAY = 24
START_HOUR = 14
SPEED = 45.0
"""Simulated seconds per real second in ``runpod-watchdog demo``: 45 simulated minutes a real minute."""

BILLING_DELAY_S = 30 * 60.0
"""How far RunPod's billing lags behind the GPU time in the story."""
BATCH_GPUS = 2
BATCH_S = 30 * 60.0
"""The lunchtime batch translation: two A6000 workers for the 30 minutes before the start (≈ 1.22 USD,
5.3 % of the budget), all of it still hidden by the billing lag when the story starts."""
TRANSLATION_GAP_S = 900.0
"""Mean gap between live translation requests (light: the worker is mostly scaled to zero)."""
HUNG_COLD_START_S = 5.0
KEEPWARM_GAP_S = 3.0
KEEPWARM_JOB_S = 0.2
HUNG_JOB_AT_S = 30 * 60.0
"""Scheduled story only: when the hung batch job starts, simulated seconds after the start."""
KEEPWARM_AT_S = 34 * 60.0
"""Scheduled story only: when the keep-warm bot starts."""
BATCH_SOURCE = "batch-transcriber"
KEEPWARM_SOURCE = "keepwarm-bot"


def story_start(now: float) -> float:
    """Day 24, 14:00 UTC of the month containing ``now`` (every month has a 24th)."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    return moment.replace(day=START_DAY, hour=START_HOUR, minute=0, second=0, microsecond=0).timestamp()


def history_target_usd(ratio: float = START_RATIO) -> float:
    """GPU spend already billed so that fixed + GPU = ``ratio`` of the budget (0.76 → 7.632 USD)."""
    return round(ratio * BUDGET_EUR * USD_PER_EUR - FIXED_USD, 4)


def _child_rng(rng: random.Random) -> random.Random:
    return random.Random(rng.getrandbits(64))


def install_demo(
    sim: Simulator,
    *,
    now: float,
    rng: random.Random,
    params: ScenarioParams = DEFAULT_PARAMS,
    scheduled: bool = True,
) -> None:
    """The opening scene; with ``scheduled`` the two later acts are timed events of the simulator."""
    sim.options = replace(sim.options, billing_delay_s=max(sim.options.billing_delay_s, BILLING_DELAY_S))
    sim.add_endpoint(steady_endpoint(now))
    sim.add_endpoint(tts_endpoint(now))
    synthesize_month_history(
        sim, STEADY_ENDPOINT_ID, now=now - BILLING_DELAY_S, target_usd=history_target_usd()
    )
    synthesize_batch(sim, now=now)
    durations = AntitheticDurations(8.5, 1.0)
    texts = (
        "Bonjour, comment allez-vous ?",
        "Where is the health centre?",
        "The harvest was good this year.",
    )
    sim.add_traffic(
        STEADY_ENDPOINT_ID,
        actor="translate-app",
        rate_per_s=1.0 / TRANSLATION_GAP_S,
        input_factory=lambda r: {
            "task": "translate",
            "text": r.choice(texts),
            "sim": {"duration_s": durations(r)},
        },
        free_share=0.3,
        rng=_child_rng(rng),
    )
    sim.add_traffic(
        FLOOD_ENDPOINT_ID,
        actor="tts-app",
        rate_per_s=1.0 / 1800,
        input_factory=lambda r: {
            "text": "Read this aloud.",
            "sim": {"duration_s": round(r.uniform(2, 6), 3)},
        },
        free_share=0.3,
        rng=_child_rng(rng),
    )
    if scheduled:
        sim.schedule(now + HUNG_JOB_AT_S, deploy_hung_job, label="a batch job hangs on a new endpoint")
        bot_at = now + KEEPWARM_AT_S
        sim.schedule(
            bot_at,
            # out of step with a watchdog reading on whole seconds, as a real bot is (start_keepwarm_bot)
            lambda s: start_keepwarm_bot(s, start_at=bot_at + KEEPWARM_GAP_S / 2),
            label="a keep-warm bot starts pinging",
        )


def synthesize_batch(sim: Simulator, *, now: float) -> list[BilledSession]:
    """The lunchtime batch: ``BATCH_GPUS`` closed A6000 sessions over the ``BATCH_S`` before ``now``."""
    return [
        sim.record_session(
            BilledSession(
                worker_id=f"batch{index:02d}",
                endpoint_id=STEADY_ENDPOINT_ID,
                gpu_type_id=A6000,
                active=False,
                started_at=now - BATCH_S,
                stopped_at=now,
                initializing_s=12,
                busy_s=BATCH_S - 17,
                idle_s=5,
            )
        )
        for index in range(BATCH_GPUS)
    ]


def batch_usd(sim: Simulator) -> float:
    return BATCH_GPUS * BATCH_S * sim.prices.usd_per_s(A6000)


def deploy_hung_job(sim: Simulator) -> str:
    """Act 2: a new speech-to-text endpoint without execution timeout, and a batch job that hangs on it.

    Returns the job id."""
    now = sim.clock.now()
    endpoint = sim.add_endpoint(
        SimEndpoint(
            id=HUNG_ENDPOINT_ID,
            name="Speech to text (no execution timeout)",
            gpu_ids="AMPERE_48",
            gpu_type_ids=(A6000,),
            workers_max=1,
            idle_timeout=5,
            execution_timeout_ms=None,
            cold_start_s=HUNG_COLD_START_S,
            default_duration_s=20.0,
            created_at=now,
        )
    )
    job = sim.submit(
        endpoint.id,
        {"audio_url": "https://example.invalid/general-assembly.ogg", "sim": {"hang": True}},
        policy=JobPolicy(ttl_ms=7 * 86_400_000),
        source=BATCH_SOURCE,
        tier="paid",
    )
    sim.log_access(
        kind="request",
        endpoint_id=endpoint.id,
        route=f"/v2/{endpoint.id}/run",
        method="POST",
        status=200,
        source=BATCH_SOURCE,
        job_id=job.id,
        tier="paid",
        duration_ms=2,
    )
    return str(job.id)


def start_keepwarm_bot(sim: Simulator, *, start_at: float | None = None) -> None:
    """Act 3: a tiny job every 3 s, shorter than the 5 s idle timeout: the worker never scales down.

    ``start_at`` (default: now) sets the bot's phase. A watchdog whose ticks fall exactly on the bot's
    arrivals (the demo's stepped clock: 90 s is 30 gaps) would see the worker busy at every tick; a real
    bot is never in step with the watchdog, so the demo starts it between two of the daemon's instants."""
    sim.add_traffic(
        FLOOD_ENDPOINT_ID,
        actor=KEEPWARM_SOURCE,
        interarrival=lambda _rng: KEEPWARM_GAP_S,
        input_factory=lambda _rng: {"text": ".", "keepwarm": True, "sim": {"duration_s": KEEPWARM_JOB_S}},
        free_share=1.0,
        rng=random.Random(7),
        start_at=start_at,
    )


def story_clock(speed: float = SPEED, *, now: float | None = None) -> ScaledClock:
    """A clock at day 24, 14:00 UTC of the current month, running ``speed`` times faster than real time."""
    start = story_start(now if now is not None else datetime.now(tz=UTC).timestamp())
    return ScaledClock(speed=speed, start=start)


def build_story(
    *,
    clock: Clock,
    seed: int = 0,
    access_log_path: str | None = None,
    scheduled: bool = True,
    prices: PriceTable = DEFAULT_PRICES,
    options: SimOptions | None = None,
) -> Simulator:
    """A simulator with the story's opening scene installed at ``clock.now()``."""
    sim = Simulator(clock=clock, prices=prices, options=options, seed=seed, access_log_path=access_log_path)
    install_demo(sim, now=sim.clock.now(), rng=random.Random(seed), scheduled=scheduled)
    return sim


def _install(
    sim: Simulator, *, now: float, rng: random.Random, params: ScenarioParams = DEFAULT_PARAMS
) -> Any:
    install_demo(sim, now=now, rng=rng, params=params, scheduled=True)


SCENARIO = Scenario(
    NAME,
    "The demo's story: day 24 at about 75 % of the 20 EUR budget; a lunchtime batch lands on the bill "
    "(billing lags 30 min) and pushes the spend through 80 %; a batch job then hangs on a new "
    f"speech-to-text endpoint with no execution timeout ({HUNG_JOB_AT_S / 60:.0f} min in); then a keep-warm "
    f"bot pings text-to-speech every 3 s ({KEEPWARM_AT_S / 60:.0f} min in). Speed {SPEED:g} tells it in "
    "about a minute.",
    _install,
)
