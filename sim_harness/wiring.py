"""The wiring of product and simulator: a daemon driven against the in-process simulator (the demo, the
benchmarks and the tests all build it here, so they run the same thing).

Example::

    clock = ManualClock(START)
    sim = build_simulator("hung-job", clock=clock, access_log_path=str(tmp_path / "access.log"))
    async with daemon_against(sim, tmp_path, log_path=tmp_path / "access.log") as daemon:
        outcome = await daemon.tick()
        clock.advance(5)

Everything is real except the network: the simulator's ASGI app answers the client through
``httpx.ASGITransport``; the ledger is a real SQLite file in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from runpod_sim.app import DEFAULT_API_KEY, RateLimits, create_app
from runpod_sim.engine import Simulator
from runpod_sim.faults import Faults
from watchdog.config import Config, LogSource, Secret, Secrets, default_config
from watchdog.daemon.service import Daemon

SIM_BASE = "http://sim.test"
GENEROUS_RUNTIME_LIMITS = {
    "run": 100_000,
    "runsync": 100_000,
    "status": 100_000,
    "stream": 100_000,
    "cancel": 100_000,
    "purge-queue": 100,
}


def sim_config(tmp_path: Path, *, log_path: str | Path | None = None, **overrides: Any) -> Config:
    """A config pointing at the simulator, with its ledger and control socket in ``tmp_path``.

    ``overrides``: ``section=dict(...)`` replaces fields of that section, e.g.
    ``policy={"mode": "dry-run", "cooldown_s": 60}``, ``budget={"monthly_eur": 50}``.
    ``log_path`` adds the simulator's access log as a JSON ping/request source named "gateway".
    """
    config = default_config(env={})
    runpod = dataclasses.replace(
        config.runpod,
        graphql_url=f"{SIM_BASE}/graphql",
        rest_url=f"{SIM_BASE}/v2",
        runtime_url=f"{SIM_BASE}/v2",
        max_retries=0,
    )
    ledger = dataclasses.replace(
        config.ledger, path="ledger.sqlite3", resolved_path=tmp_path / "ledger.sqlite3"
    )
    control = dataclasses.replace(config.control, resolved_socket_path=tmp_path / "control.sock")
    metrics = dataclasses.replace(config.metrics, enabled=False, listen="127.0.0.1:0")
    config = dataclasses.replace(config, runpod=runpod, ledger=ledger, control=control, metrics=metrics)
    if log_path is not None:
        pings = dataclasses.replace(
            config.pings, source=(LogSource(name="gateway", path=str(log_path), start_at="start"),)
        )
        config = dataclasses.replace(config, pings=pings)
    for section, changes in overrides.items():
        current = getattr(config, section)
        config = dataclasses.replace(config, **{section: dataclasses.replace(current, **changes)})
    return config


def sim_secrets(api_key: str = DEFAULT_API_KEY) -> Secrets:
    return Secrets(runpod_api_key=Secret(api_key), runpod_api_key_origin="environment")


def sim_transport(sim: Simulator, *, faults: Faults | None = None, **app_kwargs: Any) -> httpx.ASGITransport:
    """The simulator's app as an httpx transport, with rate limits too generous to trip in a test. Worker
    log streams send their backlog and end (httpx's ASGITransport buffers a whole response, so a live
    stream would never return in-process; the daemon resumes with ``Last-Event-ID`` next tick anyway)."""
    app_kwargs.setdefault("log_stream_max_s", 0.0)
    app_kwargs.setdefault(
        "rate_limits", RateLimits(runtime_per_window=dict(GENEROUS_RUNTIME_LIMITS), rest_per_window=1_000_000)
    )
    return httpx.ASGITransport(app=create_app(sim, faults=faults, **app_kwargs))


def build_daemon(
    sim: Simulator,
    tmp_path: Path,
    *,
    faults: Faults | None = None,
    log_path: str | Path | None = None,
    config: Config | None = None,
    **overrides: Any,
) -> Daemon:
    """A Daemon on the simulator's clock, talking to it in-process (call ``await daemon.open()``)."""
    config = config or sim_config(tmp_path, log_path=log_path, **overrides)
    return Daemon(config, sim_secrets(), clock=sim.clock, transport=sim_transport(sim, faults=faults))


@contextlib.asynccontextmanager
async def daemon_against(
    sim: Simulator,
    tmp_path: Path,
    *,
    faults: Faults | None = None,
    log_path: str | Path | None = None,
    config: Config | None = None,
    **overrides: Any,
) -> AsyncIterator[Daemon]:
    """``async with daemon_against(sim, tmp_path, policy={"mode": "dry-run"}) as daemon: ...``"""
    daemon = build_daemon(sim, tmp_path, faults=faults, log_path=log_path, config=config, **overrides)
    await daemon.open()
    try:
        yield daemon
    finally:
        await daemon.close()
