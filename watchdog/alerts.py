"""Deliver alerts to Slack at least once, without ever blocking the watchdog's tick or leaking the webhook.

Why this shape:

- **At least once.** An alert is written to an outbox (the ledger) *before* anything is sent, and is marked
  sent only after Slack answered 200. A crash, a Slack outage or a daemon restart leaves it pending, and a
  later round sends it. De-duplication by key is the outbox's job: enqueueing the same key twice gives one
  alert.
- **Never block the tick.** slack_sdk's sync ``WebhookClient`` sleeps inside ``send()`` when it retries, so
  it runs in a worker thread (``asyncio.to_thread``) driven by its own task, ``AlertDispatcher.run_forever``.
- **Our retries, bounded.** slack_sdk by default retries only connection errors, returns 429/5xx without
  retrying, and its opt-in rate-limit handler sleeps ``Retry-After`` with no cap (tested-recipes.md §4). So
  the client gets exactly one quick connection retry (a dropped keep-alive socket), and everything else is
  decided here: 429 waits ``Retry-After`` capped at ``retry_after_cap_s``; 5xx and connection failures back
  off exponentially up to ``retry_max_s``; 4xx answers are permanent: 400 ``invalid_payload`` gives up on
  that message, 404 ``no_service`` (the webhook was removed) stops all posting until a restart. Each
  failed attempt is recorded in the outbox with Slack's answer. Backoff is per webhook, not per alert:
  when Slack is down or rate-limiting us, the whole queue waits.
- **Rate-limited.** At most one post per ``min_interval_s`` (Slack allows about one per second).
- **The URL is a secret.** A webhook URL is a bearer credential. It never appears in our logs, reprs or
  error texts (``redact``), and slack_sdk's own logger, which prints it on retries, gets a redacting filter.
- **No webhook configured** is a valid setup (a dry-run install): alerts go to the log at WARNING and are
  marked sent (the WARNING line is the record; the ledger's ``mark_alert_sent`` takes no note).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from slack_sdk.http_retry import ConnectionErrorRetryHandler, FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from watchdog.clock import Clock, SystemClock
from watchdog.errors import AlertError

logger = logging.getLogger(__name__)

REDACTED = "<slack-webhook-url redacted>"

_PAYLOAD_ERRORS = ("invalid_payload", "no_text", "too_many_attachments", "too_long")
"""Slack 400 bodies that condemn one message only; every other 4xx means the webhook itself is unusable."""


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


# --------------------------------------------------------------------------------------------------------
# One send, classified (pure)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one post to the webhook means.

    ``retry``: Slack's or the network's problem, try again later. ``rejected``: this message will never be
    accepted (400 ``invalid_payload``). ``webhook_unusable``: no message will be (404 ``no_service``: the
    webhook was removed; 403 ``action_prohibited``, 410 ``channel_is_archived``, a malformed URL...).
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
    if status >= 500:
        return SendOutcome("retry", f"HTTP {status} from Slack: {short_body}")
    if status == 400 and any(code in body for code in _PAYLOAD_ERRORS):
        return SendOutcome("rejected", f"HTTP 400, Slack refused this message: {short_body}")
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

    def send(self, text: str) -> SendOutcome:
        try:
            response = self._client.send(text=slack_escape(text))
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
    """When Slack failed transiently: the earliest time the next round will try again."""
    webhook_unusable: bool = False
    """Slack refused the webhook itself (e.g. 404 no_service): nothing more is sent until a restart."""
    last_error: str | None = None


@dataclass
class _RoundState:
    delivered: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    last_error: str | None = None


class AlertDispatcher:
    """Drains the outbox to Slack from its own task.

    ``run_once(now)`` sends up to ``batch_size`` pending alerts, retrying a transient failure up to
    ``retries_per_round`` times inside the round; if Slack still fails, the rest of the queue waits until a
    backoff has passed and a later round tries again. Every failed attempt is recorded in the outbox.

    Giving up happens here, because the outbox keeps every undelivered alert pending: a message Slack
    rejects (400 ``invalid_payload``), or one that failed ``max_attempts`` times (if > 0), is skipped by this
    dispatcher from then on; if Slack refuses the webhook itself (404 ``no_service``...), the dispatcher
    stops posting altogether and logs one ERROR - the alerts stay queued for when the webhook is fixed.
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
        self._last_post_at: float | None = None
        self._not_before: float | None = None
        self._consecutive_failures = 0
        self._attempts: dict[str, int] = {}
        self._given_up: set[str] = set()
        self._webhook_unusable: str | None = None
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        target = "slack webhook (redacted)" if self._sender else "log only (no webhook)"
        return f"AlertDispatcher({target}, min_interval_s={self.min_interval_s})"

    @property
    def webhook_configured(self) -> bool:
        return self._sender is not None

    def wake(self) -> None:
        """Tell ``run_forever`` something was just enqueued, so it need not wait out its poll interval."""
        self._wake.set()

    async def run_once(self, now: float) -> DeliveryReport:
        state = _RoundState()
        # Skipped alerts stay in the outbox; ask for enough rows that they cannot crowd out new ones.
        queued = self._outbox.pending_alerts(self.batch_size + len(self._given_up))
        pending = [alert for alert in queued if alert.key not in self._given_up][: self.batch_size]
        if self._sender is None:
            for alert in pending:
                logger.warning("Alert (no Slack webhook configured): %s", alert.text)
                self._outbox.mark_alert_sent(alert.key, now)
                state.logged.append(alert.key)
            return self._report(state)
        if self._webhook_unusable is not None or (self._not_before is not None and now < self._not_before):
            state.pending.extend(alert.key for alert in pending)
            return self._report(state)
        for index, alert in enumerate(pending):
            if not await self._deliver(alert, state):
                # Slack is failing: leave this and the rest queued for a later round.
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
            except Exception as exc:  # the outbox (ledger) failing must not kill the alert task
                logger.error("alert round failed: %s", redact(f"{type(exc).__name__}: {exc}", self._url))
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

    # -- internals ------------------------------------------------------------------------------------

    async def _deliver(self, alert: QueuedAlert, state: _RoundState) -> bool:
        """Send one alert, retrying within the round. False: stop the round (Slack failing or unusable)."""
        assert self._sender is not None
        retries_left = self.retries_per_round
        while True:
            await self._respect_min_interval()
            self._last_post_at = self._clock.now()
            outcome = await asyncio.to_thread(self._sender.send, alert.text)
            finished_at = self._clock.now()
            if outcome.result == "delivered":
                self._outbox.mark_alert_sent(alert.key, finished_at)
                self._attempts.pop(alert.key, None)
                self._consecutive_failures = 0
                self._not_before = None
                state.delivered.append(alert.key)
                return True
            state.last_error = outcome.error
            attempts = max(self._attempts.get(alert.key, 0), alert.attempts) + 1
            self._attempts[alert.key] = attempts
            if outcome.result == "webhook_unusable":
                self._outbox.mark_alert_failed(alert.key, finished_at, outcome.error)
                self._webhook_unusable = outcome.error
                logger.error(
                    "Slack refused the alert webhook (%s); no more alerts will be posted until the webhook "
                    "is fixed and the daemon restarted. They stay queued.",
                    outcome.error,
                )
                return False
            if outcome.result == "rejected":
                self._give_up(alert.key, finished_at, f"not retried: {outcome.error}", state)
                return True
            if self.max_attempts > 0 and attempts >= self.max_attempts:
                self._give_up(
                    alert.key, finished_at, f"gave up after {attempts} attempts: {outcome.error}", state
                )
                return True
            self._outbox.mark_alert_failed(alert.key, finished_at, outcome.error)
            wait_s = self._backoff(outcome)
            self._consecutive_failures += 1
            if retries_left <= 0:
                self._not_before = finished_at + wait_s
                return False
            retries_left -= 1
            await self._clock.sleep(wait_s)

    def _give_up(self, key: str, now: float, error: str, state: _RoundState) -> None:
        self._outbox.mark_alert_failed(key, now, error)
        self._given_up.add(key)
        self._attempts.pop(key, None)
        state.given_up.append(key)
        logger.error("Slack alert %s not delivered and no longer retried: %s", key, error)

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

    def _report(self, state: _RoundState) -> DeliveryReport:
        return DeliveryReport(
            delivered=tuple(state.delivered),
            logged=tuple(state.logged),
            given_up=tuple(state.given_up),
            still_pending=tuple(state.pending),
            retry_not_before=self._not_before if state.pending else None,
            webhook_unusable=self._webhook_unusable is not None,
            last_error=redact(state.last_error, self._url) if state.last_error else None,
        )
