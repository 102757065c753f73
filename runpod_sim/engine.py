"""The simulator's model of a RunPod account: the contract between the engine and its HTTP face.

CONTRACT (the HTTP layer in app.py relies on exactly these names; the engine may add, never rename):

* Every public method first calls ``self.sync()`` so the model is current at ``clock.now()``.
* Unknown endpoint or job → ``SimNotFound``; a value RunPod would refuse → ``SimInvalid(message, field)``.
* Methods are synchronous and fast; the async ``wait_*`` helpers poll the model in *real* time
  (``poll_s`` real seconds between looks, bounded by ``timeout_s`` real seconds) so they work with a
  ``ScaledClock`` (speed X) and with a ``ManualClock`` (tests advance it while a wait is pending).

Why a discrete-event model: the product's whole job is money over a month, so tests must be able to live a
month in a second and get *exactly* the answer a month of real time would give. Everything that happens
on its own (arrivals, cold starts ending, jobs finishing, idle tails expiring, timeouts, TTLs, heartbeats)
is an event on one heap ordered by (time, sequence); ``sync()`` pops them in order up to ``clock.now()``.
Handlers re-check the model before acting (a worker's ``generation``, a job's run token), so an event that
went stale (the worker got a new job, the job was cancelled) is simply ignored instead of unscheduled.

Billing is the ground truth the daemon is checked against: a worker's *session* runs from the moment it is
signalled to wake (or becomes ready, if initializing is not billed) until it fully stops, and is billed
``ceil(seconds)`` at its GPU type's price (runpod-api.md §5.2, §6). Sessions also keep a breakdown
(initializing / busy / idle seconds) so a test can show what the cold start and the idle tail cost.

Additions beyond the fixed contract (used by scenarios.py, tests and the bench):
``add_traffic``/``stop_traffic`` (generic arrival processes), ``schedule`` (a timed action such as a config
change), ``record_session`` (synthetic billing history), ``sessions``, ``session_billed_seconds``,
``session_usd``, ``add_job_listener``, ``close``; ``take_jobs``/``wait_take_jobs`` (several jobs per
worker, as the SDK's ``job_in_progress`` and ``job-take-batch`` ask), ``account_limits`` (REST v2 spend
rate and worker quota), ``worker_log`` (each worker's bounded log: platform lines and the SDK's
"Started."/"Finished." lines per job), ``webhooks`` (job webhook deliveries, webhooks.py).

Workers the user runs (``worker_kind="external"``, real SDK processes) are registered on their first
job-take or ping. When the platform stops one (idle timeout, workersMax, a timeout...) its process keeps
polling, so it is *parked*, and the autoscaler starts it again (a new session, a new ``startedAt``) when
a job-take from it finds the endpoint needing a worker: how a real account starts a new worker. Every
worker start is checked against the account's spend rate (``SimOptions.spend_rate_usd_per_hr``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import math
import random
import string
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import IO, Any, Literal

from runpod_sim.serialize import job_status
from runpod_sim.state import (
    AccountLimits,
    BilledSession,
    BillingBucket,
    HealthCounts,
    JobPolicy,
    SimAccount,
    SimEndpoint,
    SimJob,
    SimWorker,
    WorkerLogLine,
)
from runpod_sim.webhooks import WebhookDispatcher, webhook_url_problem
from watchdog.clock import Clock
from watchdog.prices import DEFAULT_PRICES, PriceTable

DEFAULT_SPEND_RATE_USD_PER_HR = 80.0
"""The simulator's default REST v2 ``spendRate`` (USD per hour): RunPod's documented account default."""
NONPROFIT_SPEND_RATE_USD_PER_HR = 2.0
"""The team's own cap: one A6000 flex worker (1.22 USD/h) fits, a second one does not."""


class SimError(Exception):
    pass


class SimNotFound(SimError):
    """The endpoint, job or worker does not exist (or its result expired)."""


class SimInvalid(SimError):
    def __init__(self, message: str, field: str = "") -> None:
        self.field = field
        super().__init__(message)


@dataclass
class SimOptions:
    """Behaviours the sources leave uncertain (runpod-api.md 'Open questions'), as documented switches."""

    bill_initializing: bool = True
    """2025 docs: cold start is billed; 2026 table says Initializing is not. Conservative default: billed."""
    timeout_status: Literal["FAILED", "TIMED_OUT"] = "TIMED_OUT"
    """Final status of a job that exceeds its execution timeout."""
    standby_billing: Literal["active", "flex", "free"] = "active"
    """How ``workersStandby`` warm workers are billed (flash issue #364 leaves it open)."""
    health_omit_zero: bool = False
    """Omit zero-valued keys from /health (the current docs' example shows only idle and running)."""
    saveendpoint_defaults: dict[str, Any] = field(
        default_factory=lambda: {"workers_max": 3, "idle_timeout": 5, "scaler_value": 4, "workers_standby": 1}
    )
    """GraphQL saveEndpoint resets these fields to these values when an update omits them."""
    run_result_retention_s: float = 30 * 60
    runsync_result_retention_s: float = 60
    missed_pings_to_lose_worker: int = 0
    """0 = disabled; N = an external worker silent for N × ping interval is lost and its job TIMED_OUT."""
    ping_interval_s: float = 10.0
    """Heartbeat interval of simulated workers (recorded in the access log as pings)."""
    billing_delay_s: float = 0.0
    """Billing records only include usage older than this (RunPod's billing lags)."""
    disk_gb: int = 0
    """Container disk per worker, billed in 5-minute blocks at $0.000011574/GB (0 = ignore)."""
    extra_worker_ids: bool = False
    unhealthy_restart_s: float = 30.0
    """How long an UNHEALTHY worker stays so before the platform restarts it (crash loop) or drops it."""
    flashboot_factor: float = 0.25
    """With FlashBoot on, cold starts after an endpoint's first one take this fraction of ``cold_start_s``."""
    simulate_pings: bool = True
    """Simulated workers send heartbeats every ``ping_interval_s`` (logged as kind "ping")."""
    access_records_cap: int = 50_000
    """In-memory access records kept (the oldest are dropped); the log file is never truncated."""
    worker_events_to_file: bool = False
    """Also write kind "worker" records (lifecycle changes) to the access-log file. Off by default: the
    daemon's log watch accepts only "request" and "ping" lines and would count these as malformed."""
    cancelled_job_keeps_worker: bool = False
    """What cancelling an in-progress job does to its worker (runpod-api.md §5.4 leaves it UNCERTAIN: a
    synchronous, blocking handler cannot be interrupted by the job-stop channel, and the SDK's separate
    heartbeat process keeps pinging with the job id; whether RunPod then keeps billing that worker or scales
    it down as idle is not documented).

    False: a cancelled job frees its worker at once (an async SDK handler stops on job-stop): the worker
    becomes IDLE and is scaled down after the idle timeout.

    True: while the worker's heartbeats still list the cancelled job (a blocking handler the stop signal
    cannot interrupt), the worker stays RUNNING and billed, takes no other job and is not scaled down for
    idleness; only stopping it (workers_max 0, the job's execution timeout as scheduled when it started,
    missed pings, the endpoint's deletion) ends its session. A simulated worker's handler keeps running
    until the job's simulated duration ends (a ``hang`` job never ends; its heartbeats keep listing the job);
    an external worker is freed (IDLE) by a ping that no longer lists the job or by a job-done report for
    it. The job itself stays CANCELLED either way. Default False, so scenarios keep their documented bills.
    """
    spend_rate_usd_per_hr: float | None = DEFAULT_SPEND_RATE_USD_PER_HR
    """REST v2 ``spendRate`` (``GET /v2/account/limits``): the hourly cap RunPod checks only when a worker
    STARTS. A start (a simulated worker signalled to wake or placed out of THROTTLED, a crash-looping one
    restarted, an external SDK worker admitted) is refused while the hourly cost of the running workers
    (initializing, idle, running) plus the new one's would exceed it; a running worker is never stopped
    for it. A refused start leaves the job queued and is retried when a worker stops or the autoscaler
    next looks (a job arrives). None = no cap. Default: RunPod's documented account default, 80 USD/h,
    which no built-in scenario reaches; the non-profit's own cap is ``NONPROFIT_SPEND_RATE_USD_PER_HR``
    (2 USD/h: one A6000 flex worker costs 1.22 USD/h, so a second one is refused), set per scenario with
    ``ScenarioParams.spend_rate_usd_per_hr`` or ``runpod-watchdog simulate --spend-rate 2``."""
    serverless_workers_limit: int = 5
    """REST v2 ``serverlessWorkers`` limit: RunPod's "max workers by account balance" (default 5). Reported
    by ``/v2/account/limits`` beside the sum of workersMax; not enforced."""
    graphql_enabled: bool = True
    """False: GraphQL is retired (RunPod retires it in early 2027): ``/graphql`` answers 410 Gone with a
    problem+json body whatever the request (see app.py)."""
    webhook_attempts: int = 3
    """Attempts per job webhook: the first and "up to 2 more" (runpod-api.md §4.3)."""
    webhook_retry_delay_s: float = 10.0
    """Real seconds between webhook attempts (RunPod: 10 s)."""
    webhook_timeout_s: float = 10.0
    """Real seconds a webhook receiver has to answer one attempt."""
    webhook_statuses: frozenset[str] = frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED"})
    """Terminal statuses that call the job's webhook (RunPod documents COMPLETED and FAILED)."""
    worker_log_lines: int = 5000
    """Lines kept per worker for the REST v2 log stream (the oldest are dropped; 5000 is OAS2's max tail)."""
    worker_logs_kept: int = 200
    """Stopped workers whose logs stay readable (the most recently stopped); older ones are forgotten."""
    worker_log_format: Literal["json", "text"] = "json"
    """How a worker's SDK lines read. ``json``: what runpod SDK 1.12.0 prints on RunPod, where
    ``RUNPOD_ENDPOINT_ID`` is set: ``{"requestId": "<job id>", "message": "Started.", "level": "INFO"}``.
    ``text``: what it prints without that variable: ``INFO   | <job id> | Started.`` (rp_logger.py)."""


_TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
_MAX_POLICY_MS = 7 * 86_400_000
_MIN_EXECUTION_TIMEOUT_MS = 5_000
_MIN_TTL_MS = 10_000
_BILLING_EPS_S = 1e-6
"""Float noise tolerated before rounding a session up: epoch-sized times carry ~1e-7 s of error."""
_DISK_BLOCK_S = 300.0
_DISK_USD_PER_GB_PER_BLOCK = 0.000011574
_MIN_INTERARRIVAL_S = 1e-3
_WORKER_ID_ALPHABET = string.ascii_lowercase + string.digits
_STOP_PREFERENCE = {"THROTTLED": 0, "INITIALIZING": 1, "UNHEALTHY": 2, "IDLE": 3, "RUNNING": 4}
_ROLE_STOP_PREFERENCE = {"flex": 0, "standby": 1, "active": 2}
_ACCESS_KEYS = (
    "kind",
    "endpoint_id",
    "route",
    "method",
    "status",
    "source",
    "worker_id",
    "job_id",
    "tier",
    "duration_ms",
)
_EDITABLE_ENDPOINT_FIELDS = frozenset(f.name for f in dataclass_fields(SimEndpoint)) - {"id"}


def billed_seconds(raw_s: float) -> int:
    """Whole seconds billed for a session of ``raw_s`` seconds: rounded up, forgiving float noise."""
    if raw_s <= _BILLING_EPS_S:
        return 0
    return math.ceil(raw_s - _BILLING_EPS_S)


def rfc3339_ms(ts: float) -> str:
    """Epoch seconds → RFC 3339 UTC with milliseconds and a ``Z`` (access-log timestamps)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TrafficSource:
    """One client of an endpoint: an arrival process plus what each request carries."""

    id: str
    endpoint_id: str
    actor: str
    """Recorded as the request's ``source`` in the access log (e.g. "translate-app", "keepwarm-bot")."""
    interarrival: Callable[[random.Random], float]
    """Seconds until the next request."""
    input_factory: Callable[[random.Random], Any]
    free_share: float
    """Share of requests tagged tier "free" (the rest "paid")."""
    rng: random.Random
    policy_factory: Callable[[random.Random], JobPolicy | None] | None = None
    stop_at: float | None = None
    active: bool = True
    sent: int = 0


@dataclass(frozen=True)
class _DoneReport:
    kind: Literal["progress", "completed", "failed"]
    output: Any = None
    error: str | None = None
    stop_pod: bool = False


def _interpret_done_body(body: Any) -> _DoneReport:
    """A job-done body as the SDK sends it (runpod-api.md §5.4): JSON text or an already-parsed value.

    ``{"output": x}`` → completed; ``{"error": e}`` → failed; an error report (``error_type``,
    ``error_message``, ...) either as the body or as a JSON string → failed with the report as the error
    text; ``{"status": "IN_PROGRESS", "output": x}`` → a progress update. Text that is not JSON → failed.
    """
    raw_text: str | None = None
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        raw_text = body
        try:
            body = json.loads(body)
        except ValueError:
            return _DoneReport("failed", error=raw_text)
    if not isinstance(body, dict):
        return _DoneReport("completed", output=body)
    stop_pod = bool(body.get("stopPod", False))
    if body.get("status") == "IN_PROGRESS":
        return _DoneReport("progress", output=body.get("output"))
    if "error" in body and body["error"] is not None:
        error = body["error"]
        text = error if isinstance(error, str) else json.dumps(error)
        return _DoneReport("failed", error=text, stop_pod=stop_pod)
    if "error_type" in body or "error_message" in body:
        return _DoneReport("failed", error=raw_text or json.dumps(body), stop_pod=stop_pod)
    return _DoneReport("completed", output=body.get("output"), stop_pod=stop_pod)


@dataclass(frozen=True)
class _Behaviour:
    """What a simulated worker does with a job: run ``duration_s`` then succeed or fail; None = hang."""

    duration_s: float | None
    fail_message: str | None = None


def _behaviour_of(job_input: Any, endpoint: SimEndpoint) -> _Behaviour:
    sim = job_input.get("sim") if isinstance(job_input, dict) else None
    if not isinstance(sim, dict):
        return _Behaviour(endpoint.default_duration_s)
    if sim.get("hang"):
        return _Behaviour(None)
    duration = float(sim.get("duration_s", endpoint.default_duration_s))
    fail = sim.get("fail")
    return _Behaviour(max(0.0, duration), str(fail) if fail else None)


@dataclass
class _WorkerLog:
    endpoint_id: str
    lines: deque[WorkerLogLine]
    alive: bool = True


class Simulator:
    """A RunPod account. Construct with a clock and a price table; add endpoints; optionally a scenario."""

    def __init__(
        self,
        *,
        clock: Clock,
        prices: PriceTable = DEFAULT_PRICES,
        options: SimOptions | None = None,
        seed: int = 0,
        access_log_path: str | None = None,
    ) -> None:
        self.clock = clock
        self.prices = prices
        self.options = options if options is not None else SimOptions()
        self.seed = seed
        self.access_log_path = access_log_path
        self.access_records: list[dict[str, Any]] = []
        """Recent access-log records (capped at ``options.access_records_cap``), newest last."""
        defaults = SimAccount()
        self.initial_balance_usd = defaults.client_balance_usd
        """Balance before anything this simulator billed; ``account`` subtracts the billed total."""
        self.spend_limit_usd = defaults.spend_limit_usd
        self._ids = random.Random(seed)
        self._now = clock.now()
        self._syncing = False
        self._sync_lock = threading.RLock()
        self._heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._handlers: dict[str, Callable[..., None]] = {
            "arrival": self._on_arrival,
            "action": self._on_action,
            "ready": self._on_ready,
            "finish": self._on_finish,
            "exec_timeout": self._on_exec_timeout,
            "ttl": self._on_ttl,
            "retention": self._on_retention,
            "idle_check": self._on_idle_check,
            "scale_check": self._on_scale_check,
            "ping": self._on_ping,
            "restart": self._on_restart,
            "ping_check": self._on_ping_check,
        }
        self._endpoints: dict[str, SimEndpoint] = {}
        self._jobs: dict[str, dict[str, SimJob]] = {}
        self._queues: dict[str, dict[str, None]] = {}
        """Per endpoint, queued job ids in arrival order (a dict: ordered, O(1) removal)."""
        self._workers: dict[str, dict[str, SimWorker]] = {}
        """Per endpoint, live workers."""
        self._worker_index: dict[str, SimWorker] = {}
        self._stopped_worker_ids: set[str] = set()
        self._sessions: list[BilledSession] = []
        self._stop_signals: dict[str, list[str]] = {}
        self._run_tokens: dict[str, int] = {}
        """Job id → token of its current run; finish/timeout events carry the token they belong to."""
        self._stray_jobs: dict[str, tuple[str, int]] = {}
        """Worker id → (job id, run token) of a cancelled job its handler still runs
        (``options.cancelled_job_keeps_worker``): the worker stays RUNNING and billed until it is freed."""
        self._token_counter = itertools.count(1)
        self._counters: dict[str, dict[str, int]] = {}
        self._traffic: dict[str, TrafficSource] = {}
        self._had_worker: set[str] = set()
        self._job_listeners: list[Callable[[SimJob], None]] = []
        self._log_file: IO[str] | None = None
        self._parked: dict[str, str] = {}
        """External worker id → endpoint id, for SDK processes the platform scaled down (or refused): they
        keep polling job-take, and the autoscaler starts one again when its endpoint needs a worker."""
        self._spend_blocked: set[str] = set()
        """Endpoints with a worker start refused by the spend rate: re-checked when a worker stops."""
        self.spend_rate_refusals = 0
        """Worker starts refused so far because of ``options.spend_rate_usd_per_hr``."""
        self._worker_logs: dict[str, _WorkerLog] = {}
        self._dead_logs: OrderedDict[str, None] = OrderedDict()
        """Stopped workers whose logs are kept, the most recently stopped last."""
        self._log_seq = itertools.count(1)
        self._webhooks: WebhookDispatcher | None = None

    # ================================================================== time
    def sync(self) -> None:
        """Advance the model to ``clock.now()``, processing due events in time order."""
        with self._sync_lock:  # tests read the model from another thread than the server's
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._syncing:
            return  # called from inside an event handler (e.g. a scheduled action): already current
        target = max(self.clock.now(), self._now)
        self._syncing = True
        try:
            heap = self._heap
            while heap and heap[0][0] <= target:
                at, _, kind, payload = heapq.heappop(heap)
                self._now = max(self._now, at)
                self._handlers[kind](*payload)
            self._now = target
        finally:
            self._syncing = False

    def _push(self, at: float, kind: str, *payload: Any) -> None:
        heapq.heappush(self._heap, (max(at, self._now), next(self._seq), kind, payload))

    def schedule(self, at: float, action: Callable[[Simulator], object], label: str = "") -> None:
        """Run ``action(sim)`` at simulated time ``at`` (e.g. a config change in a scenario); its return
        value is ignored."""
        self.sync()
        self._push(at, "action", action, label)

    def _on_action(self, action: Callable[[Simulator], object], _label: str) -> None:
        action(self)

    # ============================================================ account
    @property
    def account(self) -> SimAccount:
        return SimAccount(
            client_balance_usd=self.initial_balance_usd - self.billed_usd_total(),
            spend_limit_usd=self.spend_limit_usd,
        )

    def current_spend_per_hr(self) -> float:
        """USD/h of the workers alive now (GraphQL ``currentSpendPerHr``)."""
        self.sync()
        return sum(
            self._usd_per_s(worker.session) * 3600
            for worker in self._worker_index.values()
            if worker.session is not None
        )

    def account_limits(self) -> AccountLimits:
        """REST v2 ``GET /v2/account/limits``: the spend-rate cap with what runs now, and the worker quota
        with the sum of workersMax."""
        self.sync()
        return AccountLimits(
            spend_rate_usd_per_hr=self.options.spend_rate_usd_per_hr,
            current_spend_per_hr=self._running_cost_per_hr(),
            serverless_workers_limit=self.options.serverless_workers_limit,
            serverless_workers_max_total=sum(ep.workers_max for ep in self._endpoints.values()),
        )

    def _worker_cost_per_hr(self, gpu_type_id: str | None, role: str) -> float:
        """USD/h a worker of this GPU type and role is billed while it runs (what the spend cap counts)."""
        standby = role == "standby"
        if gpu_type_id is None or (standby and self.options.standby_billing == "free"):
            return 0.0
        active = role == "active" or (standby and self.options.standby_billing == "active")
        return self.prices.usd_per_s(gpu_type_id, active=active) * 3600

    def _running_cost_per_hr(self) -> float:
        """USD/h of every started worker (initializing, idle, running: a throttled or unhealthy one is not
        running), whether or not its cold start is billed."""
        return sum(
            self._worker_cost_per_hr(worker.gpu_type_id, worker.role)
            for worker in self._worker_index.values()
            if worker.state in ("INITIALIZING", "IDLE", "RUNNING")
        )

    def _may_start(
        self, endpoint: SimEndpoint, gpu_type_id: str | None, role: str, worker_id: str | None
    ) -> bool:
        """The spend-rate check RunPod makes when a worker starts (and only then). A refusal is counted
        and logged (kind "worker", status "REFUSED") once per endpoint until a worker stops, when the
        endpoint is re-checked (``_spend_room_freed``)."""
        cap = self.options.spend_rate_usd_per_hr
        if cap is None:
            return True
        running = self._running_cost_per_hr()
        cost = self._worker_cost_per_hr(gpu_type_id, role)
        if running + cost <= cap + 1e-9:
            self._spend_blocked.discard(endpoint.id)
            return True
        if endpoint.id in self._spend_blocked:
            return False
        self.spend_rate_refusals += 1
        self._spend_blocked.add(endpoint.id)
        self.log_access(
            kind="worker",
            endpoint_id=endpoint.id,
            status="REFUSED",
            worker_id=worker_id,
            reason=(
                f"spend rate: {running:.4f} USD/h running + {cost:.4f} USD/h would exceed {cap:.4f} USD/h"
            ),
        )
        return False

    def _spend_room_freed(self) -> None:
        """A worker stopped running: endpoints whose start the spend rate refused are looked at again."""
        for endpoint_id in self._spend_blocked:
            self._push(self._now, "scale_check", endpoint_id)
        self._spend_blocked.clear()

    # ========================================================== endpoints
    def add_endpoint(self, endpoint: SimEndpoint) -> SimEndpoint:
        self.sync()
        if endpoint.id in self._endpoints:
            raise SimInvalid(f"endpoint {endpoint.id} already exists", "id")
        _validate_endpoint(endpoint)
        if not endpoint.created_at:
            endpoint.created_at = self._now
        self._endpoints[endpoint.id] = endpoint
        self._jobs[endpoint.id] = {}
        self._queues[endpoint.id] = {}
        self._workers[endpoint.id] = {}
        self._counters[endpoint.id] = {"completed": 0, "failed": 0, "retried": 0}
        self._reconcile(endpoint.id)
        return endpoint

    def endpoints(self) -> list[SimEndpoint]:
        self.sync()
        return list(self._endpoints.values())

    def endpoint(self, endpoint_id: str) -> SimEndpoint:
        self.sync()
        return self._require_endpoint(endpoint_id)

    def _require_endpoint(self, endpoint_id: str) -> SimEndpoint:
        try:
            return self._endpoints[endpoint_id]
        except KeyError:
            raise SimNotFound(f"endpoint {endpoint_id} not found") from None

    def update_endpoint(self, endpoint_id: str, changes: dict[str, Any]) -> SimEndpoint:
        """Sparse update (REST v2 PATCH): only the given SimEndpoint fields change. Validates ranges
        (workers_min/max >= 0, min <= max, 1 <= idle_timeout <= 3600, timeout >= 0). Takes effect at once
        (autoscaler re-evaluated: workers_max 0 stops every worker)."""
        self.sync()
        endpoint = self._require_endpoint(endpoint_id)
        unknown = sorted(set(changes) - _EDITABLE_ENDPOINT_FIELDS)
        if unknown:
            raise SimInvalid(f"unknown or read-only field {unknown[0]}", unknown[0])
        _validate_endpoint(replace(endpoint, **changes))
        changed = any(getattr(endpoint, name) != value for name, value in changes.items())
        for name, value in changes.items():
            setattr(endpoint, name, value)
        if changed:
            endpoint.version += 1
        for worker in self._workers[endpoint_id].values():
            if worker.state == "IDLE" and worker.role == "flex":
                self._after_idle(worker, endpoint)
        self._reconcile(endpoint_id)
        return endpoint

    def save_endpoint(self, fields: dict[str, Any]) -> SimEndpoint:
        """GraphQL saveEndpoint: create (no id) or full-replace update (id): omitted fields listed in
        ``options.saveendpoint_defaults`` are reset to those defaults."""
        self.sync()
        given = dict(fields)
        endpoint_id = given.pop("id", None)
        with_defaults = {**self.options.saveendpoint_defaults, **given}
        if endpoint_id:
            return self.update_endpoint(endpoint_id, with_defaults)
        unknown = sorted(set(with_defaults) - _EDITABLE_ENDPOINT_FIELDS)
        if unknown:
            raise SimInvalid(f"unknown field {unknown[0]}", unknown[0])
        if not with_defaults.get("name"):
            raise SimInvalid("name is required", "name")
        new_id = "".join(self._ids.choices(_WORKER_ID_ALPHABET, k=14))
        return self.add_endpoint(SimEndpoint(id=new_id, **with_defaults))

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Refuses (SimInvalid) unless workers_min == workers_max == 0."""
        self.sync()
        endpoint = self._require_endpoint(endpoint_id)
        if endpoint.workers_min != 0 or endpoint.workers_max != 0:
            raise SimInvalid("set workersMin and workersMax to 0 before deleting the endpoint", "workers_max")
        for worker in list(self._workers[endpoint_id].values()):
            self._stop_worker(worker, reason="endpoint deleted")
        for source in self._traffic.values():
            if source.endpoint_id == endpoint_id:
                source.active = False
        for table in (self._endpoints, self._jobs, self._queues, self._workers, self._counters):
            del table[endpoint_id]

    def workers(self, endpoint_id: str) -> list[SimWorker]:
        """Live workers only (scaled-down ones are gone)."""
        self.sync()
        self._require_endpoint(endpoint_id)
        return list(self._workers[endpoint_id].values())

    # ============================================================ billing
    def billing(
        self, *, start: float, end: float, bucket_s: int, endpoint_id: str | None = None
    ) -> list[BillingBucket]:
        """Buckets [start, end) of ``bucket_s`` seconds (already snapped by the caller), one per endpoint
        with usage. The sum over all buckets equals the sum over sessions of ceil(seconds) × price.

        A session's raw seconds are split over the buckets it overlaps; its rounding remainder (billed
        minus raw) and its disk blocks go to the bucket where it ends. Open sessions (and sessions closed
        after ``now - billing_delay_s``) are billed up to that cutoff, as RunPod's lagging billing would."""
        self.sync()
        if bucket_s <= 0:
            raise SimInvalid("bucket size must be positive", "bucket_s")
        if end <= start:
            return []
        cutoff = self._now - self.options.billing_delay_s
        totals: dict[tuple[int, str], list[float]] = {}

        def add(index: int, endpoint: str, seconds: float, usd: float, disk_usd: float) -> None:
            entry = totals.setdefault((index, endpoint), [0.0, 0.0, 0.0])
            entry[0] += seconds
            entry[1] += usd
            entry[2] += disk_usd

        for session in self._sessions:
            if endpoint_id is not None and session.endpoint_id != endpoint_id:
                continue
            session_end = session.stopped_at if session.stopped_at is not None else cutoff
            session_end = min(session_end, cutoff)
            raw = session_end - session.started_at
            if raw <= 0 or session_end <= start or session.started_at >= end:
                continue
            price = self._usd_per_s(session)
            low, high = max(session.started_at, start), min(session_end, end)
            first = int((low - start) // bucket_s)
            last = max(first, math.ceil((high - start) / bucket_s) - 1)
            for index in range(first, last + 1):
                bucket_low = start + index * bucket_s
                bucket_high = min(bucket_low + bucket_s, end)
                seconds = min(high, bucket_high) - max(low, bucket_low)
                if seconds > 0:
                    add(index, session.endpoint_id, seconds, seconds * price, 0.0)
            if start < session_end <= end:
                end_index = max(0, math.ceil((session_end - start) / bucket_s) - 1)
                remainder = billed_seconds(raw) - raw
                add(end_index, session.endpoint_id, remainder, remainder * price, self._disk_usd(raw))
        buckets = []
        for (index, endpoint), (seconds, usd, disk_usd) in sorted(totals.items()):
            bucket_low = start + index * bucket_s
            buckets.append(
                BillingBucket(
                    start=bucket_low,
                    end=min(bucket_low + bucket_s, end),
                    endpoint_id=endpoint,
                    gpu_usd=usd,
                    billed_s=seconds,
                    disk_usd=disk_usd,
                )
            )
        return buckets

    def billed_usd_total(self, endpoint_id: str | None = None) -> float:
        """Ground truth: sum over sessions (closed and open) of billed seconds × price."""
        self.sync()
        return sum(
            self.session_usd(session)
            for session in self._sessions
            if endpoint_id is None or session.endpoint_id == endpoint_id
        )

    def sessions(self, endpoint_id: str | None = None) -> list[BilledSession]:
        """Every billed session so far (closed and open), with breakdowns current up to now."""
        self.sync()
        for worker in self._worker_index.values():
            self._account(worker)
        return [s for s in self._sessions if endpoint_id is None or s.endpoint_id == endpoint_id]

    def session_billed_seconds(self, session: BilledSession) -> int:
        """ceil(stop - start), an open session counted up to now."""
        stop = session.stopped_at if session.stopped_at is not None else self._now
        return billed_seconds(stop - session.started_at)

    def session_usd(self, session: BilledSession) -> float:
        stop = session.stopped_at if session.stopped_at is not None else self._now
        raw = stop - session.started_at
        return billed_seconds(raw) * self._usd_per_s(session) + self._disk_usd(raw)

    def record_session(self, session: BilledSession) -> BilledSession:
        """Add a closed session that happened outside the model (synthetic billing history)."""
        self.sync()
        if session.stopped_at is None or session.stopped_at < session.started_at:
            raise SimInvalid("a recorded session must be closed (stopped_at >= started_at)", "stopped_at")
        self._sessions.append(session)
        return session

    def _usd_per_s(self, session: BilledSession) -> float:
        if session.unbilled:
            return 0.0
        return self.prices.usd_per_s(session.gpu_type_id, active=session.active)

    def _disk_usd(self, raw_s: float) -> float:
        if self.options.disk_gb <= 0 or raw_s <= 0:
            return 0.0
        blocks = math.ceil(raw_s / _DISK_BLOCK_S - _BILLING_EPS_S)
        return blocks * self.options.disk_gb * _DISK_USD_PER_GB_PER_BLOCK

    # ========================================================= job runtime
    def submit(
        self,
        endpoint_id: str,
        job_input: Any,
        *,
        policy: JobPolicy | None = None,
        sync: bool = False,
        source: str | None = None,
        tier: str | None = None,
        webhook: str | None = None,
    ) -> SimJob:
        """Queue a job. ``job_input`` is the request's ``input`` value. Not logged here: the HTTP layer
        logs the request it served (scenario traffic is logged by the engine). ``webhook``: a loopback URL
        POSTed the job's /status body when it ends (webhooks.py); any other URL is SimInvalid."""
        self.sync()
        endpoint = self._require_endpoint(endpoint_id)
        if webhook is not None:
            problem = webhook_url_problem(webhook)
            if problem is not None:
                raise SimInvalid(problem, "webhook")
        return self._submit(
            endpoint, job_input, policy=policy, sync=sync, source=source, tier=tier, webhook=webhook
        )

    def _submit(
        self,
        endpoint: SimEndpoint,
        job_input: Any,
        *,
        policy: JobPolicy | None,
        sync: bool,
        source: str | None,
        tier: str | None,
        webhook: str | None = None,
    ) -> SimJob:
        policy = policy if policy is not None else JobPolicy()
        _validate_policy(policy)
        job_uuid = uuid.UUID(int=self._ids.getrandbits(128), version=4)
        job_id = f"sync-{job_uuid}-u1" if sync else f"{job_uuid}-u1"
        job = SimJob(
            id=job_id,
            endpoint_id=endpoint.id,
            input=job_input,
            status="IN_QUEUE",
            submitted_at=self._now,
            policy=policy,
            sync=sync,
            source=source,
            tier=tier,
            webhook=webhook,
        )
        self._jobs[endpoint.id][job_id] = job
        self._push(self._now + policy.ttl_ms / 1000, "ttl", endpoint.id, job_id)
        self._enqueue(job, endpoint)
        self._reconcile(endpoint.id)
        return job

    def _enqueue(self, job: SimJob, endpoint: SimEndpoint) -> None:
        job.status = "IN_QUEUE"
        job.queued_at = self._now
        self._queues[endpoint.id][job.id] = None
        if (
            not job.policy.low_priority
            and endpoint.worker_kind == "simulated"
            and endpoint.scaler_type == "QUEUE_DELAY"
        ):
            self._push(self._now + endpoint.scaler_value, "scale_check", endpoint.id)

    def job(self, endpoint_id: str, job_id: str) -> SimJob:
        """SimNotFound when unknown, TTL-expired or past result retention."""
        self.sync()
        return self._require_job(endpoint_id, job_id)

    def _require_job(self, endpoint_id: str, job_id: str) -> SimJob:
        self._require_endpoint(endpoint_id)
        try:
            return self._jobs[endpoint_id][job_id]
        except KeyError:
            raise SimNotFound(f"job {job_id} not found") from None

    def drain_stream(self, endpoint_id: str, job_id: str) -> tuple[SimJob, list[Any]]:
        self.sync()
        job = self._require_job(endpoint_id, job_id)
        chunks, job.stream = job.stream, []
        return job, chunks

    def cancel(self, endpoint_id: str, job_id: str) -> SimJob:
        """Queued: removed. In progress: CANCELLED and a stop signal queued for its worker."""
        self.sync()
        job = self._require_job(endpoint_id, job_id)
        if job.status == "IN_QUEUE":
            self._queues[endpoint_id].pop(job_id, None)
            self._finish_job(job, "CANCELLED")
        elif job.status == "IN_PROGRESS":
            worker = self._worker_index.get(job.worker_id or "")
            token = self._run_tokens.get(job_id)
            self._finish_job(job, "CANCELLED")
            if worker is not None and job_id in worker.job_ids:
                self._queue_stop_signal(worker.id, job_id)
                if self.options.cancelled_job_keeps_worker and token is not None:
                    # A blocking handler ignores the stop signal: the worker keeps running (and billing).
                    worker.job_ids.remove(job_id)
                    self._stray_jobs[worker.id] = (job_id, token)
                    self._log_worker(worker, "RUNNING", reason=f"cancelled job {job_id} still running")
                else:
                    if not worker.external:  # an async SDK handler stopped through job-stop (rp_scale.py)
                        self._sdk_line(worker, "Stopping job.", job_id)
                        self._sdk_line(worker, "Job stopped.", job_id)
                    self._release_job(worker, job_id)
            self._reconcile(endpoint_id)
        return job

    def stray_job_id(self, worker_id: str) -> str | None:
        """The cancelled job this worker still runs (``options.cancelled_job_keeps_worker``), if any."""
        self.sync()
        return self._stray_job_id(worker_id)

    def _stray_job_id(self, worker_id: str) -> str | None:
        stray = self._stray_jobs.get(worker_id)
        return stray[0] if stray is not None else None

    def retry(self, endpoint_id: str, job_id: str) -> SimJob:
        """Only FAILED or TIMED_OUT (else SimInvalid); same id back to IN_QUEUE; retried counter +1."""
        self.sync()
        job = self._require_job(endpoint_id, job_id)
        if job.status not in ("FAILED", "TIMED_OUT"):
            raise SimInvalid(f"only FAILED or TIMED_OUT jobs can be retried, not {job.status}", "status")
        job.retries += 1
        self._counters[endpoint_id]["retried"] += 1
        job.started_at = job.finished_at = None
        job.worker_id = None
        job.output = job.error = None
        job.stream = []
        self._enqueue(job, self._endpoints[endpoint_id])
        self._reconcile(endpoint_id)
        return job

    def purge_queue(self, endpoint_id: str) -> int:
        """Deletes every queued job (they become not-found); in-progress jobs keep running."""
        self.sync()
        self._require_endpoint(endpoint_id)
        queue = self._queues[endpoint_id]
        removed = len(queue)
        for job_id in list(queue):
            self._delete_job(self._jobs[endpoint_id][job_id])
        return removed

    def health(self, endpoint_id: str) -> HealthCounts:
        """``completed``/``failed``/``retried`` are lifetime counters (TIMED_OUT counts as failed)."""
        self.sync()
        self._require_endpoint(endpoint_id)
        counters = self._counters[endpoint_id]
        counts = HealthCounts(
            completed=counters["completed"],
            failed=counters["failed"],
            retried=counters["retried"],
            in_queue=len(self._queues[endpoint_id]),
        )
        for worker in self._workers[endpoint_id].values():
            counts.in_progress += len(worker.job_ids)
            if worker.state == "IDLE":
                counts.idle += 1
                counts.ready += 1
            elif worker.state == "INITIALIZING":
                counts.initializing += 1
            elif worker.state == "RUNNING":
                counts.running += 1
            elif worker.state == "THROTTLED":
                counts.throttled += 1
            elif worker.state == "UNHEALTHY":
                counts.unhealthy += 1
        return counts

    async def wait_for_job(
        self, endpoint_id: str, job_id: str, timeout_s: float, poll_s: float = 0.02
    ) -> SimJob:
        """Until the job is terminal or ``timeout_s`` real seconds pass; returns the job as it stands."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(endpoint_id, job_id)
            if job.status in _TERMINAL or time.monotonic() >= deadline:
                return job
            await asyncio.sleep(poll_s)

    def add_job_listener(self, listener: Callable[[SimJob], None]) -> None:
        """Call ``listener(job)`` whenever a job reaches a terminal status (tests, the bench)."""
        self._job_listeners.append(listener)

    def _finish_job(self, job: SimJob, status: str, *, output: Any = None, error: str | None = None) -> None:
        job.status = status  # type: ignore[assignment]
        job.finished_at = self._now
        job.output = output
        job.error = error
        self._run_tokens.pop(job.id, None)
        counters = self._counters.get(job.endpoint_id)
        if counters is not None:
            if status == "COMPLETED":
                counters["completed"] += 1
            elif status in ("FAILED", "TIMED_OUT"):
                counters["failed"] += 1
        options = self.options
        retention = options.runsync_result_retention_s if job.sync else options.run_result_retention_s
        self._push(self._now + retention, "retention", job.endpoint_id, job.id, job.finished_at)
        if job.webhook is not None and status in options.webhook_statuses:
            self.webhooks.submit(job.id, job.webhook, job_status(job))
        for listener in self._job_listeners:
            listener(job)

    def _delete_job(self, job: SimJob) -> None:
        self._jobs.get(job.endpoint_id, {}).pop(job.id, None)
        self._queues.get(job.endpoint_id, {}).pop(job.id, None)
        self._run_tokens.pop(job.id, None)

    def _on_ttl(self, endpoint_id: str, job_id: str) -> None:
        job = self._jobs.get(endpoint_id, {}).get(job_id)
        if job is None:
            return
        if job.status == "IN_PROGRESS":
            worker = self._worker_index.get(job.worker_id or "")
            if worker is not None and job_id in worker.job_ids:
                self._queue_stop_signal(worker.id, job_id)
                self._release_job(worker, job_id)
        self._delete_job(job)
        self._reconcile(endpoint_id)

    def _on_retention(self, endpoint_id: str, job_id: str, finished_at: float) -> None:
        job = self._jobs.get(endpoint_id, {}).get(job_id)
        if job is not None and job.status in _TERMINAL and job.finished_at == finished_at:
            self._delete_job(job)

    # ======================================================= assignment
    def _assign(self, job: SimJob, worker: SimWorker, endpoint: SimEndpoint) -> None:
        self._queues[endpoint.id].pop(job.id, None)
        job.status = "IN_PROGRESS"
        job.started_at = self._now
        job.worker_id = worker.id
        worker.job_ids.append(job.id)
        if worker.state != "RUNNING":
            self._transition(worker, "RUNNING")
        worker.run_credited_s = 0.0
        self._sdk_line(worker, "Started.", job.id)
        token = next(self._token_counter)
        self._run_tokens[job.id] = token
        timeout_ms = (
            job.policy.execution_timeout_ms
            if job.policy.execution_timeout_ms is not None
            else endpoint.execution_timeout_ms
        )
        if timeout_ms:
            self._push(self._now + timeout_ms / 1000, "exec_timeout", endpoint.id, job.id, token)
        if not worker.external:
            behaviour = _behaviour_of(job.input, endpoint)
            if behaviour.duration_s is not None:
                self._push(
                    self._now + behaviour.duration_s,
                    "finish",
                    endpoint.id,
                    job.id,
                    token,
                    behaviour.duration_s,
                    behaviour.fail_message,
                )

    def _on_finish(
        self, endpoint_id: str, job_id: str, token: int, duration_s: float, fail_message: str | None
    ) -> None:
        if self._run_tokens.get(job_id) != token:
            self._free_stray_worker(self._stray_worker_of(job_id, token))  # a cancelled job's handler ends
            return
        job = self._jobs[endpoint_id][job_id]
        worker = self._worker_index.get(job.worker_id or "")
        if worker is not None and worker.session is not None:
            # Credit the job's exact duration (not a difference of epoch-sized floats).
            worker.session.busy_s += duration_s - worker.run_credited_s
            worker.run_credited_s = duration_s
            worker.accounted_at = self._now
        if worker is not None:
            if fail_message is not None:
                self._sdk_line(worker, "Captured Handler Exception", job_id, level="ERROR")
            self._sdk_line(worker, "Finished.", job_id)
        if fail_message is not None:
            self._finish_job(job, "FAILED", error=fail_message)
        else:
            self._finish_job(job, "COMPLETED", output={"echo": job.input})
        if worker is not None and job_id in worker.job_ids:
            self._release_job(worker, job_id)
        self._reconcile(endpoint_id)

    def _on_exec_timeout(self, endpoint_id: str, job_id: str, token: int) -> None:
        if self._run_tokens.get(job_id) != token:
            stray_worker = self._worker_index.get(self._stray_worker_of(job_id, token) or "")
            if stray_worker is not None:  # a cancelled job still running: the timeout stops its worker
                self._queue_stop_signal(stray_worker.id, job_id)
                self._stop_worker(stray_worker, reason="execution timeout (cancelled job still running)")
                self._reconcile(endpoint_id)
            return
        job = self._jobs[endpoint_id][job_id]
        worker = self._worker_index.get(job.worker_id or "")
        self._finish_job(job, self.options.timeout_status, error="execution timeout exceeded")
        if worker is not None and job_id in worker.job_ids:
            self._queue_stop_signal(worker.id, job_id)
            worker.job_ids.remove(job_id)
            self._stop_worker(worker, reason="execution timeout")
        self._reconcile(endpoint_id)

    def _queue_stop_signal(self, worker_id: str, job_id: str) -> None:
        self._stop_signals.setdefault(worker_id, []).append(job_id)

    def _stray_worker_of(self, job_id: str, token: int) -> str | None:
        """The worker still running the cancelled job ``job_id`` of run ``token``, if any."""
        return next((w for w, stray in self._stray_jobs.items() if stray == (job_id, token)), None)

    def _free_stray_worker(self, worker_id: str | None) -> None:
        """A worker's cancelled job ended after all (its handler returned): the worker becomes IDLE."""
        if worker_id is None or self._stray_jobs.pop(worker_id, None) is None:
            return
        worker = self._worker_index.get(worker_id)
        if worker is not None and worker.state == "RUNNING" and not worker.job_ids:
            self._release_worker(worker)
            self._log_worker(worker, "IDLE", reason="cancelled job ended")
            self._reconcile(worker.endpoint_id)

    # =================================================== worker lifecycle
    def _transition(self, worker: SimWorker, state: str) -> None:
        self._account(worker)
        worker.state = state  # type: ignore[assignment]
        worker.state_since = self._now
        worker.generation += 1

    def _account(self, worker: SimWorker) -> None:
        """Credit the time since the last accounting to the session's breakdown by current state."""
        elapsed = self._now - worker.accounted_at
        worker.accounted_at = self._now
        session = worker.session
        if session is None or elapsed <= 0:
            return
        if worker.state == "INITIALIZING":
            session.initializing_s += elapsed
        elif worker.state == "RUNNING":
            session.busy_s += elapsed
            worker.run_credited_s += elapsed
        elif worker.state == "IDLE":
            session.idle_s += elapsed

    def _open_session(self, worker: SimWorker) -> None:
        standby = worker.role == "standby"
        session = BilledSession(
            worker_id=worker.id,
            endpoint_id=worker.endpoint_id,
            gpu_type_id=worker.gpu_type_id or "",
            active=worker.role == "active" or (standby and self.options.standby_billing == "active"),
            started_at=self._now,
            unbilled=standby and self.options.standby_billing == "free",
        )
        self._sessions.append(session)
        worker.session = session
        worker.accounted_at = self._now

    def _close_session(self, worker: SimWorker) -> None:
        self._account(worker)
        if worker.session is not None:
            worker.session.stopped_at = self._now
            worker.session = None

    def _gpu_for(self, endpoint: SimEndpoint) -> str | None:
        if endpoint.gpu_type_ids:
            return endpoint.gpu_type_ids[0]
        for pool in endpoint.gpu_ids.split(","):
            types = self.prices.gpu_types_in_pool(pool.strip())
            if types:
                return types[0]
        return None

    def _new_worker_id(self) -> str:
        while True:
            worker_id = "".join(self._ids.choices(_WORKER_ID_ALPHABET, k=14))
            if worker_id not in self._worker_index and worker_id not in self._stopped_worker_ids:
                return worker_id

    def _log_worker(self, worker: SimWorker, status: str, reason: str | None = None) -> None:
        record: dict[str, Any] = {
            "kind": "worker",
            "endpoint_id": worker.endpoint_id,
            "status": status,
            "worker_id": worker.id,
            "job_id": ",".join(worker.job_ids) or None,
        }
        if reason:
            record["reason"] = reason
        self.log_access(**record)

    def _start_worker(
        self, endpoint: SimEndpoint, role: Literal["flex", "active", "standby"]
    ) -> SimWorker | None:
        """A new worker: INITIALIZING (a start, checked against the spend rate: None when refused), or
        THROTTLED when the endpoint's capacity is used up (not a start yet)."""
        gpu_type_id = self._gpu_for(endpoint)
        placed = endpoint.capacity is None or self._placed_count(endpoint) < endpoint.capacity
        if placed and not self._may_start(endpoint, gpu_type_id, role, None):
            return None
        worker = SimWorker(
            id=self._new_worker_id(),
            endpoint_id=endpoint.id,
            state="THROTTLED",
            gpu_type_id=gpu_type_id,
            version=endpoint.version,
            started_at=self._now,
            state_since=self._now,
            active=role == "active",
            role=role,
            accounted_at=self._now,
        )
        self._workers[endpoint.id][worker.id] = worker
        self._worker_index[worker.id] = worker
        if placed:
            self._begin_initializing(worker, endpoint)
        else:
            self._log_worker(worker, "THROTTLED")
        return worker

    def _placed_count(self, endpoint: SimEndpoint) -> int:
        return sum(1 for w in self._workers[endpoint.id].values() if w.state != "THROTTLED")

    def _begin_initializing(self, worker: SimWorker, endpoint: SimEndpoint) -> None:
        cold_start = endpoint.cold_start_s
        if endpoint.flashboot != "OFF" and endpoint.id in self._had_worker:
            cold_start *= self.options.flashboot_factor
        self._had_worker.add(endpoint.id)
        worker.incarnation += 1
        worker.started_at = self._now
        self._transition(worker, "INITIALIZING")
        if self.options.bill_initializing:
            self._open_session(worker)
        self._log_worker(worker, "INITIALIZING")
        self._system_line(worker, "Worker initializing.")
        self._push(self._now + cold_start, "ready", worker.id, worker.generation)

    def _on_ready(self, worker_id: str, generation: int) -> None:
        worker = self._worker_index.get(worker_id)
        if worker is None or worker.generation != generation or worker.state != "INITIALIZING":
            return
        endpoint = self._endpoints[worker.endpoint_id]
        if endpoint.crash_loop:
            self._crash(worker, endpoint)
            return
        self._transition(worker, "IDLE")
        if worker.session is None:
            self._open_session(worker)
        self._log_worker(worker, "IDLE")
        self._system_line(worker, "Worker ready.")
        if self.options.simulate_pings and self.options.ping_interval_s > 0:
            self._push(self._now + self.options.ping_interval_s, "ping", worker.id, worker.incarnation)
        self._after_idle(worker, endpoint)
        self._reconcile(endpoint.id)

    def _crash(self, worker: SimWorker, endpoint: SimEndpoint) -> None:
        """A crash-looping image: the worker fails its health check; the queued job it would have run
        counts as retried and stays queued; the platform restarts the worker later."""
        self._close_session(worker)
        self._transition(worker, "UNHEALTHY")
        self._counters[endpoint.id]["retried"] += 1
        queue = self._queues[endpoint.id]
        if queue:
            self._jobs[endpoint.id][next(iter(queue))].retries += 1
        self._log_worker(worker, "UNHEALTHY", reason="health check failed")
        self._system_line(worker, "Worker unhealthy: health check failed.")
        self._spend_room_freed()
        self._push(self._now + self.options.unhealthy_restart_s, "restart", worker.id, worker.generation)

    def _mark_unhealthy(self, worker: SimWorker, reason: str | None) -> None:
        self._fail_worker_jobs(worker, f"worker unhealthy: {reason}" if reason else "worker unhealthy")
        self._stray_jobs.pop(worker.id, None)
        self._close_session(worker)
        self._transition(worker, "UNHEALTHY")
        self._log_worker(worker, "UNHEALTHY", reason=reason)
        self._system_line(worker, f"Worker unhealthy: {reason or 'reported unhealthy'}.")
        self._spend_room_freed()
        self._push(self._now + self.options.unhealthy_restart_s, "restart", worker.id, worker.generation)

    def _on_restart(self, worker_id: str, generation: int) -> None:
        worker = self._worker_index.get(worker_id)
        if worker is None or worker.generation != generation or worker.state != "UNHEALTHY":
            return
        endpoint = self._endpoints[worker.endpoint_id]
        wanted = worker.role != "flex" or any(
            not self._jobs[endpoint.id][job_id].policy.low_priority for job_id in self._queues[endpoint.id]
        )
        if worker.external or not wanted:
            self._stop_worker(worker, reason="unhealthy")
        elif not self._may_start(endpoint, worker.gpu_type_id, worker.role, worker.id):
            self._stop_worker(worker, reason="restart refused (spend rate)")
        else:
            self._begin_initializing(worker, endpoint)
        self._reconcile(endpoint.id)

    def _after_idle(self, worker: SimWorker, endpoint: SimEndpoint) -> None:
        if worker.role == "flex":
            self._push(worker.state_since + endpoint.idle_timeout, "idle_check", worker.id, worker.generation)

    def _on_idle_check(self, worker_id: str, generation: int) -> None:
        worker = self._worker_index.get(worker_id)
        if worker is None or worker.generation != generation:
            return
        if worker.state != "IDLE" or worker.role != "flex":
            return
        endpoint = self._endpoints[worker.endpoint_id]
        due = worker.state_since + endpoint.idle_timeout
        if self._now + 1e-9 < due:
            self._push(due, "idle_check", worker.id, generation)
            return
        self._stop_worker(worker, reason="idle timeout")
        self._reconcile(endpoint.id)

    def _release_job(self, worker: SimWorker, job_id: str) -> None:
        """The worker no longer runs ``job_id``; with nothing left to run it becomes IDLE."""
        if job_id in worker.job_ids:
            worker.job_ids.remove(job_id)
        if not worker.job_ids:
            self._release_worker(worker)

    def _release_worker(self, worker: SimWorker) -> None:
        self._stray_jobs.pop(worker.id, None)
        worker.job_ids.clear()
        self._transition(worker, "IDLE")
        self._after_idle(worker, self._endpoints[worker.endpoint_id])

    def _fail_worker_jobs(self, worker: SimWorker, error: str) -> None:
        """Every job the worker runs fails with ``error`` (and gets a stop signal)."""
        job_ids, worker.job_ids = worker.job_ids, []
        for job_id in job_ids:
            job = self._jobs.get(worker.endpoint_id, {}).get(job_id)
            if job is not None and job.status == "IN_PROGRESS":
                self._finish_job(job, "FAILED", error=error)
                self._queue_stop_signal(worker.id, job_id)

    def _stop_worker(self, worker: SimWorker, *, reason: str) -> None:
        """The platform stops the worker: its in-progress jobs fail, its session closes, it is gone (an
        external one is parked: its process may be started again, see ``_external_worker``)."""
        was_running = worker.state in ("INITIALIZING", "IDLE", "RUNNING")
        self._fail_worker_jobs(worker, "worker stopped")
        self._stray_jobs.pop(worker.id, None)
        self._close_session(worker)
        worker.generation += 1
        self._workers.get(worker.endpoint_id, {}).pop(worker.id, None)
        self._worker_index.pop(worker.id, None)
        self._stopped_worker_ids.add(worker.id)
        if worker.external:
            self._parked[worker.id] = worker.endpoint_id
        self._log_worker(worker, "STOPPED", reason=reason)
        self._system_line(worker, f"Worker stopped: {reason}.")
        self._end_worker_log(worker.id)
        if was_running:
            self._spend_room_freed()

    def _on_ping(self, worker_id: str, incarnation: int) -> None:
        worker = self._worker_index.get(worker_id)
        if worker is None or worker.incarnation != incarnation or worker.state not in ("IDLE", "RUNNING"):
            return
        worker.last_ping_at = self._now
        self.log_access(
            kind="ping",
            endpoint_id=worker.endpoint_id,
            route=f"/v2/{worker.endpoint_id}/ping/{worker.id}",
            method="GET",
            status=200,
            source=worker.id,
            worker_id=worker.id,
            job_id=",".join(worker.job_ids) or self._stray_job_id(worker.id),
        )
        self._push(self._now + self.options.ping_interval_s, "ping", worker.id, incarnation)

    # ========================================================= autoscaler
    def _on_scale_check(self, endpoint_id: str) -> None:
        self._reconcile(endpoint_id)

    def _reconcile(self, endpoint_id: str) -> None:
        """Bring an endpoint's workers in line with its settings and its queue, at ``self._now``."""
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            return
        live = self._workers[endpoint_id]
        excess = len(live) - endpoint.workers_max
        if excess > 0:
            doomed = sorted(
                live.values(),
                key=lambda w: (_STOP_PREFERENCE[w.state], _ROLE_STOP_PREFERENCE[w.role], -w.started_at),
            )[:excess]
            for worker in doomed:
                self._stop_worker(worker, reason="workers_max")
        self._trim_warm(endpoint)
        if endpoint.worker_kind != "simulated":
            return
        self._promote_throttled(endpoint)
        self._keep_warm(endpoint)
        self._dispatch(endpoint)
        self._scale_for_demand(endpoint)

    def _warm_targets(self, endpoint: SimEndpoint) -> tuple[int, int]:
        """(active, standby) workers the endpoint keeps warm: max(min, standby), the first min active."""
        active = min(endpoint.workers_min, endpoint.workers_max)
        warm = min(max(endpoint.workers_min, endpoint.workers_standby), endpoint.workers_max)
        return active, max(0, warm - active)

    def _role_counts(self, endpoint: SimEndpoint) -> dict[str, int]:
        counts = {"flex": 0, "active": 0, "standby": 0}
        for worker in self._workers[endpoint.id].values():
            counts[worker.role] += 1
        return counts

    def _trim_warm(self, endpoint: SimEndpoint) -> None:
        """Warm workers beyond the (lowered) targets become flex and scale down after their idle tail."""
        want_active, want_standby = self._warm_targets(endpoint)
        counts = self._role_counts(endpoint)
        surplus = {"active": counts["active"] - want_active, "standby": counts["standby"] - want_standby}
        for worker in list(self._workers[endpoint.id].values()):
            if surplus.get(worker.role, 0) > 0:
                surplus[worker.role] -= 1
                worker.role = "flex"
                if worker.state == "IDLE":
                    self._after_idle(worker, endpoint)

    def _promote_throttled(self, endpoint: SimEndpoint) -> None:
        capacity = endpoint.capacity
        free = math.inf if capacity is None else capacity - self._placed_count(endpoint)
        for worker in list(self._workers[endpoint.id].values()):
            if free <= 0:
                return
            if worker.state == "THROTTLED":
                if not self._may_start(endpoint, worker.gpu_type_id, worker.role, worker.id):
                    return  # stays THROTTLED (unbilled) until the spend rate allows its start
                self._begin_initializing(worker, endpoint)
                free -= 1

    def _keep_warm(self, endpoint: SimEndpoint) -> None:
        want_active, want_standby = self._warm_targets(endpoint)
        counts = self._role_counts(endpoint)
        live = self._workers[endpoint.id]
        while counts["active"] < want_active and len(live) < endpoint.workers_max:
            if self._start_worker(endpoint, "active") is None:
                return
            counts["active"] += 1
        while counts["standby"] < want_standby and len(live) < endpoint.workers_max:
            if self._start_worker(endpoint, "standby") is None:
                return
            counts["standby"] += 1

    def _dispatch(self, endpoint: SimEndpoint) -> None:
        queue = self._queues[endpoint.id]
        if not queue:
            return
        jobs = self._jobs[endpoint.id]
        for worker in list(self._workers[endpoint.id].values()):
            if not queue:
                return
            if worker.state == "IDLE" and not worker.job_ids:
                self._assign(jobs[next(iter(queue))], worker, endpoint)

    def _scale_for_demand(self, endpoint: SimEndpoint) -> None:
        live = self._workers[endpoint.id]
        room = endpoint.workers_max - len(live)
        if room <= 0:
            return
        jobs = self._jobs[endpoint.id]
        queued = (jobs[job_id] for job_id in self._queues[endpoint.id])
        waiting = [job for job in queued if not job.policy.low_priority]
        if not waiting:
            return
        if endpoint.scaler_type == "REQUEST_COUNT":
            in_progress = sum(len(w.job_ids) for w in live.values())
            desired = math.ceil((len(waiting) + in_progress) / endpoint.scaler_value)
            wanted = desired - len(live)
        else:  # QUEUE_DELAY: a job that waited scaler_value s with no worker coming for it gets one
            coming = sum(1 for w in live.values() if w.state in ("INITIALIZING", "THROTTLED"))
            wanted = sum(
                1
                for job in waiting[coming:]
                if self._now - (job.queued_at or job.submitted_at) >= endpoint.scaler_value - 1e-6
            )
            if not live:
                wanted = max(wanted, 1)
        for _ in range(min(wanted, room)):
            if self._start_worker(endpoint, "flex") is None:
                return

    # ============================================ worker side (external)
    def _external_worker(
        self,
        endpoint: SimEndpoint,
        worker_id: str,
        gpu: str | None,
        *,
        taking: bool = False,
        job_in_progress: bool | None = None,
    ) -> SimWorker | None:
        """The live worker with this id, registering it on first contact; None while it is stopped.

        An external worker the platform stopped (idle timeout, workersMax, execution timeout, a refused
        start...) is *parked*: RunPod would have killed its container, but the user's process keeps
        polling. The autoscaler starts it again, as RunPod would start a new worker, when one of its
        job-takes finds the endpoint needing a worker: a queued job (not low priority) beyond the idle
        workers, room under workersMax, the spend rate allowing it, and the process running no job
        (``job_in_progress`` not 1). Its heartbeats alone never bring it back."""
        worker = self._worker_index.get(worker_id)
        if worker is not None:
            return worker if worker.endpoint_id == endpoint.id else None
        if endpoint.worker_kind != "external":
            return None
        restart = worker_id in self._stopped_worker_ids
        if restart and (
            self._parked.get(worker_id) != endpoint.id
            or not taking
            or job_in_progress
            or not self._needs_external_worker(endpoint)
        ):
            return None
        live = self._workers[endpoint.id]
        if len(live) >= endpoint.workers_max:
            self._park(worker_id, endpoint.id)
            self.log_access(
                kind="worker",
                endpoint_id=endpoint.id,
                status="REFUSED",
                worker_id=worker_id,
                reason="beyond workers_max",
            )
            return None
        want_active, want_standby = self._warm_targets(endpoint)
        counts = self._role_counts(endpoint)
        role: Literal["flex", "active", "standby"] = "flex"
        if counts["active"] < want_active:
            role = "active"
        elif counts["standby"] < want_standby:
            role = "standby"
        gpu_type_id = gpu if gpu and self.prices.knows(gpu) else self._gpu_for(endpoint)
        if not self._may_start(endpoint, gpu_type_id, role, worker_id):
            self._park(worker_id, endpoint.id)
            return None
        self._stopped_worker_ids.discard(worker_id)
        self._parked.pop(worker_id, None)
        worker = SimWorker(
            id=worker_id,
            endpoint_id=endpoint.id,
            state="IDLE",
            gpu_type_id=gpu_type_id,
            version=endpoint.version,
            started_at=self._now,
            state_since=self._now,
            active=role == "active",
            last_ping_at=self._now,
            external=True,
            role=role,
            incarnation=1,
            accounted_at=self._now,
        )
        live[worker_id] = worker
        self._worker_index[worker_id] = worker
        self._had_worker.add(endpoint.id)
        self._open_session(worker)
        self._log_worker(worker, "IDLE", reason="restarted" if restart else "registered")
        self._system_line(worker, "Worker ready (external process).")
        self._after_idle(worker, endpoint)
        self._schedule_ping_check(worker)
        return worker

    def _park(self, worker_id: str, endpoint_id: str) -> None:
        self._stopped_worker_ids.add(worker_id)
        self._parked[worker_id] = endpoint_id

    def _needs_external_worker(self, endpoint: SimEndpoint) -> bool:
        """The autoscaler's view of an external endpoint: a queued job no idle worker will take."""
        live = self._workers[endpoint.id]
        if len(live) >= endpoint.workers_max:
            return False
        jobs = self._jobs[endpoint.id]
        waiting = sum(1 for job_id in self._queues[endpoint.id] if not jobs[job_id].policy.low_priority)
        idle = sum(1 for w in live.values() if w.state == "IDLE" and not w.job_ids)
        return waiting > idle

    def take_job(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        gpu: str | None = None,
        job_in_progress: bool | None = None,
    ) -> SimJob | None:
        """``job-take``: the oldest queued job for this worker, or None (see ``take_jobs``)."""
        jobs = self.take_jobs(endpoint_id, worker_id, gpu=gpu, max_jobs=1, job_in_progress=job_in_progress)
        return jobs[0] if jobs else None

    def take_jobs(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        gpu: str | None = None,
        max_jobs: int = 1,
        job_in_progress: bool | None = None,
    ) -> list[SimJob]:
        """``job-take`` / ``job-take-batch``: up to ``max_jobs`` of the oldest queued jobs, in order.

        The runpod SDK asks only when it has room (its ``concurrency_modifier`` minus the jobs it holds)
        and says with ``job_in_progress`` (0 or 1) whether it runs any, so a worker that sends it gets new
        jobs beside the ones it runs: two jobs can be IN_PROGRESS on one worker. A request without it (an
        older SDK, curl) gets a job only while the worker runs none. A worker still running a cancelled
        job's blocking handler (``options.cancelled_job_keeps_worker``) gets nothing.

        Registers an unknown worker of an external endpoint on first contact, starts a parked one again
        when the endpoint needs a worker (``_external_worker``); a stopped worker gets nothing."""
        self.sync()
        endpoint = self._require_endpoint(endpoint_id)
        worker = self._external_worker(endpoint, worker_id, gpu, taking=True, job_in_progress=job_in_progress)
        if worker is None or worker.state not in ("IDLE", "RUNNING") or worker.id in self._stray_jobs:
            return []
        if job_in_progress is None and worker.job_ids:
            return []
        queue = self._queues[endpoint_id]
        taken: list[SimJob] = []
        while queue and len(taken) < max_jobs:
            job = self._jobs[endpoint_id][next(iter(queue))]
            self._assign(job, worker, endpoint)
            taken.append(job)
        return taken

    async def wait_take_jobs(
        self,
        endpoint_id: str,
        worker_id: str,
        timeout_s: float,
        *,
        gpu: str | None = None,
        max_jobs: int = 1,
        job_in_progress: bool | None = None,
        poll_s: float = 0.05,
        until: Callable[[], bool] | None = None,
    ) -> list[SimJob]:
        """``take_jobs`` as a long poll of ``timeout_s`` real seconds (ended early once ``until()``)."""
        # A worker the platform stopped also waits out the whole poll: the SDK re-polls at once on a 204,
        # so answering a still-running process immediately would make it spin (RunPod kills the container).
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = self.take_jobs(
                endpoint_id, worker_id, gpu=gpu, max_jobs=max_jobs, job_in_progress=job_in_progress
            )
            if jobs or time.monotonic() >= deadline or (until is not None and until()):
                return jobs
            await asyncio.sleep(poll_s)

    async def wait_take_job(
        self,
        endpoint_id: str,
        worker_id: str,
        timeout_s: float,
        *,
        gpu: str | None = None,
        job_in_progress: bool | None = None,
        poll_s: float = 0.05,
        until: Callable[[], bool] | None = None,
    ) -> SimJob | None:
        jobs = await self.wait_take_jobs(
            endpoint_id,
            worker_id,
            timeout_s,
            gpu=gpu,
            job_in_progress=job_in_progress,
            poll_s=poll_s,
            until=until,
        )
        return jobs[0] if jobs else None

    def job_done(self, endpoint_id: str, worker_id: str, job_id: str, body: Any, *, is_stream: bool) -> None:
        """``{"output": ...}`` → COMPLETED; ``{"error": ...}`` or an error-report JSON string → FAILED;
        ``{"status": "IN_PROGRESS", ...}`` is a progress update. A job already CANCELLED stays so.
        A report for a job this worker no longer runs (cancelled, timed out, expired) is ignored. A final
        report writes the SDK's "Finished." line to the worker's log, as the SDK prints it then."""
        self.sync()
        self._require_endpoint(endpoint_id)
        worker = self._worker_index.get(worker_id)
        stray = self._stray_jobs.get(worker_id)
        if stray is not None and stray[0] == job_id:  # the cancelled job's handler returned after all
            if worker is not None:
                self._sdk_line(worker, "Finished.", job_id)
            self._free_stray_worker(worker_id)
            return
        job = self._jobs[endpoint_id].get(job_id)
        if job is None or job.status != "IN_PROGRESS" or job.worker_id != worker_id:
            return
        report = _interpret_done_body(body)
        if report.kind == "progress":
            job.output = report.output
            return
        if worker is not None:
            self._sdk_line(worker, "Finished.", job_id)
        if report.kind == "failed":
            self._finish_job(job, "FAILED", error=report.error)
        else:
            self._finish_job(job, "COMPLETED", output=report.output)
        if worker is not None and job_id in worker.job_ids:
            if report.stop_pod:
                worker.job_ids.remove(job_id)
                self._stop_worker(worker, reason="stopPod (refresh_worker)")
            else:
                self._release_job(worker, job_id)
        self._reconcile(endpoint_id)

    def job_stream(self, endpoint_id: str, worker_id: str, job_id: str, body: Any) -> None:
        """One streamed chunk (``{"output": chunk}``), buffered until /stream drains it."""
        self.sync()
        self._require_endpoint(endpoint_id)
        job = self._jobs[endpoint_id].get(job_id)
        if job is None or job.status != "IN_PROGRESS" or job.worker_id != worker_id:
            return
        if isinstance(body, bytes | bytearray):
            body = body.decode("utf-8", errors="replace")
        if isinstance(body, str):
            with contextlib.suppress(ValueError):
                body = json.loads(body)
        job.stream.append(body.get("output") if isinstance(body, dict) and "output" in body else body)

    def ping(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        job_ids: list[str],
        runpod_version: str | None = None,
        status: str | None = None,
        reason: str | None = None,
    ) -> None:
        """A heartbeat. ``status="unhealthy"`` marks the worker UNHEALTHY.

        The HTTP layer logs the request (the engine logs only its own simulated workers' pings). A ping
        registers an unknown worker of an external endpoint; a stopped worker's pings change nothing."""
        self.sync()
        endpoint = self._require_endpoint(endpoint_id)
        worker = self._external_worker(endpoint, worker_id, None)
        if worker is None:
            return
        worker.last_ping_at = self._now
        if runpod_version:
            worker.runpod_version = runpod_version
        self._schedule_ping_check(worker)
        stray = self._stray_jobs.get(worker_id)
        if stray is not None and stray[0] not in job_ids:  # the heartbeat no longer lists it: handler ended
            self._free_stray_worker(worker_id)
        if status == "unhealthy" and worker.state != "UNHEALTHY":
            self._mark_unhealthy(worker, reason)
            self._reconcile(endpoint_id)

    def _schedule_ping_check(self, worker: SimWorker) -> None:
        misses = self.options.missed_pings_to_lose_worker
        if misses > 0 and worker.external and worker.last_ping_at is not None:
            self._push(
                worker.last_ping_at + misses * self.options.ping_interval_s,
                "ping_check",
                worker.id,
                worker.last_ping_at,
            )

    def _on_ping_check(self, worker_id: str, last_ping_at: float) -> None:
        worker = self._worker_index.get(worker_id)
        if worker is None or worker.last_ping_at != last_ping_at:
            return
        job_ids, worker.job_ids = worker.job_ids, []
        for job_id in job_ids:
            job = self._jobs.get(worker.endpoint_id, {}).get(job_id)
            if job is not None and job.status == "IN_PROGRESS":
                self._finish_job(job, "TIMED_OUT", error="worker lost (missed pings)")
                self._queue_stop_signal(worker.id, job.id)
        self._stop_worker(worker, reason="missed pings")
        self._reconcile(worker.endpoint_id)

    def stop_signals(self, endpoint_id: str, worker_id: str) -> list[str]:
        """Job ids the worker must stop (drains them)."""
        self.sync()
        self._require_endpoint(endpoint_id)
        return self._stop_signals.pop(worker_id, [])

    async def wait_stop_signals(
        self,
        endpoint_id: str,
        worker_id: str,
        timeout_s: float,
        poll_s: float = 0.05,
        until: Callable[[], bool] | None = None,
    ) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            signals = self.stop_signals(endpoint_id, worker_id)
            if signals or time.monotonic() >= deadline or (until is not None and until()):
                return signals
            await asyncio.sleep(poll_s)

    def worker_stopped(self, worker_id: str) -> bool:
        """True once the platform has stopped the worker (billing closed): the SDK process should exit."""
        self.sync()
        return worker_id in self._stopped_worker_ids

    # ============================================================ traffic
    def add_traffic(
        self,
        endpoint_id: str,
        *,
        actor: str,
        rate_per_s: float | None = None,
        interarrival: Callable[[random.Random], float] | None = None,
        input_factory: Callable[[random.Random], Any] | None = None,
        free_share: float = 0.0,
        policy_factory: Callable[[random.Random], JobPolicy | None] | None = None,
        start_at: float | None = None,
        stop_at: float | None = None,
        rng: random.Random | None = None,
    ) -> TrafficSource:
        """A client sending ``/run`` requests: Poisson at ``rate_per_s``, or gaps from ``interarrival(rng)``.

        Each arrival submits a job (input from ``input_factory(rng)``, default: no ``sim`` key, so the
        endpoint's default duration) and is logged as a "request" from ``actor``, tier "free" with
        probability ``free_share``. Each source has its own random stream (derived from the simulator seed
        unless ``rng`` is given), so adding a source never perturbs another one's arrivals."""
        self.sync()
        self._require_endpoint(endpoint_id)
        if (rate_per_s is None) == (interarrival is None):
            raise SimInvalid("give exactly one of rate_per_s and interarrival", "rate_per_s")
        gaps: Callable[[random.Random], float]
        if interarrival is not None:
            gaps = interarrival
        else:
            assert rate_per_s is not None
            if rate_per_s <= 0:
                raise SimInvalid("rate_per_s must be positive", "rate_per_s")
            gaps = _poisson_gaps(rate_per_s)
        if not 0.0 <= free_share <= 1.0:
            raise SimInvalid("free_share must be within [0, 1]", "free_share")
        source_id = f"traffic-{len(self._traffic) + 1}"
        source = TrafficSource(
            id=source_id,
            endpoint_id=endpoint_id,
            actor=actor,
            interarrival=gaps,
            input_factory=input_factory if input_factory is not None else _default_input,
            free_share=free_share,
            rng=rng if rng is not None else random.Random(f"{self.seed}:{source_id}"),
            policy_factory=policy_factory,
            stop_at=stop_at,
        )
        self._traffic[source_id] = source
        self._schedule_arrival(source, self._now if start_at is None else max(start_at, self._now))
        return source

    def stop_traffic(self, source_id: str) -> None:
        self.sync()
        source = self._traffic.get(source_id)
        if source is None:
            raise SimNotFound(f"traffic source {source_id} not found")
        source.active = False

    def traffic_sources(self) -> list[TrafficSource]:
        return list(self._traffic.values())

    def _schedule_arrival(self, source: TrafficSource, after: float) -> None:
        at = after + max(_MIN_INTERARRIVAL_S, source.interarrival(source.rng))
        if source.stop_at is not None and at > source.stop_at:
            source.active = False
            return
        self._push(at, "arrival", source.id)

    def _on_arrival(self, source_id: str) -> None:
        source = self._traffic[source_id]
        endpoint = self._endpoints.get(source.endpoint_id)
        if not source.active or endpoint is None:
            source.active = False
            return
        tier = "free" if source.rng.random() < source.free_share else "paid"
        job_input = source.input_factory(source.rng)
        policy = source.policy_factory(source.rng) if source.policy_factory is not None else None
        job = self._submit(endpoint, job_input, policy=policy, sync=False, source=source.actor, tier=tier)
        source.sent += 1
        self.log_access(
            kind="request",
            endpoint_id=endpoint.id,
            route=f"/v2/{endpoint.id}/run",
            method="POST",
            status=200,
            source=source.actor,
            job_id=job.id,
            tier=tier,
            duration_ms=2,
        )
        self._schedule_arrival(source, self._now)

    # ===================================== worker logs (REST v2 worker log stream)
    def worker_log(
        self, endpoint_id: str, worker_id: str, *, after_seq: int = 0
    ) -> tuple[list[WorkerLogLine], bool]:
        """(the worker's kept log lines with ``seq > after_seq``, oldest first; whether it is still live).

        Kept: the last ``options.worker_log_lines`` lines of each live worker and of the
        ``options.worker_logs_kept`` most recently stopped ones; SimNotFound for any other worker."""
        self.sync()
        self._require_endpoint(endpoint_id)
        log = self._worker_logs.get(worker_id)
        if log is None or log.endpoint_id != endpoint_id:
            raise SimNotFound(f"worker {worker_id} not found on endpoint {endpoint_id}")
        lines = log.lines
        newer: list[WorkerLogLine] = []
        for line in reversed(lines):
            if line.seq <= after_seq:
                break
            newer.append(line)
        newer.reverse()
        return newer, log.alive

    def _worker_line(
        self,
        worker: SimWorker,
        source: Literal["container", "system"],
        message: str,
        job_id: str | None = None,
        level: str = "INFO",
    ) -> None:
        log = self._worker_logs.get(worker.id)
        if log is None:
            log = _WorkerLog(worker.endpoint_id, deque(maxlen=max(1, self.options.worker_log_lines)))
            self._worker_logs[worker.id] = log
        elif not log.alive:  # an external worker started again
            log.alive = True
            self._dead_logs.pop(worker.id, None)
        log.lines.append(WorkerLogLine(next(self._log_seq), self._now, source, message, job_id, level))

    def _sdk_line(self, worker: SimWorker, message: str, job_id: str, level: str = "INFO") -> None:
        """A line the runpod SDK prints for a job (``rp_job.py``, ``rp_http.py``, ``rp_scale.py``)."""
        self._worker_line(worker, "container", message, job_id, level)

    def _system_line(self, worker: SimWorker, message: str) -> None:
        """A line of the platform's own (host lifecycle) log for the worker."""
        self._worker_line(worker, "system", message)

    def _end_worker_log(self, worker_id: str) -> None:
        """The worker is gone: its log stays readable (streams end) until ``worker_logs_kept`` newer
        stopped workers push it out."""
        log = self._worker_logs.get(worker_id)
        if log is None:
            return
        log.alive = False
        self._dead_logs[worker_id] = None
        self._dead_logs.move_to_end(worker_id)
        while len(self._dead_logs) > max(0, self.options.worker_logs_kept):
            forgotten, _ = self._dead_logs.popitem(last=False)
            self._worker_logs.pop(forgotten, None)

    # ============================================================ webhooks
    @property
    def webhooks(self) -> WebhookDispatcher:
        """The job-webhook dispatcher (webhooks.py), created on first use with the options' retry rule."""
        if self._webhooks is None:
            options = self.options
            self._webhooks = WebhookDispatcher(
                attempts=options.webhook_attempts,
                retry_delay_s=options.webhook_retry_delay_s,
                timeout_s=options.webhook_timeout_s,
            )
        return self._webhooks

    # ================================== access log ("our logs" for the ping watch)
    def log_access(self, **record: Any) -> None:
        """Append one JSON line: ts (RFC 3339), kind ("request" | "ping" | "worker"), endpoint_id, route,
        method, status, source, worker_id, job_id, tier, duration_ms. Also used by the HTTP layer.

        ``ts`` defaults to the simulator's now (epoch floats are formatted; strings kept). Extra keys are
        kept after the standard ones. Each line is flushed at once: other processes tail the file.
        Records of kind "worker" stay in memory unless ``options.worker_events_to_file``."""
        self.sync()
        ts = record.pop("ts", None)
        if ts is None:
            ts = self._now
        entry: dict[str, Any] = {"ts": rfc3339_ms(ts) if isinstance(ts, int | float) else str(ts)}
        for key in _ACCESS_KEYS:
            entry[key] = record.pop(key, None)
        entry.update(record)
        records = self.access_records
        records.append(entry)
        cap = self.options.access_records_cap
        if len(records) > cap + cap // 10 + 1:
            del records[: len(records) - cap]
        if self.access_log_path is not None and (
            entry["kind"] != "worker" or self.options.worker_events_to_file
        ):
            if self._log_file is None:
                self._log_file = open(self.access_log_path, "a", encoding="utf-8")  # noqa: SIM115
            self._log_file.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._log_file.flush()

    def close(self) -> None:
        """Close the access-log file (reopened on the next record) and stop webhook deliveries."""
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._webhooks is not None:
            self._webhooks.close()
            self._webhooks = None


def _poisson_gaps(rate_per_s: float) -> Callable[[random.Random], float]:
    def gap(rng: random.Random) -> float:
        return rng.expovariate(rate_per_s)

    return gap


def _default_input(_rng: random.Random) -> Any:
    return {"prompt": "hello"}


def _validate_policy(policy: JobPolicy) -> None:
    timeout = policy.execution_timeout_ms
    if timeout is not None and timeout != 0 and not _MIN_EXECUTION_TIMEOUT_MS <= timeout <= _MAX_POLICY_MS:
        raise SimInvalid("policy.executionTimeout must be between 5000 ms and 7 days", "executionTimeout")
    if not _MIN_TTL_MS <= policy.ttl_ms <= _MAX_POLICY_MS:
        raise SimInvalid("policy.ttl must be between 10000 ms and 7 days", "ttl")


def _validate_endpoint(endpoint: SimEndpoint) -> None:
    checks: list[tuple[bool, str, str]] = [
        (bool(endpoint.name), "name is required", "name"),
        (endpoint.workers_min >= 0, "workersMin must be >= 0", "workers_min"),
        (endpoint.workers_max >= 0, "workersMax must be >= 0", "workers_max"),
        (endpoint.workers_min <= endpoint.workers_max, "workersMin must be <= workersMax", "workers_min"),
        (endpoint.workers_standby >= 0, "workersStandby must be >= 0", "workers_standby"),
        (1 <= endpoint.idle_timeout <= 3600, "idleTimeout must be within 1..3600 seconds", "idle_timeout"),
        (
            endpoint.execution_timeout_ms is None or endpoint.execution_timeout_ms >= 0,
            "executionTimeoutMs must be >= 0",
            "execution_timeout_ms",
        ),
        (
            endpoint.scaler_type in ("QUEUE_DELAY", "REQUEST_COUNT"),
            "scalerType must be QUEUE_DELAY or REQUEST_COUNT",
            "scaler_type",
        ),
        (endpoint.scaler_value > 0, "scalerValue must be > 0", "scaler_value"),
        (endpoint.gpu_count >= 1, "gpuCount must be >= 1", "gpu_count"),
        (endpoint.cold_start_s >= 0, "cold_start_s must be >= 0", "cold_start_s"),
        (endpoint.capacity is None or endpoint.capacity >= 0, "capacity must be >= 0", "capacity"),
        (endpoint.default_duration_s >= 0, "default_duration_s must be >= 0", "default_duration_s"),
        (endpoint.worker_kind in ("simulated", "external"), "unknown worker kind", "worker_kind"),
    ]
    for ok, message, field_name in checks:
        if not ok:
            raise SimInvalid(message, field_name)
