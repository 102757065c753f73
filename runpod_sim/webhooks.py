"""Job webhooks: ``"webhook": url`` on ``/run`` is POSTed the job's ``/status`` body when the job ends.

RunPod's contract (runpod-api.md §4.3 and "Additions (2026-11-30)"): when the job ends (FAILED too) RunPod
POSTs the same body ``/status`` answers, expects a 200, and otherwise "retries up to 2 more times with a
10-second delay". No signature scheme is documented, so none is sent.

Reproduced here:

* The body is ``serialize.job_status(job)`` as it stood when the job ended (``id``, ``status``,
  ``delayTime``, ``executionTime``, ``workerId``, ``output`` or ``error``), sent as JSON with
  ``Content-Type: application/json``. Sent for every status in ``SimOptions.webhook_statuses`` (all four
  terminal ones by default: whether RunPod also calls it for CANCELLED and TIMED_OUT is UNCERTAIN). A job
  deleted by its TTL never ends, so it calls nothing.
* Any answer but 200 (or no answer within ``SimOptions.webhook_timeout_s``) is retried after
  ``SimOptions.webhook_retry_delay_s`` (10 s, real seconds, not simulated ones), at most
  ``SimOptions.webhook_attempts`` (3) attempts in all. Redirects are not followed.
* Deliveries run on one background thread (started on the first webhook), so a slow receiver never slows
  the model; a failing one waits on a retry heap without holding the others up. The queue is bounded
  (``MAX_PENDING``): beyond it, deliveries are dropped and counted, never buffered without limit.

LOOPBACK ONLY (the simulator's rule for all its traffic): a webhook URL must be ``http``/``https`` to a
loopback address (127.0.0.0/8, ``::1``) or ``localhost`` resolving only to loopback. Any other URL is
refused when the job is submitted (``/run`` answers 400 ``{"error": ...}``), and checked again before each
attempt, so a simulator can never be made to call out to the network.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_PENDING = 10_000
"""Deliveries waiting (first attempts and retries) beyond which new ones are dropped (and counted)."""
ATTEMPT_RECORDS = 1_000
"""Recent attempts kept in memory for tests and ``/_sim/state`` (the oldest are dropped)."""
USER_AGENT = "runpod-simulator-webhook/1"


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (only if it resolves to loopback addresses only)."""
    candidate = host.strip("[]")
    try:
        return ipaddress.ip_address(candidate).is_loopback
    except ValueError:
        pass
    if candidate.lower() != "localhost":
        return False
    try:
        infos = socket.getaddrinfo(candidate, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def webhook_url_problem(url: Any) -> str | None:
    """Why ``url`` cannot be a webhook of this simulator, or None when it can."""
    if not isinstance(url, str) or not url.strip():
        return "webhook must be a non-empty URL string"
    if len(url) > 2048:
        return "webhook URL is longer than 2048 characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return "webhook is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "webhook must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "webhook URL must not carry credentials"
    if port == 0:
        return "webhook URL port must not be 0"
    if not is_loopback_host(parts.hostname):
        return (
            f"the simulator only calls loopback webhooks (127.0.0.1, ::1, localhost), not {parts.hostname!r}"
        )
    return None


@dataclass(frozen=True)
class WebhookAttempt:
    """One delivery attempt, as recorded (``status`` None when no HTTP answer came back)."""

    job_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    at: float
    """Wall-clock time (epoch seconds) of the attempt."""

    @property
    def delivered(self) -> bool:
        return self.status == 200


@dataclass
class _Delivery:
    job_id: str
    url: str
    body: dict[str, Any]
    attempt: int = 0


class WebhookDispatcher:
    """Delivers job webhooks on a background thread, with RunPod's retry rule (see the module docstring)."""

    def __init__(self, *, attempts: int = 3, retry_delay_s: float = 10.0, timeout_s: float = 10.0) -> None:
        self.attempts = max(1, attempts)
        self.retry_delay_s = max(0.0, retry_delay_s)
        self.timeout_s = timeout_s
        self.records: deque[WebhookAttempt] = deque(maxlen=ATTEMPT_RECORDS)
        self.dropped = 0
        self._heap: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0
        self._thread: threading.Thread | None = None

    def submit(self, job_id: str, url: str, body: dict[str, Any]) -> None:
        """Queue the first attempt now (thread-safe, never blocks on the network)."""
        with self._cond:
            if self._closed:
                return
            if len(self._heap) >= MAX_PENDING:
                self.dropped += 1
                return
            heapq.heappush(self._heap, (time.monotonic(), next(self._seq), _Delivery(job_id, url, body)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runpod-sim-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        """Deliveries not finished yet (waiting, retrying or in flight)."""
        with self._cond:
            return len(self._heap) + self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is pending (True) or ``timeout_s`` real seconds pass (False). For tests."""
        deadline = time.monotonic() + timeout_s
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def attempts_for(self, job_id: str) -> list[WebhookAttempt]:
        return [record for record in list(self.records) if record.job_id == job_id]

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread; deliveries still pending are abandoned."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        with httpx.Client(
            timeout=self.timeout_s,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        ) as client:
            while True:
                with self._cond:
                    while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                        wait = None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                        self._cond.wait(timeout=wait)
                    if self._closed:
                        return
                    _, _, delivery = heapq.heappop(self._heap)
                    self._busy += 1
                try:
                    self._attempt(client, delivery)
                finally:
                    with self._cond:
                        self._busy -= 1

    def _attempt(self, client: httpx.Client, delivery: _Delivery) -> None:
        delivery.attempt += 1
        status: int | None = None
        error: str | None = None
        problem = webhook_url_problem(delivery.url)  # checked again: localhost could have changed
        if problem is not None:
            error = problem
            delivery.attempt = self.attempts  # never retried
        else:
            try:
                response = client.post(delivery.url, json=delivery.body)
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        self.records.append(
            WebhookAttempt(
                job_id=delivery.job_id,
                url=delivery.url,
                attempt=delivery.attempt,
                status=status,
                error=error,
                at=time.time(),
            )
        )
        if status == 200 or delivery.attempt >= self.attempts:
            return
        with self._cond:
            if self._closed:
                return
            due = time.monotonic() + self.retry_delay_s
            heapq.heappush(self._heap, (due, next(self._seq), delivery))
            self._cond.notify()
