"""Runs INSIDE the runpod SDK's own venv: drives the simulator with the official client and prints one
JSON document on stdout, so the product's tests can compare it with the simulator's state.

Usage: client_probe.py OPERATION [ENDPOINT_ID [COUNT]]; the key comes from $SIM_API_KEY, the URLs from
RUNPOD_API_BASE_URL / RUNPOD_ENDPOINT_BASE_URL (read by the SDK itself).

``run_n`` and ``purge_only`` split ``purge_queue`` in two so the test can read the simulator's queue
between them: the count the SDK reports is then compared with what the simulator really had queued.
``run_stream`` runs a job on a streaming worker and collects ``job.stream()``; ``graphql_retired`` shows
what the SDK raises when GraphQL answers 410 Gone (and that its runtime client still works).
"""

from __future__ import annotations

import json
import os
import sys
import time

import runpod


def main() -> int:
    operation = sys.argv[1]
    endpoint_id = sys.argv[2] if len(sys.argv) > 2 else ""
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    runpod.api_key = os.environ["SIM_API_KEY"]
    out: object
    if operation == "get_endpoints":
        out = runpod.get_endpoints()
    elif operation == "health":
        out = runpod.Endpoint(endpoint_id).health()
    elif operation == "run_status_cancel":
        endpoint = runpod.Endpoint(endpoint_id)
        job = endpoint.run({"sim": {"hang": True}})
        first = job.status()
        deadline = time.time() + 30
        while job.status() == "IN_QUEUE" and time.time() < deadline:
            time.sleep(0.2)
        before_cancel = job.status()
        cancelled = job.cancel()
        out = {
            "id": job.job_id,
            "first": first,
            "before_cancel": before_cancel,
            "cancel": cancelled,
            "after": job.status(),
        }
    elif operation == "run_then_output":
        endpoint = runpod.Endpoint(endpoint_id)
        job = endpoint.run({"sim": {"duration_s": 0.5}, "prompt": "sannu"})
        out = {"id": job.job_id, "output": job.output(timeout=60), "status": job.status()}
    elif operation == "run_sync":
        out = runpod.Endpoint(endpoint_id).run_sync(
            {"sim": {"duration_s": 0.3}, "prompt": "i ni ce"}, timeout=60
        )
    elif operation == "purge_queue":
        endpoint = runpod.Endpoint(endpoint_id)
        ids = [endpoint.run({"sim": {"duration_s": 1}}).job_id for _ in range(3)]
        out = {"queued": ids, "purge": endpoint.purge_queue()}
    elif operation == "run_n":
        endpoint = runpod.Endpoint(endpoint_id)
        out = {"queued": [endpoint.run({"sim": {"duration_s": 1}, "n": i}).job_id for i in range(count)]}
    elif operation == "purge_only":
        out = runpod.Endpoint(endpoint_id).purge_queue()
    elif operation == "run_stream":
        endpoint = runpod.Endpoint(endpoint_id)
        job = endpoint.run({"chunks": count, "gap_s": 0.3})
        chunks = list(job.stream())  # the SDK polls /stream/{id} until the job is final
        out = {"id": job.job_id, "chunks": chunks, "status": job.status(), "output": job.output(timeout=30)}
    elif operation == "graphql_retired":
        try:
            runpod.get_endpoints()
            out = {"raised": None}
        except Exception as exc:  # what the SDK makes of a retired GraphQL API
            out = {"raised": type(exc).__name__, "message": str(exc)}
        out["health"] = runpod.Endpoint(endpoint_id).health()  # the runtime keeps working
    elif operation == "bad_key_graphql":
        runpod.api_key = "not-the-key"
        try:
            runpod.get_endpoints()
            out = {"raised": None}
        except Exception as exc:  # the SDK's own exception types are what we compare
            out = {"raised": type(exc).__name__, "message": str(exc)}
    elif operation == "bad_key_runtime":
        try:
            runpod.Endpoint(endpoint_id, api_key="not-the-key").health()
            out = {"raised": None}
        except Exception as exc:
            out = {"raised": type(exc).__name__, "message": str(exc)}
    else:
        print(f"unknown operation {operation!r}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
