"""Runs INSIDE the runpod SDK's own venv as a real serverless worker (runpod.serverless.start).

The behaviour is chosen by $SIM_WORKER_MODE:
  echo        returns {"echo": input, "worker": id} after input.sleep_s seconds (default 0.2)
  concurrent  the same, with a concurrency_modifier of 2: the SDK takes a second job while one runs
              (job-take-batch with batch_size=2, or job-take with job_in_progress=1)
  stream      an async generator yielding {"chunk": i} input.chunks times (default 3), input.gap_s apart
              (default 0.3), with return_aggregate_stream: the final result is the list of chunks
  progress    sends progress_update(job, {"percent": 50}), then returns {"done": True} after input.sleep_s
              seconds (default 1.5)
  error       returns {"error": "bad input: <input.prompt>"} (the SDK reports a failed job)
  raise       raises ValueError("handler exploded") (the SDK reports its error_type/error_message JSON)
  hang-async  never returns, but is cancellable through the SDK's job-stop channel
  hang-sync   never returns and blocks the event loop (the incident: only stopping the worker helps)
The SDK's heartbeat runs in a separate process, so it keeps pinging while a handler hangs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import runpod

MODE = os.environ.get("SIM_WORKER_MODE", "echo")


async def echo(job: dict) -> dict:
    await asyncio.sleep(float(job["input"].get("sleep_s", 0.2)))
    return {"echo": job["input"], "worker": os.environ.get("RUNPOD_POD_ID")}


def concurrency_two(current: int) -> int:
    return 2


async def stream(job: dict) -> AsyncIterator[dict]:
    for index in range(int(job["input"].get("chunks", 3))):
        await asyncio.sleep(float(job["input"].get("gap_s", 0.3)))
        yield {"chunk": index}


async def progress(job: dict) -> dict:
    runpod.serverless.progress_update(job, {"percent": 50})
    await asyncio.sleep(float(job["input"].get("sleep_s", 1.5)))
    return {"done": True}


def error(job: dict) -> dict:
    return {"error": f"bad input: {job['input'].get('prompt')}"}


def raises(job: dict) -> dict:
    raise ValueError("handler exploded")


async def hang_async(job: dict) -> dict:
    await asyncio.Event().wait()  # nothing ever sets it
    return {}


def hang_sync(job: dict) -> dict:
    while True:
        time.sleep(3600)


HANDLERS = {
    "echo": echo,
    "concurrent": echo,
    "stream": stream,
    "progress": progress,
    "error": error,
    "raise": raises,
    "hang-async": hang_async,
    "hang-sync": hang_sync,
}
CONFIG: dict[str, dict] = {
    "concurrent": {"concurrency_modifier": concurrency_two},
    "stream": {"return_aggregate_stream": True},
}

if __name__ == "__main__":
    runpod.serverless.start({"handler": HANDLERS[MODE], **CONFIG.get(MODE, {})})
