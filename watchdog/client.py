"""Async client for the three RunPod APIs the watchdog talks to: REST v2, the job runtime, and GraphQL.

Why it is built this way:

* The watchdog exists to stop money leaking, so the client has to keep working while RunPod is flaky
  (timeouts on every call; capped exponential backoff with full jitter; 429 ``Retry-After`` and the
  ``RateLimit`` header honoured so we never make throttling worse) and has to fail at once, precisely,
  when retrying cannot help: a rejected key is fatal, and a body of the wrong shape names the route and
  the field (``RunPodProtocolError``) instead of surfacing later as a ``KeyError`` in policy code.
* Every answer becomes an immutable model from ``watchdog.models``; nothing downstream sees raw JSON.
  Parsing is tolerant where RunPod's documents disagree with each other (unknown fields are ignored,
  missing optional ones get documented defaults) and strict where a wrong value would mislead a money
  decision (an endpoint without ``workers.max``, a worker status outside the enum).
* The API key controls a paid account. It only ever travels in the ``Authorization: Bearer`` header
  (runpod-api.md §1.1: all three hosts accept it) and is scrubbed from every message this module
  produces, even when a server echoes it back in an error body.

What is retried (runpod-api.md §2.5, §3.3, §4.4):

=======================  =============  ======  ==================================================
call                     connect error  429     read timeout, dropped connection, 5xx, 408
=======================  =============  ======  ==================================================
GET (every read)         yes            yes     yes
PATCH endpoint           yes            yes     yes: it sets absolute values, so a repeat converges
                                                on the same state (and the kill switch must land)
GraphQL ``myself``       yes            yes     yes: a read; POST only by GraphQL convention
POST cancel/{job}        yes            yes     yes: cancelling twice still leaves the job cancelled,
                                                and a runaway job is exactly what costs money
POST purge-queue         yes            yes     no: a repeat could also remove jobs queued in the
                                                meantime (and the route allows only 2 calls / 10 s)
=======================  =============  ======  ==================================================

A connect error means the request never left; a 429 means RunPod refused it unprocessed; so both are
safe to repeat for any call. 401/403 are never retried, 404 and other 4xx are never retried either.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import httpx

from watchdog import __version__
from watchdog.clock import from_iso, to_iso
from watchdog.config import RunPodConfig, Secret
from watchdog.errors import (
    ConfigError,
    RunPodAuthError,
    RunPodError,
    RunPodNotFound,
    RunPodProtocolError,
    RunPodRejected,
    RunPodUnavailable,
)
from watchdog.models import (
    AccountSpend,
    BillingRecord,
    BillingReport,
    EndpointConfig,
    EndpointWorkers,
    Health,
    Job,
    JobStatus,
    PurgeResult,
    Worker,
    WorkerSummary,
)
from watchdog.vocabulary import WorkerStatus

__all__ = ["BUCKET_SIZES", "RunPodClient"]

logger = logging.getLogger(__name__)

BUCKET_SIZES: Final = ("hour", "day", "week", "month", "year")
"""REST v2 ``bucketSize`` values (OAS2 ``BillingBucketSize``)."""

ACCOUNT_SPEND_QUERY: Final = (
    "query { myself { clientBalance currentSpendPerHr spendLimit endpoints { id workersStandby } } }"
)
"""The one GraphQL query we still need: REST v2 has no account balance/spend rate and no workersStandby."""

_REDACTED: Final = "<redacted>"
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that happen before a single byte of the request reached RunPod."""

_Api = Literal["rest", "runtime", "graphql"]
OnCall = Callable[[str, int | None, float], None]
_EnumT = TypeVar("_EnumT", bound=StrEnum)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Call:
    """One logical API call; the retry loop may send it several times."""

    method: str
    url: str
    route: str
    """Concrete ``METHOD /path`` without query string, for exceptions and logs (names the endpoint/job)."""
    template: str
    """``METHOD /path/{placeholder}`` for ``on_call``: bounded metric labels (job ids are unbounded)."""
    api: _Api
    repeatable: bool
    """Safe to send again after a failure that may have reached RunPod (read timeout, 5xx)."""
    params: Mapping[str, str] | None = None
    body: Any = None


class RunPodClient:
    """Typed async access to RunPod's REST v2, job runtime and GraphQL APIs.

    Use as an async context manager (one ``httpx.AsyncClient`` is shared by all calls)::

        async with RunPodClient(api_key=key, graphql_url=..., rest_url=..., runtime_url=...) as api:
            endpoints = await api.list_endpoints()

    Args:
        api_key: RunPod API key; sent only as ``Authorization: Bearer``, never shown anywhere.
        graphql_url: full GraphQL URL, e.g. ``https://api.runpod.io/graphql``.
        rest_url: REST v2 base ending in ``/v2``, e.g. ``https://api.runpod.io/v2``.
        runtime_url: job runtime base ending in ``/v2``, e.g. ``https://api.runpod.ai/v2``.
        timeout_s: limit for each attempt (connect, write, read, and the attempt as a whole).
        max_retries: further attempts after the first one fails retryably.
        backoff_base_s: first backoff ceiling; it doubles per retry up to ``backoff_max_s``. The actual
            wait is uniformly random in ``[0, ceiling]`` ("full jitter") so many daemons do not retry in step.
        retry_after_cap_s: longest wait honoured from ``Retry-After`` or a ``RateLimit`` header.
        transport: an ``httpx`` transport to use instead of the network (tests, the in-process simulator).
        user_agent: sent as ``User-Agent`` (Cloudflare in front of RunPod may reject anonymous clients).
        sleep: how to wait between attempts; injectable so tests need not wait.
        on_call: called after every HTTP exchange with ``(route template, status or None, seconds)``,
            e.g. ``("GET /v2/serverless/{endpoint_id}", 200, 0.12)``; ``None`` means no response arrived.
        rng: source of jitter (``random.Random`` by default); injectable for deterministic tests.
    """

    def __init__(
        self,
        *,
        api_key: str,
        graphql_url: str,
        rest_url: str,
        runtime_url: str,
        timeout_s: float = 10,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        retry_after_cap_s: float = 60,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = f"runpod-watchdog/{__version__}",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_call: OnCall | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key or api_key != api_key.strip() or any(ch.isspace() for ch in api_key):
            raise ConfigError("RUNPOD_API_KEY is empty or contains whitespace")
        if (
            timeout_s <= 0
            or max_retries < 0
            or backoff_base_s < 0
            or backoff_max_s < 0
            or retry_after_cap_s < 0
        ):
            raise ConfigError(
                "RunPod client: timeout_s must be > 0; max_retries, backoffs, retry_after_cap_s >= 0"
            )
        self._api_key = api_key
        self._graphql_url = _checked_url("graphql_url", graphql_url)
        self._rest_url = _checked_url("rest_url", rest_url)
        self._runtime_url = _checked_url("runtime_url", runtime_url)
        self._timeout_s = float(timeout_s)
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._retry_after_cap_s = retry_after_cap_s
        self._sleep = sleep
        self._on_call = on_call
        self._rng = rng or random.Random()
        self._quota_deadline: dict[_Api, float] = {}
        """Per API: monotonic time before which a ``RateLimit`` header told us not to call again."""
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": user_agent,
                "Accept": "application/json",
            },
        )

    @classmethod
    def from_config(
        cls,
        runpod: RunPodConfig,
        api_key: Secret,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_call: OnCall | None = None,
    ) -> RunPodClient:
        """The client as ``[runpod]`` configures it: the one way every command builds it."""
        return cls(
            api_key=api_key.reveal(),
            graphql_url=runpod.graphql_url,
            rest_url=runpod.rest_url,
            runtime_url=runpod.runtime_url,
            timeout_s=runpod.request_timeout_s,
            max_retries=runpod.max_retries,
            backoff_max_s=runpod.backoff_max_s,
            retry_after_cap_s=runpod.retry_after_cap_s,
            transport=transport,
            on_call=on_call,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(graphql_url={self._redact(self._graphql_url)!r}, "
            f"rest_url={self._redact(self._rest_url)!r}, runtime_url={self._redact(self._runtime_url)!r}, "
            f"api_key={_REDACTED!r})"
        )

    async def __aenter__(self) -> RunPodClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        await self._http.aclose()

    # ------------------------------------------------------------------ REST v2 (control plane)

    async def list_endpoints(self) -> list[EndpointConfig]:
        """``GET /v2/serverless``: every serverless endpoint of the account."""
        call = self._rest("GET", "/serverless", "/serverless")
        return await self._run(call, _parse_endpoint_list)

    async def get_endpoint(self, endpoint_id: str) -> EndpointConfig:
        """``GET /v2/serverless/{id}``; ``RunPodNotFound`` if it does not exist."""
        ep = _path_id("endpoint_id", endpoint_id)
        call = self._rest("GET", f"/serverless/{ep}", "/serverless/{endpoint_id}")
        return await self._run(call, lambda body, route: _parse_endpoint(_Node.root(body, route)))

    async def patch_endpoint(
        self,
        endpoint_id: str,
        *,
        workers_min: int | None = None,
        workers_max: int | None = None,
        idle_timeout_s: int | None = None,
        execution_timeout_ms: int | None = None,
        flashboot: str | None = None,
        scaler_type: Literal["QUEUE_DELAY", "REQUEST_COUNT"] | None = None,
        scaler_value: float | None = None,
    ) -> EndpointConfig:
        """``PATCH /v2/serverless/{id}``, sparse: only the arguments given are sent, an explicit 0 included.

        ``workers_max=0`` is the kill switch (every worker stops); ``execution_timeout_ms`` is REST v2
        ``timeout``. ``scaler_type`` and ``scaler_value`` go together (REST v2 ``scaling`` is a tagged union).
        Returns the endpoint as RunPod reports it after the change.

        Raises:
            ValueError: nothing to change, or a value RunPod would refuse (negative, bool, out of range).
        """
        ep = _path_id("endpoint_id", endpoint_id)
        body = _patch_body(
            workers_min=workers_min,
            workers_max=workers_max,
            idle_timeout_s=idle_timeout_s,
            execution_timeout_ms=execution_timeout_ms,
            flashboot=flashboot,
            scaler_type=scaler_type,
            scaler_value=scaler_value,
        )
        call = self._rest("PATCH", f"/serverless/{ep}", "/serverless/{endpoint_id}", body=body)
        return await self._run(call, lambda body, route: _parse_endpoint(_Node.root(body, route)))

    async def list_workers(self, endpoint_id: str) -> EndpointWorkers:
        """``GET /v2/serverless/{id}/workers``: the live workers (scaled-down ones are not listed)."""
        ep = _path_id("endpoint_id", endpoint_id)
        call = self._rest("GET", f"/serverless/{ep}/workers", "/serverless/{endpoint_id}/workers")
        return await self._run(call, _parse_workers)

    async def serverless_billing(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        bucket_size: str = "hour",
        endpoint_id: str | None = None,
        last_n: int | None = None,
    ) -> BillingReport:
        """``GET /v2/billing/serverless``: billed USD per endpoint per bucket.

        Give a window (``start``, optional ``end``; epoch seconds, RunPod snaps them outwards to bucket
        boundaries) or ``last_n`` buckets ending with the current one; RunPod refuses both at once.
        With neither, RunPod's default window (the last 30 days) applies.
        """
        if bucket_size not in BUCKET_SIZES:
            raise ValueError(f"bucket_size must be one of {', '.join(BUCKET_SIZES)}, not {bucket_size!r}")
        if last_n is not None and (start is not None or end is not None):
            raise ValueError("last_n and start/end are mutually exclusive (REST v2 refuses both)")
        params: dict[str, str] = {"bucketSize": bucket_size}
        if start is not None:
            params["startTime"] = to_iso(start)
        if end is not None:
            params["endTime"] = to_iso(end)
        if last_n is not None:
            if _is_bool_or_not_int(last_n) or last_n < 1:
                raise ValueError(f"last_n must be an int >= 1, not {last_n!r}")
            params["lastN"] = str(last_n)
        if endpoint_id is not None:
            params["serverlessId"] = _path_id("endpoint_id", endpoint_id)
        call = self._rest("GET", "/billing/serverless", "/billing/serverless", params=params)
        return await self._run(call, _parse_billing)

    # ------------------------------------------------------------------ job runtime

    async def health(self, endpoint_id: str) -> Health:
        """``GET {runtime}/{id}/health``: queue and worker counts; any missing key counts as 0."""
        ep = _path_id("endpoint_id", endpoint_id)
        call = self._runtime("GET", f"/{ep}/health", "/{endpoint_id}/health")
        return await self._run(call, _parse_health)

    async def job_status(self, endpoint_id: str, job_id: str) -> Job:
        """``GET {runtime}/{id}/status/{job_id}``; ``RunPodNotFound`` once the job expired (TTL)."""
        ep, job = _path_id("endpoint_id", endpoint_id), _path_id("job_id", job_id)
        call = self._runtime("GET", f"/{ep}/status/{job}", "/{endpoint_id}/status/{job_id}")
        return await self._run(call, lambda body, route: _parse_job(_Node.root(body, route)))

    async def cancel_job(self, endpoint_id: str, job_id: str) -> Job:
        """``POST {runtime}/{id}/cancel/{job_id}``: stops an in-progress job or drops a queued one.

        Retried like a read (see the module docstring): a repeated cancel converges on a cancelled job.
        """
        ep, job = _path_id("endpoint_id", endpoint_id), _path_id("job_id", job_id)
        call = self._runtime("POST", f"/{ep}/cancel/{job}", "/{endpoint_id}/cancel/{job_id}")
        return await self._run(call, lambda body, route: _parse_job(_Node.root(body, route)))

    async def purge_queue(self, endpoint_id: str) -> PurgeResult:
        """``POST {runtime}/{id}/purge-queue``: removes queued jobs (in-progress ones keep running).

        Not repeated after a failure that may have reached RunPod, so jobs queued after the purge are safe.
        """
        ep = _path_id("endpoint_id", endpoint_id)
        call = self._runtime("POST", f"/{ep}/purge-queue", "/{endpoint_id}/purge-queue", repeatable=False)
        return await self._run(call, _parse_purge)

    # ------------------------------------------------------------------ GraphQL (only what REST v2 lacks)

    async def account_spend(self) -> AccountSpend:
        """GraphQL ``myself``: balance, current spend rate, spend limit, and workersStandby per endpoint.

        A GraphQL ``errors`` member is a failure (``RunPodRejected``) even when the HTTP status is 200.
        """
        path = urlsplit(self._graphql_url).path or "/"
        call = _Call(
            method="POST",
            url=self._graphql_url,
            route=f"POST {path}",
            template=f"POST {path}",
            api="graphql",
            repeatable=True,
            body={"query": ACCOUNT_SPEND_QUERY},
        )
        return await self._run(call, _parse_account_spend)

    # ------------------------------------------------------------------ plumbing

    def _rest(
        self,
        method: str,
        path: str,
        template: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> _Call:
        return self._build(self._rest_url, "rest", method, path, template, params=params, body=body)

    def _runtime(self, method: str, path: str, template: str, *, repeatable: bool = True) -> _Call:
        return self._build(self._runtime_url, "runtime", method, path, template, repeatable=repeatable)

    @staticmethod
    def _build(
        base: str,
        api: _Api,
        method: str,
        path: str,
        template: str,
        *,
        repeatable: bool = True,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> _Call:
        base_path = urlsplit(base).path
        return _Call(
            method=method,
            url=base + path,
            route=f"{method} {base_path}{path}",
            template=f"{method} {base_path}{template}",
            api=api,
            repeatable=repeatable,
            params=params,
            body=body,
        )

    async def _run(self, call: _Call, parse: Callable[[Any, str], _T]) -> _T:
        """Send ``call`` (with retries), parse the body, and scrub the key from anything raised."""
        try:
            body = await self._request(call)
            return parse(body, call.route)
        except RunPodError as exc:
            self._scrub(exc)
            raise

    async def _request(self, call: _Call) -> Any:
        last_cause = ""
        last_status: int | None = None
        last_exc: BaseException | None = None
        attempts = 0
        for attempt in range(self._max_retries + 1):
            attempts = attempt + 1
            await self._wait_for_quota(call)
            started = time.monotonic()
            response: httpx.Response | None = None
            retry = False
            try:
                async with asyncio.timeout(self._timeout_s):
                    response = await self._http.request(
                        call.method, call.url, params=call.params, json=call.body
                    )
            except _NEVER_SENT as exc:
                retry, last_cause = True, f"could not connect ({_exception_text(exc)})"
                last_exc, last_status = exc, None
            except (httpx.TimeoutException, TimeoutError) as exc:
                retry, last_cause = call.repeatable, f"no answer within {self._timeout_s:g}s"
                last_exc, last_status = exc, None
            except httpx.TransportError as exc:
                retry, last_cause = call.repeatable, f"connection failed ({_exception_text(exc)})"
                last_exc, last_status = exc, None
            self._report(call, None if response is None else response.status_code, started)
            delay = self._backoff(attempt)
            if response is not None:
                self._note_quota(call.api, response.headers)
                status = response.status_code
                if 200 <= status < 300:
                    return _decode_json(response, call.route)
                self._raise_if_final(call, response)
                last_status, last_exc = status, None
                last_cause = f"HTTP {status}{_suffix(_problem_text(response))}"
                if status == 429:
                    retry = True
                    retry_after = _retry_after_s(response.headers.get("Retry-After"), time.time())
                    if retry_after is not None:
                        delay = min(retry_after, self._retry_after_cap_s)
                    delay = max(delay, self._pending_quota_s(call.api))
                else:  # 5xx or 408: the server may have acted before failing
                    retry = call.repeatable
            if not retry:
                raise RunPodUnavailable(
                    f"{self._redact(last_cause)}; not retried because {call.method} may already have "
                    "taken effect",
                    route=call.route,
                    status=last_status,
                ) from last_exc
            if attempt == self._max_retries:
                break
            logger.warning(
                "%s: %s; retry %d/%d in %.2fs",
                call.route,
                self._redact(last_cause),
                attempt + 1,
                self._max_retries,
                delay,
            )
            await self._sleep(delay)
            self._quota_deadline.pop(call.api, None)  # that sleep covered any RateLimit wait too
        raise RunPodUnavailable(
            f"gave up after {attempts} attempt{'' if attempts == 1 else 's'}; "
            f"last: {self._redact(last_cause)}",
            route=call.route,
            status=last_status,
        ) from last_exc

    def _raise_if_final(self, call: _Call, response: httpx.Response) -> None:
        """Raise for the statuses that retrying cannot fix; return for 429, 408 and 5xx."""
        status = response.status_code
        if status in (401, 403):
            if status == 401:
                message = f"RunPod rejected the API key (401) on {call.route}: check RUNPOD_API_KEY"
            else:
                message = (
                    f"RunPod refused access (403) on {call.route}: the key is valid but lacks permission "
                    "for this; check RUNPOD_API_KEY"
                )
            exc = RunPodAuthError(message, status=status)
            exc.route = call.route  # set after: the message already names the route, no "route: " prefix
            raise exc
        if status == 404:
            raise RunPodNotFound(
                f"not found (HTTP 404){_suffix(_problem_text(response))}", route=call.route, status=404
            )
        if status in {408, 429} or status >= 500:
            return
        if 400 <= status < 500:
            raise RunPodRejected(
                f"RunPod refused the request (HTTP {status}){_suffix(_problem_text(response))}",
                route=call.route,
                status=status,
            )
        raise RunPodProtocolError(f"unexpected HTTP status {status}", route=call.route, status=status)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (AWS architecture blog's recipe)."""
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2.0 ** min(attempt, 60))
        return ceiling * self._rng.random()

    def _note_quota(self, api: _Api, headers: httpx.Headers) -> None:
        wait = _ratelimit_wait_s(headers.get("RateLimit"))
        if wait is None:
            return
        if wait > self._retry_after_cap_s:
            logger.warning(
                "RunPod %s quota exhausted for %.0fs; waiting only %.0fs (retry_after_cap_s)",
                api,
                wait,
                self._retry_after_cap_s,
            )
            wait = self._retry_after_cap_s
        self._quota_deadline[api] = max(self._quota_deadline.get(api, 0.0), time.monotonic() + wait)

    def _pending_quota_s(self, api: _Api) -> float:
        deadline = self._quota_deadline.get(api)
        return 0.0 if deadline is None else max(0.0, deadline - time.monotonic())

    async def _wait_for_quota(self, call: _Call) -> None:
        """Pre-emptive wait: a previous answer said this API's quota is used up for some seconds."""
        remaining = self._pending_quota_s(call.api)
        if remaining > 0:
            logger.info("%s: RateLimit quota used up; waiting %.1fs before calling", call.route, remaining)
            await self._sleep(remaining)
        self._quota_deadline.pop(call.api, None)

    def _report(self, call: _Call, status: int | None, started: float) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(call.template, status, time.monotonic() - started)
        except Exception:  # a metrics bug must never stop a kill switch
            logger.exception("on_call hook failed for %s", call.template)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, _REDACTED)

    def _scrub(self, exc: BaseException) -> None:
        """Remove the key from the messages of ``exc`` and its causes (a server might echo it back)."""
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            current.args = tuple(self._redact(a) if isinstance(a, str) else a for a in current.args)
            current = current.__cause__ or current.__context__


# ---------------------------------------------------------------------- request helpers


def _checked_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"RunPod client: {name} must be an http(s) URL")
    return url.rstrip("/")


def _path_id(name: str, value: str) -> str:
    """An id that is safe to put in a URL path as it is (no ``/``, ``?``, ``..``)."""
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value) or set(value) == {"."}:
        raise ValueError(f"{name} must be 1-200 letters, digits, '_', '-' or '.', not {value!r}")
    return value


def _is_bool_or_not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _patch_body(
    *,
    workers_min: int | None,
    workers_max: int | None,
    idle_timeout_s: int | None,
    execution_timeout_ms: int | None,
    flashboot: str | None,
    scaler_type: str | None,
    scaler_value: float | None,
) -> dict[str, Any]:
    """REST v2 ``UpdateEndpointRequest`` with exactly the given fields; ``None`` means "leave as it is"."""
    for name, value, low, high in (
        ("workers_min", workers_min, 0, None),
        ("workers_max", workers_max, 0, None),
        ("idle_timeout_s", idle_timeout_s, 1, 3600),
        ("execution_timeout_ms", execution_timeout_ms, 0, None),
    ):
        if value is None:
            continue
        if _is_bool_or_not_int(value) or value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in {low}..{high}"
            raise ValueError(f"{name} must be an int {bounds}, not {value!r}")
    if workers_min is not None and workers_max is not None and workers_min > workers_max:
        raise ValueError(f"workers_min ({workers_min}) must not exceed workers_max ({workers_max})")
    body: dict[str, Any] = {}
    workers = {
        key: value
        for key, value in (("min", workers_min), ("max", workers_max), ("idleTimeout", idle_timeout_s))
        if value is not None
    }
    if workers:
        body["workers"] = workers
    if execution_timeout_ms is not None:
        body["timeout"] = execution_timeout_ms
    if flashboot is not None:
        if flashboot not in ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"):
            raise ValueError(f"flashboot must be OFF, FLASHBOOT or PRIORITY_FLASHBOOT, not {flashboot!r}")
        body["flashboot"] = flashboot
    if (scaler_type is None) != (scaler_value is None):
        raise ValueError("scaler_type and scaler_value must be given together")
    if scaler_type == "QUEUE_DELAY":
        if _is_bool_or_not_number(scaler_value) or scaler_value < 0.5:  # type: ignore[operator]
            raise ValueError(f"a QUEUE_DELAY scaler_value must be a number >= 0.5, not {scaler_value!r}")
        body["scaling"] = {"type": "QUEUE_DELAY", "queueDelay": scaler_value}
    elif scaler_type == "REQUEST_COUNT":
        if _is_bool_or_not_int(scaler_value) or scaler_value < 1:  # type: ignore[operator]
            raise ValueError(f"a REQUEST_COUNT scaler_value must be an int >= 1, not {scaler_value!r}")
        body["scaling"] = {"type": "REQUEST_COUNT", "requestCount": scaler_value}
    elif scaler_type is not None:
        raise ValueError(f"scaler_type must be QUEUE_DELAY or REQUEST_COUNT, not {scaler_type!r}")
    if not body:
        raise ValueError("patch_endpoint needs at least one field to change")
    return body


def _is_bool_or_not_number(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)


def _exception_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _suffix(text: str) -> str:
    return f": {text}" if text else ""


def _problem_text(response: httpx.Response) -> str:
    """The human part of an error body: REST v2 problem+json, GraphQL ``errors``, v1 ``message``, or text."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return _shorten(response.text)
    if not isinstance(body, dict):
        return _shorten(json.dumps(body))
    parts: list[str] = []
    for key in ("title", "detail", "message"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("; ".join(_graphql_message(item) for item in errors))
    return _shorten(" - ".join(parts)) if parts else _shorten(json.dumps(body))


def _graphql_message(item: object) -> str:
    message = item.get("message") if isinstance(item, dict) else None
    if isinstance(message, str):
        return message
    return item if isinstance(item, str) else json.dumps(item)


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode_json(response: httpx.Response, route: str) -> Any:
    if not response.content:
        raise RunPodProtocolError(
            "empty body where JSON was expected", route=route, status=response.status_code
        )
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise RunPodProtocolError(
            f"body is not JSON: {_shorten(response.text, 80)!r}", route=route, status=response.status_code
        ) from None


def _retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # RFC 850 and asctime forms are GMT by definition
            return None
        seconds = moment.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _ratelimit_wait_s(value: str | None) -> float | None:
    """Seconds to hold off according to ``RateLimit: "minute";r=0;t=12, "hour";r=2800;t=1812``.

    Only windows whose remaining count ``r`` is 0 matter; the longest of their reset times ``t`` wins.
    Anything malformed is ignored: this is an optimisation, the 429 path still protects us.
    """
    if not value:
        return None
    wait: float | None = None
    for member in value.split(","):
        params: dict[str, str] = {}
        for part in member.split(";")[1:]:
            key, _, raw = part.partition("=")
            params[key.strip()] = raw.strip().strip('"')
        try:
            remaining, reset = int(params["r"]), float(params["t"])
        except (KeyError, ValueError):
            continue
        if remaining <= 0 and math.isfinite(reset) and reset > 0:
            wait = reset if wait is None else max(wait, reset)
    return wait


# ---------------------------------------------------------------------- parsing

_MISSING: Final = object()


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return repr(_shorten(value, 40))
    return repr(value)


class _Node:
    """A JSON object being read, with its path, so every error names the route and the field."""

    __slots__ = ("_data", "_path", "_route")

    def __init__(self, data: Mapping[str, Any], path: str, route: str) -> None:
        self._data = data
        self._path = path
        self._route = route

    @classmethod
    def root(cls, body: Any, route: str) -> _Node:
        if not isinstance(body, dict):
            raise RunPodProtocolError(
                f"expected a JSON object, got {_describe(body)}", route=route, field="$"
            )
        return cls(body, "", route)

    def field(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def error(self, key: str, problem: str) -> RunPodProtocolError:
        return RunPodProtocolError(problem, route=self._route, field=self.field(key))

    def _wrong(self, key: str, expected: str, value: object) -> RunPodProtocolError:
        return self.error(key, f"expected {expected}, got {_describe(value)}")

    def raw(self, key: str) -> Any:
        """The value as it is (any JSON type), or ``_MISSING`` when absent or null."""
        return self._value(key, required=False)

    def _value(self, key: str, *, required: bool) -> Any:
        """The value, or ``_MISSING`` for an absent key or null (JSON's two ways of saying "none")."""
        value = self._data.get(key)
        if value is None:
            if required:
                raise self.error(
                    key, "required field is missing" if key not in self._data else "must not be null"
                )
            return _MISSING
        return value

    def string(self, key: str) -> str:
        value = self._value(key, required=True)
        if not isinstance(value, str) or not value:
            raise self._wrong(key, "a non-empty string", value)
        return value

    def optional_string(self, key: str, default: str | None = None) -> str | None:
        value = self._value(key, required=False)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def _int(self, key: str, value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise self._wrong(key, "an integer", value)

    def integer(self, key: str) -> int:
        return self._int(key, self._value(key, required=True))

    def optional_integer(self, key: str, default: int | None) -> int | None:
        value = self._value(key, required=False)
        return default if value is _MISSING else self._int(key, value)

    def count(self, key: str) -> int:
        """An integer that defaults to 0 when absent (health and summary counters)."""
        value = self._value(key, required=False)
        return 0 if value is _MISSING else self._int(key, value)

    def _number(self, key: str, value: object) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise self._wrong(key, "a number", value)

    def number(self, key: str) -> float:
        return self._number(key, self._value(key, required=True))

    def optional_number(self, key: str, default: float | None) -> float | None:
        value = self._value(key, required=False)
        return default if value is _MISSING else self._number(key, value)

    def optional_bool(self, key: str, default: bool) -> bool:
        value = self._value(key, required=False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def _time(self, key: str, value: object) -> float:
        if isinstance(value, str):
            try:
                return from_iso(value)
            except ValueError:
                pass
        raise self._wrong(key, "an RFC 3339 date-time", value)

    def time(self, key: str) -> float:
        return self._time(key, self._value(key, required=True))

    def optional_time(self, key: str) -> float | None:
        value = self._value(key, required=False)
        return None if value is _MISSING else self._time(key, value)

    def enum(self, key: str, enum_type: type[_EnumT]) -> _EnumT:
        value = self._value(key, required=True)
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum_type)
            raise self.error(key, f"{_describe(value)} is not one of {allowed}") from None

    def obj(self, key: str) -> _Node:
        value = self._value(key, required=True)
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return _Node(value, self.field(key), self._route)

    def optional_obj(self, key: str) -> _Node | None:
        value = self._value(key, required=False)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return _Node(value, self.field(key), self._route)

    def _array(self, key: str, value: object) -> list[Any]:
        if not isinstance(value, list):
            raise self._wrong(key, "an array", value)
        return value

    def objects(self, key: str, *, required: bool = True) -> Iterator[_Node]:
        """The elements of an array of objects, each with its own path (``key[i]``)."""
        value = self._value(key, required=required)
        items = [] if value is _MISSING else self._array(key, value)
        for index, item in enumerate(items):
            path = f"{self.field(key)}[{index}]"
            if not isinstance(item, dict):
                raise RunPodProtocolError(
                    f"expected an object, got {_describe(item)}", route=self._route, field=path
                )
            yield _Node(item, path, self._route)

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._value(key, required=False)
        items = [] if value is _MISSING else self._array(key, value)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise RunPodProtocolError(
                    f"expected a string, got {_describe(item)}",
                    route=self._route,
                    field=f"{self.field(key)}[{index}]",
                )
        return tuple(items)


def _parse_endpoint_list(body: Any, route: str) -> list[EndpointConfig]:
    return [_parse_endpoint(node) for node in _Node.root(body, route).objects("endpoints")]


def _parse_endpoint(node: _Node) -> EndpointConfig:
    """REST v2 ``Endpoint``. Only ``id`` and ``workers.min/max`` are indispensable; the rest has defaults.

    * ``timeout`` 0, null or absent → ``execution_timeout_ms=None``: RunPod never times the job out.
    * ``workers.idleTimeout`` is omitted by RunPod for queue endpoints scaling on REQUEST_COUNT → 0
      ("not applicable").
    * ``gpu`` null or absent (a CPU endpoint) → ``gpu_count=0``, no pools.
    """
    workers = node.obj("workers")
    gpu = node.optional_obj("gpu")
    scaling = node.optional_obj("scaling")
    timeout_ms = node.optional_integer("timeout", None)
    scaler_type, scaler_value = "QUEUE_DELAY", 4.0
    if scaling is not None:
        scaler_type = scaling.optional_string("type", "QUEUE_DELAY") or "QUEUE_DELAY"
        for key in ("queueDelay", "requestCount", "value"):
            value = scaling.optional_number(key, None)
            if value is not None:
                scaler_value = value
                break
    return EndpointConfig(
        id=node.string("id"),
        name=node.optional_string("name", "") or "",
        workers_min=workers.integer("min"),
        workers_max=workers.integer("max"),
        idle_timeout_s=workers.optional_integer("idleTimeout", 0) or 0,
        execution_timeout_ms=timeout_ms if timeout_ms else None,
        gpu_pools=gpu.strings("pools") if gpu is not None else (),
        gpu_count=(gpu.optional_integer("count", 1) or 0) if gpu is not None else 0,
        scaler_type=scaler_type,
        scaler_value=scaler_value,
        flashboot=node.optional_string("flashboot", "OFF") or "OFF",
        endpoint_type=node.optional_string("type", "QUEUE") or "QUEUE",
        created_at=node.optional_time("createdAt"),
    )


def _parse_workers(body: Any, route: str) -> EndpointWorkers:
    root = _Node.root(body, route)
    workers = tuple(
        Worker(
            id=item.string("id"),
            status=item.enum("status", WorkerStatus),
            is_stale=item.optional_bool("isStale", False),
            gpu_count=item.optional_integer("gpuCount", 1) or 0,
            gpu_type_id=item.optional_string("gpuTypeId"),
            version=item.optional_integer("version", None),
            uptime_s=item.optional_number("uptimeSeconds", None),
            started_at=item.optional_time("startedAt"),
            data_center_id=item.optional_string("dataCenterId"),
        )
        for item in root.objects("workers")
    )
    summary_node = root.optional_obj("summary")
    if summary_node is None:  # derive it: the documented summary is a roll-up of the array
        by_status = {status: sum(1 for w in workers if w.status is status) for status in WorkerStatus}
        summary = WorkerSummary(
            running=by_status[WorkerStatus.RUNNING],
            idle=by_status[WorkerStatus.IDLE],
            initializing=by_status[WorkerStatus.INITIALIZING],
            throttled=by_status[WorkerStatus.THROTTLED],
            unhealthy=by_status[WorkerStatus.UNHEALTHY],
            total=len(workers),
        )
    else:
        counts = {
            key: summary_node.count(key)
            for key in ("running", "idle", "initializing", "throttled", "unhealthy")
        }
        total = summary_node.optional_integer("total", None)
        summary = WorkerSummary(**counts, total=sum(counts.values()) if total is None else total)
    return EndpointWorkers(
        endpoint_version=root.optional_integer("endpointVersion", None),
        summary=summary,
        workers=workers,
    )


def _parse_health(body: Any, route: str) -> Health:
    root = _Node.root(body, route)
    empty = _Node({}, "", route)
    jobs = root.optional_obj("jobs") or empty
    workers = root.optional_obj("workers") or empty
    return Health(
        jobs_completed=jobs.count("completed"),
        jobs_failed=jobs.count("failed"),
        jobs_in_progress=jobs.count("inProgress"),
        jobs_in_queue=jobs.count("inQueue"),
        jobs_retried=jobs.count("retried"),
        workers_idle=workers.count("idle"),
        workers_initializing=workers.count("initializing"),
        workers_ready=workers.count("ready"),
        workers_running=workers.count("running"),
        workers_throttled=workers.count("throttled"),
        workers_unhealthy=workers.count("unhealthy"),
    )


def _parse_job(node: _Node) -> Job:
    """Runtime job (``/status``, ``/cancel``). A non-string ``error`` is kept as its JSON text."""
    error = node.raw("error")
    if error is not _MISSING and not isinstance(error, str):
        error = json.dumps(error)
    return Job(
        id=node.string("id"),
        status=node.enum("status", JobStatus),
        delay_time_ms=_rounded(node.optional_number("delayTime", None)),
        execution_time_ms=_rounded(node.optional_number("executionTime", None)),
        worker_id=node.optional_string("workerId"),
        error=None if error is _MISSING else error,
        has_output=node.raw("output") is not _MISSING,
    )


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def _parse_purge(body: Any, route: str) -> PurgeResult:
    root = _Node.root(body, route)
    return PurgeResult(removed=root.integer("removed"), status=root.optional_string("status", "") or "")


def _parse_billing(body: Any, route: str) -> BillingReport:
    root = _Node.root(body, route)
    records = tuple(
        BillingRecord(
            start=item.time("startTime"),
            end=item.time("endTime"),
            endpoint_id=item.optional_string("serverlessId"),
            total_usd=item.number("totalAmount"),
            gpu_usd=item.optional_number("gpuAmount", 0.0) or 0.0,
            cpu_usd=item.optional_number("cpuAmount", 0.0) or 0.0,
            disk_usd=item.optional_number("diskAmount", 0.0) or 0.0,
            fee_usd=item.optional_number("feeAmount", 0.0) or 0.0,
        )
        for item in root.objects("records")
    )
    metadata = root.optional_obj("metadata")
    totals = metadata.optional_obj("totals") if metadata is not None else None
    total = totals.optional_number("totalAmount", None) if totals is not None else None
    count = metadata.optional_integer("recordCount", None) if metadata is not None else None
    return BillingReport(
        records=records,
        total_usd=sum(r.total_usd for r in records) if total is None else total,
        record_count=len(records) if count is None else count,
    )


def _parse_account_spend(body: Any, route: str) -> AccountSpend:
    root = _Node.root(body, route)
    errors = root.raw("errors")
    if errors is not _MISSING:
        if not isinstance(errors, list):
            raise root.error("errors", f"expected an array, got {_describe(errors)}")
        if errors:
            messages = "; ".join(_graphql_message(item) for item in errors)
            raise RunPodRejected(f"GraphQL errors: {_shorten(messages)}", route=route, status=200)
    myself = root.obj("data").obj("myself")
    standby = {
        item.string("id"): item.count("workersStandby")
        for item in myself.objects("endpoints", required=False)
    }
    return AccountSpend(
        client_balance_usd=myself.optional_number("clientBalance", None),
        current_spend_per_hr_usd=myself.optional_number("currentSpendPerHr", None),
        spend_limit_usd=myself.optional_number("spendLimit", None),
        workers_standby=standby,
    )
