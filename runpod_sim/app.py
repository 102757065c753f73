"""The simulator's HTTP face: every RunPod host on ONE loopback port, routed like runpod-api.md §1.1.

WHY one app: tests, the demo and the daemon point all four base URLs (GraphQL, REST v2, job runtime,
worker side) at one ``http://127.0.0.1:PORT``. RunPod serves them from different hosts, two of which
share a ``/v2`` prefix, so routing here follows the documented trap: ``/v2/serverless``, ``/v2/billing``
and the other reserved REST v2 collections go to REST v2; any other ``/v2/{endpoint_id}/...`` is the job
runtime or the worker-side protocol.

Routes (``{ep}`` = endpoint id, ``{job}`` = job id, ``{worker}`` = worker id):

=================================================  =================================================
``POST /graphql``                                  GraphQL control plane (graphql_api.py); 410 when retired
``GET  /v2/serverless``                            REST v2 ``{"endpoints": [...]}``
``GET|PATCH|DELETE /v2/serverless/{ep}``           REST v2 endpoint (PATCH is sparse)
``GET  /v2/serverless/{ep}/workers``               REST v2 workers + summary
``GET  /v2/serverless/{ep}/workers/{w}/logs``      REST v2 worker log, server-sent events
``GET  /v2/billing/serverless``                    REST v2 billing records + metadata
``GET  /v2/account/limits``                        REST v2 spendRate and serverlessWorkers (limit, current)
``* /v2/{pods,billing,templates,...}/...``         REST v2 collections not simulated: 404 problem+json
``POST /v2/{ep}/run`` ``/runsync?wait=ms``         job runtime: submit (``policy``, loopback ``webhook``)
``GET  /v2/{ep}/status/{job}`` ``/stream/{job}``   job runtime: poll (POST accepted too)
``POST /v2/{ep}/cancel/{job}`` ``/retry/{job}``    job runtime
``POST /v2/{ep}/purge-queue``, ``GET /health``     job runtime
``GET  /v2/{ep}/job-take/{worker}?gpu=&job_in_progress=``   worker: long poll, 204 when nothing
``GET  /v2/{ep}/job-take-batch/{worker}?batch_size=N``      worker: a list of up to N jobs
``POST /v2/{ep}/job-done/{worker}[/{job}]?job_id=&isStream=``  worker: result or progress post
``POST /v2/{ep}/job-stream/{worker}[/{job}]?job_id=``       worker: one stream chunk
``GET  /v2/{ep}/job-stop/{worker}``                worker: long poll, 204 or ``{"jobsToStop": [...]}``
``GET  /v2/{ep}/ping/{worker}?job_id=a,b&runpod_version=&status=unhealthy&check=&reason=``
``GET  /_sim/state``, ``GET|POST /_sim/faults``,   simulator-only control routes (no auth: loopback
``POST /_sim/advance``                              only; see ``_control_*`` below)
=================================================  =================================================

Worker-side URL templates for a real runpod SDK worker are given by ``serve.worker_env``. The job id of
``job-done``/``job-stream`` is taken from the path's last segment, else ``?job_id=`` (the documented
template is ``.../job-done/$RUNPOD_POD_ID?job_id=$ID``), else the ``X-Request-ID`` header. A worker that
sends ``job_in_progress`` (the SDK does) gets jobs beside the ones it runs, so a ``concurrency_modifier``
of 2 runs two jobs at once (``Simulator.take_jobs``); a worker id still holding a ``$`` (an unexpanded
``$RUNPOD_POD_ID``: the SDK replaces only ``$ID`` in the take URL) is refused with 400.

Beyond the vendored OpenAPI document (OAS2, 2026-08-20):

* ``GET /v2/account/limits`` (RunPod, 2026-11-18): shape decided in ``serialize.account_limits``; the spend
  rate it reports is enforced when workers start (``SimOptions.spend_rate_usd_per_hr``).
* The worker log stream follows OAS2 ``getWorkerLogs`` (``source``, ``tail``, ``since``, ``Last-Event-ID``;
  events ``id: <ts>/<seq>`` + ``data: {ts, source, line}``) and ends when the worker is gone; see
  ``_worker_logs``. ``create_app(log_stream_max_s=...)`` bounds streams for in-process clients.
* GraphQL retired (``SimOptions.graphql_enabled = False``, RunPod retires it in early 2027): every
  ``/graphql`` request answers **410 Gone** with an RFC 9457 problem+json body (``title`` "Gone", a
  ``detail`` naming REST v2), before auth, as a removed route would. Chosen over 404 because the resource
  is known and gone for good. runpod SDK 1.12 then fails its GraphQL helpers with ``KeyError('data')``.
* ``webhook`` on ``/run``/``/runsync``: loopback URLs only (400 otherwise), POSTed the /status body when
  the job ends (webhooks.py).

Auth: ``Authorization: Bearer <key>`` everywhere; the raw ``Authorization: <key>`` on the runtime and
worker side (the worker SDK and the docs' curl examples send it); ``?api_key=<key>`` on GraphQL. A bad,
missing or expired key is 401 in each API's own error shape:

* GraphQL: ``{"errors": [{"message": "Unauthorized ..."}], "data": null}``
* REST v2: RFC 9457 ``{"title": "Unauthorized", "status": 401, "detail": ...}`` (problem+json)
* runtime and worker side: ``{"error": "Unauthorized ..."}``. RunPod does not document this body (the SDK
  checks only the status), so the simulator uses the runtime's one documented error key, ``error``.

Ordering per request: injected faults (delay, then 5xx, then 429) act first, like a gateway in front of
the service; then auth; then the rate limits; then the route. Every runtime and worker-side request,
including refused ones, is written to the access log through ``sim.log_access``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from runpod_sim import serialize
from runpod_sim.engine import SimError, SimInvalid, SimNotFound, Simulator
from runpod_sim.faults import Faults
from runpod_sim.graphql_api import GraphQLService, request_error
from runpod_sim.state import JobPolicy, SimJob
from runpod_sim.webhooks import webhook_url_problem
from watchdog.clock import from_iso, to_iso
from watchdog.prices import DEFAULT_PRICES, PriceTable

DEFAULT_API_KEY = "sim-key-local-only"
"""The key the simulator accepts unless told otherwise. Not a secret: it only opens a loopback simulator."""

DEFAULT_LONG_POLL_S = 20.0
"""Real seconds a worker-side long poll is held before answering 204."""

REST_V2_PREFIXES = frozenset(
    {
        "serverless",
        "pods",
        "billing",
        "templates",
        "network-volumes",
        "registries",
        "catalog",
        "clusters",
        "account",
        "openapi.json",
    }
)
"""First ``/v2/`` path segments that belong to REST v2 (api.runpod.io), never to the job runtime."""

LOG_TAIL_DEFAULT = 100
LOG_TAIL_MAX = 5000
"""OAS2 ``LogTail``: lines of backfill, default 100, at most 5000."""
LOG_POLL_S = 0.2
"""Real seconds between two looks at a followed worker's log."""
LOG_KEEPALIVE_S = 15.0
"""Real seconds of silence after which a log stream sends an SSE comment, so clients see it alive."""
STATE_RECORDS_KEPT = 1000
"""Cancel requests and endpoint changes ``/_sim/state`` remembers (the oldest are dropped)."""
GRAPHQL_RETIRED_DETAIL = (
    "The GraphQL API has been retired (RunPod announced its retirement for early 2027); use the REST API v2 "
    "(/v2/serverless, /v2/billing/serverless, /v2/account/limits) and the serverless job runtime instead."
)

RUNSYNC_WAIT_DEFAULT_MS = 90_000
RUNSYNC_WAIT_MIN_MS = 1_000
RUNSYNC_WAIT_MAX_MS = 300_000

Api = Literal["graphql", "rest", "runtime", "worker"]

DEFAULT_RUNTIME_LIMITS: dict[str, int] = {
    "run": 1000,
    "runsync": 2000,
    "status": 2000,
    "stream": 2000,
    "cancel": 100,
    "purge-queue": 2,
}
"""Requests per endpoint and operation per window (runpod-api.md §4.4). Unlisted ops are unlimited."""


@dataclass
class RateLimits:
    """Fixed-window limits, measured in real (monotonic) time: they protect a service, not a model."""

    runtime_per_window: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RUNTIME_LIMITS))
    runtime_window_s: float = 10.0
    rest_per_window: int = 60
    """REST v2 quota per window, per key. OAS2's example policy is 60/minute; the real one is unknown."""
    rest_window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._windows: dict[tuple[str, ...], tuple[float, int]] = {}

    def hit(self, key: tuple[str, ...], limit: int, window_s: float) -> tuple[bool, int, int]:
        """Count one request. Returns (allowed, remaining after it, whole seconds until the window resets)."""
        now = self.clock()
        window_start = math.floor(now / window_s) * window_s
        start, used = self._windows.get(key, (window_start, 0))
        if start != window_start:
            start, used = window_start, 0
        reset_s = max(1, math.ceil(start + window_s - now))
        if used >= limit:
            self._windows[key] = (start, used)
            return False, 0, reset_s
        used += 1
        self._windows[key] = (start, used)
        return True, limit - used, reset_s


@dataclass
class _Call:
    """What one request turned out to be about, for the access log."""

    api: Api
    endpoint_id: str | None = None
    route: str = ""
    worker_id: str | None = None
    job_id: str | None = None
    tier: str | None = None
    authenticated: bool = False
    rest_headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """Raised by a route handler; rendered in the API's own error shape."""

    def __init__(self, status: int, detail: str, *, errors: list[str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.errors = errors
        super().__init__(detail)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _title(status: int) -> str:
    return _TITLES.get(status, "Error")


def error_response(api: Api, status: int, detail: str, *, errors: list[str] | None = None) -> JSONResponse:
    """An error in ``api``'s own shape (see the module docstring)."""
    if api == "graphql":
        return JSONResponse(request_error(detail), status_code=status)
    if api == "rest":
        return JSONResponse(
            serialize.problem(status, _title(status), detail, errors),
            status_code=status,
            media_type="application/problem+json",
        )
    return JSONResponse({"error": detail}, status_code=status)


_ACCESS_KIND = {"ping": "ping", "run": "request", "runsync": "request"}
"""Access-log kinds, as a gateway would see them: job submissions are "request" (user traffic), heartbeats
are "ping", and everything else (status, health, cancel, the worker protocol) is "api", which the ping
watch skips on purpose."""


class SimulatorHTTP:
    """Request handling bound to one Simulator. ``create_app`` wraps it in a Starlette app."""

    def __init__(
        self,
        sim: Simulator,
        *,
        api_key: str,
        faults: Faults,
        rate_limits: RateLimits,
        long_poll_s: float,
        runsync_max_wait_s: float | None,
        prices: PriceTable,
        log_stream_max_s: float | None = None,
        log_poll_s: float = LOG_POLL_S,
    ) -> None:
        self.sim = sim
        self.log_stream_max_s = log_stream_max_s
        self.log_poll_s = log_poll_s
        self.closing = False
        """Set when the server stops: long polls answer at once and log streams end, so a stop is prompt."""
        self.api_key = api_key
        self.faults = faults
        self.rate_limits = rate_limits
        self.long_poll_s = long_poll_s
        self.runsync_max_wait_s = runsync_max_wait_s
        self.prices = prices
        self.graphql = GraphQLService(sim, prices=prices, now=self.now)
        self.cancel_requests: deque[dict[str, Any]] = deque(maxlen=STATE_RECORDS_KEPT)
        """Every ``/cancel/{job}`` request received, refused ones included (``/_sim/state``)."""
        self.endpoint_changes: deque[dict[str, Any]] = deque(maxlen=STATE_RECORDS_KEPT)
        """Every settings change made through REST v2 PATCH or GraphQL saveEndpoint (``/_sim/state``)."""

    def now(self) -> float:
        return self.sim.clock.now()

    def begin_shutdown(self) -> None:
        """The server is stopping (serve.py calls this): end long polls and log streams now."""
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    # ------------------------------------------------------------------ the pipeline every request takes
    async def _serve(
        self, request: Request, call: _Call, handler: Callable[[Request, _Call], Awaitable[Response]]
    ) -> Response:
        started = time.monotonic()
        received = self.now()
        response = await self._serve_inner(request, call, handler)
        if call.api in ("runtime", "worker"):
            self._log(request, call, response.status_code, started)
        if call.api == "runtime" and call.route == "cancel":
            self._record_cancel(request, call, received, response.status_code)
        return response

    def _record_cancel(self, request: Request, call: _Call, received: float, status: int) -> None:
        """Ground truth for ``/_sim/state``: when a cancel reached the simulator (before any injected delay,
        auth or rate limit), for which job, and how it was answered (a 429 is a cancel that did not act)."""
        segments = [s for s in request.path_params.get("path", "").split("/") if s]
        job_id = call.job_id or (segments[2] if len(segments) == 3 else None)
        self.cancel_requests.append(
            {
                "at": received,
                "atIso": to_iso(received),
                "endpointId": call.endpoint_id,
                "jobId": job_id,
                "status": status,
            }
        )

    def _record_changes(self, before: dict[str, dict[str, Any]], via: str) -> None:
        """Ground truth for ``/_sim/state``: the settings that changed since ``before`` (endpoint id →
        :func:`serialize.state_settings`), one record per endpoint changed."""
        at = self.now()
        for endpoint_id, old in before.items():
            try:
                new = serialize.state_settings(self.sim.endpoint(endpoint_id))
            except SimNotFound:
                continue
            changes = {name: [old[name], value] for name, value in new.items() if old.get(name) != value}
            if changes:
                self.endpoint_changes.append(
                    {"at": at, "atIso": to_iso(at), "endpointId": endpoint_id, "via": via, "changes": changes}
                )

    async def _serve_inner(
        self, request: Request, call: _Call, handler: Callable[[Request, _Call], Awaitable[Response]]
    ) -> Response:
        hits = self.faults.consume(request.method, request.url.path)
        if hits.delay_s > 0:
            await asyncio.sleep(hits.delay_s)
        if hits.error_status is not None:
            return error_response(call.api, hits.error_status, "injected fault: upstream error")
        if hits.rate_limit_retry_after_s is not None:
            limited = error_response(call.api, 429, "rate limit exceeded (injected fault)")
            limited.headers["Retry-After"] = str(math.ceil(hits.rate_limit_retry_after_s))
            return limited
        refusal = self._authenticate(request, call.api)
        if refusal is not None:
            return error_response(call.api, 401, refusal)
        call.authenticated = True
        refused = self._rate_limit(request, call)
        if refused is not None:
            return refused
        response: Response
        try:
            response = await handler(request, call)
        except HttpError as exc:
            response = error_response(call.api, exc.status, exc.detail, errors=exc.errors)
        except SimNotFound as exc:
            response = error_response(call.api, 404, str(exc) or "not found")
        except SimInvalid as exc:
            response = error_response(call.api, 400, str(exc) or "invalid request")
        except SimError as exc:
            response = error_response(call.api, 400, str(exc) or type(exc).__name__)
        for name, value in call.rest_headers.items():
            response.headers[name] = value
        if hits.malformed is not None and not isinstance(response, StreamingResponse):
            response = _corrupt(response, hits.malformed)
        return response

    def _authenticate(self, request: Request, api: Api) -> str | None:
        """None when the key is right; else the 401 reason."""
        header = request.headers.get("authorization")
        presented: str | None = None
        if header:
            scheme, _, rest = header.strip().partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                presented = rest.strip()
            elif api in ("runtime", "worker") and " " not in header.strip():
                presented = header.strip()
        if presented is None and api == "graphql":
            presented = request.query_params.get("api_key")
        if presented is None:
            return "Unauthorized: missing API key" if api != "rest" else "missing bearer token"
        if presented != self.api_key:
            return "Unauthorized: invalid API key" if api != "rest" else "invalid bearer token"
        if self.faults.key_expired:
            return "Unauthorized: API key expired" if api != "rest" else "bearer token expired"
        return None

    def _rate_limit(self, request: Request, call: _Call) -> Response | None:
        limits = self.rate_limits
        if call.api == "rest":
            allowed, remaining, reset_s = limits.hit(
                ("rest", self.api_key), limits.rest_per_window, limits.rest_window_s
            )
            window = int(limits.rest_window_s)
            call.rest_headers = {
                "RateLimit": f'"minute";r={remaining};t={reset_s}',
                "RateLimit-Policy": f'"minute";q={limits.rest_per_window};w={window}',
            }
            if not allowed:
                response = error_response("rest", 429, "rate limit exceeded for the minute window")
                response.headers.update({**call.rest_headers, "Retry-After": str(reset_s)})
                return response
            return None
        if call.api == "runtime" and call.endpoint_id is not None:
            limit = limits.runtime_per_window.get(call.route)
            if limit is None:
                return None
            key = ("runtime", call.endpoint_id, call.route)
            allowed, _, reset_s = limits.hit(key, limit, limits.runtime_window_s)
            if not allowed:
                response = error_response("runtime", 429, f"rate limit exceeded for /{call.route}")
                response.headers["Retry-After"] = str(reset_s)
                return response
        return None

    def _log(self, request: Request, call: _Call, status: int, started: float) -> None:
        self.sim.log_access(
            kind=_ACCESS_KIND.get(call.route, "api"),
            endpoint_id=call.endpoint_id,
            route=request.url.path,
            method=request.method,
            status=status,
            source=request.client.host if request.client else None,
            worker_id=call.worker_id,
            job_id=call.job_id,
            tier=call.tier,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )

    # ------------------------------------------------------------------------------------ GraphQL
    async def graphql_route(self, request: Request) -> Response:
        if not self.sim.options.graphql_enabled:
            # Retired (SimOptions.graphql_enabled False): gone for everyone, before auth, like a removed
            # route at the gateway. RFC 9457 problem+json, the error shape of the API that replaced it.
            return JSONResponse(
                serialize.problem(410, "Gone", GRAPHQL_RETIRED_DETAIL),
                status_code=410,
                media_type="application/problem+json",
            )
        return await self._serve(request, _Call("graphql", route="graphql"), self._graphql)

    async def _graphql(self, request: Request, _call: _Call) -> Response:
        if request.method != "POST":
            raise HttpError(405, "GraphQL requests must be sent with POST")
        payload = await _json_body(request)
        query = payload.get("query") if isinstance(payload, dict) else None
        saving = isinstance(query, str) and "saveEndpoint" in query
        before = {ep.id: serialize.state_settings(ep) for ep in self.sim.endpoints()} if saving else {}
        status, body = self.graphql.run(payload)
        if saving:
            self._record_changes(before, "graphql")
        return JSONResponse(body, status_code=status)

    # ------------------------------------------------------------------------------------- /v2/...
    async def v2_route(self, request: Request) -> Response:
        segments = [s for s in request.path_params["path"].split("/") if s]
        if not segments:
            return await self._serve(request, _Call("rest"), _not_found)
        if segments[0] in REST_V2_PREFIXES:
            return await self._serve(request, _Call("rest", route="/".join(segments)), self._rest_dispatch)
        endpoint_id, op, rest = segments[0], (segments[1] if len(segments) > 1 else ""), segments[2:]
        api: Api = "worker" if op in _WORKER_OPS else "runtime"
        call = _Call(api, endpoint_id=endpoint_id, route=op)
        if api == "worker" and rest:
            call.worker_id = rest[0]
        handler = self._worker_dispatch if api == "worker" else self._runtime_dispatch
        return await self._serve(request, call, handler)

    # --------------------------------------------------------------------------------- REST v2
    async def _rest_dispatch(self, request: Request, _call: _Call) -> Response:
        segments = [s for s in request.path_params["path"].split("/") if s]
        method = request.method
        if segments == ["serverless"]:
            _allow(method, "GET")
            endpoints = [self._rest_endpoint(request, ep) for ep in self.sim.endpoints()]
            return JSONResponse({"endpoints": endpoints})
        if len(segments) == 2 and segments[0] == "serverless":
            _allow(method, "GET", "PATCH", "DELETE")
            return await self._rest_endpoint_route(request, segments[1])
        if len(segments) == 3 and segments[0] == "serverless" and segments[2] == "workers":
            _allow(method, "GET")
            ep = self.sim.endpoint(segments[1])
            return JSONResponse(serialize.rest_workers(ep, self.sim.workers(ep.id), now=self.now()))
        if (
            len(segments) == 5
            and segments[0] == "serverless"
            and segments[2] == "workers"
            and segments[4] == "logs"
        ):
            _allow(method, "GET")
            return self._worker_logs(request, segments[1], segments[3])
        if segments == ["billing", "serverless"]:
            _allow(method, "GET")
            return JSONResponse(self._billing(request))
        if segments == ["account", "limits"]:
            _allow(method, "GET")
            if request.query_params:
                raise HttpError(400, "GET /v2/account/limits takes no query parameters")
            return JSONResponse(serialize.account_limits(self.sim.account_limits()))
        raise HttpError(404, f"/v2/{'/'.join(segments)} is not served by the simulator")

    def _worker_logs(self, request: Request, endpoint_id: str, worker_id: str) -> Response:
        """``GET /v2/serverless/{id}/workers/{workerId}/logs``: the worker's log as server-sent events.

        OAS2 ``getWorkerLogs``: ``?source=container|system`` (omitted: both), ``?tail=N`` (0-5000, default
        100: lines to backfill), ``?since=<RFC 3339>`` (backfill from that instant; ``tail`` ignored), the
        ``Last-Event-ID`` header (an event id this route sent, ``<ts>/<seq>``, or a bare RFC 3339 time:
        resume after it; ``since`` and ``tail`` ignored). Each event: ``id: <ts>/<seq>`` and ``data:
        {"ts", "source", "line"}``. The stream then follows the live worker and ENDS once the worker is gone
        (a stopped worker's kept log is sent and the stream ends at once), or after ``log_stream_max_s``
        real seconds when set (clients reconnect with ``Last-Event-ID``). An unknown worker is 404.
        Memory per stream is bounded: it only keeps a cursor, and the engine keeps a bounded log."""
        params = request.query_params
        unknown = sorted(set(params) - {"source", "tail", "since"})
        if unknown:
            raise HttpError(400, f"unknown query parameters: {', '.join(unknown)}")
        source = params.get("source")
        if source is not None and source not in serialize.LOG_SOURCES:
            raise HttpError(400, f"source must be one of {', '.join(serialize.LOG_SOURCES)}")
        tail = _int_param(params, "tail", default=LOG_TAIL_DEFAULT, low=0, high=LOG_TAIL_MAX)
        since = _param_time(params, "since", 0.0) if "since" in params else None
        resume = _last_event_id(request.headers.get("last-event-id"))
        lines, alive = self.sim.worker_log(endpoint_id, worker_id)  # SimNotFound → 404
        wanted = [line for line in lines if source is None or line.source == source]
        if resume is not None:
            after_ts, after_seq = resume
            backfill = [
                line
                for line in wanted
                if (line.seq > after_seq if after_seq is not None else line.ts > after_ts)
            ]
        elif since is not None:
            backfill = [line for line in wanted if line.ts >= since]
        else:
            backfill = wanted[len(wanted) - tail :] if tail else []
        cursor = lines[-1].seq if lines else 0
        fmt = self.sim.options.worker_log_format
        max_s = self.log_stream_max_s
        poll_s = self.log_poll_s

        async def events() -> AsyncIterator[str]:
            for line in backfill:
                yield serialize.log_event(line, fmt=fmt)
            position = cursor
            live = alive
            started = last_sent = time.monotonic()
            while live and not self.closing and (max_s is None or time.monotonic() - started < max_s):
                await asyncio.sleep(poll_s)
                try:
                    newer, live = self.sim.worker_log(endpoint_id, worker_id, after_seq=position)
                except SimNotFound:  # forgotten meanwhile (many newer workers stopped): gone
                    return
                for line in newer:
                    position = line.seq
                    if source is None or line.source == source:
                        last_sent = time.monotonic()
                        yield serialize.log_event(line, fmt=fmt)
                if time.monotonic() - last_sent >= LOG_KEEPALIVE_S:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"},
        )

    def _rest_endpoint(self, request: Request, ep: Any) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        return serialize.rest_endpoint(ep, runtime_base=base, disk_gb=self.sim.options.disk_gb)

    async def _rest_endpoint_route(self, request: Request, endpoint_id: str) -> Response:
        if request.method == "GET":
            return JSONResponse(self._rest_endpoint(request, self.sim.endpoint(endpoint_id)))
        if request.method == "DELETE":
            self.sim.delete_endpoint(endpoint_id)
            return Response(status_code=204)
        ep = self.sim.endpoint(endpoint_id)  # 404 before body validation, like a resource lookup
        body = await _json_body(request)
        errors = serialize.validate_update_endpoint(body)
        if errors:
            raise HttpError(422, "request body failed validation", errors=errors)
        try:
            changes = serialize.update_endpoint_changes(body, ep)
        except serialize.UpdateRejected as exc:
            raise HttpError(400, str(exc)) from exc
        before = {endpoint_id: serialize.state_settings(ep)}
        updated = (
            self.sim.update_endpoint(endpoint_id, changes) if changes else self.sim.endpoint(endpoint_id)
        )
        self._record_changes(before, "rest")
        return JSONResponse(self._rest_endpoint(request, updated))

    def _billing(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        unknown = sorted(set(params) - {"bucketSize", "startTime", "endTime", "lastN", "serverlessId"})
        if unknown:
            raise HttpError(400, f"unknown query parameters: {', '.join(unknown)}")
        bucket_size = params.get("bucketSize", "day")
        if bucket_size not in serialize.BUCKET_SIZES:
            raise HttpError(400, f"bucketSize must be one of {', '.join(serialize.BUCKET_SIZES)}")
        now = self.now()
        if "lastN" in params:
            if "startTime" in params or "endTime" in params:
                raise HttpError(400, "lastN is mutually exclusive with startTime/endTime")
            try:
                last_n = int(params["lastN"])
            except ValueError:
                last_n = 0
            if last_n < 1:
                raise HttpError(400, "lastN must be an integer >= 1")
            current = serialize.bucket_floor(now, bucket_size)
            end = serialize.bucket_next(current, bucket_size)
            start = current
            for _ in range(last_n - 1):
                start = serialize.bucket_previous(start, bucket_size)
        else:
            start = serialize.bucket_floor(_param_time(params, "startTime", now - 30 * 86_400), bucket_size)
            end = serialize.bucket_ceil(_param_time(params, "endTime", now), bucket_size)
        # A defaulted endTime equal to startTime (asked exactly on a bucket boundary, e.g. the month start
        # at 00:00:00) is an empty window, not a mistake: answer with no records.
        if start > end or (start == end and "endTime" in params):
            raise HttpError(400, "startTime must be before endTime")
        serverless_id = params.get("serverlessId") or None
        fixed = serialize.fixed_bucket_seconds(bucket_size)
        if fixed is not None:
            buckets = self.sim.billing(start=start, end=end, bucket_s=fixed, endpoint_id=serverless_id)
        else:
            buckets = []
            for bucket_start in serialize.bucket_starts(start, end, bucket_size):
                bucket_end = serialize.bucket_next(bucket_start, bucket_size)
                buckets.extend(
                    self.sim.billing(
                        start=bucket_start,
                        end=bucket_end,
                        bucket_s=int(bucket_end - bucket_start),
                        endpoint_id=serverless_id,
                    )
                )
        return serialize.rest_billing(
            buckets, start=start, end=end, bucket_size=bucket_size, serverless_id=serverless_id
        )

    # ------------------------------------------------------------------------------ job runtime
    async def _runtime_dispatch(self, request: Request, call: _Call) -> Response:
        assert call.endpoint_id is not None
        segments = [s for s in request.path_params["path"].split("/") if s][2:]
        op = call.route
        if op in ("run", "runsync", "purge-queue", "health") and segments:
            raise HttpError(404, f"unknown route /{op}/{'/'.join(segments)}")
        if op in ("status", "stream", "cancel", "retry"):
            if len(segments) != 1:
                raise HttpError(404, f"/{op} needs exactly one job id")
            call.job_id = segments[0]
        if op == "run":
            _allow(request.method, "POST")
            job = await self._submit(request, call, sync=False)
            return JSONResponse({"id": job.id, "status": job.status})
        if op == "runsync":
            _allow(request.method, "POST")
            wait_s = _runsync_wait_s(request)
            job = await self._submit(request, call, sync=True)
            if self.runsync_max_wait_s is not None:
                wait_s = min(wait_s, self.runsync_max_wait_s)
            job = await self.sim.wait_for_job(call.endpoint_id, job.id, timeout_s=wait_s)
            return JSONResponse(serialize.job_status(job))
        if op == "status":
            _allow(request.method, "GET", "POST")
            job = self.sim.job(call.endpoint_id, segments[0])
            call.tier = job.tier
            return JSONResponse(serialize.job_status(job))
        if op == "stream":
            _allow(request.method, "GET", "POST")
            job, chunks = self.sim.drain_stream(call.endpoint_id, segments[0])
            call.tier = job.tier
            return JSONResponse(serialize.stream_body(job, chunks))
        if op == "cancel":
            _allow(request.method, "POST")
            job = self.sim.cancel(call.endpoint_id, segments[0])
            call.tier = job.tier
            return JSONResponse({"id": job.id, "status": job.status})
        if op == "retry":
            _allow(request.method, "POST")
            job = self.sim.retry(call.endpoint_id, segments[0])
            call.tier = job.tier
            return JSONResponse({"id": job.id, "status": job.status})
        if op == "purge-queue":
            _allow(request.method, "POST")
            return JSONResponse({"removed": self.sim.purge_queue(call.endpoint_id), "status": "completed"})
        if op == "health":
            _allow(request.method, "GET")
            counts = self.sim.health(call.endpoint_id)
            return JSONResponse(serialize.health_body(counts, omit_zero=self.sim.options.health_omit_zero))
        raise HttpError(404, f"unknown route /v2/{call.endpoint_id}/{op}")

    async def _submit(self, request: Request, call: _Call, *, sync: bool) -> SimJob:
        assert call.endpoint_id is not None
        body = await _json_body(request)
        if not isinstance(body, dict) or "input" not in body:
            raise HttpError(400, 'the body must be a JSON object with an "input" key')
        job_input = body["input"]
        tier = job_input.get("tier") if isinstance(job_input, dict) else None
        call.tier = str(tier) if tier is not None else None
        webhook = body.get("webhook")
        if webhook is not None:
            problem = webhook_url_problem(webhook)
            if problem is not None:
                raise HttpError(400, problem)
        job = self.sim.submit(
            call.endpoint_id,
            job_input,
            policy=_policy(body.get("policy")),
            sync=sync,
            source=request.client.host if request.client else None,
            tier=call.tier,
            webhook=webhook,
        )
        call.job_id = job.id
        return job

    # ------------------------------------------------------------------------------ worker side
    async def _worker_dispatch(self, request: Request, call: _Call) -> Response:
        assert call.endpoint_id is not None
        segments = [s for s in request.path_params["path"].split("/") if s][2:]
        if not segments:
            raise HttpError(404, f"/{call.route} needs a worker id")
        worker_id = segments[0]
        extra = segments[1:]
        op = call.route
        params = request.query_params
        if op in ("job-take", "job-take-batch", "job-stop", "ping") and extra:
            raise HttpError(404, f"unknown route /{op}/{'/'.join(segments)}")
        if "$" in worker_id:
            # e.g. RUNPOD_WEBHOOK_GET_JOB=.../job-take/$RUNPOD_POD_ID?... (runpod-python's .env_example):
            # the SDK replaces only $ID in that template, so every poll would come from a worker no ping
            # names. Refused loudly (the SDK reads a 400 as "no job"), never registered as a worker.
            raise HttpError(
                400,
                f"worker id {worker_id!r} is an unexpanded template variable: the runpod SDK substitutes "
                "only $ID in RUNPOD_WEBHOOK_GET_JOB (and $RUNPOD_POD_ID, then $ID, in the output, stream "
                "and ping URLs); see `runpod-watchdog simulate --external-workers` for the environment",
            )
        if op == "job-take":
            _allow(request.method, "GET")
            job = await self.sim.wait_take_job(
                call.endpoint_id,
                worker_id,
                timeout_s=self.long_poll_s,
                gpu=params.get("gpu"),
                job_in_progress=_job_in_progress(params),
                until=self.is_closing,
            )
            if job is None:
                return Response(status_code=204)
            call.job_id = job.id
            call.tier = job.tier
            return JSONResponse(serialize.worker_job(job))
        if op == "job-take-batch":
            _allow(request.method, "GET")
            return await self._take_batch(request, call, worker_id)
        if op == "job-stop":
            _allow(request.method, "GET")
            ids = await self.sim.wait_stop_signals(
                call.endpoint_id, worker_id, timeout_s=self.long_poll_s, until=self.is_closing
            )
            if not ids:
                return Response(status_code=204)
            call.job_id = ",".join(ids)
            return JSONResponse({"jobsToStop": ids})
        if op == "ping":
            _allow(request.method, "GET", "POST")
            job_ids = [j for j in params.get("job_id", "").split(",") if j]
            call.job_id = ",".join(job_ids) or None
            reason = params.get("reason")
            check = params.get("check")
            if check:
                reason = f"{check}: {reason}" if reason else check
            self.sim.ping(
                call.endpoint_id,
                worker_id,
                job_ids=job_ids,
                runpod_version=params.get("runpod_version"),
                status=params.get("status"),
                reason=reason,
            )
            return JSONResponse({"status": "pong"})
        # job-done / job-stream
        _allow(request.method, "POST")
        if len(extra) > 1:
            raise HttpError(404, f"unknown route /{op}/{'/'.join(segments)}")
        job_id = (
            extra[0]
            if extra
            else params.get("job_id") or params.get("id") or request.headers.get("x-request-id")
        )
        if not job_id:
            raise HttpError(400, "no job id: put it in the path, ?job_id= or X-Request-ID")
        call.job_id = job_id
        raw = await request.body()
        if not raw.strip():
            raise HttpError(400, "empty body; expected JSON text")
        # JSON text labelled as a form; handed over undecoded so the engine can classify non-JSON reports
        body = raw.decode("utf-8", errors="replace")
        if op == "job-done":
            is_stream = params.get("isStream", "false").lower() == "true"
            self.sim.job_done(call.endpoint_id, worker_id, job_id, body, is_stream=is_stream)
        else:
            self.sim.job_stream(call.endpoint_id, worker_id, job_id, body)
        return JSONResponse({})

    async def _take_batch(self, request: Request, call: _Call, worker_id: str) -> Response:
        assert call.endpoint_id is not None
        try:
            batch_size = int(request.query_params.get("batch_size", "1"))
        except ValueError as exc:
            raise HttpError(400, "batch_size must be an integer") from exc
        if batch_size < 1:
            raise HttpError(400, "batch_size must be >= 1")
        jobs = await self.sim.wait_take_jobs(
            call.endpoint_id,
            worker_id,
            timeout_s=self.long_poll_s,
            gpu=request.query_params.get("gpu"),
            max_jobs=batch_size,
            job_in_progress=_job_in_progress(request.query_params),
            until=self.is_closing,
        )
        if not jobs:
            return Response(status_code=204)
        call.job_id = ",".join(job.id for job in jobs)
        return JSONResponse([serialize.worker_job(job) for job in jobs])

    # ---------------------------------------------------------------------- control (simulator only)
    async def control_state(self, request: Request) -> Response:
        """``GET /_sim/state``: the model at a glance, for the demo, debugging tests and the benchmarks.

        Ground truth beyond the summary (times are epoch seconds of the simulator's clock):

        * ``jobs``: every job the simulator still holds (queued, running, or finished within its result
          retention), with ``submittedAt``/``startedAt``/``finishedAt``, ``workerId``, ``status`` and
          ``error`` (a cancelled job's ``finishedAt`` is when the cancel took effect);
        * ``sessions``: every billed worker session, ``startedAt``/``stoppedAt`` (None: still billing),
          billed seconds and USD;
        * ``cancelRequests``: every ``/cancel/{job}`` received (``at``, ``jobId``, the HTTP ``status``
          answered: a 429 or 404 did not cancel anything); the last ``STATE_RECORDS_KEPT``;
        * ``endpointChanges``: every settings change through REST PATCH or GraphQL saveEndpoint (``at``,
          ``via``, ``changes``: name → [old, new]); the last ``STATE_RECORDS_KEPT``;
        * per endpoint, ``idleTimeout`` and the live ``workerList`` (id, state, job ids, since)."""
        now = self.now()
        endpoints = []
        for ep in self.sim.endpoints():
            counts = self.sim.health(ep.id)
            workers = self.sim.workers(ep.id)
            endpoints.append(
                {
                    "id": ep.id,
                    "name": ep.name,
                    "workersMin": ep.workers_min,
                    "workersMax": ep.workers_max,
                    "workersStandby": ep.workers_standby,
                    "executionTimeoutMs": ep.execution_timeout_ms,
                    "idleTimeout": ep.idle_timeout,
                    "health": serialize.health_body(counts),
                    "workers": serialize.rest_workers(ep, workers, now=now)["summary"],
                    "workerList": [serialize.state_worker(worker) for worker in workers],
                    "billedUsd": self.sim.billed_usd_total(ep.id),
                }
            )
        sessions = [
            serialize.state_session(
                session, self.sim.session_billed_seconds(session), self.sim.session_usd(session)
            )
            for session in self.sim.sessions()
        ]
        # The engine has no public listing of its jobs; this read-only route is the one place that needs it.
        jobs = [serialize.state_job(job) for by_id in self.sim._jobs.values() for job in by_id.values()]
        return JSONResponse(
            {
                "now": now,
                "nowIso": to_iso(now),
                "billedUsdTotal": self.sim.billed_usd_total(),
                "currentSpendPerHr": self.sim.current_spend_per_hr(),
                "accountLimits": serialize.account_limits(self.sim.account_limits()),
                "spendRateRefusals": self.sim.spend_rate_refusals,
                "graphqlEnabled": self.sim.options.graphql_enabled,
                "endpoints": endpoints,
                "faults": self.faults.snapshot(),
                "jobs": jobs,
                "sessions": sessions,
                "cancelRequests": list(self.cancel_requests),
                "endpointChanges": list(self.endpoint_changes),
            }
        )

    async def control_faults(self, request: Request) -> Response:
        """``GET /_sim/faults``: active rules. ``POST /_sim/faults``: apply a command (faults.Faults
        ``apply_command``), e.g. ``{"add": [{"kind": "error", "pattern": "/v2/*/health", "count": 2}]}``."""
        if request.method == "POST":
            try:
                self.faults.apply_command(await _json_body(request))
            except (HttpError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.faults.snapshot())

    async def control_advance(self, request: Request) -> Response:
        """``POST /_sim/advance`` ``{"seconds": N}``: move a ManualClock forward (409 on other clocks)."""
        try:
            body = await _json_body(request)
        except HttpError as exc:
            return JSONResponse({"error": exc.detail}, status_code=400)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return JSONResponse({"error": 'body must be {"seconds": <number >= 0>}'}, status_code=400)
        advance = getattr(self.sim.clock, "advance", None)
        if advance is None:
            return JSONResponse(
                {"error": "the simulator's clock cannot be advanced by hand"}, status_code=409
            )
        advance(float(seconds))
        self.sim.sync()
        return JSONResponse({"now": self.now(), "nowIso": to_iso(self.now())})

    async def fallback(self, request: Request) -> Response:
        return JSONResponse({"error": f"no such route: {request.url.path}"}, status_code=404)


_WORKER_OPS = frozenset({"job-take", "job-take-batch", "job-done", "job-stream", "job-stop", "ping"})


async def _not_found(request: Request, _call: _Call) -> Response:
    raise HttpError(404, f"no such route: {request.url.path}")


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HttpError(405, f"method {method} not allowed; use {', '.join(allowed)}")


async def _json_body(request: Request) -> Any:
    """Decode a JSON body whatever its Content-Type (the worker SDK labels JSON as a form)."""
    raw = await request.body()
    if not raw.strip():
        raise HttpError(400, "empty body; expected JSON")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"body is not valid JSON: {exc}") from exc


def _param_time(params: Any, name: str, default: float) -> float:
    text = params.get(name)
    if text is None:
        return default
    try:
        return from_iso(text)
    except ValueError as exc:
        raise HttpError(400, f"{name} must be an RFC 3339 date-time") from exc


def _int_param(params: Any, name: str, *, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise HttpError(400, f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise HttpError(400, f"{name} must be within {low}..{high}")
    return value


def _last_event_id(text: str | None) -> tuple[float, int | None] | None:
    """``Last-Event-ID``: an id this route sent (``<RFC 3339>/<seq>``) → (ts, seq); a bare RFC 3339
    time → (ts, None); absent → None. Anything else is a 400."""
    if text is None or not text.strip():
        return None
    stamp, slash, seq_text = text.strip().partition("/")
    try:
        ts = from_iso(stamp)
        seq = int(seq_text) if slash else None
    except ValueError as exc:
        raise HttpError(400, "Last-Event-ID must be an event id of this stream or an RFC 3339 time") from exc
    return ts, seq


def _job_in_progress(params: Any) -> bool | None:
    """``job_in_progress`` of job-take (the SDK sends 0 or 1); None when absent (older workers)."""
    text = params.get("job_in_progress")
    if text is None:
        return None
    if text.lower() in ("1", "true"):
        return True
    if text.lower() in ("0", "false"):
        return False
    raise HttpError(400, "job_in_progress must be 0 or 1")


def _runsync_wait_s(request: Request) -> float:
    """``?wait`` in ms (1000–300000, default 90000). Out-of-range values are clamped, not refused."""
    text = request.query_params.get("wait")
    if text is None:
        return RUNSYNC_WAIT_DEFAULT_MS / 1000
    try:
        wait_ms = int(text)
    except ValueError as exc:
        raise HttpError(400, "wait must be an integer number of milliseconds") from exc
    return min(max(wait_ms, RUNSYNC_WAIT_MIN_MS), RUNSYNC_WAIT_MAX_MS) / 1000


def _policy(raw: Any) -> JobPolicy | None:
    """``policy`` of /run and /runsync (runpod-api.md §4.3)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise HttpError(400, "policy must be an object")
    policy = JobPolicy()
    if "executionTimeout" in raw:
        value = raw["executionTimeout"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 5000:
            raise HttpError(400, "policy.executionTimeout must be an integer >= 5000 (ms)")
        policy.execution_timeout_ms = value
    if "ttl" in raw:
        value = raw["ttl"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 10_000:
            raise HttpError(400, "policy.ttl must be an integer >= 10000 (ms)")
        policy.ttl_ms = value
    if "lowPriority" in raw:
        if not isinstance(raw["lowPriority"], bool):
            raise HttpError(400, "policy.lowPriority must be a boolean")
        policy.low_priority = raw["lowPriority"]
    return policy


def _corrupt(response: Response, mode: str) -> Response:
    """Malformed-body fault: ``invalid_json`` cuts the body in half; ``wrong_shape`` wraps it in a list."""
    body = bytes(response.body) if response.body else b"{}"
    if mode == "wrong_shape":
        try:
            new_body = json.dumps([json.loads(body)]).encode()
        except json.JSONDecodeError:
            new_body = b"[]"
    else:
        new_body = body[: max(1, len(body) // 2)]
        if new_body == body:
            new_body = b"{"
    status = response.status_code if response.status_code != 204 else 200
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")
    }
    return Response(new_body, status_code=status, headers=headers, media_type="application/json")


def create_app(
    sim: Simulator,
    *,
    api_key: str = DEFAULT_API_KEY,
    faults: Faults | None = None,
    rate_limits: RateLimits | None = None,
    long_poll_s: float = DEFAULT_LONG_POLL_S,
    runsync_max_wait_s: float | None = None,
    prices: PriceTable | None = None,
    log_stream_max_s: float | None = None,
    log_poll_s: float = LOG_POLL_S,
) -> Starlette:
    """The ASGI app for ``sim``. ``app.state.faults`` / ``app.state.rate_limits`` are the live objects.

    ``long_poll_s`` bounds worker-side long polls (real seconds); ``runsync_max_wait_s``, when set, caps
    ``/runsync``'s wait below the requested ``?wait`` (tests keep it short). ``log_stream_max_s``, when set,
    closes a worker log stream after that many real seconds (0: send the backfill and close): httpx's
    ``ASGITransport`` buffers a whole response, so in-process clients need streams that end."""
    http = SimulatorHTTP(
        sim,
        api_key=api_key,
        faults=faults if faults is not None else Faults(),
        rate_limits=rate_limits if rate_limits is not None else RateLimits(),
        long_poll_s=long_poll_s,
        runsync_max_wait_s=runsync_max_wait_s,
        prices=prices if prices is not None else getattr(sim, "prices", DEFAULT_PRICES),
        log_stream_max_s=log_stream_max_s,
        log_poll_s=log_poll_s,
    )
    all_methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/graphql", http.graphql_route, methods=all_methods),
            Route("/_sim/state", http.control_state, methods=["GET"]),
            Route("/_sim/faults", http.control_faults, methods=["GET", "POST"]),
            Route("/_sim/advance", http.control_advance, methods=["POST"]),
            Route("/v2/{path:path}", http.v2_route, methods=all_methods),
            Route("/{path:path}", http.fallback, methods=all_methods),
        ]
    )
    app.state.simulator = sim
    app.state.faults = http.faults
    app.state.rate_limits = http.rate_limits
    app.state.api_key = api_key
    app.state.http = http
    return app
