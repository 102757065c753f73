"""The lean baseline of bench/daemon_cost: the least a process can be that polls what the daemon polls.

``python -m bench._lean_poller --base-url http://127.0.0.1:PORT --metrics-port N [--interval 5]`` (the key in
``RUNPOD_API_KEY``): every ``--interval`` seconds, on a monotonic grid like the daemon's, it makes the same
RunPod calls as one of the daemon's ticks (watchdog/daemon/fetch.py ``read_runpod``) with the same HTTP
client and pool: ONE ``httpx.AsyncClient`` (httpx's default pool: 100 connections, 20 kept alive), a 10 s
timeout, the same three headers.

- REST v2 ``GET /v2/serverless``, then GraphQL ``POST /graphql`` (the daemon's account query, verbatim);
- per endpoint, concurrently: REST v2 ``GET /v2/serverless/{id}/workers`` and runtime ``GET /v2/{id}/health``;
- each answer is decoded as JSON, and one prometheus_client gauge per endpoint (its worker count) is set
  and served on ``127.0.0.1:--metrics-port`` by prometheus_client's own ``start_http_server``.

It honours the REST quota the way a polite client must (and the daemon does): a ``RateLimit`` header with
``r=0``, or a 429, holds every REST call back until the window resets (``t`` or ``Retry-After``). It keeps
nothing between ticks but the gauge. No retries, no ledger, no rules: what is left is the floor under the
daemon's memory and CPU (a Python interpreter, httpx, prometheus_client, the answers of one tick).

It deliberately imports nothing from ``watchdog`` (that would load the daemon's modules and measure them).
It prints ``lean-poller ready`` after its first tick and ``tick N rest=R`` lines to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from typing import Any

import httpx
from prometheus_client import Gauge, start_http_server

ACCOUNT_QUERY = (
    "query { myself { clientBalance currentSpendPerHr spendLimit endpoints { id workersStandby } } }"
)
"""watchdog.client.ACCOUNT_SPEND_QUERY, copied (importing it would import the daemon's client)."""
READY_LINE = "lean-poller ready"
_REMAINING = re.compile(r";\s*r=(\d+)")
_RESET = re.compile(r";\s*t=(\d+)")


class Poller:
    def __init__(self, base_url: str, api_key: str, interval_s: float) -> None:
        self.base = base_url.rstrip("/")
        self.interval_s = interval_s
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": "lean-poller/1",
                "Accept": "application/json",
            },
        )
        self.workers = Gauge(
            "lean_poller_workers", "Workers per endpoint, as REST v2 lists them.", ["endpoint"]
        )
        self.rest_blocked_until = 0.0
        self.rest_calls = 0

    async def rest(self, path: str) -> Any:
        """A REST v2 GET, or None while the quota is used up (or when it is refused)."""
        if time.monotonic() < self.rest_blocked_until:
            return None
        self.rest_calls += 1
        answer = await self.http.get(f"{self.base}/v2{path}")
        header = answer.headers.get("RateLimit", "")
        remaining, reset = _REMAINING.search(header), _RESET.search(header)
        if answer.status_code == 429:
            wait = float(answer.headers.get("Retry-After", reset.group(1) if reset else "60"))
            self.rest_blocked_until = time.monotonic() + wait
            return None
        if remaining is not None and reset is not None and int(remaining.group(1)) == 0:
            self.rest_blocked_until = time.monotonic() + float(reset.group(1))
        return answer.json() if answer.status_code == 200 else None

    async def tick(self) -> None:
        listed = await self.rest("/serverless")
        account = await self.http.post(f"{self.base}/graphql", json={"query": ACCOUNT_QUERY})
        account.json()
        if not listed:
            return
        ids = [endpoint["id"] for endpoint in listed.get("endpoints", [])]

        async def one(endpoint_id: str) -> None:
            workers, health = await asyncio.gather(
                self.rest(f"/serverless/{endpoint_id}/workers"),
                self.http.get(f"{self.base}/v2/{endpoint_id}/health"),
            )
            health.json()
            if workers is not None:
                self.workers.labels(endpoint_id).set(len(workers.get("workers", [])))

        await asyncio.gather(*(one(endpoint_id) for endpoint_id in ids))

    async def run(self, stop: asyncio.Event) -> None:
        ticks = 0
        started = time.monotonic()
        while not stop.is_set():
            try:
                await self.tick()
            except (httpx.HTTPError, ValueError) as exc:
                print(f"tick failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            ticks += 1
            if ticks == 1:
                print(READY_LINE, flush=True)
            print(f"tick {ticks} rest={self.rest_calls}", flush=True)
            next_at = started + ticks * self.interval_s
            delay = max(0.0, next_at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        await self.http.aclose()


async def main_async(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    poller = Poller(args.base_url, os.environ["RUNPOD_API_KEY"], args.interval)
    start_http_server(args.metrics_port, addr="127.0.0.1")
    await poller.run(stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._lean_poller", description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="the simulator, http://127.0.0.1:PORT")
    parser.add_argument("--metrics-port", type=int, required=True, help="port of the gauge on 127.0.0.1")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between ticks (5)")
    args = parser.parse_args(argv)
    if not args.base_url.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
        parser.error("--base-url must be a loopback address")
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
