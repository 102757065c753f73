"""Runs INSIDE the runpod SDK's own venv as a real serverless worker (runpod.serverless.start).

The behaviour is chosen by $SIM_WORKER_MODE:
  echo        returns {"echo": input} after input.sleep_s seconds (default 0.2)
  hang-async  never returns, but is cancellable through the SDK's job-stop channel
  hang-sync   never returns and blocks the event loop (the incident: only stopping the worker helps)
The SDK's heartbeat runs in a separate process, so it keeps pinging while a handler hangs.
"""

from __future__ import annotations

import asyncio
import os
import time

import runpod

MODE = os.environ.get("SIM_WORKER_MODE", "echo")


async def echo(job: dict) -> dict:
    await asyncio.sleep(float(job["input"].get("sleep_s", 0.2)))
    return {"echo": job["input"], "worker": os.environ.get("RUNPOD_POD_ID")}


async def hang_async(job: dict) -> dict:
    await asyncio.Event().wait()  # nothing ever sets it
    return {}


def hang_sync(job: dict) -> dict:
    while True:
        time.sleep(3600)


HANDLERS = {"echo": echo, "hang-async": hang_async, "hang-sync": hang_sync}

if __name__ == "__main__":
    runpod.serverless.start({"handler": HANDLERS[MODE]})
