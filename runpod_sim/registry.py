"""The scenario registry: every named scenario, and :func:`build_simulator` to install one.

The registry imports the scenarios (the built-in ones and the demo's story); no scenario imports the
registry, so adding a scenario is one line here and never an import-order trick.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from runpod_sim import story
from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.scenarios import BUILT_IN, Scenario, ScenarioParams
from watchdog.clock import Clock
from watchdog.prices import DEFAULT_PRICES, PriceTable

SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in (*BUILT_IN, story.SCENARIO)}
"""Scenario name → scenario, as ``runpod-watchdog simulate --scenario NAME`` knows them."""


def build_simulator(
    name: str,
    *,
    clock: Clock,
    prices: PriceTable = DEFAULT_PRICES,
    options: SimOptions | None = None,
    seed: int = 0,
    access_log_path: str | None = None,
    external_workers: bool = False,
    params: ScenarioParams | None = None,
) -> Simulator:
    """A simulator with scenario ``name`` installed at ``clock.now()``. Same seed, same month.

    ``external_workers`` sets ``params.external_workers``; ``params.spend_rate_usd_per_hr`` (when not
    None) overrides the options' spend rate."""
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}") from None
    params = params if params is not None else ScenarioParams()
    if external_workers:
        params = replace(params, external_workers=True)
    if params.spend_rate_usd_per_hr is not None:
        cap = params.spend_rate_usd_per_hr
        options = replace(
            options if options is not None else SimOptions(),
            spend_rate_usd_per_hr=None if math.isinf(cap) else cap,
        )
    sim = Simulator(clock=clock, prices=prices, options=options, seed=seed, access_log_path=access_log_path)
    scenario.install(sim, now=sim.clock.now(), rng=random.Random(seed), params=params)
    return sim
