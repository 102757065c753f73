"""Running the simulator under uvicorn: the ``runpod-watchdog simulate`` command and a test helper.

WHY loopback only: the simulator accepts a published, well-known key (``DEFAULT_API_KEY``) and has
unauthenticated control routes (``/_sim/...``). Bound to anything but loopback it would be an open fake
of a billing API on the network, so non-loopback listen addresses are refused (exit 2), and so is
``serve_in_thread`` with a non-loopback host.

``simulate`` prints exactly one readiness line, ``runpod-simulator ready: http://127.0.0.1:PORT``, once the
socket is bound (port 0 → the real port), then ``api key: KEY``, so scripts and tests can wait for it.
SIGINT/SIGTERM stop it cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from runpod_sim import registry
from runpod_sim.app import DEFAULT_API_KEY, create_app
from runpod_sim.engine import Simulator
from watchdog.clock import ScaledClock
from watchdog.prices import DEFAULT_PRICES

READY_PREFIX = "runpod-simulator ready: "


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after shutdown, which would end
    the process with a signal instead of exit code 0. Callers decide how to stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (only if it resolves to loopback addresses only)."""
    candidate = host.strip("[]")
    try:
        return ipaddress.ip_address(candidate).is_loopback
    except ValueError:
        pass
    if candidate.lower() != "localhost":
        return False
    try:
        infos = socket.getaddrinfo(candidate, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` → (host, port). Raises ValueError."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError as exc:
        raise ValueError(f"--listen port must be a number, got {port_text!r}") from exc
    if not 0 <= port <= 65535:
        raise ValueError(f"--listen port out of range: {port}")
    return host, port


def _bound_port(server: uvicorn.Server) -> int:
    for srv in server.servers:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("uvicorn started without a listening socket")


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")


SYNC_EVERY_S = 0.25
"""Real seconds between background ``sim.sync()`` calls under ``simulate``, so scenario traffic reaches the
access log (and the logwatch tailing it) as it happens, not only when a client next asks something."""


def _scenario_names() -> list[str]:
    return sorted(registry.SCENARIOS)


def simulate_command(args: argparse.Namespace) -> int:
    """``runpod-watchdog simulate``: 0 after a clean stop, 2 for bad usage (e.g. non-loopback listen)."""
    if args.list_scenarios:
        for name in _scenario_names():
            print(f"{name}\t{registry.SCENARIOS[name].summary}")
        return 0
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"runpod-watchdog simulate: {exc}", file=sys.stderr)
        return 2
    if not is_loopback_host(host):
        print(
            f"runpod-watchdog simulate: refusing to listen on {host!r}: the simulator only binds loopback "
            "addresses (127.0.0.1, ::1, localhost); it accepts a published key and has unauthenticated "
            "control routes",
            file=sys.stderr,
        )
        return 2
    if args.speed <= 0:
        print("runpod-watchdog simulate: --speed must be > 0", file=sys.stderr)
        return 2
    if args.scenario not in registry.SCENARIOS:
        names = ", ".join(_scenario_names())
        print(
            f"runpod-watchdog simulate: unknown scenario {args.scenario!r}; known: {names}", file=sys.stderr
        )
        return 2
    sim = registry.build_simulator(
        args.scenario,
        clock=ScaledClock(speed=args.speed),
        prices=DEFAULT_PRICES,
        options=None,
        seed=args.seed,
        access_log_path=args.access_log,
    )
    api_key = args.api_key or DEFAULT_API_KEY
    app = create_app(sim, api_key=api_key)
    server = _Server(_uvicorn_config(app, host, port))
    try:
        return asyncio.run(_run_until_signalled(server, sim, host, api_key, args.scenario))
    except KeyboardInterrupt:
        return 0


async def _keep_model_current(sim: Simulator) -> None:
    while True:
        await asyncio.sleep(SYNC_EVERY_S)
        sim.sync()


async def _run_until_signalled(
    server: _Server, sim: Simulator, host: str, api_key: str, scenario: str
) -> int:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        await serving
        print("runpod-watchdog simulate: the server could not start (port in use?)", file=sys.stderr)
        return 1
    print(f"{READY_PREFIX}{_url(host, _bound_port(server))}", flush=True)
    print(f"api key: {api_key}  (scenario: {scenario}; Ctrl-C to stop)", flush=True)
    ticker = asyncio.create_task(_keep_model_current(sim))
    try:
        await serving
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    return 0


@contextlib.contextmanager
def serve_in_thread(
    sim: Simulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout_s: float = 10.0,
    **app_kwargs: Any,
) -> Iterator[str]:
    """Serve ``create_app(sim, **app_kwargs)`` on a real loopback socket in a background thread; yields the
    base URL (``http://127.0.0.1:PORT``). Stops the server and joins the thread on exit.

    The simulator is then shared between the test's thread and the server's: the engine's methods are
    short and synchronous, but tests should only mutate the model through HTTP or while no request is
    in flight."""
    if not is_loopback_host(host):
        raise ValueError(f"the simulator only binds loopback addresses, not {host!r}")
    app = create_app(sim, **app_kwargs)
    server = _Server(_uvicorn_config(app, host, port))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="runpod-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if failure or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            raise RuntimeError(f"the simulator did not start on {host}:{port}") from (
                failure[0] if failure else None
            )
        time.sleep(0.01)
    try:
        yield _url(host, _bound_port(server))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def worker_env(
    base_url: str, endpoint_id: str, worker_id: str, *, api_key: str = DEFAULT_API_KEY
) -> dict[str, str]:
    """Environment for a real runpod SDK worker (runpod-api.md §5.4) pointed at this simulator.

    The SDK substitutes ``$ID`` in the take URL with the worker id, and ``$RUNPOD_POD_ID`` then ``$ID``
    (the job id) in the done/stream URLs; every template already carries a ``?`` because the SDK appends
    ``&...``."""
    base = f"{base_url.rstrip('/')}/v2/{endpoint_id}"
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?gpu=NVIDIA+RTX+A6000",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID?job_id=$ID",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID?job_id=$ID",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?gpu=NVIDIA+RTX+A6000",
        "RUNPOD_PING_INTERVAL": "1000",
        "RUNPOD_POD_ID": worker_id,
        "RUNPOD_AI_API_KEY": api_key,
        "RUNPOD_ENDPOINT_ID": endpoint_id,
    }
