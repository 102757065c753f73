"""Pure functions from the simulator's records to each RunPod API's wire shape.

WHY a separate module: the shapes are the contract the daemon's client is tested against, so they are kept
free of HTTP and engine concerns and checked against RunPod's own OpenAPI document (REST v2) and the
runpod SDK's field lists (GraphQL, runtime). Nothing here reads a clock or mutates state: callers pass
``now`` and the base URLs.

Representation choices the sources leave open (runpod-api.md "Open questions"), decided here:

* REST v2 ``timeout`` is an integer (the schema requires one). An endpoint with no execution timeout
  (``execution_timeout_ms`` None or 0) is shown as ``0``, the value FLASH and tetra-rp document as
  "0 (no limit)". PATCH ``{"timeout": 0}`` sets "no timeout" the same way.
* REST v2 ``dataCenterIds`` is the comma-split GraphQL ``locations``; ``networkVolumes`` is the one
  ``networkVolumeId`` (or ``[]``).
* REST v2 ``workers.idleTimeout`` is omitted when scaling is ``REQUEST_COUNT`` (as OAS2 says).
* Runtime ``/stream`` chunks are always objects ``{"output": chunk}`` (the shape the SDK reads).
* Container fields the simulator does not model (image, args, ports, registry) get fixed stand-ins.
* REST v2 ``/v2/account/limits``: each of ``spendRate`` and ``serverlessWorkers`` is ``{"limit",
  "current"}`` (RunPod names the two objects, not their members; see ``account_limits``).
* Worker log events: ``id`` is ``<ts>/<seq>`` (OAS2's example form), ``ts`` RFC 3339 with milliseconds;
  a container line about a job is the runpod SDK's own text (``log_line_text``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from runpod_sim.state import (
    AccountLimits,
    BilledSession,
    BillingBucket,
    HealthCounts,
    SimEndpoint,
    SimJob,
    SimWorker,
    WorkerLogLine,
)
from watchdog.clock import to_iso
from watchdog.prices import PriceTable

SIM_DATA_CENTER_ID = "SIM-LOCAL-1"
"""Data center reported for placed simulated workers."""

_FLASHBOOT = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")

DEFAULT_DISK_GB = 20
"""Container disk shown when the simulator is not billing disk (the schema needs an integer >= 1)."""

RUNTIME_OPS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("runSync", "runsync"),
    ("status", "status/{job_id}"),
    ("stream", "stream/{job_id}"),
    ("cancel", "cancel/{job_id}"),
    ("retry", "retry/{job_id}"),
    ("purgeQueue", "purge-queue"),
    ("health", "health"),
)

# --------------------------------------------------------------------------------------------- REST v2


def rest_endpoint_type(ep: SimEndpoint) -> str:
    return "LOAD_BALANCER" if ep.type.upper() in ("LB", "LOAD_BALANCER") else "QUEUE"


def graphql_endpoint_type(ep: SimEndpoint) -> str:
    return "LB" if rest_endpoint_type(ep) == "LOAD_BALANCER" else "QB"


def split_csv(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def gpu_pools_and_exclusions(gpu_ids: str) -> tuple[list[str], list[str]]:
    """GraphQL ``gpuIds`` ("AMPERE_48,-NVIDIA A40") → (pools, excluded GPU type ids)."""
    pools: list[str] = []
    excluded: list[str] = []
    for part in split_csv(gpu_ids):
        if part.startswith("-"):
            if part[1:].strip():
                excluded.append(part[1:].strip())
        else:
            pools.append(part)
    return pools, excluded


def gpu_ids_from_pools(pools: Sequence[str], excluded: Sequence[str] = ()) -> str:
    return ",".join([*pools, *(f"-{gpu}" for gpu in excluded)])


def timeout_ms_for_rest(ep: SimEndpoint) -> int:
    """The endpoint's execution timeout for REST v2; 0 means "no timeout" (see module docstring)."""
    return int(ep.execution_timeout_ms or 0)


def request_urls(ep: SimEndpoint, runtime_base: str) -> dict[str, str]:
    """``runtime_base`` is the simulator's base URL (``http://127.0.0.1:PORT``), standing in for both
    ``https://api.runpod.ai`` and the load balancer's host."""
    base = runtime_base.rstrip("/")
    if rest_endpoint_type(ep) == "LOAD_BALANCER":
        return {"base": f"{base}/v2/{ep.id}", "health": f"{base}/v2/{ep.id}/ping"}
    return {key: f"{base}/v2/{ep.id}/{suffix}" for key, suffix in RUNTIME_OPS}


def rest_scaling(ep: SimEndpoint) -> dict[str, Any]:
    if ep.scaler_type == "REQUEST_COUNT":
        return {"type": "REQUEST_COUNT", "requestCount": max(1, math.ceil(ep.scaler_value))}
    return {"type": "QUEUE_DELAY", "queueDelay": max(0.5, float(ep.scaler_value))}


def rest_endpoint(ep: SimEndpoint, *, runtime_base: str, disk_gb: int = 0) -> dict[str, Any]:
    """SimEndpoint → OAS2 ``Endpoint``."""
    workers: dict[str, Any] = {"min": ep.workers_min, "max": ep.workers_max}
    if ep.scaler_type != "REQUEST_COUNT":
        workers["idleTimeout"] = ep.idle_timeout
    pools, excluded = gpu_pools_and_exclusions(ep.gpu_ids)
    gpu: dict[str, Any] | None = None
    if pools:
        gpu = {"pools": pools, "count": ep.gpu_count, "allowedCudaVersions": [], "minCudaVersion": None}
        if excluded:
            gpu["excludedTypes"] = excluded
    return {
        "id": ep.id,
        "name": ep.name,
        "type": rest_endpoint_type(ep),
        "requestUrls": request_urls(ep, runtime_base),
        "image": f"runpod-simulator/{ep.template_id}:latest",
        "args": "",
        "disk": disk_gb if disk_gb > 0 else DEFAULT_DISK_GB,
        "ports": [],
        "env": dict(ep.env),
        "registry": None,
        "gpu": gpu,
        "workers": workers,
        "scaling": rest_scaling(ep),
        "dataCenterIds": split_csv(ep.locations),
        "networkVolumes": [ep.network_volume_id] if ep.network_volume_id else [],
        "timeout": timeout_ms_for_rest(ep),
        "flashboot": ep.flashboot if ep.flashboot in _FLASHBOOT else "OFF",
        "createdAt": to_iso(ep.created_at),
    }


def worker_is_placed(worker: SimWorker) -> bool:
    return worker.state != "THROTTLED" and worker.gpu_type_id is not None


def rest_worker(worker: SimWorker, ep: SimEndpoint, *, now: float) -> dict[str, Any]:
    """SimWorker → OAS2 ``Worker``."""
    placed = worker_is_placed(worker)
    return {
        "id": worker.id,
        "status": worker.state,
        "isStale": worker.version != ep.version,
        "version": worker.version,
        "gpuCount": ep.gpu_count if placed else 0,
        "image": f"runpod-simulator/{ep.template_id}:latest",
        "uptimeSeconds": max(0, int(now - worker.started_at)) if placed else None,
        "gpuTypeId": worker.gpu_type_id if placed else None,
        "dataCenterId": SIM_DATA_CENTER_ID if placed else None,
        "startedAt": to_iso(worker.started_at) if placed else None,
    }


WORKER_STATES: tuple[str, ...] = ("RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY")


def rest_workers(ep: SimEndpoint, workers: Iterable[SimWorker], *, now: float) -> dict[str, Any]:
    """OAS2 ``ListEndpointWorkersResponse``; the summary is an exact roll-up of the list."""
    listed = [rest_worker(w, ep, now=now) for w in workers]
    summary = {state.lower(): sum(1 for w in listed if w["status"] == state) for state in WORKER_STATES}
    summary["total"] = len(listed)
    return {"endpointVersion": ep.version, "summary": summary, "workers": listed}


def rest_billing(
    buckets: Iterable[BillingBucket],
    *,
    start: float,
    end: float,
    bucket_size: str,
    serverless_id: str | None,
) -> dict[str, Any]:
    """OAS2 ``ListServerlessBillingResponse``; totals are the sums of the records shown."""
    records: list[dict[str, Any]] = []
    for bucket in sorted(buckets, key=lambda b: (b.start, b.endpoint_id)):
        records.append(
            {
                "startTime": to_iso(bucket.start),
                "endTime": to_iso(bucket.end),
                "serverlessId": bucket.endpoint_id,
                "totalAmount": bucket.gpu_usd + bucket.disk_usd,
                "gpuAmount": bucket.gpu_usd,
                "cpuAmount": 0.0,
                "diskAmount": bucket.disk_usd,
                "feeAmount": 0.0,
            }
        )
    amount_keys = ("totalAmount", "gpuAmount", "cpuAmount", "diskAmount", "feeAmount")
    totals = {key: math.fsum(r[key] for r in records) for key in amount_keys}
    return {
        "records": records,
        "metadata": {
            "query": {
                "startTime": to_iso(start),
                "endTime": to_iso(end),
                "bucketSize": bucket_size,
                "serverlessId": serverless_id,
            },
            "recordCount": len(records),
            "uniqueServerlessCount": len({r["serverlessId"] for r in records}),
            "totals": totals,
        },
    }


def account_limits(limits: AccountLimits) -> dict[str, Any]:
    """``GET /v2/account/limits``: ``{"spendRate": {...}, "serverlessWorkers": {...}}``.

    RunPod's page ("Get account limits", 2026-11-18) names the two required members and says each is an
    object, without their fields (and OAS2 of 2026-08-20 predates the route). The simulator's reading,
    UNCERTAIN: each object is ``{"limit": ..., "current": ...}``: ``spendRate.limit`` the hourly cap in
    USD (``null`` when there is none), ``spendRate.current`` what the running workers cost per hour now;
    ``serverlessWorkers.limit`` the account's worker quota, ``serverlessWorkers.current`` the sum of
    workersMax across its serverless endpoints. Schema: tests/contracts/runpod-rest-v2.additions.json."""
    return {
        "spendRate": {
            "limit": limits.spend_rate_usd_per_hr,
            "current": round(limits.current_spend_per_hr, 6),
        },
        "serverlessWorkers": {
            "limit": limits.serverless_workers_limit,
            "current": limits.serverless_workers_max_total,
        },
    }


LOG_SOURCES: tuple[str, ...] = ("container", "system")
"""OAS2 ``LogSource``."""


def log_ts(ts: float) -> str:
    """A log line's timestamp: RFC 3339 UTC with milliseconds (``2026-06-01T12:05:04.123Z``)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_line_text(line: WorkerLogLine, *, fmt: str = "json") -> str:
    """A worker log line as the worker printed it.

    Container lines about a job are what runpod SDK 1.12.0's ``RunPodLogger.log`` prints: on RunPod, where
    ``RUNPOD_ENDPOINT_ID`` is set, ``json.dumps({"requestId": job_id, "message": ..., "level": ...})``
    (``fmt="json"``); elsewhere ``f"{level.ljust(7)}| {job_id} | {message}"`` (``fmt="text"``). System
    lines (the platform's lifecycle notes) are plain text."""
    if line.source != "container":
        return line.message
    if fmt == "json":
        return json.dumps({"requestId": line.job_id, "message": line.message, "level": line.level})
    prefix = f"{line.job_id} | " if line.job_id else ""
    return f"{line.level.ljust(7)}| {prefix}{line.message}"


def log_event_id(line: WorkerLogLine) -> str:
    """The SSE ``id:`` of a log event: its timestamp, a slash and a sequence number (OAS2's example
    ``2026-06-01T12:05:04Z/000000000042``), so a reconnect with ``Last-Event-ID`` resumes exactly."""
    return f"{log_ts(line.ts)}/{line.seq:012d}"


def log_event(line: WorkerLogLine, *, fmt: str = "json") -> str:
    """One server-sent event: ``id:`` and a JSON ``data:`` payload ``{ts, source, line}`` (OAS2)."""
    data = {"ts": log_ts(line.ts), "source": line.source, "line": log_line_text(line, fmt=fmt)}
    return f"id: {log_event_id(line)}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def problem(status: int, title: str, detail: str, errors: Sequence[str] | None = None) -> dict[str, Any]:
    """RFC 9457 problem document (OAS2 ``ErrorResponse``)."""
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = list(errors)
    return body


# ---------------------------------------------------------------------------------- billing buckets

BUCKET_SIZES: tuple[str, ...] = ("hour", "day", "week", "month", "year")
_FIXED_BUCKET_S = {"hour": 3600, "day": 86_400, "week": 7 * 86_400}
_EPOCH_MONDAY = 4 * 86_400
"""1970-01-05, the first Monday after the epoch: weeks are ISO weeks (Monday 00:00 UTC)."""


def fixed_bucket_seconds(bucket_size: str) -> int | None:
    """Seconds per bucket for hour/day/week; None for calendar month/year."""
    return _FIXED_BUCKET_S.get(bucket_size)


def bucket_floor(ts: float, bucket_size: str) -> float:
    """Start of the UTC bucket containing ``ts``."""
    if bucket_size == "week":
        week = _FIXED_BUCKET_S["week"]
        return math.floor((ts - _EPOCH_MONDAY) / week) * week + _EPOCH_MONDAY
    fixed = fixed_bucket_seconds(bucket_size)
    if fixed is not None:
        return math.floor(ts / fixed) * fixed
    moment = datetime.fromtimestamp(ts, tz=UTC)
    if bucket_size == "month":
        return datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp()
    if bucket_size == "year":
        return datetime(moment.year, 1, 1, tzinfo=UTC).timestamp()
    raise ValueError(f"unknown bucket size {bucket_size!r}")


def bucket_next(start: float, bucket_size: str) -> float:
    """Start of the bucket after the one starting at ``start`` (which must be a boundary)."""
    fixed = fixed_bucket_seconds(bucket_size)
    if fixed is not None:
        return start + fixed
    moment = datetime.fromtimestamp(start, tz=UTC)
    if bucket_size == "month":
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    if bucket_size == "year":
        return datetime(moment.year + 1, 1, 1, tzinfo=UTC).timestamp()
    raise ValueError(f"unknown bucket size {bucket_size!r}")


def bucket_previous(start: float, bucket_size: str) -> float:
    fixed = fixed_bucket_seconds(bucket_size)
    if fixed is not None:
        return start - fixed
    moment = datetime.fromtimestamp(start, tz=UTC)
    if bucket_size == "month":
        year, month = (moment.year - 1, 12) if moment.month == 1 else (moment.year, moment.month - 1)
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    return datetime(moment.year - 1, 1, 1, tzinfo=UTC).timestamp()


def bucket_ceil(ts: float, bucket_size: str) -> float:
    """``ts`` itself if on a boundary, else the end of its bucket (OAS2 ``endTime`` snapping)."""
    floor = bucket_floor(ts, bucket_size)
    return floor if floor == ts else bucket_next(floor, bucket_size)


def bucket_starts(start: float, end: float, bucket_size: str) -> list[float]:
    starts = []
    cursor = start
    while cursor < end:
        starts.append(cursor)
        cursor = bucket_next(cursor, bucket_size)
    return starts


# ------------------------------------------------------------------------------------------- runtime


def job_status(job: SimJob) -> dict[str, Any]:
    """SimJob → ``/status`` (and ``/runsync``, ``/cancel``, webhook) body."""
    body: dict[str, Any] = {"id": job.id, "status": job.status}
    delay = job.delay_time_ms
    if delay is not None:
        body["delayTime"] = delay
    execution = job.execution_time_ms
    if execution is not None:
        body["executionTime"] = execution
    if job.worker_id is not None:
        body["workerId"] = job.worker_id
    if job.output is not None:
        body["output"] = job.output
    if job.error is not None:
        body["error"] = job.error
    return body


def stream_chunk(chunk: Any) -> dict[str, Any]:
    """The engine buffers the worker's raw chunks; the runtime shows each as ``{"output": chunk}``."""
    return {"output": chunk}


def stream_body(job: SimJob, chunks: Iterable[Any]) -> dict[str, Any]:
    """``/stream`` always carries ``stream`` (the sync SDK raises KeyError without it, §4.5)."""
    return {"status": job.status, "stream": [stream_chunk(c) for c in chunks]}


HEALTH_JOB_KEYS = (
    ("completed", "completed"),
    ("failed", "failed"),
    ("inProgress", "in_progress"),
    ("inQueue", "in_queue"),
    ("retried", "retried"),
)
HEALTH_WORKER_KEYS = ("idle", "initializing", "ready", "running", "throttled", "unhealthy")


def health_body(counts: HealthCounts, *, omit_zero: bool = False) -> dict[str, Any]:
    jobs = {wire: getattr(counts, attr) for wire, attr in HEALTH_JOB_KEYS}
    workers = {key: getattr(counts, key) for key in HEALTH_WORKER_KEYS}
    if omit_zero:
        jobs = {k: v for k, v in jobs.items() if v}
        workers = {k: v for k, v in workers.items() if v}
    return {"jobs": jobs, "workers": workers}


def worker_job(job: SimJob) -> dict[str, Any]:
    """A job as handed to a worker by ``job-take`` (the SDK requires ``id`` and ``input``)."""
    return {"id": job.id, "input": job.input}


# ------------------------------------------------------------------------- simulator-only (/_sim/state)
# Ground truth for tests and benchmarks, not a RunPod shape: times are epoch seconds of the simulator's
# clock (``None`` while unknown), so a caller computes latencies without parsing dates.

STATE_SETTINGS: tuple[tuple[str, str], ...] = (
    ("workersMin", "workers_min"),
    ("workersMax", "workers_max"),
    ("workersStandby", "workers_standby"),
    ("idleTimeout", "idle_timeout"),
    ("executionTimeoutMs", "execution_timeout_ms"),
    ("scalerType", "scaler_type"),
    ("scalerValue", "scaler_value"),
    ("gpuIds", "gpu_ids"),
    ("flashboot", "flashboot"),
)
"""The endpoint settings whose changes ``/_sim/state`` records (``endpointChanges``)."""


def state_settings(ep: SimEndpoint) -> dict[str, Any]:
    return {wire: getattr(ep, attr) for wire, attr in STATE_SETTINGS}


def state_job(job: SimJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "endpointId": job.endpoint_id,
        "status": job.status,
        "submittedAt": job.submitted_at,
        "startedAt": job.started_at,
        "finishedAt": job.finished_at,
        "workerId": job.worker_id,
        "error": job.error,
        "retries": job.retries,
        "policyExecutionTimeoutMs": job.policy.execution_timeout_ms,
    }


def state_worker(worker: SimWorker) -> dict[str, Any]:
    return {
        "id": worker.id,
        "state": worker.state,
        "since": worker.state_since,
        "startedAt": worker.started_at,
        "jobIds": list(worker.job_ids),
    }


def state_session(session: BilledSession, billed_s: int, usd: float) -> dict[str, Any]:
    return {
        "workerId": session.worker_id,
        "endpointId": session.endpoint_id,
        "gpuTypeId": session.gpu_type_id,
        "startedAt": session.started_at,
        "stoppedAt": session.stopped_at,
        "billedSeconds": billed_s,
        "usd": usd,
    }


# ------------------------------------------------------------------------------------------- GraphQL


def gpu_display_name(gpu_type_id: str | None) -> str | None:
    if gpu_type_id is None:
        return None
    return gpu_type_id.removeprefix("NVIDIA ").removeprefix("GeForce ")


def graphql_pod(worker: SimWorker, ep: SimEndpoint, *, now: float, prices: PriceTable) -> dict[str, Any]:
    """A worker as the ``Pod`` under ``Endpoint.pods`` (runpod-api.md §2.2)."""
    placed = worker_is_placed(worker)
    cost = prices.usd_per_s(worker.gpu_type_id, active=worker.active) * 3600 * ep.gpu_count
    return {
        "id": worker.id,
        "name": f"{ep.name}-{worker.id}",
        "desiredStatus": "RUNNING",
        "lastStatusChange": f"{worker.state.title()}: {to_iso(worker.state_since)}",
        "machineId": f"sim-machine-{worker.id}" if placed else None,
        "costPerHr": round(cost, 6) if placed else 0.0,
        "gpuCount": ep.gpu_count,
        "uptimeSeconds": max(0, int(now - worker.started_at)) if placed else 0,
        "podType": "SERVERLESS",
        "imageName": f"runpod-simulator/{ep.template_id}:latest",
        "machine": {
            "gpuDisplayName": gpu_display_name(worker.gpu_type_id),
            "location": SIM_DATA_CENTER_ID if placed else None,
            "podHostId": f"sim-host-{worker.id}" if placed else None,
        },
    }


def graphql_endpoint(
    ep: SimEndpoint, workers: Iterable[SimWorker], *, now: float, prices: PriceTable
) -> dict[str, Any]:
    """SimEndpoint → every field of GraphQL ``Endpoint`` (runpod-api.md §2.1), keyed by field name."""
    network_volume = (
        {"id": ep.network_volume_id, "dataCenterId": SIM_DATA_CENTER_ID} if ep.network_volume_id else None
    )
    return {
        "aiKey": None,
        "gpuIds": ep.gpu_ids,
        "id": ep.id,
        "idleTimeout": ep.idle_timeout,
        "name": ep.name,
        "networkVolumeId": ep.network_volume_id or None,
        "locations": ep.locations,
        "scalerType": ep.scaler_type,
        "scalerValue": math.ceil(ep.scaler_value),
        "templateId": ep.template_id,
        "type": graphql_endpoint_type(ep),
        "userId": ep.user_id,
        "version": ep.version,
        "workersMax": ep.workers_max,
        "workersMin": ep.workers_min,
        "workersStandby": ep.workers_standby,
        "gpuCount": ep.gpu_count,
        "env": [{"key": key, "value": value} for key, value in ep.env.items()],
        "createdAt": to_iso(ep.created_at),
        "networkVolume": network_volume,
        "executionTimeoutMs": timeout_ms_for_rest(ep),
        "flashBootType": ep.flashboot if ep.flashboot in _FLASHBOOT else "OFF",
        "pods": [graphql_pod(w, ep, now=now, prices=prices) for w in workers],
        "workersPFBTarget": None,
        "flashEnvironmentId": None,
        "activeBuildid": None,
        "idePodId": None,
        "instanceIds": None,
        "allowedCudaVersions": None,
        "minCudaVersion": None,
        "networkVolumeIds": (
            [{"networkVolumeId": ep.network_volume_id, "dataCenterId": SIM_DATA_CENTER_ID}]
            if ep.network_volume_id
            else []
        ),
        "computeType": "GPU",
        "modelReferences": None,
        "compliance": None,
    }


# ------------------------------------------------------------------------ REST v2 PATCH (the reverse)

_CUDA_VERSION = re.compile(r"^\d+\.\d+$")
_CUDA_FLOOR = re.compile(r"^$|^\d+\.\d+$")
_EXCLUDED_TYPE = re.compile(r"^\s*[^-\s]")


def _is_int(value: Any) -> bool:
    """JSON Schema ``integer``: a number with no fractional part, never a boolean."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_workers(value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append("$.workers: must be an object")
        return
    for key in sorted(set(value) - {"min", "max", "idleTimeout"}):
        errors.append(f"$.workers: additional properties '{key}' not allowed")
    for key in ("min", "max"):
        if key in value and not (_is_int(value[key]) and value[key] >= 0):
            errors.append(f"$.workers.{key}: must be an integer >= 0")
    if "idleTimeout" in value and not (_is_int(value["idleTimeout"]) and 1 <= value["idleTimeout"] <= 3600):
        errors.append("$.workers.idleTimeout: must be an integer between 1 and 3600")


def _check_scaling(value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append("$.scaling: must be an object")
        return
    kind = value.get("type")
    if kind == "QUEUE_DELAY":
        number_key = "queueDelay"
        ok = _is_number(value.get(number_key)) and value[number_key] >= 0.5
        problem_text = "must be a number >= 0.5"
    elif kind == "REQUEST_COUNT":
        number_key = "requestCount"
        ok = _is_int(value.get(number_key)) and value[number_key] >= 1
        problem_text = "must be an integer >= 1"
    else:
        errors.append("$.scaling.type: must be one of QUEUE_DELAY, REQUEST_COUNT")
        return
    if number_key not in value:
        errors.append(f"$.scaling: missing property '{number_key}'")
    elif not ok:
        errors.append(f"$.scaling.{number_key}: {problem_text}")
    for key in sorted(set(value) - {"type", number_key}):
        errors.append(f"$.scaling: additional properties '{key}' not allowed")


def _check_gpu(value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append("$.gpu: must be an object")
        return
    allowed = {"pools", "excludedTypes", "count", "allowedCudaVersions", "minCudaVersion"}
    for key in sorted(set(value) - allowed):
        errors.append(f"$.gpu: additional properties '{key}' not allowed")
    if "pools" in value and not (_is_str_list(value["pools"]) and len(value["pools"]) >= 1):
        errors.append("$.gpu.pools: must be a non-empty array of strings")
    if "excludedTypes" in value:
        excluded = value["excludedTypes"]
        if not _is_str_list(excluded) or len(set(excluded)) != len(excluded):
            errors.append("$.gpu.excludedTypes: must be an array of unique strings")
        elif not all(_EXCLUDED_TYPE.match(item) for item in excluded):
            errors.append("$.gpu.excludedTypes: items must be GPU type ids (no leading '-')")
        if "pools" not in value:
            errors.append("$.gpu: excludedTypes requires pools")
    if "count" in value and not (_is_int(value["count"]) and value["count"] >= 1):
        errors.append("$.gpu.count: must be an integer >= 1")
    if "allowedCudaVersions" in value and not (
        _is_str_list(value["allowedCudaVersions"])
        and all(_CUDA_VERSION.match(v) for v in value["allowedCudaVersions"])
    ):
        errors.append("$.gpu.allowedCudaVersions: must be an array of 'major.minor' strings")
    if "minCudaVersion" in value and not (
        isinstance(value["minCudaVersion"], str) and _CUDA_FLOOR.match(value["minCudaVersion"])
    ):
        errors.append("$.gpu.minCudaVersion: must be '' or 'major.minor'")


UPDATE_ENDPOINT_KEYS = frozenset(
    {
        "args",
        "disk",
        "env",
        "image",
        "ports",
        "registry",
        "cpu",
        "dataCenterIds",
        "flashboot",
        "gpu",
        "name",
        "networkVolumes",
        "scaling",
        "templateId",
        "timeout",
        "workers",
    }
)


def validate_update_endpoint(body: Any) -> list[str]:
    """Check a PATCH body against OAS2 ``UpdateEndpointRequest`` (``unevaluatedProperties: false``);
    returns the failures (empty = valid). Hand-written so the shipped simulator needs neither jsonschema
    nor the contract file; tests/simulator prove it agrees with jsonschema on the real document."""
    if not isinstance(body, dict):
        return ["$: must be an object"]
    unknown = sorted(set(body) - UPDATE_ENDPOINT_KEYS)
    errors = [f"$: additional properties '{key}' not allowed" for key in unknown]
    for key in ("args", "image", "templateId"):
        if key in body and not isinstance(body[key], str):
            errors.append(f"$.{key}: must be a string")
    if "name" in body and not (isinstance(body["name"], str) and body["name"]):
        errors.append("$.name: must be a non-empty string")
    if "registry" in body and not (body["registry"] is None or isinstance(body["registry"], str)):
        errors.append("$.registry: must be a string or null")
    if "disk" in body and not (_is_int(body["disk"]) and body["disk"] >= 1):
        errors.append("$.disk: must be an integer >= 1")
    if "timeout" in body and not _is_int(body["timeout"]):
        errors.append("$.timeout: must be an integer")
    if "env" in body and not (
        isinstance(body["env"], dict) and all(isinstance(v, str) for v in body["env"].values())
    ):
        errors.append("$.env: must be an object of strings")
    for key in ("ports", "dataCenterIds", "networkVolumes"):
        if key in body and not _is_str_list(body[key]):
            errors.append(f"$.{key}: must be an array of strings")
    if "flashboot" in body and body["flashboot"] not in _FLASHBOOT:
        errors.append(f"$.flashboot: must be one of {', '.join(_FLASHBOOT)}")
    if "cpu" in body and not (
        isinstance(body["cpu"], list) and body["cpu"] and all(isinstance(c, dict) for c in body["cpu"])
    ):
        errors.append("$.cpu: must be a non-empty array of CPU configurations")
    if "workers" in body:
        _check_workers(body["workers"], errors)
    if "scaling" in body:
        _check_scaling(body["scaling"], errors)
    if "gpu" in body:
        _check_gpu(body["gpu"], errors)
    return errors


class UpdateRejected(ValueError):
    """A schema-valid PATCH the simulator refuses (HTTP 400)."""


def update_endpoint_changes(body: dict[str, Any], ep: SimEndpoint) -> dict[str, Any]:
    """A validated PATCH body → sparse SimEndpoint changes. An explicit 0 is a value, never "absent".
    Container fields the simulator does not model (image, args, disk, ports, registry, CUDA constraints)
    are accepted and ignored."""
    changes: dict[str, Any] = {}
    if "cpu" in body:
        raise UpdateRejected("cpu can only be set on a CPU endpoint; this is a GPU endpoint")
    if "name" in body:
        changes["name"] = body["name"]
    if "templateId" in body:
        changes["template_id"] = body["templateId"]
    if "env" in body:
        changes["env"] = dict(body["env"])
    if "timeout" in body:
        changes["execution_timeout_ms"] = int(body["timeout"])
    if "flashboot" in body:
        changes["flashboot"] = body["flashboot"]
    if "dataCenterIds" in body:
        changes["locations"] = ",".join(body["dataCenterIds"])
    if "networkVolumes" in body:
        volumes = body["networkVolumes"]
        if len(volumes) > 1:
            raise UpdateRejected("the simulator models at most one network volume per endpoint")
        changes["network_volume_id"] = volumes[0] if volumes else ""
    scaler_type = ep.scaler_type
    if "scaling" in body:
        scaling = body["scaling"]
        scaler_type = scaling["type"]
        changes["scaler_type"] = scaler_type
        if scaler_type == "QUEUE_DELAY":
            changes["scaler_value"] = float(scaling["queueDelay"])
        else:
            changes["scaler_value"] = int(scaling["requestCount"])
    workers = body.get("workers", {})
    if "min" in workers:
        changes["workers_min"] = int(workers["min"])
    if "max" in workers:
        changes["workers_max"] = int(workers["max"])
    if "idleTimeout" in workers:
        if scaler_type == "REQUEST_COUNT":
            raise UpdateRejected("workers.idleTimeout is not applicable to endpoints scaling on requestCount")
        changes["idle_timeout"] = int(workers["idleTimeout"])
    gpu = body.get("gpu", {})
    if "pools" in gpu:
        excluded = [gpu_type.strip() for gpu_type in gpu.get("excludedTypes", [])]
        changes["gpu_ids"] = gpu_ids_from_pools(gpu["pools"], excluded)
    if "count" in gpu:
        changes["gpu_count"] = int(gpu["count"])
    return changes
