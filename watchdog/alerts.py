"""Deliver alerts to Slack at least once, and once only after Slack accepted them, without ever blocking the
watchdog's tick or leaking the webhook.

Why this shape:

- **At least once.** An alert is written to an outbox (the ledger) *before* anything is sent, and is marked
  sent only after Slack answered 200. A crash, a Slack outage or a daemon restart leaves it pending, and a
  later round sends it. De-duplication by key is the outbox's job: enqueueing the same key twice gives one
  alert. Nothing is ever dropped: an alert not delivered stays pending in the ledger, whatever happens here.
- **Never twice after a success.** Once Slack accepted an alert, its key is remembered in memory as
  delivered: it is never posted again, and recording "sent" is retried every round until the ledger takes
  it (a full disk or a read-only ledger once turned one alert into a post per round). Only a restart before
  the ledger recovers can repeat it, once.
- **A failing ledger stops nothing.** ``pending_alerts`` failing skips the round and is retried with a
  doubling backoff (capped at ``ledger_retry_max_s``); a failing write is retried later. Each distinct
  problem is logged once, on one bounded line, and its recovery once.
- **Never block the tick.** slack_sdk's sync ``WebhookClient`` sleeps inside ``send()`` when it retries, so
  it runs in a worker thread (``asyncio.to_thread``) driven by its own task, ``AlertDispatcher.run_forever``.
- **Our retries, bounded, and no giving up on the webhook.** slack_sdk by default retries only connection
  errors, returns 429/5xx without retrying, and its opt-in rate-limit handler sleeps ``Retry-After`` with no
  cap (tested-recipes.md §4). So the client gets exactly one quick connection retry (a dropped keep-alive
  socket), and everything else is decided here:

  * transient (408, 425, 429, 5xx, connection failures and timeouts): retried; 429 waits ``Retry-After``
    capped at ``retry_after_cap_s``, the rest back off exponentially up to ``retry_max_s``. Backoff is per
    webhook, not per alert: when Slack is down or rate-limiting us, the whole queue waits.
  * the webhook refused (403, 404 ``no_service``, 410 ``channel_is_archived``, ``invalid_token``...): the
    webhook is *dead*, nothing is posted, but the oldest pending alert re-probes it after
    ``dead_probe_base_s``, doubling up to ``dead_probe_max_s``: a transient 403/404 or a repaired webhook
    resumes delivery by itself, no restart needed.
  * one message refused (400 ``invalid_payload``/``no_text``/``too_long``, 413): that alert only. Texts are
    cut to ``max_text_chars`` before sending (Slack splits longer messages and cuts at 40,000 characters);
    a long text refused anyway is tried once more cut to ``_SHORT_TEXT_CHARS`` before the dispatcher gives
    up on it (it stays pending in the ledger with its error, and counts as undelivered).

  Each failed attempt is recorded in the outbox with Slack's answer.
- **Health in memory.** ``health()`` returns a frozen ``DeliveryHealth`` that is replaced, never mutated,
  at each change, so the metrics exporter's thread may read it at any time without a lock.
- **Rate-limited.** At most one post per ``min_interval_s`` (Slack allows about one per second).
- **The URL is a secret.** A webhook URL is a bearer credential. It never appears in our logs, reprs or
  error texts (``redact``), and slack_sdk's own logger, which prints it on retries, gets a redacting filter.
- **No webhook configured** is a valid setup (a dry-run install): alerts go to the log at WARNING and are
  marked sent (the WARNING line is the record; the ledger's ``mark_alert_sent`` takes no note).

What it may touch: the outbox it is given (only through ``AlertOutbox``), the webhook (slack_sdk, in a worker
thread), the clock it is given, and its loggers. It reads no configuration and imports nothing of the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from watchdog.clock import Clock, SystemClock
from watchdog.errors import AlertError

logger = logging.getLogger(__name__)

REDACTED = "<slack-webhook-url redacted>"

_PAYLOAD_ERRORS = ("invalid_payload", "no_text", "too_many_attachments", "too_long")
"""Slack 400 bodies that condemn one message only (``too_long`` also matches ``msg_too_long``); every other
4xx but the transient ones means the webhook itself is unusable (for now: it is re-probed)."""

_TRANSIENT_4XX = frozenset({408, 425, 429})
"""Request Timeout, Too Early, Too Many Requests: Slack (or a proxy) asks us to try again."""

SLACK_TEXT_LIMIT = 4000
"""Characters we send per message by default. Slack splits a longer text into several messages and cuts it
at 40,000 characters (api.slack.com changelog, "Truncating really long messages", 2018); an alert is a
headline, so a longer one is cut here, with a mark saying so, rather than refused or split."""

_SHORT_TEXT_CHARS = 1000
"""A long text Slack refused as a payload is tried once more cut to this, before giving up on it."""

_PROBLEM_CHARS = 300
"""Longest problem text we log or expose (a ledger error can carry a whole SQL statement)."""

_MAX_LOGGED_PROBLEMS = 32
"""Distinct ledger problems remembered as logged (until the ledger recovers); more are not logged."""


# --------------------------------------------------------------------------------------------------------
# The outbox contract (implemented by ``watchdog.ledger.Ledger``)


class QueuedAlert(Protocol):
    """What the dispatcher reads from an outbox row (``ledger.AlertRow`` has these and more)."""

    @property
    def key(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """A plain ``QueuedAlert``; ``attempts``: failed sends recorded so far (0 if the outbox keeps none)."""

    key: str
    text: str
    created_at: float = 0.0
    attempts: int = 0


class AlertOutbox(Protocol):
    """Durable queue of alerts. De-duplicates by key: enqueueing an existing key does not add a second one.

    Semantics (as the SQLite ledger implements them): ``mark_alert_failed`` records one failed attempt and
    its error; the alert stays in ``pending_alerts`` until ``mark_alert_sent``. Giving up is therefore the
    dispatcher's decision (permanent Slack errors, ``max_attempts``), not a state of the outbox.
    """

    def pending_alerts(self, limit: int) -> Sequence[QueuedAlert]:
        """Not yet delivered, oldest first, at most ``limit``."""
        ...

    def mark_alert_sent(self, key: str, now: float) -> None:
        """Delivered to Slack, or (with no webhook) written to the log."""
        ...

    def mark_alert_failed(self, key: str, now: float, error: str) -> None:
        """One attempt failed; ``error`` is a plain, redacted explanation."""
        ...


class SecretLike(Protocol):
    """Anything holding the webhook URL without showing it; ``reveal()`` returns the plain value."""

    def reveal(self) -> str: ...


def reveal_secret(value: str | SecretLike | object) -> str:
    """The plain text of a secret held as ``str``, ``reveal()`` or pydantic-style ``get_secret_value()``."""
    if isinstance(value, str):
        return value
    for method in ("reveal", "get_secret_value"):
        getter = getattr(value, method, None)
        if callable(getter):
            text = getter()
            if isinstance(text, str):
                return text
    raise AlertError("the Slack webhook URL must be a string or a secret with reveal()")


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and of its path, which holds the token) removed."""
    if not secret:
        return text
    text = text.replace(secret, REDACTED)
    _, sep, rest = secret.partition("://")
    if sep:
        path = rest[rest.find("/") :] if "/" in rest else ""
        if len(path) > 8:
            text = text.replace(path, "/" + REDACTED)
    return text


class _RedactingFilter(logging.Filter):
    """Rewrites slack_sdk's log records so no known webhook URL reaches a handler."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add_secret(self, secret: str) -> None:
        self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = message
        for secret in self._secrets:
            cleaned = redact(cleaned, secret)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_SDK_LOGGER = logging.getLogger(f"{__name__}.slack_sdk")
"""The logger handed to slack_sdk; it logs the URL on retries, so its records pass through the filter."""
_SDK_LOGGER.setLevel(logging.INFO)  # slack_sdk dumps URL and body at DEBUG; nothing there we need
_SDK_REDACTOR = _RedactingFilter()
_SDK_LOGGER.addFilter(_SDK_REDACTOR)


# --------------------------------------------------------------------------------------------------------
# Message texts


def format_eur(amount: float) -> str:
    return f"{amount:,.2f} €"


def budget_alert_text(*, spent_eur: float, budget_eur: float, forecast_eur: float, threshold_pct: int) -> str:
    """E.g. ":rotating_light: Budget 80 % reached: 16.02 € of 20.00 € spent this month (forecast 21.30 €)"."""
    icon = ":rotating_light:" if threshold_pct >= 80 else ":warning:"
    return (
        f"{icon} Budget {threshold_pct} % reached: {format_eur(spent_eur)} of {format_eur(budget_eur)} spent "
        f"this month (forecast {format_eur(forecast_eur)})"
    )


def slack_escape(text: str) -> str:
    """Slack treats ``<``, ``>`` and ``&`` as markup; plain texts must escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str, max_chars: int = SLACK_TEXT_LIMIT) -> str:
    """``text`` escaped for Slack, and if longer than ``max_chars`` characters, cut with a mark saying so.

    The cut never splits an escape (``&amp;``), so Slack shows no stray ``&am``.
    """
    escaped = slack_escape(text)
    if len(escaped) <= max_chars:
        return escaped
    mark = f" … [cut: {len(text):,} characters in all]"
    head = escaped[: max(0, max_chars - len(mark))]
    amp = head.rfind("&", max(0, len(head) - 4))  # the longest escape is 5 characters: "&amp;"
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return (head.rstrip() + mark)[:max_chars]


def _bounded(text: str, limit: int = _PROBLEM_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------------
# One send, classified (pure)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one post to the webhook means.

    ``retry``: Slack's or the network's problem, try again later (408, 425, 429, 5xx, connection).
    ``rejected``: this message will not be accepted (400 ``invalid_payload``, ``too_long``; 413).
    ``webhook_unusable``: no message is, for now (404 ``no_service``: the webhook was removed; 403
    ``action_prohibited``/``invalid_token``, 410 ``channel_is_archived``, a malformed URL...); the
    dispatcher re-probes it with a growing delay, since a 403 or 404 can also be a passing fault.
    """

    result: Literal["delivered", "retry", "rejected", "webhook_unusable"]
    error: str = ""
    """Plain, redacted explanation when not delivered."""
    retry_after_s: float | None = None
    """Slack's ``Retry-After`` on a 429."""


def classify_response(status: int, body: str, headers: Mapping[str, object] | None) -> SendOutcome:
    """Slack's answer → delivered, retry later, or give up (on this message, or on the webhook)."""
    short_body = " ".join(body.split())[:200]
    if 200 <= status < 300:
        return SendOutcome("delivered")
    if status == 429:
        return SendOutcome("retry", f"HTTP 429 rate limited: {short_body}", _retry_after(headers))
    if status >= 500 or status in _TRANSIENT_4XX:
        return SendOutcome("retry", f"HTTP {status} from Slack: {short_body}", _retry_after(headers))
    if status == 413 or (status == 400 and any(code in body for code in _PAYLOAD_ERRORS)):
        return SendOutcome("rejected", f"HTTP {status}, Slack refused this message: {short_body}")
    return SendOutcome("webhook_unusable", f"HTTP {status}, Slack refused the webhook: {short_body}")


def _retry_after(headers: Mapping[str, object] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(str(raw).strip()))
            except ValueError:
                return None
    return None


class SlackWebhookSender:
    """Posts one text to one incoming webhook, synchronously; meant to run in a worker thread.

    slack_sdk retries a failed connection once after ``connection_retry_s`` (a dropped keep-alive socket is
    the common case); everything else is returned as a ``SendOutcome`` for the dispatcher to decide.
    """

    def __init__(
        self, webhook_url: str, *, timeout_s: float = 10.0, connection_retry_s: float = 0.25
    ) -> None:
        if not webhook_url.lower().startswith(("https://", "http://")):
            raise AlertError("the Slack webhook URL must start with https:// (value not shown: it is secret)")
        self._url = webhook_url
        _SDK_REDACTOR.add_secret(webhook_url)
        # Imported here, not at the top: slack_sdk adds 36 modules (~30-60 ms, ~1.5 MB) that a daemon
        # without a webhook (alerts go to the log) never needs.
        from slack_sdk.http_retry import (  # noqa: PLC0415
            ConnectionErrorRetryHandler,
            FixedValueRetryIntervalCalculator,
        )
        from slack_sdk.webhook import WebhookClient  # noqa: PLC0415

        self._client = WebhookClient(
            webhook_url,
            timeout=max(1, round(timeout_s)),
            logger=_SDK_LOGGER,
            retry_handlers=[
                ConnectionErrorRetryHandler(
                    max_retry_count=1,
                    interval_calculator=FixedValueRetryIntervalCalculator(connection_retry_s),
                )
            ],
        )

    def __repr__(self) -> str:
        return f"SlackWebhookSender({REDACTED})"

    def send(self, text: str, max_chars: int = SLACK_TEXT_LIMIT) -> SendOutcome:
        """Post ``text`` escaped and cut to ``max_chars`` (``slack_text``); never raises."""
        try:
            response = self._client.send(text=slack_text(text, max_chars))
        except (OSError, http.client.HTTPException) as exc:
            # URLError, connection refused/reset, RemoteDisconnected, timeouts: worth retrying later.
            return SendOutcome("retry", redact(f"connection failed: {_describe(exc)}", self._url))
        except Exception as exc:  # e.g. SlackRequestError for a malformed URL: retrying cannot help
            return SendOutcome("webhook_unusable", redact(f"cannot post: {_describe(exc)}", self._url))
        return classify_response(response.status_code, response.body or "", response.headers)


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason) if reason is not None else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------------
# The dispatcher (async shell)


WebhookState = Literal["ok", "retrying", "dead", "absent"]


@dataclass(frozen=True, slots=True)
class DeliveryHealth:
    """How alert delivery stands (``AlertDispatcher.health()``), for the metrics and the dashboard.

    Immutable: the dispatcher replaces its instance at each change, so any thread may read it at any time.
    """

    undelivered: int
    """Alerts the dispatcher knows are pending and not delivered: those its last successful read of the
    outbox returned, minus those delivered since. Alerts it gave up on (Slack refused them) are included;
    ``delivered_not_recorded`` ones are not. A lower bound when more than ``batch_size`` are queued."""
    webhook: WebhookState
    """``ok``: the last post went through (or none was tried yet). ``retrying``: the last post failed
    transiently (timeout, 408, 425, 429, 5xx, connection) and a backoff runs. ``dead``: Slack refused the
    webhook itself (403, 404, 410...); it is re-probed with a growing delay. ``absent``: no webhook is
    configured, alerts go to the log."""
    last_error: str | None
    """The problem in effect, redacted, one line of at most 300 characters: the ledger's while it fails,
    else Slack's last refusal until a post succeeds, else why an alert still undelivered was given up on;
    None when all is well."""
    delivered_not_recorded: int
    """Alerts Slack accepted (or, without a webhook, the log took) that the ledger has not recorded as sent
    yet because it keeps failing: never sent again, recording retried every round."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one round did; keys of the alerts in each outcome."""

    delivered: tuple[str, ...] = ()
    logged: tuple[str, ...] = ()
    """No webhook configured: written to the log at WARNING and marked sent."""
    given_up: tuple[str, ...] = ()
    """Rejected by Slack, or ``max_attempts`` reached: left in the outbox with their error, not retried."""
    still_pending: tuple[str, ...] = ()
    retry_not_before: float | None = None
    """When Slack failed (transiently, or refused the webhook): the earliest time a round will post again."""
    webhook_unusable: bool = False
    """Slack refused the webhook itself (e.g. 404 no_service): the webhook is dead, and re-probed with one
    alert at ``retry_not_before``."""
    last_error: str | None = None
    """Slack's last refusal in this round (the ledger's problems are in ``ledger_error``)."""
    not_recorded: tuple[str, ...] = ()
    """Delivered (or logged) in this round, but the ledger refused to record it: remembered, never resent."""
    ledger_error: str | None = None
    """The outbox (ledger) failed in this round, or is still backing off after a failure."""


@dataclass
class _RoundState:
    delivered: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)
    last_error: str | None = None
    ledger_error: str | None = None
    ledger_read: bool = False
    """``pending_alerts`` answered in this round."""


class AlertDispatcher:
    """Drains the outbox to Slack from its own task.

    ``run_once(now)`` first retries recording the alerts delivered earlier that the ledger refused to mark
    sent, then sends up to ``batch_size`` pending alerts, retrying a transient failure up to
    ``retries_per_round`` times inside the round; if Slack still fails, the rest of the queue waits until a
    backoff has passed and a later round tries again. Every failed attempt is recorded in the outbox.

    Giving up on one alert happens here, because the outbox keeps every undelivered alert pending: a message
    Slack rejects (400 ``invalid_payload``, even cut short), or one that failed ``max_attempts`` times (if
    > 0), is skipped by this dispatcher from then on (a restart tries it again). If Slack refuses the webhook
    itself (404 ``no_service``...), the dispatcher logs one ERROR, posts nothing, and re-probes the webhook
    with the oldest pending alert after ``dead_probe_base_s``, doubling up to ``dead_probe_max_s``, until
    Slack takes it again; the alerts stay queued meanwhile.
    """

    def __init__(
        self,
        outbox: AlertOutbox,
        webhook_url: str | SecretLike | None,
        *,
        clock: Clock | None = None,
        min_interval_s: float = 1.0,
        retry_max_s: float = 300.0,
        retry_base_s: float = 1.0,
        retry_after_cap_s: float = 30.0,
        retries_per_round: int = 2,
        max_attempts: int = 0,
        batch_size: int = 20,
        poll_interval_s: float = 5.0,
        timeout_s: float = 10.0,
        connection_retry_s: float = 0.25,
        dead_probe_base_s: float = 60.0,
        dead_probe_max_s: float = 3600.0,
        ledger_retry_max_s: float = 60.0,
        max_text_chars: int = SLACK_TEXT_LIMIT,
    ) -> None:
        self._outbox = outbox
        self._clock: Clock = clock or SystemClock()
        url = reveal_secret(webhook_url) if webhook_url is not None else ""
        self._url: str | None = url or None
        self._sender = (
            SlackWebhookSender(url, timeout_s=timeout_s, connection_retry_s=connection_retry_s)
            if url
            else None
        )
        self.min_interval_s = min_interval_s
        self.retry_max_s = retry_max_s
        self.retry_base_s = retry_base_s
        self.retry_after_cap_s = retry_after_cap_s
        self.retries_per_round = retries_per_round
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.dead_probe_base_s = dead_probe_base_s
        self.dead_probe_max_s = dead_probe_max_s
        self.ledger_retry_max_s = ledger_retry_max_s
        self.max_text_chars = max_text_chars
        self._last_post_at: float | None = None
        # Slack, transient: the next round may post at _not_before.
        self._not_before: float | None = None
        self._consecutive_failures = 0
        self._slack_error: str | None = None
        # Slack refused the webhook: dead, re-probed at _probe_at; _dead_refusals doubles the delay.
        self._dead_error: str | None = None
        self._probe_at: float | None = None
        self._dead_refusals = 0
        # Per alert.
        self._attempts: dict[str, int] = {}
        self._given_up: dict[str, str] = {}
        """Alerts this dispatcher no longer tries (key → why); they stay pending in the outbox."""
        self._unrecorded: dict[str, float] = {}
        """Delivered (key → when) but not recorded as sent: never sent again, recording retried."""
        self._known_pending: set[str] = set()
        self._memory: dict[str, str] = {}
        """Alerts the ledger cannot hold (key → text): the ledger itself is failing. Delivered from
        memory, once each, in the order raised."""
        self._memory_sent: set[str] = set()
        # The outbox (ledger).
        self._ledger_error: str | None = None
        self._ledger_failures = 0
        self._ledger_retry_at: float | None = None
        self._logged_problems: set[str] = set()
        self._wake = asyncio.Event()
        self._health = self._current_health()

    def __repr__(self) -> str:
        target = "slack webhook (redacted)" if self._sender else "log only (no webhook)"
        return f"AlertDispatcher({target}, min_interval_s={self.min_interval_s})"

    @property
    def webhook_configured(self) -> bool:
        return self._sender is not None

    def health(self) -> DeliveryHealth:
        """Delivery as of now: in memory, O(1), safe to call from any thread (an immutable snapshot)."""
        return self._health

    def wake(self) -> None:
        """Tell ``run_forever`` something was just enqueued, so it need not wait out its poll interval."""
        self._wake.set()

    def raise_without_ledger(self, key: str, text: str) -> None:
        """Queue an alert that must go out although the ledger cannot record it (the alert is ABOUT the
        ledger failing): kept in memory, delivered once, before the ledger's queue. A key already raised
        this way is ignored."""
        if key not in self._memory_sent and key not in self._memory:
            self._memory[key] = text
            self._refresh_health()
            self.wake()

    async def run_once(self, now: float) -> DeliveryReport:
        state = _RoundState()
        await self._deliver_from_memory(now, state)
        self._record_unrecorded(state)
        pending = self._read_pending(now, state)
        if pending is None:
            return self._report(state)
        if self._sender is None:
            for alert in pending:
                logger.warning(
                    "Alert (no Slack webhook configured): %s", alert.text, extra={"repeat_limit": False}
                )
                self._delivered(alert.key, now, state)
                state.logged.append(alert.key)
            return self._report(state)
        if not self._may_post(now):
            state.pending.extend(alert.key for alert in pending)
            return self._report(state)
        for index, alert in enumerate(pending):
            if not await self._deliver(alert, state):
                # Slack is failing, or refused the webhook: leave this and the rest for a later round.
                state.pending.extend(a.key for a in pending[index:])
                break
        return self._report(state)

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """Rounds every ``poll_interval_s`` (or sooner after ``wake()``) until ``stop_event`` is set."""
        while not stop_event.is_set():
            try:
                report = await self.run_once(self._clock.now())
                if report.last_error:
                    logger.warning(
                        "Slack alerts: %d delivered, %d given up, %d still pending; last error: %s",
                        len(report.delivered),
                        len(report.given_up),
                        len(report.still_pending),
                        report.last_error,
                    )
            except Exception as exc:  # a bug must not kill the alert task; the alerts stay queued
                self._log_problem_once("alert round failed", exc)
            self._wake.clear()
            waiters = [
                asyncio.ensure_future(stop_event.wait()),
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self._clock.sleep(self.poll_interval_s)),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                for waiter in waiters:
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter

    async def _deliver_from_memory(self, now: float, state: _RoundState) -> None:
        """One attempt per round for each alert raised without the ledger; kept until Slack takes it."""
        for key, text in list(self._memory.items()):
            if self._sender is None:
                logger.error("Alert (no Slack webhook configured): %s", text, extra={"repeat_limit": False})
            else:
                if not self._may_post(now):
                    return
                await self._respect_min_interval()
                self._last_post_at = self._clock.now()
                outcome = await asyncio.to_thread(self._sender.send, text, self.max_text_chars)
                if outcome.result != "delivered":
                    state.last_error = outcome.error
                    return
                self._webhook_answers()
                state.delivered.append(key)
            del self._memory[key]
            self._memory_sent.add(key)
        self._refresh_health()

    # -- the outbox (ledger) ---------------------------------------------------------------------------

    def _read_pending(self, now: float, state: _RoundState) -> list[QueuedAlert] | None:
        """The alerts to try in this round, or None if the outbox cannot be read (or is backing off)."""
        if self._ledger_retry_at is not None and now < self._ledger_retry_at:
            state.ledger_error = self._ledger_error
            return None
        # Skipped and delivered-not-recorded alerts stay in the outbox: ask for enough rows that they
        # cannot crowd out new ones.
        limit = self.batch_size + len(self._given_up) + len(self._unrecorded)
        try:
            queued = list(self._outbox.pending_alerts(limit))
        except Exception as exc:  # LedgerError, or whatever another outbox raises: back off, retry
            self._ledger_failures += 1
            wait_s = min(self.retry_base_s * 2.0 ** (self._ledger_failures - 1), self.ledger_retry_max_s)
            self._ledger_retry_at = now + wait_s
            self._ledger_problem("reading the pending alerts", exc, state)
            return None
        state.ledger_read = True
        self._ledger_failures, self._ledger_retry_at = 0, None
        if len(queued) < limit:
            # The whole queue was read: a delivered key absent from it was recorded after all (a write
            # reported as failed can have committed), or is gone. Either way there is nothing to record.
            seen = {alert.key for alert in queued}
            for key in [key for key in self._unrecorded if key not in seen]:
                del self._unrecorded[key]
        fresh = [alert for alert in queued if alert.key not in self._unrecorded]
        self._known_pending = {alert.key for alert in fresh}
        return [alert for alert in fresh if alert.key not in self._given_up][: self.batch_size]

    def _record_unrecorded(self, state: _RoundState) -> None:
        """Retry recording as sent the alerts delivered in earlier rounds; stop at the first refusal."""
        for key, delivered_at in list(self._unrecorded.items()):
            try:
                self._outbox.mark_alert_sent(key, delivered_at)
            except Exception as exc:
                self._ledger_problem("recording a delivered alert as sent", exc, state)
                return
            del self._unrecorded[key]
            logger.info("Alert %s, delivered earlier, is now recorded as sent", key)

    def _delivered(self, key: str, at: float, state: _RoundState) -> None:
        """Slack (or the log) took the alert: from now on it is never sent again, recorded or not."""
        self._known_pending.discard(key)
        self._attempts.pop(key, None)
        try:
            self._outbox.mark_alert_sent(key, at)
        except Exception as exc:
            self._unrecorded[key] = at
            state.not_recorded.append(key)
            self._ledger_problem("recording a delivered alert as sent", exc, state)
        self._refresh_health()

    def _record_failure(self, key: str, at: float, error: str, state: _RoundState) -> None:
        try:
            self._outbox.mark_alert_failed(key, at, error)
        except Exception as exc:  # the alert stays pending anyway; only the note of the attempt is lost
            self._ledger_problem("recording a failed attempt", exc, state)

    def _ledger_problem(self, what: str, exc: BaseException, state: _RoundState) -> None:
        problem = self._problem_text(what, exc)
        state.ledger_error = self._ledger_error = problem
        self._log_problem_once(what, exc)
        self._refresh_health()

    def _problem_text(self, what: str, exc: BaseException) -> str:
        return _bounded(redact(f"{what}: {type(exc).__name__}: {exc}", self._url))

    def _log_problem_once(self, what: str, exc: BaseException) -> None:
        """One ERROR line per distinct problem until the outbox recovers (bounded, redacted)."""
        problem = self._problem_text(what, exc)
        if problem in self._logged_problems or len(self._logged_problems) >= _MAX_LOGGED_PROBLEMS:
            logger.debug("alert outbox problem (already reported): %s", problem)
            return
        self._logged_problems.add(problem)
        logger.error("Alert delivery: %s. Retrying with backoff; the alerts stay queued.", problem)

    def _end_of_round_ledger_check(self, state: _RoundState) -> None:
        if state.ledger_read and state.ledger_error is None and self._ledger_error is not None:
            logger.info("Alert outbox (ledger) works again; delivery resumes")
            self._ledger_error = None
            self._logged_problems.clear()

    # -- Slack ----------------------------------------------------------------------------------------

    def _may_post(self, now: float) -> bool:
        if self._dead_error is not None:
            return self._probe_at is None or now >= self._probe_at
        return self._not_before is None or now >= self._not_before

    async def _deliver(self, alert: QueuedAlert, state: _RoundState) -> bool:
        """Send one alert, retrying within the round. False: stop the round (Slack failing or unusable)."""
        assert self._sender is not None
        probing = self._dead_error is not None  # one attempt: is the webhook back?
        retries_left = 0 if probing else self.retries_per_round
        max_chars = self.max_text_chars
        short_chars = min(_SHORT_TEXT_CHARS, self.max_text_chars)
        while True:
            await self._respect_min_interval()
            self._last_post_at = self._clock.now()
            outcome = await asyncio.to_thread(self._sender.send, alert.text, max_chars)
            finished_at = self._clock.now()
            if outcome.result == "delivered":
                self._webhook_answers()
                self._slack_error = None
                self._delivered(alert.key, finished_at, state)
                state.delivered.append(alert.key)
                return True
            state.last_error = self._slack_error = outcome.error
            attempts = max(self._attempts.get(alert.key, 0), alert.attempts) + 1
            self._attempts[alert.key] = attempts
            if outcome.result == "webhook_unusable":
                self._record_failure(alert.key, finished_at, outcome.error, state)
                self._webhook_refused(outcome.error, finished_at)
                return False
            if outcome.result == "rejected":
                self._webhook_answers()  # Slack found the webhook: only this message is refused
                probing = False
                if max_chars > short_chars and len(slack_escape(alert.text)) > short_chars:
                    note = f"{outcome.error}; trying again cut to {short_chars} characters"
                    self._record_failure(alert.key, finished_at, note, state)
                    max_chars = short_chars
                    continue
                self._give_up(alert.key, finished_at, f"not retried: {outcome.error}", state)
                return True
            # Transient: Slack or the network is failing.
            if probing:
                self._record_failure(alert.key, finished_at, outcome.error, state)
                self._webhook_refused(self._dead_error or outcome.error, finished_at)
                return False
            if self.max_attempts > 0 and attempts >= self.max_attempts:
                self._consecutive_failures += 1
                self._give_up(
                    alert.key, finished_at, f"gave up after {attempts} attempts: {outcome.error}", state
                )
                return True
            self._record_failure(alert.key, finished_at, outcome.error, state)
            wait_s = self._backoff(outcome)
            self._consecutive_failures += 1
            if retries_left <= 0:
                self._not_before = finished_at + wait_s
                self._refresh_health()
                return False
            retries_left -= 1
            self._refresh_health()
            await self._clock.sleep(wait_s)

    def _webhook_answers(self) -> None:
        """Slack took a message (or found the webhook and refused only the message): the webhook works."""
        if self._dead_error is not None:
            logger.warning("Slack accepts the alert webhook again; the queued alerts are being delivered")
        self._dead_error, self._probe_at, self._dead_refusals = None, None, 0
        self._not_before, self._consecutive_failures = None, 0
        self._refresh_health()

    def _webhook_refused(self, error: str, at: float) -> None:
        """Slack refused the webhook itself: dead, and re-probed after a delay that doubles, capped."""
        delay_s = min(self.dead_probe_base_s * 2.0**self._dead_refusals, self.dead_probe_max_s)
        self._dead_refusals += 1
        self._probe_at = at + delay_s
        self._not_before, self._consecutive_failures = None, 0
        if self._dead_error is None:
            logger.error(
                "Slack refused the alert webhook (%s). The alerts stay queued; the webhook is tried again "
                "in %.0f s, then less and less often (at least every %.0f s) until it works.",
                error,
                delay_s,
                self.dead_probe_max_s,
            )
        elif error != self._dead_error:
            logger.warning("Slack still refuses the alert webhook (%s); next try in %.0f s", error, delay_s)
        else:
            logger.debug("Slack still refuses the alert webhook; next try in %.0f s", delay_s)
        self._dead_error = error
        self._refresh_health()

    def _give_up(self, key: str, now: float, error: str, state: _RoundState) -> None:
        self._record_failure(key, now, error, state)
        self._given_up[key] = error
        self._attempts.pop(key, None)
        state.given_up.append(key)
        logger.error("Slack alert %s not delivered and no longer retried: %s", key, error)
        self._refresh_health()

    def _backoff(self, outcome: SendOutcome) -> float:
        if outcome.retry_after_s is not None:
            return min(float(outcome.retry_after_s), self.retry_after_cap_s)
        return min(self.retry_base_s * 2.0**self._consecutive_failures, self.retry_max_s)

    async def _respect_min_interval(self) -> None:
        if self._last_post_at is None:
            return
        wait_s = self._last_post_at + self.min_interval_s - self._clock.now()
        if wait_s > 0:
            await self._clock.sleep(wait_s)

    # -- reporting ------------------------------------------------------------------------------------

    def _current_health(self) -> DeliveryHealth:
        webhook: WebhookState
        if self._sender is None:
            webhook = "absent"
        elif self._dead_error is not None:
            webhook = "dead"
        elif self._not_before is not None or self._consecutive_failures > 0:
            webhook = "retrying"
        else:
            webhook = "ok"
        error = self._ledger_error or self._slack_error or self._given_up_error()
        return DeliveryHealth(
            undelivered=len(self._known_pending) + len(self._memory),
            webhook=webhook,
            last_error=_bounded(redact(error, self._url)) if error else None,
            delivered_not_recorded=len(self._unrecorded),
        )

    def _given_up_error(self) -> str | None:
        """Why the latest alert given up on and still pending was refused (it is still undelivered)."""
        return next(
            (why for key, why in reversed(self._given_up.items()) if key in self._known_pending), None
        )

    def _refresh_health(self) -> None:
        self._health = self._current_health()  # one reference swap: readers see the old or the new one

    def _report(self, state: _RoundState) -> DeliveryReport:
        self._end_of_round_ledger_check(state)
        self._refresh_health()
        retry_at = self._probe_at if self._dead_error is not None else self._not_before
        return DeliveryReport(
            delivered=tuple(state.delivered),
            logged=tuple(state.logged),
            given_up=tuple(state.given_up),
            still_pending=tuple(state.pending),
            retry_not_before=retry_at if state.pending else None,
            webhook_unusable=self._dead_error is not None,
            last_error=redact(state.last_error, self._url) if state.last_error else None,
            not_recorded=tuple(state.not_recorded),
            ledger_error=state.ledger_error,
        )
