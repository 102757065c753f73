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
  (runpod-api.md §1.1: all three hosts accept it). A server echoing it back has it replaced by
  ``<redacted>`` as the body is read (so no model holds it), and every message this module produces is
  scrubbed too. An id that contains it is refused, so it never lands in a URL.

Hostile answers. Any body, status or header yields a model or a typed ``RunPodError``, never another
exception (tests/test_fuzz_client.py holds every parser to that). These are ``RunPodProtocolError``, naming
the field where there is one: a body over ``max_body_bytes`` (64 MiB) or that fails to decompress; JSON
nested too deeply; integers of more than 30 digits, ``NaN``/``Infinity``, and numbers out of their range
(negative counts, durations or amounts, the account balance excepted; integers above 2**53 - 1; dates
outside 2000-2199); strings longer than 1,000 characters; ids (endpoint, worker, job) that are not 1-200
of ``[A-Za-z0-9_.-]``, since the daemon puts them in URLs next. Lone UTF-16 surrogates in strings become
U+FFFD, so every string in a model can be written to the ledger; a job's ``error`` is kept, cut at 2,000
characters. A worker log stream is read within bounds rather than refused (``LOG_STREAM_MAX_BYTES`` per
call, 256 KiB per event, lines cut at 4,000 characters), and its malformed events are skipped and counted.
An id the caller passes that cannot go in a URL path as it is raises :class:`InvalidIdentifier` (a
``RunPodRejected``, and a ``ValueError`` as before) without sending anything.

Time bounds. No call outlives its budget, whatever ``max_retries`` says: every call stops at its
deadline, which is the earliest of ``call_budget_s`` (120 s by default) after it started and the deadline
of the enclosing :meth:`RunPodClient.deadline` block, if any (the daemon bounds a whole tick that way,
without passing anything to each method). A wait (backoff, ``Retry-After``, a used-up ``RateLimit``
window) that would end after the deadline is not started: the call raises :class:`RunPodDeadlineReached`
(a ``RunPodUnavailable``) saying so and what the last answer was; each attempt's timeout is shortened to
the time left. Every wait is an ``await`` of the injectable ``sleep``, so cancelling the calling task (the
daemon's SIGTERM) interrupts it at once and leaves the client usable.

Quota. What the ``RateLimit``/``RateLimit-Policy`` headers said is kept per API and window
(:meth:`RunPodClient.quota`). A call is *quota-starved* when it waited for, or gave up because of, a 429 or
a used-up ``RateLimit`` window; :attr:`DeadlineScope.quota_starved` collects that for every call inside a
``deadline`` block (and :attr:`RunPodClient.last_call_starved` for the last call that ended), so a tick
read under quota pressure is never recorded as a clean one.

What is retried (runpod-api.md §2.5, §3.3, §4.4), within the deadline:

=======================  =============  ======  ==================================================
call                     connect error  429     read timeout, dropped connection, 5xx, 408
=======================  =============  ======  ==================================================
GET (every read)         yes            yes     yes
PATCH endpoint           yes            yes     yes: it sets absolute values, so a repeat converges
                                                on the same state (and the kill switch must land)
GET worker log stream    yes            yes     yes, until the stream opens; once it is read, a
                                                failure ends the batch (``LogStreamEnd.BROKEN``)
GraphQL ``myself``       yes            yes     yes: a read; POST only by GraphQL convention
POST cancel/{job}        yes            yes     yes: cancelling twice still leaves the job cancelled,
                                                and a runaway job is exactly what costs money
POST purge-queue         yes            yes     no: a repeat could also remove jobs queued in the
                                                meantime (and the route allows only 2 calls / 10 s)
=======================  =============  ======  ==================================================

A connect error means the request never left; a 429 means RunPod refused it unprocessed; so both are
safe to repeat for any call. 401/403 are never retried, 404 and other 4xx are never retried either, nor is
a body of the wrong shape (asking again would not fix it). A worker's log stream
(:meth:`RunPodClient.worker_logs`) is a GET: retried like one until its headers arrive, never once it is
being read (what was read is returned, and the next call resumes with ``Last-Event-ID``).

Errors say where. A failed connection names the host and port it tried (``could not connect to
api.runpod.io:443``); a 404 from a configured URL that does not end as RunPod's do (``/v2``, ``/graphql``)
names the setting to fix (``runpod.rest_url`` or ``RUNPOD_REST_API_URL``, see watchdog/config.py).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
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
    AccountLimits,
    AccountSpend,
    BillingRecord,
    BillingReport,
    EndpointConfig,
    EndpointWorkers,
    Health,
    Job,
    JobStatus,
    LogStreamEnd,
    PurgeResult,
    Worker,
    WorkerLogBatch,
    WorkerLogEvent,
    WorkerSummary,
)
from watchdog.vocabulary import WorkerStatus

__all__ = [
    "BUCKET_SIZES",
    "DEFAULT_CALL_BUDGET_S",
    "LOG_SOURCES",
    "LOG_STREAM_MAX_BYTES",
    "LOG_TAIL_MAX",
    "DeadlineScope",
    "InvalidIdentifier",
    "QuotaWindow",
    "RunPodClient",
    "RunPodDeadlineReached",
]

logger = logging.getLogger(__name__)

BUCKET_SIZES: Final = ("hour", "day", "week", "month", "year")
"""REST v2 ``bucketSize`` values (OAS2 ``BillingBucketSize``)."""

ACCOUNT_SPEND_QUERY: Final = (
    "query { myself { clientBalance currentSpendPerHr spendLimit endpoints { id workersStandby } } }"
)
"""The one GraphQL query we still need: REST v2 has no account balance/spend rate and no workersStandby."""

DEFAULT_CALL_BUDGET_S: Final = 120.0
"""Longest a call may take, every attempt and wait included, when no tighter deadline is set."""
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""Largest answer read (after decompression): a month of hourly billing for 50 endpoints is ~9 MB."""

_REDACTED: Final = "<redacted>"
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that happen before a single byte of the request reached RunPod."""

_MAX_INT: Final = 2**53 - 1
"""Largest integer accepted in an answer (JSON's safe integers); larger ones are protocol errors."""
_MAX_INT_DIGITS: Final = 30
"""JSON integer literals longer than this are not turned into ``int`` at all (see ``_Oversized``)."""
_MAX_TEXT: Final = 1000
"""Longest string accepted in an answer (RunPod's own limit on endpoint names is 191)."""
_MAX_ERROR_TEXT: Final = 2000
"""A job's ``error`` (a user's traceback, possibly) is kept up to this many characters."""
_MAX_USD: Final = 1e9
_MAX_DURATION_MS: Final = 1e15
_MAX_SECONDS: Final = 1e12
_EARLIEST_TIME: Final = 946_684_800.0  # 2000-01-01T00:00:00Z
_LATEST_TIME: Final = 7_258_118_400.0  # 2200-01-01T00:00:00Z
_MAX_QUOTA_WINDOWS: Final = 16
"""``RateLimit`` members kept per API (a hostile header cannot grow the client's memory)."""

LOG_STREAM_MAX_BYTES: Final = 4 * 1024 * 1024
"""Most bytes of a worker log stream one :meth:`RunPodClient.worker_logs` call reads (after decompression;
the client's ``max_body_bytes`` when smaller): a backlog is worked off over several calls."""
LOG_SOURCES: Final = ("container", "system")
"""OAS2 ``LogSource``: the worker's stdout/stderr, and the host's lifecycle notes."""
LOG_TAIL_MAX: Final = 5000
"""OAS2 ``LogTail``: most lines of backfill a log stream sends (RunPod's default is 100)."""
_MAX_LOG_LINE: Final = 4000
"""A log line is kept up to this many characters (a worker may print a whole tensor on one line)."""
_MAX_SSE_CHARS: Final = 256 * 1024
"""Longest SSE line, and most ``data`` of one event, accepted; a longer event is skipped (memory bound)."""
_MAX_EVENT_ID: Final = 256
_EVENT_ID: Final = re.compile(r"[!-~](?:[ -~]*[!-~])?")
"""An SSE event id that can be sent back as ``Last-Event-ID``: printable ASCII, no edge spaces."""
_SSE_LINE_END: Final = re.compile(r"\r\n|\r|\n")
_FEED_SLICE: Final = 64 * 1024
"""Bytes of a stream parsed between two yields to the event loop (a 4 MiB chunk of hostile lines takes
seconds of CPU: in slices, other tasks and the read's own timeout still run)."""
_URL_SETTINGS: Final = {
    "rest": ("/v2", "the REST v2 base URL", "runpod.rest_url or RUNPOD_REST_API_URL"),
    "runtime": ("/v2", "the job runtime base URL", "runpod.runtime_url or RUNPOD_ENDPOINT_BASE_URL"),
    "graphql": ("/graphql", "the GraphQL URL", "runpod.graphql_url"),
}
"""Per API: how its configured URL's path ends, what it is, and where a user sets it (watchdog/config.py:
the ``[runpod]`` key, or the environment variable that overrides it; ``RUNPOD_API_BASE_URL`` gets
``/graphql`` appended, so only the key can leave it off)."""

_Api = Literal["rest", "runtime", "graphql"]
OnCall = Callable[[str, int | None, float], None]
_EnumT = TypeVar("_EnumT", bound=StrEnum)
_T = TypeVar("_T")


# ---------------------------------------------------------------------- public types


class InvalidIdentifier(RunPodRejected, ValueError):
    """An endpoint or job id that cannot be sent: not 1-200 of ``[A-Za-z0-9_.-]``, only dots, or
    containing the API key. Raised before anything is sent (``status`` is None), so the caller can skip
    that one record (a job id read from a log, say) and carry on. Also a ``ValueError``, as before."""

    title = "Not a RunPod id"


class RunPodDeadlineReached(RunPodUnavailable):
    """The call's deadline (``RunPodClient.deadline`` or ``call_budget_s``) left no time for the next
    attempt or wait. ``quota_starved`` is true when a 429 or a used-up ``RateLimit`` window was the cause."""

    title = "RunPod call out of time"

    def __init__(
        self, message: str, *, route: str = "", status: int | None = None, quota_starved: bool = False
    ) -> None:
        self.quota_starved = quota_starved
        super().__init__(message, route=route, status=status)


@dataclass(slots=True, eq=False)
class DeadlineScope:
    """What ``with client.deadline(...) as scope`` yields; the calls inside update it as they go."""

    at: float | None
    """Client-clock (``time.monotonic`` by default) time by which every call inside has returned or
    raised; None: no bound beyond each call's own ``call_budget_s``."""
    quota_starved: bool = False
    """A call inside waited for, or gave up because of, a 429 or a used-up ``RateLimit`` window."""
    quota_wait_s: float = 0.0
    """Seconds spent waiting for quota (``Retry-After``, 429 backoff, ``RateLimit`` resets)."""
    deadline_reached: bool = False
    """A call inside raised :class:`RunPodDeadlineReached`."""
    starved_routes: list[str] = field(default_factory=list)
    """The routes that were quota-starved, first time each (at most 50)."""
    _parent: DeadlineScope | None = field(default=None, repr=False)
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def remaining_s(self) -> float | None:
        """Seconds left before ``at`` (never negative), or None without a deadline."""
        return None if self.at is None else max(0.0, self.at - self._clock())

    def _starved(self, route: str, waited_s: float = 0.0) -> None:
        scope: DeadlineScope | None = self
        while scope is not None:
            scope.quota_starved = True
            scope.quota_wait_s += waited_s
            if route not in scope.starved_routes and len(scope.starved_routes) < 50:
                scope.starved_routes.append(route)
            scope = scope._parent

    def _out_of_time(self) -> None:
        scope: DeadlineScope | None = self
        while scope is not None:
            scope.deadline_reached = True
            scope = scope._parent


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """One rate-limit window of one API, as the last ``RateLimit`` (+ ``RateLimit-Policy``) header said."""

    api: str
    """``"rest"``, ``"runtime"`` or ``"graphql"``."""
    name: str
    """The window's name in the header, e.g. ``"minute"``."""
    remaining: int
    """``r``: calls left in the window when the header arrived."""
    reset_in_s: float
    """``t`` counted down to when :meth:`RunPodClient.quota` was called; 0 once the window has reset."""
    age_s: float
    """Seconds since the header arrived."""
    limit: int | None = None
    """``q`` from ``RateLimit-Policy``, when RunPod sent it."""
    window_s: float | None = None
    """``w`` from ``RateLimit-Policy``, when RunPod sent it."""

    @property
    def exhausted(self) -> bool:
        """No call left until the window resets: a call to this API now would wait or be refused."""
        return self.remaining <= 0 and self.reset_in_s > 0


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
    headers: Mapping[str, str] | None = None
    """Sent beside the client's own (``Authorization``, ``User-Agent``, ``Accept``), overriding them."""


@dataclass(frozen=True, slots=True)
class _Answer:
    """A response read in full (and no larger than ``max_body_bytes``), or a stream's open 2xx answer."""

    status: int
    headers: httpx.Headers
    content: bytes
    stream: httpx.Response | None = None
    """A 2xx answer to a streamed call, still open: its body is the caller's to read, and to close."""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class RunPodClient:
    """Typed async access to RunPod's REST v2, job runtime and GraphQL APIs.

    Use as an async context manager (one ``httpx.AsyncClient`` is shared by all calls)::

        async with RunPodClient(api_key=key, graphql_url=..., rest_url=..., runtime_url=...) as api:
            with api.deadline(25) as scope:        # optional: bounds every call inside, waits included
                endpoints = await api.list_endpoints()
            if scope.quota_starved: ...

    Args:
        api_key: RunPod API key; sent only as ``Authorization: Bearer``, never shown anywhere.
        graphql_url: full GraphQL URL, e.g. ``https://api.runpod.io/graphql``.
        rest_url: REST v2 base ending in ``/v2``, e.g. ``https://api.runpod.io/v2``.
        runtime_url: job runtime base ending in ``/v2``, e.g. ``https://api.runpod.ai/v2``.
        timeout_s: limit for each attempt (connect, write, read, and the attempt as a whole); shortened
            to the time left before the call's deadline.
        max_retries: further attempts after the first one fails retryably (within the deadline).
        backoff_base_s: first backoff ceiling; it doubles per retry up to ``backoff_max_s``. The actual
            wait is uniformly random in ``[0, ceiling]`` ("full jitter") so many daemons do not retry in step.
        retry_after_cap_s: longest wait honoured from ``Retry-After`` or a ``RateLimit`` header.
        call_budget_s: longest a call may take, attempts and waits included, when no ``deadline`` block
            sets an earlier bound.
        max_body_bytes: largest answer read (after decompression); a larger one is a protocol error.
        transport: an ``httpx`` transport to use instead of the network (tests, the in-process simulator).
        user_agent: sent as ``User-Agent`` (Cloudflare in front of RunPod may reject anonymous clients).
        sleep: how to wait between attempts; injectable so tests need not wait.
        clock: monotonic seconds for deadlines and quota resets (``time.monotonic``); injectable for tests.
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
        call_budget_s: float = DEFAULT_CALL_BUDGET_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = f"runpod-watchdog/{__version__}",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_call: OnCall | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key or api_key != api_key.strip() or any(ch.isspace() for ch in api_key):
            raise ConfigError("RUNPOD_API_KEY is empty or contains whitespace")
        if (
            not _finite_at_least(timeout_s, 0, strict=True)
            or _is_bool_or_not_int(max_retries)
            or max_retries < 0
            or not _finite_at_least(backoff_base_s, 0)
            or not _finite_at_least(backoff_max_s, 0)
            or not _finite_at_least(retry_after_cap_s, 0)
            or not _finite_at_least(call_budget_s, 0, strict=True)
            or _is_bool_or_not_int(max_body_bytes)
            or max_body_bytes < 1
        ):
            raise ConfigError(
                "RunPod client: timeout_s and call_budget_s must be > 0; max_retries, backoffs, "
                "retry_after_cap_s >= 0; max_body_bytes >= 1 (all finite)"
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
        self._call_budget_s = float(call_budget_s)
        self._max_body_bytes = max_body_bytes
        self._sleep = sleep
        self._clock = clock
        self._on_call = on_call
        self._rng = rng or random.Random()
        self._quota_deadline: dict[_Api, float] = {}
        """Per API: client-clock time before which a ``RateLimit`` header told us not to call again."""
        self._windows: dict[_Api, tuple[tuple[str, int, float, float], ...]] = {}
        """Per API: (window, remaining, reset seconds, client-clock time seen) from the last ``RateLimit``."""
        self._policies: dict[_Api, dict[str, tuple[int, float]]] = {}
        """Per API: window → (quota, window seconds) from the last ``RateLimit-Policy``."""
        self._last_call_starved = False
        # One variable per client: a deadline is on this client's clock. Contexts copied into tasks
        # (asyncio.gather) share the scope object, so what their calls meet is seen by the block's owner.
        self._scope: ContextVar[DeadlineScope | None] = ContextVar(
            f"runpod_client_deadline_{id(self):x}", default=None
        )
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

    # ------------------------------------------------------------------ deadline and quota

    @contextlib.contextmanager
    def deadline(self, seconds: float | None = None, *, at: float | None = None) -> Iterator[DeadlineScope]:
        """Bound every call made inside the block (in this task and the tasks it starts), waits included.

        ``seconds`` from now, or ``at`` a time of the client's clock (``time.monotonic`` unless a ``clock``
        was injected); both: the earlier; neither: no bound beyond ``call_budget_s``, but the scope still
        collects quota starvation. Nested blocks never extend an outer deadline. A call that cannot finish
        in time raises :class:`RunPodDeadlineReached` without starting the wait or attempt that would pass
        the deadline. The yielded :class:`DeadlineScope` says whether any call inside was quota-starved.

        Raises:
            ValueError: ``seconds`` negative or not a number, or ``at`` not a finite number.
        """
        bound: float | None = None
        if seconds is not None:
            if not _finite_at_least(seconds, 0):
                raise ValueError(f"deadline seconds must be a finite number >= 0, not {seconds!r}")
            bound = self._clock() + float(seconds)
        if at is not None:
            if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
                raise ValueError(f"deadline at must be a finite number, not {at!r}")
            bound = float(at) if bound is None else min(bound, float(at))
        parent = self._scope.get()
        if parent is not None and parent.at is not None:
            bound = parent.at if bound is None else min(bound, parent.at)
        scope = DeadlineScope(at=bound, _parent=parent, _clock=self._clock)
        token = self._scope.set(scope)
        try:
            yield scope
        finally:
            self._scope.reset(token)

    def quota(self) -> dict[str, QuotaWindow]:
        """What RunPod's ``RateLimit`` headers said last, per API and window, keyed ``"api:window"``
        (e.g. ``"rest:minute"``). Empty until an answer carried the header (REST v2 sends it; the
        runtime's quota headers are undocumented, runpod-api.md §4.4)."""
        now = self._clock()
        result: dict[str, QuotaWindow] = {}
        for api, windows in self._windows.items():
            policies = self._policies.get(api, {})
            for name, remaining, reset_s, seen in windows:
                age = max(0.0, now - seen)
                limit, window_s = policies.get(name, (None, None))
                result[f"{api}:{name}"] = QuotaWindow(
                    api=api,
                    name=name,
                    remaining=remaining,
                    reset_in_s=max(0.0, reset_s - age),
                    age_s=age,
                    limit=limit,
                    window_s=window_s,
                )
        return result

    @property
    def last_call_starved(self) -> bool:
        """Whether the call that ended last (in any task) was quota-starved; prefer
        :attr:`DeadlineScope.quota_starved` when calls run concurrently."""
        return self._last_call_starved

    # ------------------------------------------------------------------ REST v2 (control plane)

    async def list_endpoints(self) -> list[EndpointConfig]:
        """``GET /v2/serverless``: every serverless endpoint of the account."""
        call = self._rest("GET", "/serverless", "/serverless")
        return await self._run(call, _parse_endpoint_list)

    async def get_endpoint(self, endpoint_id: str) -> EndpointConfig:
        """``GET /v2/serverless/{id}``; ``RunPodNotFound`` if it does not exist."""
        ep = self._path_id("endpoint_id", endpoint_id, "GET /serverless/{endpoint_id}")
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
            InvalidIdentifier: ``endpoint_id`` cannot be sent.
            ValueError: nothing to change, or a value RunPod would refuse (negative, bool, out of range).
        """
        ep = self._path_id("endpoint_id", endpoint_id, "PATCH /serverless/{endpoint_id}")
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
        ep = self._path_id("endpoint_id", endpoint_id, "GET /serverless/{endpoint_id}/workers")
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
            params["serverlessId"] = self._path_id("endpoint_id", endpoint_id, "GET /billing/serverless")
        call = self._rest("GET", "/billing/serverless", "/billing/serverless", params=params)
        return await self._run(call, _parse_billing)

    async def account_limits(self) -> AccountLimits:
        """``GET /v2/account/limits``: the account's spend-rate cap and serverless worker quota.

        ``spendRate`` is "the hourly cap checked when a Pod or serverless worker starts" (runpod-api.md §9):
        RunPod refuses a start that would take the hourly cost above it, and never stops a running worker.
        ``serverlessWorkers`` is "the sum of workersMax across serverless endpoints".

        UNCERTAIN shape (RunPod's page, 2026-11-18, says both members are objects but not what is in them):
        each member is read as ``{"limit": ..., "current": ...}`` (the simulator's reading, schema in
        tests/contracts/runpod-rest-v2.additions.json) or as a bare number, taken to be what the page says
        the member is: ``spendRate`` → the cap, ``serverlessWorkers`` → the sum of workersMax (``current``).
        A member or field that is absent or null → None; unknown fields are ignored; anything else (a
        string, a negative amount, a fractional worker count) is a :class:`RunPodProtocolError` naming it.
        """
        call = self._rest("GET", "/account/limits", "/account/limits")
        return await self._run(call, _parse_account_limits)

    async def worker_logs(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        last_event_id: str | None = None,
        tail: int | None = None,
        source: str | None = "container",
        max_lines: int = 2000,
        max_seconds: float = 2.0,
    ) -> WorkerLogBatch:
        """Read a worker's log: ``GET /v2/serverless/{id}/workers/{workerId}/logs`` (server-sent events).

        A live worker's stream never ends by itself, so this reads what the stream holds and stops at
        whichever comes first: the server ends it (``end`` CLOSED), ``max_lines`` events (MAX_LINES),
        ``max_seconds`` after the stream opened (MAX_SECONDS), ``LOG_STREAM_MAX_BYTES`` (MAX_BYTES), the
        enclosing :meth:`deadline` (DEADLINE) or a connection failure mid-stream (BROKEN, with
        ``problem``); the batch keeps what was read in every case. Call again with the batch's
        ``last_event_id`` to resume just after it (RunPod's ``Last-Event-ID``; ``tail`` is then ignored).

        Opening the stream is a GET like any other: connect errors, timeouts, 429 and 5xx are retried
        within the call budget and the enclosing deadline; 401/403 → :class:`RunPodAuthError`; 404 →
        :class:`RunPodNotFound` (the worker is gone and its log forgotten, or it never existed). A 2xx
        answer that says it is not ``text/event-stream`` is a :class:`RunPodProtocolError`. Once the
        stream is open nothing is raised: malformed events are skipped and counted (``skipped``), and
        resuming moves past them too, so a bad event cannot stall the reader.

        Args:
            endpoint_id, worker_id: RunPod ids (as :meth:`list_workers` gives them).
            last_event_id: the previous batch's ``last_event_id``; None starts with the backfill.
            tail: lines of backfill without ``last_event_id``, 0-5000 (None: RunPod's default, 100).
            source: ``"container"`` (the worker's output: the SDK's "Started."/"Finished." job lines),
                ``"system"`` (the host's lifecycle notes) or None for both.
            max_lines: most events returned (>= 1).
            max_seconds: longest the stream is read once open (> 0).

        Raises:
            InvalidIdentifier: an id or ``last_event_id`` that cannot be sent (nothing is sent).
            ValueError: ``tail``, ``source``, ``max_lines`` or ``max_seconds`` out of range.
            RunPodError: the stream could not be opened (subclasses as for every call).
        """
        template = "GET /serverless/{endpoint_id}/workers/{worker_id}/logs"
        ep = self._path_id("endpoint_id", endpoint_id, template)
        worker = self._path_id("worker_id", worker_id, template)
        if source is not None and source not in LOG_SOURCES:
            raise ValueError(f"source must be one of {', '.join(LOG_SOURCES)} or None, not {source!r}")
        if tail is not None and (_is_bool_or_not_int(tail) or not 0 <= tail <= LOG_TAIL_MAX):
            raise ValueError(f"tail must be an int in 0..{LOG_TAIL_MAX}, not {tail!r}")
        if _is_bool_or_not_int(max_lines) or max_lines < 1:
            raise ValueError(f"max_lines must be an int >= 1, not {max_lines!r}")
        if not _finite_at_least(max_seconds, 0, strict=True):
            raise ValueError(f"max_seconds must be a finite number > 0, not {max_seconds!r}")
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            if not (isinstance(last_event_id, str) and self._sendable_event_id(last_event_id)):
                shown = self._redact(last_event_id) if isinstance(last_event_id, str) else last_event_id
                raise InvalidIdentifier(
                    self._redact(
                        f"last_event_id must be 1-{_MAX_EVENT_ID} printable ASCII characters (an event id "
                        f"of this stream), not {_describe(shown)}"
                    ),
                    route=template,
                )
            headers["Last-Event-ID"] = last_event_id
        params = {"source": source} if source is not None else {}
        if tail is not None:
            params["tail"] = str(tail)
        call = self._rest(
            "GET",
            f"/serverless/{ep}/workers/{worker}/logs",
            "/serverless/{endpoint_id}/workers/{worker_id}/logs",
            params=params or None,
            headers=headers,
        )
        try:
            response, deadline = await self._open_stream(call)
            try:
                return await self._read_log_stream(
                    response,
                    call,
                    _LogStreamReader(
                        endpoint_id=ep,
                        worker_id=worker,
                        last_event_id=last_event_id,
                        max_lines=max_lines,
                        max_bytes=min(self._max_body_bytes, LOG_STREAM_MAX_BYTES),
                        api_key=self._api_key,
                    ),
                    max_seconds=float(max_seconds),
                    deadline=deadline,
                )
            finally:
                await response.aclose()
        except RunPodError as exc:
            self._scrub(exc)
            raise

    # ------------------------------------------------------------------ job runtime

    async def health(self, endpoint_id: str) -> Health:
        """``GET {runtime}/{id}/health``: queue and worker counts; any missing key counts as 0."""
        ep = self._path_id("endpoint_id", endpoint_id, "GET /{endpoint_id}/health")
        call = self._runtime("GET", f"/{ep}/health", "/{endpoint_id}/health")
        return await self._run(call, _parse_health)

    async def job_status(self, endpoint_id: str, job_id: str) -> Job:
        """``GET {runtime}/{id}/status/{job_id}``; ``RunPodNotFound`` once the job expired (TTL);
        :class:`InvalidIdentifier` for an id that cannot be sent (nothing is sent)."""
        template = "GET /{endpoint_id}/status/{job_id}"
        ep = self._path_id("endpoint_id", endpoint_id, template)
        job = self._path_id("job_id", job_id, template)
        call = self._runtime("GET", f"/{ep}/status/{job}", "/{endpoint_id}/status/{job_id}")
        return await self._run(call, lambda body, route: _parse_job(_Node.root(body, route)))

    async def cancel_job(self, endpoint_id: str, job_id: str) -> Job:
        """``POST {runtime}/{id}/cancel/{job_id}``: stops an in-progress job or drops a queued one.

        Retried like a read (see the module docstring): a repeated cancel converges on a cancelled job.
        """
        template = "POST /{endpoint_id}/cancel/{job_id}"
        ep = self._path_id("endpoint_id", endpoint_id, template)
        job = self._path_id("job_id", job_id, template)
        call = self._runtime("POST", f"/{ep}/cancel/{job}", "/{endpoint_id}/cancel/{job_id}")
        return await self._run(call, lambda body, route: _parse_job(_Node.root(body, route)))

    async def purge_queue(self, endpoint_id: str) -> PurgeResult:
        """``POST {runtime}/{id}/purge-queue``: removes queued jobs (in-progress ones keep running).

        Not repeated after a failure that may have reached RunPod, so jobs queued after the purge are safe.
        """
        ep = self._path_id("endpoint_id", endpoint_id, "POST /{endpoint_id}/purge-queue")
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

    def _path_id(self, name: str, value: object, template: str) -> str:
        """An id safe to put in a URL path as it is (no ``/``, ``?``, ``..``), or InvalidIdentifier."""
        if isinstance(value, str) and _ID_PATTERN.fullmatch(value) and set(value) != {"."}:
            if self._api_key not in value:
                return value
            problem = f"{name} must not contain the API key"
        else:
            shown = self._redact(value) if isinstance(value, str) else value  # redacted before shortened
            problem = f"{name} must be 1-200 letters, digits, '_', '-' or '.', not {_describe(shown)}"
        raise InvalidIdentifier(self._redact(problem), route=template)

    def _rest(
        self,
        method: str,
        path: str,
        template: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Call:
        return self._build(
            self._rest_url, "rest", method, path, template, params=params, body=body, headers=headers
        )

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
        headers: Mapping[str, str] | None = None,
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
            headers=headers,
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
        """Send ``call`` until it succeeds, fails for good, runs out of retries or out of time."""
        state = _CallState(self, call)
        try:
            return await self._attempts(state)
        finally:
            self._last_call_starved = state.starved

    async def _open_stream(self, call: _Call) -> tuple[httpx.Response, float]:
        """Like :meth:`_request` until a 2xx answer's headers arrive; returns that response, open (the
        caller reads and closes it), and the call's deadline on the client's clock."""
        state = _CallState(self, call)
        try:
            answer: _Answer = await self._attempts(state, stream=True)
        finally:
            self._last_call_starved = state.starved
        if answer.stream is None:  # pragma: no cover - _send returns 2xx stream answers open
            raise RunPodProtocolError("the stream was not kept open", route=call.route)
        return answer.stream, state.deadline

    async def _read_log_stream(
        self,
        response: httpx.Response,
        call: _Call,
        reader: _LogStreamReader,
        *,
        max_seconds: float,
        deadline: float,
    ) -> WorkerLogBatch:
        """Read an open log stream into ``reader`` until it ends or a bound is reached."""
        media_type = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if media_type and media_type != "text/event-stream":
            raise RunPodProtocolError(
                f"expected text/event-stream, got {_describe(media_type)}",
                route=call.route,
                status=response.status_code,
            )
        left = deadline - self._clock()
        budget, timed_out = (
            (max_seconds, LogStreamEnd.MAX_SECONDS)
            if max_seconds <= left
            else (max(0.0, left), LogStreamEnd.DEADLINE)
        )
        end: LogStreamEnd | None = None
        problem: str | None = None
        try:
            async with asyncio.timeout(budget):
                async for chunk in response.aiter_bytes():
                    for offset in range(0, len(chunk), _FEED_SLICE):
                        end = reader.feed(chunk[offset : offset + _FEED_SLICE])
                        if end is not None:
                            break
                        await asyncio.sleep(0)  # let the loop run (and this read's timeout fire)
                    if end is not None:
                        break
        except TimeoutError:
            end = timed_out
        except httpx.ReadTimeout:  # silent for the client's timeout_s: nothing more to read now
            end = LogStreamEnd.MAX_SECONDS
        except (httpx.TransportError, httpx.DecodingError) as exc:
            end = LogStreamEnd.BROKEN
            problem = self._redact(f"the stream broke off ({_exception_text(exc)})")
            logger.info("%s: %s", call.route, problem)
        if end is None:
            end = reader.finish()
        return reader.batch(end, problem)

    def _sendable_event_id(self, value: str) -> bool:
        """An event id that can go back in ``Last-Event-ID`` ("" is never sent, so it is not one)."""
        return bool(len(value) <= _MAX_EVENT_ID and _EVENT_ID.fullmatch(value) and self._api_key not in value)

    async def _attempts(self, state: _CallState, *, stream: bool = False) -> Any:
        call = state.call
        for attempt in range(self._max_retries + 1):
            pending = self._pending_quota_s(call.api)
            if pending > 0:  # a previous answer said this API's quota is used up for some seconds
                state.starve()
                state.check_wait(pending, f"the wait for the {call.api} API's RateLimit quota to reset")
                logger.info("%s: RateLimit quota used up; waiting %.1fs before calling", call.route, pending)
                await self._sleep(pending)
                state.waited_for_quota(pending)
            self._quota_deadline.pop(call.api, None)
            attempt_timeout = min(self._timeout_s, state.time_left())
            if attempt_timeout <= 0:
                raise state.out_of_time("no time left for an attempt")
            started = time.monotonic()
            state.sent += 1
            answer: _Answer | None = None
            retry = False
            try:
                async with asyncio.timeout(attempt_timeout):
                    answer = await self._send(call, stream=stream)
            except _NEVER_SENT as exc:
                where = _host_port(call.url)
                retry, state.last_cause = True, f"could not connect to {where} ({_exception_text(exc)})"
                state.last_exc, state.last_status = exc, None
            except (httpx.TimeoutException, TimeoutError) as exc:
                cut = " (the call's deadline)" if attempt_timeout < self._timeout_s else ""
                retry, state.last_cause = call.repeatable, f"no answer within {attempt_timeout:g}s{cut}"
                state.last_exc, state.last_status = exc, None
            except httpx.TransportError as exc:
                where = _host_port(call.url)
                retry = call.repeatable
                state.last_cause = f"connection to {where} failed ({_exception_text(exc)})"
                state.last_exc, state.last_status = exc, None
            except httpx.DecodingError as exc:
                self._report(call, None, started)
                raise RunPodProtocolError(
                    f"the body could not be decoded ({_exception_text(exc)})", route=call.route
                ) from None
            except _BodyTooLarge:
                self._report(call, None, started)
                raise RunPodProtocolError(
                    f"the body is larger than {self._max_body_bytes} bytes", route=call.route
                ) from None
            self._report(call, None if answer is None else answer.status, started)
            delay = self._backoff(attempt)
            quota_wait, wait_reason = False, "the backoff before the next attempt"
            if answer is not None:
                self._note_quota(call.api, answer.headers)
                status = answer.status
                if 200 <= status < 300:
                    return answer if stream else _decode_json(answer, call.route)
                self._raise_if_final(call, answer)
                state.last_status, state.last_exc = status, None
                state.last_cause = f"HTTP {status}{_suffix(_problem_text(answer))}"
                if status == 429:
                    retry, quota_wait = True, True
                    state.starve()
                    retry_after = _retry_after_s(answer.headers.get("Retry-After"), time.time())
                    wait_reason = "the backoff after a 429"
                    if retry_after is not None:
                        delay = min(retry_after, self._retry_after_cap_s)
                        wait_reason = "the wait the 429's Retry-After asks for"
                    delay = max(delay, self._pending_quota_s(call.api))
                else:  # 5xx or 408: the server may have acted before failing
                    retry = call.repeatable
            if not retry:
                raise RunPodUnavailable(
                    f"{self._redact(state.last_cause)}; not retried because {call.method} may already have "
                    "taken effect",
                    route=call.route,
                    status=state.last_status,
                ) from state.last_exc
            if attempt == self._max_retries:
                break
            state.check_wait(delay, wait_reason)
            logger.warning(
                "%s: %s; retry %d/%d in %.2fs",
                call.route,
                self._redact(state.last_cause),
                attempt + 1,
                self._max_retries,
                delay,
            )
            await self._sleep(delay)
            if quota_wait:
                state.waited_for_quota(delay)
            self._quota_deadline.pop(call.api, None)  # that sleep covered any RateLimit wait too
        raise RunPodUnavailable(
            f"gave up after {state.sent} attempt{'' if state.sent == 1 else 's'}; "
            f"last: {self._redact(state.last_cause)}",
            route=call.route,
            status=state.last_status,
        ) from state.last_exc

    async def _send(self, call: _Call, *, stream: bool = False) -> _Answer:
        """One exchange, the body read in full but never beyond ``max_body_bytes``; with ``stream``, a
        2xx answer is returned as soon as its headers arrive, open (``_Answer.stream``)."""
        request = self._http.build_request(
            call.method, call.url, params=call.params, json=call.body, headers=call.headers
        )
        response = await self._http.send(request, stream=True)
        if stream and 200 <= response.status_code < 300:
            return _Answer(response.status_code, response.headers, b"", response)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_body_bytes:
                    raise _BodyTooLarge(size)
                chunks.append(chunk)
        finally:
            await response.aclose()
        # An echoed key is removed before anything reads the body, so no model and no message (where
        # long values are shortened, which could keep part of it) ever holds it.
        content = b"".join(chunks).replace(self._api_key.encode(), _REDACTED.encode())
        return _Answer(response.status_code, response.headers, content)

    def _raise_if_final(self, call: _Call, answer: _Answer) -> None:
        """Raise for the statuses that retrying cannot fix; return for 429, 408 and 5xx."""
        status = answer.status
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
                f"not found (HTTP 404){_suffix(_problem_text(answer))}{self._url_hint(call.api)}",
                route=call.route,
                status=404,
            )
        if status in {408, 429} or 500 <= status < 600:
            return
        if 400 <= status < 500:
            raise RunPodRejected(
                f"RunPod refused the request (HTTP {status}){_suffix(_problem_text(answer))}",
                route=call.route,
                status=status,
            )
        raise RunPodProtocolError(f"unexpected HTTP status {status}", route=call.route, status=status)

    def _url_hint(self, api: _Api) -> str:
        """For a 404: which setting to fix when the configured URL does not end as RunPod's do."""
        suffix, what, setting = _URL_SETTINGS[api]
        url = {"rest": self._rest_url, "runtime": self._runtime_url, "graphql": self._graphql_url}[api]
        if urlsplit(url).path.endswith(suffix):
            return ""
        return f"; {what} does not end in {suffix}: check {setting}"

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (AWS architecture blog's recipe)."""
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2.0 ** min(attempt, 60))
        return ceiling * self._rng.random()

    def _note_quota(self, api: _Api, headers: httpx.Headers) -> None:
        now = self._clock()
        windows = _parse_ratelimit(headers.get("RateLimit"))
        if windows:
            self._windows[api] = tuple((name, r, t, now) for name, r, t in windows)
        policies = _parse_ratelimit_policy(headers.get("RateLimit-Policy"))
        if policies:
            self._policies[api] = policies
        wait = _exhausted_wait_s(windows)
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
        self._quota_deadline[api] = max(self._quota_deadline.get(api, -math.inf), now + wait)

    def _pending_quota_s(self, api: _Api) -> float:
        deadline = self._quota_deadline.get(api)
        return 0.0 if deadline is None else max(0.0, deadline - self._clock())

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


class _CallState:
    """The state of one call across its attempts: what it last saw, its deadline, its quota starvation."""

    def __init__(self, client: RunPodClient, call: _Call) -> None:
        self.client = client
        self.call = call
        self.scope = client._scope.get()
        started = client._clock()
        budget_end = started + client._call_budget_s
        scope_end = None if self.scope is None else self.scope.at
        self.deadline = budget_end if scope_end is None else min(budget_end, scope_end)
        self.bound = (
            f"call budget of {client._call_budget_s:g}s"
            if scope_end is None or budget_end < scope_end
            else "deadline"
        )
        self.sent = 0
        """Attempts made so far."""
        self.last_cause = ""
        self.last_status: int | None = None
        self.last_exc: BaseException | None = None
        self.starved = False

    def time_left(self) -> float:
        return self.deadline - self.client._clock()

    def starve(self) -> None:
        self.starved = True
        if self.scope is not None:
            self.scope._starved(self.call.route)

    def waited_for_quota(self, seconds: float) -> None:
        if self.scope is not None:
            self.scope._starved(self.call.route, seconds)

    def check_wait(self, seconds: float, what: str) -> None:
        """Raise instead of starting a wait that would end after the deadline."""
        left = self.time_left()
        if seconds > left:
            raise self.out_of_time(f"{what} ({seconds:.1f}s) would end after it, {max(0.0, left):.1f}s left")

    def out_of_time(self, why: str) -> RunPodDeadlineReached:
        if self.scope is not None:
            self.scope._out_of_time()
        if self.sent:
            last = self.client._redact(self.last_cause)
            tried = f"{self.sent} attempt{'' if self.sent == 1 else 's'}, last answer: {last}"
        else:
            tried = "no attempt made"
        exc = RunPodDeadlineReached(
            f"{self.bound} reached: {why}; {tried}",
            route=self.call.route,
            status=self.last_status,
            quota_starved=self.starved,
        )
        exc.__cause__ = self.last_exc
        return exc


# ---------------------------------------------------------------------- request helpers


def _checked_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        raise ConfigError(f"RunPod client: {name} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"RunPod client: {name} must be an http(s) URL")
    return url.rstrip("/")


def _host_port(url: str) -> str:
    """``host:port`` of ``url`` for messages (the scheme's default port when none is given); never the
    user-info part or the path."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _finite_at_least(value: object, low: float, *, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return value > low if strict else value >= low


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
    text = _shorten(str(exc), 200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _suffix(text: str) -> str:
    return f": {text}" if text else ""


def _problem_text(answer: _Answer) -> str:
    """The human part of an error body: REST v2 problem+json, GraphQL ``errors``, v1 ``message``, or text."""
    try:
        body = _loads(answer.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _shorten(answer.text)
    if not isinstance(body, dict):
        return _render(body)
    parts: list[str] = []
    for key in ("title", "detail", "message"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts.append(_graphql_messages(errors))
    return _shorten(" - ".join(parts)) if parts else _render(body)


def _graphql_messages(errors: list[Any]) -> str:
    """GraphQL ``errors[].message`` joined (the first 10), anything else rendered as bounded JSON."""
    messages: list[str] = []
    for item in errors[:10]:
        message = item.get("message") if isinstance(item, dict) else None
        if isinstance(message, str):
            messages.append(_shorten(message))
        else:
            messages.append(_shorten(item) if isinstance(item, str) else _render(item, 200))
    more = f"; and {len(errors) - 10} more" if len(errors) > 10 else ""
    return "; ".join(messages) + more


def _shorten(text: str, limit: int = 300) -> str:
    if len(text) > 8 * limit:  # whitespace runs cannot shrink what is kept below limit by more than this
        text = text[: 8 * limit]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Oversized:
    """A JSON integer literal with more than ``_MAX_INT_DIGITS`` digits: never converted to ``int``
    (Python refuses beyond 4,300 digits, and no field may hold one anyway)."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(literal: str) -> int | _Oversized:
    digits = len(literal.lstrip("-"))
    return _Oversized(digits) if digits > _MAX_INT_DIGITS else int(literal)


def _loads(content: bytes) -> Any:
    """``json.loads`` with integers bounded; raises ValueError, UnicodeDecodeError or RecursionError."""
    return json.loads(content, parse_int=_parse_int)


def _decode_json(answer: _Answer, route: str) -> Any:
    if not answer.content:
        raise RunPodProtocolError("empty body where JSON was expected", route=route, status=answer.status)
    try:
        return _loads(answer.content)
    except RecursionError:
        problem = "body is not usable JSON: nested too deeply"
    except (ValueError, UnicodeDecodeError):
        problem = f"body is not JSON: {_shorten(answer.text, 80)!r}"
    raise RunPodProtocolError(problem, route=route, status=answer.status)


def _retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    None when absent or unusable (malformed, a date without a zone, not finite): the caller backs off.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > 100:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
            if moment.tzinfo is None:  # RFC 850 and asctime forms are GMT by definition
                return None
            seconds = moment.timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _parse_ratelimit(value: str | None) -> list[tuple[str, int, float]]:
    """``RateLimit: "minute";r=0;t=12, "hour";r=2800;t=1812`` → ``[(window, remaining, reset s), ...]``.

    Members without a usable ``r`` (an int 0..2**53-1) and ``t`` (a finite number 0..1e9) are skipped;
    at most ``_MAX_QUOTA_WINDOWS`` are kept. This is an optimisation: the 429 path still protects us.
    """
    windows: list[tuple[str, int, float]] = []
    for name, params in _structured_members(value):
        remaining = _header_int(params.get("r"))
        reset = _header_number(params.get("t"))
        if remaining is not None and reset is not None:
            windows.append((name, remaining, reset))
    return windows


def _parse_ratelimit_policy(value: str | None) -> dict[str, tuple[int, float]]:
    """``RateLimit-Policy: "minute";q=60;w=60`` → ``{window: (quota, window seconds)}``."""
    policies: dict[str, tuple[int, float]] = {}
    for name, params in _structured_members(value):
        quota = _header_int(params.get("q"))
        window = _header_number(params.get("w"))
        if quota is not None and window is not None:
            policies[name] = (quota, window)
    return policies


def _structured_members(value: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    if not value or len(value) > 4096:
        return
    count = 0
    for member in value.split(","):
        name, *parts = member.split(";")
        name = name.strip().strip('"').strip()
        if not name or len(name) > 64 or not name.isprintable():
            continue
        params: dict[str, str] = {}
        for part in parts:
            key, _, raw = part.partition("=")
            params[key.strip()] = raw.strip().strip('"')
        yield name, params
        count += 1
        if count >= _MAX_QUOTA_WINDOWS:
            return


def _header_int(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or len(raw) > 16:  # isdigit: no sign, no spaces
        return None
    value = int(raw)
    return value if value <= _MAX_INT else None


def _header_number(raw: str | None) -> float | None:
    if raw is None or len(raw) > 32:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= 1e9 else None


def _exhausted_wait_s(windows: list[tuple[str, int, float]]) -> float | None:
    """The longest reset among the windows with no call left, or None when some are left in all."""
    waits = [reset for _, remaining, reset in windows if remaining == 0 and reset > 0]
    return max(waits) if waits else None


def _ratelimit_wait_s(value: str | None) -> float | None:
    """Seconds to hold off according to a ``RateLimit`` header value (None: no window is used up).

    Only windows whose remaining count ``r`` is 0 matter; the longest of their reset times ``t`` wins.
    Anything malformed is ignored: this is an optimisation, the 429 path still protects us.
    """
    return _exhausted_wait_s(_parse_ratelimit(value))


# ---------------------------------------------------------------------- parsing

_MISSING: Final = object()


def _describe(value: object) -> str:
    """A short description of a JSON value for messages; never fails and never prints much."""
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
    if isinstance(value, _Oversized):
        return f"an integer of {value.digits} digits"
    if isinstance(value, int):
        if abs(value) > 10**18:
            return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return f"a {type(value).__name__}"


def _render(value: object, limit: int = 300) -> str:
    """Compact JSON-like text of ``value`` cut at ``limit`` characters; depth-limited, so it never
    recurses deeply, and big integers are described rather than converted."""
    out: list[str] = []
    budget = [limit + 1]

    def emit(text: str) -> None:
        out.append(text)
        budget[0] -= len(text)

    def walk(item: object, depth: int) -> None:
        if budget[0] <= 0:
            return
        if depth > 16:
            emit("…")
        elif isinstance(item, dict):
            emit("{")
            for index, (key, child) in enumerate(item.items()):
                if budget[0] <= 0:
                    break
                emit(("" if index == 0 else ", ") + json.dumps(str(key)[:limit]) + ": ")
                walk(child, depth + 1)
            emit("}")
        elif isinstance(item, list):
            emit("[")
            for index, child in enumerate(item):
                if budget[0] <= 0:
                    break
                if index:
                    emit(", ")
                walk(child, depth + 1)
            emit("]")
        elif isinstance(item, str):
            emit(json.dumps(item[:limit]))
        elif (
            item is None or isinstance(item, bool | float) or (isinstance(item, int) and abs(item) <= 10**18)
        ):
            emit(json.dumps(item))
        else:
            emit(f"<{_describe(item)}>")

    walk(value, 0)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean_text(value: str) -> str:
    """``value`` with lone UTF-16 surrogates (valid in JSON escapes, not in UTF-8) replaced by U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


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

    def _text(self, key: str, value: object, *, non_empty: bool) -> str:
        if not isinstance(value, str) or (non_empty and not value):
            raise self._wrong(key, "a non-empty string" if non_empty else "a string", value)
        if len(value) > _MAX_TEXT:
            raise self.error(key, f"expected at most {_MAX_TEXT} characters, got {len(value)}")
        return _clean_text(value)

    def string(self, key: str) -> str:
        return self._text(key, self._value(key, required=True), non_empty=True)

    def optional_string(self, key: str, default: str | None = None) -> str | None:
        value = self._value(key, required=False)
        return default if value is _MISSING else self._text(key, value, non_empty=False)

    def _identifier(self, key: str, value: object) -> str:
        if isinstance(value, str) and _ID_PATTERN.fullmatch(value) and set(value) != {"."}:
            return value
        raise self._wrong(key, "an id (1-200 letters, digits, '_', '-' or '.')", value)

    def identifier(self, key: str) -> str:
        """A RunPod id: also safe to put in a URL path, which the caller may do next."""
        return self._identifier(key, self._value(key, required=True))

    def optional_identifier(self, key: str) -> str | None:
        value = self._value(key, required=False)
        return None if value is _MISSING else self._identifier(key, value)

    def _int(self, key: str, value: object) -> int:
        """An integer in 0..2**53-1 (every integer RunPod sends is a count, a size or a duration)."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not value.is_integer())
        ):
            raise self._wrong(key, "an integer", value)
        if not 0 <= value <= _MAX_INT:  # compared exactly, never converted: no OverflowError
            raise self.error(key, f"expected an integer in 0..{_MAX_INT}, got {_describe(value)}")
        return int(value)

    def integer(self, key: str) -> int:
        return self._int(key, self._value(key, required=True))

    def optional_integer(self, key: str, default: int | None) -> int | None:
        value = self._value(key, required=False)
        return default if value is _MISSING else self._int(key, value)

    def count(self, key: str) -> int:
        """An integer that defaults to 0 when absent (health and summary counters)."""
        value = self._value(key, required=False)
        return 0 if value is _MISSING else self._int(key, value)

    def _number(self, key: str, value: object, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, "a number", value)
        if isinstance(value, float) and not math.isfinite(value):
            raise self._wrong(key, "a finite number", value)
        if not low <= value <= high:  # int compared exactly: float() of a huge int would overflow
            raise self.error(key, f"expected a number in {low:g}..{high:g}, got {_describe(value)}")
        return float(value)

    def number(self, key: str, *, low: float = 0.0, high: float = _MAX_USD) -> float:
        return self._number(key, self._value(key, required=True), low, high)

    def optional_number(
        self, key: str, default: float | None, *, low: float = 0.0, high: float = _MAX_USD
    ) -> float | None:
        value = self._value(key, required=False)
        return default if value is _MISSING else self._number(key, value, low, high)

    def optional_bool(self, key: str, default: bool) -> bool:
        value = self._value(key, required=False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def _time(self, key: str, value: object) -> float:
        if isinstance(value, str) and len(value) <= 64:
            try:
                moment = from_iso(value)
            except (ValueError, OverflowError, TypeError):
                pass
            else:
                if _EARLIEST_TIME <= moment < _LATEST_TIME:
                    return moment
                raise self.error(key, f"expected a date-time in 2000..2199, got {_describe(value)}")
        raise self._wrong(key, "an RFC 3339 date-time", value)

    def time(self, key: str) -> float:
        return self._time(key, self._value(key, required=True))

    def optional_time(self, key: str) -> float | None:
        value = self._value(key, required=False)
        return None if value is _MISSING else self._time(key, value)

    def enum(self, key: str, enum_type: type[_EnumT]) -> _EnumT:
        value = self._value(key, required=True)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return enum_type(value)
        allowed = ", ".join(member.value for member in enum_type)
        raise self.error(key, f"{_describe(value)} is not one of {allowed}")

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
        result: list[str] = []
        for index, item in enumerate(items):
            if not isinstance(item, str) or len(item) > _MAX_TEXT:
                expected = "a string" if not isinstance(item, str) else f"at most {_MAX_TEXT} characters"
                raise RunPodProtocolError(
                    f"expected {expected}, got {_describe(item)}",
                    route=self._route,
                    field=f"{self.field(key)}[{index}]",
                )
            result.append(_clean_text(item))
        return tuple(result)


def _parse_endpoint_list(body: Any, route: str) -> list[EndpointConfig]:
    return [_parse_endpoint(node) for node in _Node.root(body, route).objects("endpoints")]


def _parse_endpoint(node: _Node) -> EndpointConfig:
    """REST v2 ``Endpoint``. Only ``id`` and ``workers.min/max`` are indispensable; the rest has defaults.

    * ``id`` must be a RunPod id (the daemon puts it in URL paths next).
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
        id=node.identifier("id"),
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
            id=item.identifier("id"),
            status=item.enum("status", WorkerStatus),
            is_stale=item.optional_bool("isStale", False),
            gpu_count=item.optional_integer("gpuCount", 1) or 0,
            gpu_type_id=item.optional_string("gpuTypeId"),
            version=item.optional_integer("version", None),
            uptime_s=item.optional_number("uptimeSeconds", None, high=_MAX_SECONDS),
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
    """Runtime job (``/status``, ``/cancel``). A non-string ``error`` is kept as compact JSON text; either
    is cut at ``_MAX_ERROR_TEXT`` characters (a handler's traceback can be long)."""
    raw_error = node.raw("error")
    error: str | None = None
    if isinstance(raw_error, str):
        error = _clean_text(
            raw_error if len(raw_error) <= _MAX_ERROR_TEXT else raw_error[: _MAX_ERROR_TEXT - 1] + "…"
        )
    elif raw_error is not _MISSING:
        error = _clean_text(_render(raw_error, _MAX_ERROR_TEXT))
    return Job(
        id=node.identifier("id"),
        status=node.enum("status", JobStatus),
        delay_time_ms=_rounded(node.optional_number("delayTime", None, high=_MAX_DURATION_MS)),
        execution_time_ms=_rounded(node.optional_number("executionTime", None, high=_MAX_DURATION_MS)),
        worker_id=node.optional_identifier("workerId"),
        error=error,
        has_output=node.raw("output") is not _MISSING,
    )


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def _parse_purge(body: Any, route: str) -> PurgeResult:
    root = _Node.root(body, route)
    return PurgeResult(removed=root.integer("removed"), status=root.optional_string("status", "") or "")


def _parse_billing(body: Any, route: str) -> BillingReport:
    """REST v2 billing. Amounts are USD in 0..1e9: a negative amount would hide spend from the budget."""
    root = _Node.root(body, route)
    records = tuple(
        BillingRecord(
            start=item.time("startTime"),
            end=item.time("endTime"),
            endpoint_id=item.optional_identifier("serverlessId"),
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
    """GraphQL ``myself``; ``errors`` (even beside ``data``) is ``RunPodRejected``. The balance may be
    negative (money owed); the spend rate and limit may not."""
    root = _Node.root(body, route)
    errors = root.raw("errors")
    if errors is not _MISSING:
        if not isinstance(errors, list):
            raise root.error("errors", f"expected an array, got {_describe(errors)}")
        if errors:
            raise RunPodRejected(
                f"GraphQL errors: {_shorten(_graphql_messages(errors))}", route=route, status=200
            )
    myself = root.obj("data").obj("myself")
    standby = {
        item.identifier("id"): item.count("workersStandby")
        for item in myself.objects("endpoints", required=False)
    }
    return AccountSpend(
        client_balance_usd=myself.optional_number("clientBalance", None, low=-_MAX_USD),
        current_spend_per_hr_usd=myself.optional_number("currentSpendPerHr", None),
        spend_limit_usd=myself.optional_number("spendLimit", None),
        workers_standby=standby,
    )


def _parse_account_limits(body: Any, route: str) -> AccountLimits:
    """REST v2 ``/v2/account/limits`` (see :meth:`RunPodClient.account_limits` for what is uncertain).
    USD per hour in 0..1e9, worker counts in 0..2**53-1."""
    root = _Node.root(body, route)
    spend_limit, spend_current = _limit_member(root, "spendRate", integral=False)
    workers_limit, workers_current = _limit_member(root, "serverlessWorkers", integral=True)
    return AccountLimits(
        spend_rate_limit_usd_per_hr=spend_limit,
        spend_rate_current_usd_per_hr=spend_current,
        serverless_workers_limit=None if workers_limit is None else int(workers_limit),
        serverless_workers_current=None if workers_current is None else int(workers_current),
    )


def _limit_member(root: _Node, key: str, *, integral: bool) -> tuple[float | None, float | None]:
    """(limit, current) of a ``{"limit", "current"}`` member; a bare number is the spend-rate cap or the
    worker count (what RunPod's page says each member is); absent or null: (None, None)."""
    value = root.raw(key)
    if value is _MISSING:
        return None, None
    if isinstance(value, dict):
        node = root.obj(key)
        if integral:
            return node.optional_integer("limit", None), node.optional_integer("current", None)
        return node.optional_number("limit", None), node.optional_number("current", None)
    if isinstance(value, bool) or not isinstance(value, int | float | _Oversized):
        raise root.error(key, f"expected an object or a number, got {_describe(value)}")
    if integral:
        return None, root.optional_integer(key, None)  # the sum of workersMax: "current"
    return root.optional_number(key, None), None  # the hourly cap: "limit"


# ---------------------------------------------------------------------- worker log stream (SSE)


@dataclass(frozen=True, slots=True)
class _SseEvent:
    """One dispatched server-sent event, before its data is read."""

    id: str
    """The last event id buffer when it was dispatched (ids carry over to events without their own)."""
    data: str | None
    """The ``data`` lines joined by newlines; None when the event had none (it only moves the id)."""
    bad: bool
    """A line or the data was over ``_MAX_SSE_CHARS``: what was kept of the event is not the event."""


class _SseParser:
    """Incremental ``text/event-stream`` parser (WHATWG HTML, "Event stream interpretation"), bounded.

    Bytes are decoded as UTF-8 (invalid bytes → U+FFFD, one leading BOM dropped); lines end at CRLF, LF or
    CR, also across chunks; ``:`` lines are comments; ``data`` lines are joined with newlines; ``id`` sets
    the id buffer (unless it holds NUL), which carries over to the next events; ``event``, ``retry`` and
    unknown fields are ignored; a blank line dispatches. Memory stays bounded whatever arrives: a line, or
    the data of one event, longer than ``_MAX_SSE_CHARS`` is dropped as it comes and its event marked bad.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._after_cr = False
        self._partial: list[str] = []
        self._partial_len = 0
        self._overlong = False
        """Dropping the rest of a line that grew past the bound (until its end arrives)."""
        self._id = ""
        self._data: list[str] = []
        self._data_len = 0
        self._has_data = False
        self._bad = False
        self._fields = False
        """The event being read has had a field line (or a bad one)."""

    def feed(self, chunk: bytes) -> Iterator[_SseEvent]:
        """The events that ``chunk`` completes, in order (a generator: stop it whenever you like)."""
        text = self._decoder.decode(chunk)
        if not text:
            return
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr:
            self._after_cr = False
            if text[:1] == "\n":  # the LF of a CRLF split between two chunks
                text = text[1:]
        self._after_cr = text.endswith("\r")
        *complete, rest = _SSE_LINE_END.split(text) if "\r" in text else text.split("\n")
        for index, piece in enumerate(complete):
            if index == 0:
                line = self._complete(piece)
            elif len(piece) > _MAX_SSE_CHARS:
                self._too_long(piece)
                continue
            else:
                line = piece
            if line is None:
                continue
            if not line:
                if self._fields:
                    yield self._dispatch()
                continue
            self._line(line)
        self._extend(rest)

    def finish(self) -> Iterator[_SseEvent]:
        """The server ended the stream. The standard drops an event that has no blank line after it, but
        OAS2's own example ends its one event with a single newline, so an event with data whose lines
        all ended is dispatched. A stream that ends mid-line may have been cut short: its last event is
        left for the next read (which resumes before it)."""
        self._decoder.decode(b"", final=True)
        if self._partial or self._overlong:
            return
        if self._fields and (self._has_data or self._bad):
            yield self._dispatch()

    def _complete(self, piece: str) -> str | None:
        """The line that ``piece`` ends, or None when it was dropped for its length."""
        if self._overlong:
            self._overlong = False
            return None
        line = "".join(self._partial) + piece if self._partial else piece
        self._partial, self._partial_len = [], 0
        if len(line) > _MAX_SSE_CHARS:
            self._too_long(line)
            return None
        return line

    def _extend(self, piece: str) -> None:
        """Keep the start of a line whose end has not arrived yet (dropping it once it is too long)."""
        if self._overlong or not piece:
            return
        self._partial.append(piece)
        self._partial_len += len(piece)
        if self._partial_len > _MAX_SSE_CHARS:
            self._too_long(self._partial[0])
            self._partial, self._partial_len = [], 0
            self._overlong = True

    def _too_long(self, start: str) -> None:
        if not start.startswith(":"):  # a long comment is harmless; anything else spoils its event
            self._bad = self._fields = True

    def _line(self, line: str) -> None:
        """One field line (not blank)."""
        if line[0] == ":":
            return
        self._fields = True
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            if self._bad or self._data_len + len(value) + 1 > _MAX_SSE_CHARS:
                self._bad = True
                self._data, self._data_len = [], 0
            else:
                self._data.append(value)
                self._data_len += len(value) + 1
                self._has_data = True
        elif name == "id" and "\x00" not in value:
            self._id = value

    def _dispatch(self) -> _SseEvent:
        event = _SseEvent(self._id, "\n".join(self._data) if self._has_data else None, self._bad)
        self._data, self._data_len = [], 0
        self._has_data = self._bad = self._fields = False
        return event


class _LogStreamReader:
    """Turns the bytes of a worker log stream into a :class:`WorkerLogBatch`, within ``max_lines`` events
    and ``max_bytes``. Pure (no I/O), so the fuzz tests drive it directly with any bytes in any chunks."""

    def __init__(
        self,
        *,
        endpoint_id: str,
        worker_id: str,
        last_event_id: str | None,
        max_lines: int,
        max_bytes: int,
        api_key: str,
    ) -> None:
        self._endpoint_id = endpoint_id
        self._worker_id = worker_id
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._api_key = api_key
        self._parser = _SseParser()
        self._events: list[WorkerLogEvent] = []
        self._resume = last_event_id
        self._skipped = 0
        self._size = 0

    def feed(self, chunk: bytes) -> LogStreamEnd | None:
        """Read ``chunk``; the reason to stop reading now, or None to go on."""
        room = self._max_bytes - self._size
        over = len(chunk) > room
        if over:
            chunk = chunk[: max(0, room)]
        self._size += len(chunk)
        for raw in self._parser.feed(chunk):
            if self._take(raw):
                return LogStreamEnd.MAX_LINES
        return LogStreamEnd.MAX_BYTES if over else None

    def finish(self) -> LogStreamEnd:
        """The server ended the stream."""
        for raw in self._parser.finish():
            self._take(raw)
        return LogStreamEnd.CLOSED

    def batch(self, end: LogStreamEnd, problem: str | None = None) -> WorkerLogBatch:
        return WorkerLogBatch(
            endpoint_id=self._endpoint_id,
            worker_id=self._worker_id,
            events=tuple(self._events),
            last_event_id=self._resume,
            end=end,
            skipped=self._skipped,
            bytes_read=self._size,
            problem=problem,
        )

    def _take(self, raw: _SseEvent) -> bool:
        """Keep or skip one event, moving the resume point past it; True once ``max_lines`` are kept."""
        sendable = not raw.id or (
            len(raw.id) <= _MAX_EVENT_ID and bool(_EVENT_ID.fullmatch(raw.id)) and self._api_key not in raw.id
        )
        if sendable and raw.id:
            self._resume = raw.id
        if raw.data is None and not raw.bad:
            return False  # an event without data only moves the id (and is not dispatched by the standard)
        event = None if raw.bad or raw.data is None or not sendable else self._event(raw.id, raw.data)
        if event is None:
            self._skipped += 1
            return False
        self._events.append(event)
        return len(self._events) >= self._max_lines

    def _event(self, event_id: str, data: str) -> WorkerLogEvent | None:
        """``data: {"ts": RFC 3339, "source": str, "line": str}`` (OAS2 ``getWorkerLogs``), or None."""
        if data.lstrip()[:1] != "{":  # not an object: spare json.loads (and its exception) the work
            return None
        try:
            body = json.loads(data, parse_int=_parse_int)
        except (ValueError, RecursionError):
            return None
        if not isinstance(body, dict):
            return None
        stamp, source, line = body.get("ts"), body.get("source"), body.get("line")
        if not isinstance(stamp, str) or len(stamp) > 64:
            return None
        try:
            ts = from_iso(stamp)
        except (ValueError, OverflowError, TypeError):
            return None
        if not _EARLIEST_TIME <= ts < _LATEST_TIME:
            return None
        if not isinstance(source, str) or not 0 < len(source) <= 64 or not isinstance(line, str):
            return None
        line = _clean_text(line).replace(self._api_key, _REDACTED)
        if len(line) > _MAX_LOG_LINE:
            line = line[: _MAX_LOG_LINE - 1] + "…"
        return WorkerLogEvent(
            id=event_id, ts=ts, source=_clean_text(source).replace(self._api_key, _REDACTED), line=line
        )
