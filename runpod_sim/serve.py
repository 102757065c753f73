"""Running the simulator under uvicorn: the ``runpod-watchdog simulate`` command and a test helper.

WHY loopback only: the simulator accepts a published, well-known key (``DEFAULT_API_KEY``) and has
unauthenticated control routes (``/_sim/...``). Bound to anything but loopback it would be an open fake
of a billing API on the network, so non-loopback listen addresses are refused (exit 2), and so is
``serve_in_thread`` with a non-loopback host.

``simulate`` prints exactly one readiness line, ``runpod-simulator ready: http://127.0.0.1:PORT``, once the
socket is bound (port 0 → the real port), then ``api key: KEY``, so scripts and tests can wait for it;
then the environment that points runpod-watchdog at it, as ``export`` lines to paste
(:func:`runpod_watchdog_env`; ``--env-file PATH`` also writes them to PATH, before the readiness line, so
a script that waited for it can source the file). A port already in use is one line on stderr and exit 2.
SIGINT/SIGTERM stop it cleanly with exit 0 (long polls and log streams in flight end at once).

Options read from the argparse Namespace beyond the original ones (``getattr`` with a default, so an
older parser still works): ``external_workers`` (the scenario's main endpoint waits for real runpod SDK
workers; after the two lines above, ``simulate`` prints per such endpoint the exact worker environment as
``export`` lines, see ``external_worker_instructions``), ``no_graphql`` (GraphQL retired: 410 Gone) and
``spend_rate`` (the account's REST v2 spendRate in USD/h; ``inf``: no cap).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import uvicorn

from runpod_sim import registry
from runpod_sim.app import DEFAULT_API_KEY, create_app
from runpod_sim.engine import SimOptions, Simulator
from runpod_sim.scenarios import ScenarioParams
from runpod_sim.webhooks import is_loopback_host
from watchdog.clock import ScaledClock
from watchdog.prices import DEFAULT_PRICES

READY_PREFIX = "runpod-simulator ready: "


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after shutdown, which would end
    the process with a signal instead of exit code 0. Callers decide how to stop it.

    On shutdown it first tells the app (``SimulatorHTTP.begin_shutdown``), so worker long polls answer
    and log streams end at once instead of holding the stop for a whole long poll."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._sim_app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: Any = None) -> None:
        http = getattr(self._sim_app.state, "http", None)
        if http is not None:
            http.begin_shutdown()
        await super().shutdown(sockets=sockets)


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


GRACEFUL_SHUTDOWN_S = 5
"""Real seconds a stop waits for requests in flight before cancelling them (a backstop: long polls and log
streams end on their own when the server stops, see ``_Server``)."""


def _uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


SYNC_EVERY_S = 0.25
"""Real seconds between background ``sim.sync()`` calls under ``simulate``, so scenario traffic reaches the
access log (and the logwatch tailing it) as it happens, not only when a client next asks something."""


def _scenario_names() -> list[str]:
    return sorted(registry.SCENARIOS)


def simulate_command(args: argparse.Namespace) -> int:
    """``runpod-watchdog simulate``: 0 after a clean stop, 2 for bad usage (e.g. non-loopback listen)."""
    if args.list_scenarios:
        for name in _scenario_names():
            print(f"{name}\t{registry.SCENARIOS[name].listing}")
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
    spend_rate = getattr(args, "spend_rate", None)
    if spend_rate is not None and (math.isnan(spend_rate) or spend_rate < 0):
        print(
            "runpod-watchdog simulate: --spend-rate must be >= 0 (USD per hour; inf: no cap)", file=sys.stderr
        )
        return 2
    try:
        # Bound here, not by uvicorn: a port in use is then one line and exit 2 (uvicorn logs the error and
        # exits its task with SystemExit(3), which surfaced as a traceback), and the URL is known before
        # the server starts, for --env-file.
        listener = bind_listener(host, port)
    except OSError as exc:
        print(
            f"runpod-watchdog simulate: cannot listen on {args.listen}: {_reason(exc)} (is another "
            "simulator running? choose another --listen port, or port 0 for a free one)",
            file=sys.stderr,
        )
        return 2
    api_key = args.api_key or DEFAULT_API_KEY
    env_lines = runpod_watchdog_env_lines(_url(host, int(listener.getsockname()[1])), api_key)
    env_file = getattr(args, "env_file", None)
    if env_file:
        try:
            _write_env_file(env_file, env_lines)
        except OSError as exc:
            listener.close()
            print(
                f"runpod-watchdog simulate: cannot write --env-file {env_file}: {_reason(exc)}",
                file=sys.stderr,
            )
            return 2
    external_workers = bool(getattr(args, "external_workers", False))
    sim = registry.build_simulator(
        args.scenario,
        clock=ScaledClock(speed=args.speed),
        prices=DEFAULT_PRICES,
        options=SimOptions(graphql_enabled=not getattr(args, "no_graphql", False)),
        seed=args.seed,
        access_log_path=args.access_log,
        external_workers=external_workers,
        params=ScenarioParams(spend_rate_usd_per_hr=spend_rate),
    )
    app = create_app(sim, api_key=api_key)
    server = _Server(_uvicorn_config(app, host, port), app)
    try:
        return asyncio.run(
            _run_until_signalled(
                server,
                sim,
                host,
                api_key,
                args.scenario,
                listener=listener,
                env_lines=env_lines,
                show_workers=external_workers,
            )
        )
    except KeyboardInterrupt:
        return 0
    finally:
        listener.close()
        sim.close()


def _reason(exc: OSError) -> str:
    """``Address already in use``, without the address asyncio and socket append to it."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one). Raises OSError (e.g. address in use)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.create_server(address[:2], family=family)
    listener.setblocking(False)
    return listener


def runpod_watchdog_env(base_url: str, api_key: str = DEFAULT_API_KEY) -> dict[str, str]:
    """The environment that points runpod-watchdog (and RunPod's own tools) at the simulator at
    ``base_url``: every variable ``watchdog.config`` reads for RunPod, the three URLs together (a partial
    set is refused: it would send the rest to the real RunPod) and the key; ``SLACK_WEBHOOK_URL`` emptied so
    a simulated account never posts to the team's Slack. ``--simulator URL`` sets the same environment
    (``watchdog.config.simulator_environment``; a test keeps the two equal)."""
    return {
        "RUNPOD_API_KEY": api_key,
        "RUNPOD_API_BASE_URL": base_url,
        "RUNPOD_REST_API_URL": f"{base_url}/v2",
        "RUNPOD_ENDPOINT_BASE_URL": f"{base_url}/v2",
        "SLACK_WEBHOOK_URL": "",
    }


def runpod_watchdog_env_lines(base_url: str, api_key: str = DEFAULT_API_KEY) -> list[str]:
    """:func:`runpod_watchdog_env` as the lines ``simulate`` prints and ``--env-file`` writes: a comment,
    then ``export NAME=value`` lines a shell takes as they are (paste them, or ``. FILE``)."""
    shortcut = f" or add --simulator {base_url} to the command," if api_key == DEFAULT_API_KEY else ""
    return [
        f"# runpod-watchdog against this simulator: paste these lines,{shortcut} then e.g. "
        "`runpod-watchdog plan`",
        *(
            f"export {name}={shlex.quote(value)}"
            for name, value in runpod_watchdog_env(base_url, api_key).items()
        ),
    ]


def _write_env_file(path: str, lines: list[str]) -> None:
    """Write ``lines`` to ``path`` whole (a temporary file renamed over it), so a script that sources it
    as soon as it exists never reads half of it."""
    target = os.path.abspath(path)
    temporary = f"{target}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(temporary, target)


async def _keep_model_current(sim: Simulator) -> None:
    while True:
        await asyncio.sleep(SYNC_EVERY_S)
        sim.sync()


async def _run_until_signalled(
    server: _Server,
    sim: Simulator,
    host: str,
    api_key: str,
    scenario: str,
    *,
    listener: socket.socket,
    env_lines: list[str],
    show_workers: bool = False,
) -> int:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if serving.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        await serving
        print("runpod-watchdog simulate: the server could not start", file=sys.stderr)
        return 1
    base_url = _url(host, _bound_port(server))
    print(f"{READY_PREFIX}{base_url}", flush=True)
    print(f"api key: {api_key}  (scenario: {scenario}; Ctrl-C to stop)", flush=True)
    print("\n".join(env_lines), flush=True)
    if not sim.options.graphql_enabled:
        print("graphql: retired (POST /graphql answers 410 Gone)", flush=True)
    speed = getattr(sim.clock, "speed", 1.0)
    if speed != 1.0:
        print(
            f"note: --speed {speed:g} runs this account {speed:g}x faster than real time (its times, its "
            f"access log): a daemon run on its own lives on the real clock and would see rates {speed:g}x "
            "too high and jobs aging too fast; use --speed 1 for it (runpod-watchdog demo shares one clock)",
            flush=True,
        )
    if show_workers:
        print("\n".join(external_worker_instructions(sim, base_url, api_key=api_key, scenario=scenario)))
        sys.stdout.flush()
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
    server = _Server(_uvicorn_config(app, host, port), app)
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
    base_url: str,
    endpoint_id: str,
    worker_id: str,
    *,
    api_key: str = DEFAULT_API_KEY,
    gpu: str = "NVIDIA RTX A6000",
    ping_interval_ms: int = 1000,
) -> dict[str, str]:
    """Environment for a real runpod SDK worker (runpod-api.md §5.4) pointed at this simulator.

    The SDK substitutes ``$ID`` in the take URL with the worker id, and ``$RUNPOD_POD_ID`` then ``$ID``
    (the job id) in the done/stream URLs; every template already carries a ``?`` because the SDK appends
    ``&...``. ``gpu`` is the GPU type the worker reports (it is billed at that type's price)."""
    base = f"{base_url.rstrip('/')}/v2/{endpoint_id}"
    gpu_query = quote_plus(gpu)
    return {
        "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?gpu={gpu_query}",
        "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID?job_id=$ID",
        "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID?job_id=$ID",
        "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?gpu={gpu_query}",
        "RUNPOD_PING_INTERVAL": str(ping_interval_ms),
        "RUNPOD_POD_ID": worker_id,
        "RUNPOD_AI_API_KEY": api_key,
        "RUNPOD_ENDPOINT_ID": endpoint_id,
    }


EXAMPLE_WORKER = (
    'python -c \'import runpod; runpod.serverless.start({"handler": lambda job: {"echo": job["input"]}})\''
)
"""The smallest real worker: the runpod SDK's serverless loop around an echo handler."""


def external_worker_instructions(
    sim: Simulator, base_url: str, *, api_key: str = DEFAULT_API_KEY, scenario: str = ""
) -> list[str]:
    """What ``simulate --external-workers`` prints: per endpoint served by external workers, the exact
    environment a runpod SDK worker needs as ``export`` lines (single-quoted: ``$ID`` and
    ``$RUNPOD_POD_ID`` are the SDK's own placeholders, never the shell's), then how to start one."""
    endpoints = [ep for ep in sim.endpoints() if ep.worker_kind == "external"]
    if not endpoints:
        return [f"external workers: scenario {scenario!r} has no endpoint served by external workers"]
    lines = [
        f"external workers: {len(endpoints)} endpoint(s) wait for real runpod SDK workers; jobs stay "
        "IN_QUEUE until one polls. In a shell, paste the block of an endpoint, then start a worker:"
    ]
    for index, ep in enumerate(endpoints, start=1):
        gpu = ep.gpu_type_ids[0] if ep.gpu_type_ids else "NVIDIA RTX A6000"
        env = worker_env(
            base_url,
            ep.id,
            f"local-worker-{index}",
            api_key=api_key,
            gpu=gpu,
            ping_interval_ms=int(sim.options.ping_interval_s * 1000),
        )
        lines.append("")
        lines.append(f"# endpoint {ep.id}: {ep.name} (workersMax {ep.workers_max})")
        lines.extend(f"export {name}={shlex.quote(value)}" for name, value in env.items())
    lines += [
        "",
        "# Start a worker with the runpod SDK (1.12.0) installed in its OWN virtualenv, e.g.",
        "#   python3 -m venv ~/.venvs/runpod && ~/.venvs/runpod/bin/pip install runpod==1.12.0",
        f"#   ~/.venvs/runpod/bin/{EXAMPLE_WORKER}",
        "# or, from a checkout, the tests' worker (SIM_WORKER_MODE: echo, concurrent, stream, progress,",
        "# error, raise, hang-async, hang-sync; hang-sync replays the incident):",
        "#   SIM_WORKER_MODE=hang-sync ~/.venvs/runpod/bin/python tests/sdk/worker.py",
        "# Give every worker its own RUNPOD_POD_ID; at most workersMax of them are started at once. A worker",
        "# the platform scales down keeps polling and is started again when a job needs it.",
    ]
    return lines
