"""The scenario registry: every named scenario, and :func:`build_simulator` to install one.

The registry imports the scenarios (the built-in ones and the demo's story); no scenario imports the
registry, so adding a scenario is one line here and never an import-order trick.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from runpod_sim import story
from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.scenarios import BUILT_IN, Scenario, ScenarioParams, fleet_scenario, fleet_size
from watchdog.clock import Clock
from watchdog.prices import DEFAULT_PRICES, PriceTable


class _Scenarios(dict[str, Scenario]):
    """The named scenarios, plus the ``fleet-N`` family: any ``fleet-N`` (N endpoints, see
    ``scenarios.install_fleet``) is known (``in``, ``[]``, ``get``) and built on demand, so that
    ``simulate --scenario fleet-1000`` needs no size option; iterating lists the named ones only (one
    fleet, ``fleet-10``)."""

    def __missing__(self, name: str) -> Scenario:
        size = fleet_size(name)
        if size is None:
            raise KeyError(name)
        return fleet_scenario(size)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (isinstance(name, str) and fleet_size(name) is not None)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


DEMO = replace(
    story.SCENARIO,
    shows=(
        "the demo's story at real speed: the month at ~75 % (50 % alert at the first tick); 30 min in a "
        "hung job's endpoint appears (its missing timeout patched at the next tick); 34 min in a keep-warm "
        "bot, flagged 30 min later with the access log as a [[pings.source]] (`demo` tells it in a minute)"
    ),
    shows_after_s=3850.0,
)
"""story.SCENARIO with what it shows at speed 1 (here because story.py is the story's, not the listing's)."""

SCENARIOS: dict[str, Scenario] = _Scenarios({scenario.name: scenario for scenario in (*BUILT_IN, DEMO)})
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
