"""AlertDispatcher against a real loopback HTTP server playing Slack's incoming webhook, with scripted answers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from watchdog.alerts import (
    REDACTED,
    AlertDispatcher,
    PendingAlert,
    budget_alert_text,
    classify_response,
    redact,
)
from watchdog.clock import ManualClock, SystemClock
from watchdog.errors import AlertError

WEBHOOK_PATH = "/services/T0WATCH/B0DOG/xoxTOKENsecret42"
TOKEN = "xoxTOKENsecret42"


# ---------------------------------------------------------------------------------------------- fakes


@dataclass
class OutboxRow:
    text: str
    created_at: float
    state: str = "queued"
    attempts: int = 0
    last_error: str = ""
    sent_at: float | None = None


@dataclass
class MemoryOutbox:
    """The AlertOutbox contract in memory, with the ledger's semantics: de-duplicated by key; a failed
    attempt is counted and keeps the alert pending; only ``sent`` leaves the queue."""

    rows: dict[str, OutboxRow] = field(default_factory=dict)

    def enqueue(self, key: str, text: str, now: float) -> bool:
        if key in self.rows:
            return False
        self.rows[key] = OutboxRow(text, now)
        return True

    def pending_alerts(self, limit: int) -> list[PendingAlert]:
        pending = [(key, row) for key, row in self.rows.items() if row.state != "sent"]
        return [PendingAlert(key, row.text, row.created_at, row.attempts) for key, row in pending[:limit]]

    def mark_alert_sent(self, key: str, now: float) -> None:
        row = self.rows[key]
        row.state, row.sent_at, row.last_error = "sent", now, ""
        row.attempts += 1

    def mark_alert_failed(self, key: str, now: float, error: str) -> None:
        row = self.rows[key]
        if row.state != "sent":
            row.state, row.last_error = "failed", error
            row.attempts += 1


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection without any response."""


@dataclass
class Received:
    path: str
    payload: dict[str, object]
    at: float


class FakeSlack:
    """ThreadingHTTPServer on 127.0.0.1; answers each POST with the next scripted Reply (then 200 ok)."""

    def __init__(self, port: int = 0) -> None:
        self.script: list[Reply] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.received.append(Received(self.path, json.loads(raw), time.monotonic()))
                    reply = fake.script.pop(0) if fake.script else Reply()
                if reply.drop:
                    self.close_connection = True
                    return
                body = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack()
    yield server
    server.stop()


@pytest.fixture
def outbox() -> MemoryOutbox:
    return MemoryOutbox()


def dispatcher_for(outbox: MemoryOutbox, url: str | None, **options: object) -> AlertDispatcher:
    settings: dict[str, object] = {
        "clock": SystemClock(),
        "min_interval_s": 0.0,
        "retry_base_s": 0.05,
        "connection_retry_s": 0.05,
    }
    settings.update(options)
    return AlertDispatcher(outbox, url, **settings)  # type: ignore[arg-type]


BUDGET_TEXT = budget_alert_text(spent_eur=16.02, budget_eur=20.0, forecast_eur=21.3, threshold_pct=80)


# ---------------------------------------------------------------------------------------------- delivery


async def test_delivers_and_marks_sent(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    outbox.enqueue("budget:80", BUDGET_TEXT, now=1.0)
    report = await dispatcher_for(outbox, slack.url).run_once(now=2.0)
    assert report.delivered == ("budget:80",)
    assert [r.payload for r in slack.received] == [
        {
            "text": ":rotating_light: Budget 80 % reached: 16.02 € of 20.00 € spent this month (forecast 21.30 €)"
        }
    ]
    assert slack.received[0].path == WEBHOOK_PATH
    assert outbox.rows["budget:80"].state == "sent"


async def test_429_waits_retry_after_then_delivers(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    slack.script = [Reply(429, "rate_limited", {"Retry-After": "1"})]
    outbox.enqueue("a", "first", now=0)
    started = time.monotonic()
    report = await dispatcher_for(outbox, slack.url).run_once(now=0)
    elapsed = time.monotonic() - started
    assert report.delivered == ("a",)
    assert len(slack.received) == 2
    assert 0.95 <= slack.received[1].at - slack.received[0].at < 1.8
    assert elapsed < 3


async def test_retry_after_is_capped(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    slack.script = [Reply(429, "rate_limited", {"Retry-After": "3600"})]
    outbox.enqueue("a", "first", now=0)
    started = time.monotonic()
    report = await dispatcher_for(outbox, slack.url, retry_after_cap_s=0.2).run_once(now=0)
    assert report.delivered == ("a",)
    assert time.monotonic() - started < 2


async def test_503_then_200_is_delivered(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    slack.script = [Reply(503, "service unavailable")]
    outbox.enqueue("a", "hello", now=0)
    report = await dispatcher_for(outbox, slack.url).run_once(now=0)
    assert report.delivered == ("a",)
    assert len(slack.received) == 2


async def test_dropped_connection_then_200_is_delivered(
    slack: FakeSlack, outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.script = [Reply(drop=True)]
    outbox.enqueue("a", "hello", now=0)
    report = await dispatcher_for(outbox, slack.url).run_once(now=0)
    assert report.delivered == ("a",)
    assert len(slack.received) == 2
    # slack_sdk logged its retry, which names the URL: the filter must have redacted it.
    assert REDACTED in caplog.text
    assert TOKEN not in caplog.text


async def test_404_no_service_is_a_permanent_failure(
    slack: FakeSlack, outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    slack.script = [Reply(404, "no_service")]
    outbox.enqueue("a", "hello", now=0)
    outbox.enqueue("b", "second", now=0)
    dispatcher = dispatcher_for(outbox, slack.url)
    report = await dispatcher.run_once(now=5.0)
    assert report.webhook_unusable is True
    assert report.still_pending == ("a", "b")
    assert len(slack.received) == 1  # no retry, and "b" is not even tried against a removed webhook
    row = outbox.rows["a"]
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == "HTTP 404, Slack refused the webhook: no_service"
    assert "Slack refused the alert webhook" in caplog.text
    # Later rounds do not hammer the dead webhook; the alerts stay queued for after the fix.
    later = await dispatcher.run_once(now=60.0)
    assert (later.delivered, later.still_pending) == ((), ("a", "b"))
    assert len(slack.received) == 1


async def test_400_invalid_payload_is_permanent_and_keeps_the_body(
    slack: FakeSlack, outbox: MemoryOutbox
) -> None:
    slack.script = [Reply(400, "invalid_payload")]
    outbox.enqueue("a", "hello", now=0)
    outbox.enqueue("b", "second", now=0)
    dispatcher = dispatcher_for(outbox, slack.url)
    report = await dispatcher.run_once(now=0)
    assert (report.given_up, report.delivered) == (("a",), ("b",))  # one bad message does not block the rest
    assert outbox.rows["a"].state == "failed"
    assert outbox.rows["a"].last_error == "not retried: HTTP 400, Slack refused this message: invalid_payload"
    await dispatcher.run_once(now=10)
    assert [r.payload["text"] for r in slack.received] == ["hello", "second"]


async def test_webhook_down_stays_pending_and_is_delivered_later(outbox: MemoryOutbox) -> None:
    probe = FakeSlack()
    port, url = probe.port, probe.url
    probe.stop()  # nothing listens on the port now
    clock = ManualClock(start=1000.0)
    dispatcher = dispatcher_for(outbox, url, clock=clock, retries_per_round=1, retry_base_s=10.0)
    outbox.enqueue("a", "first", now=1000.0)
    outbox.enqueue("b", "second", now=1000.0)

    down = await dispatcher.run_once(now=clock.now())
    assert down.delivered == ()
    assert down.still_pending == ("a", "b")
    assert down.retry_not_before is not None and down.retry_not_before > clock.now()
    assert down.last_error is not None and down.last_error.startswith("connection failed: URLError")
    assert {(row.state, row.attempts) for row in outbox.rows.values()} == {("failed", 2), ("queued", 0)}

    revived = FakeSlack(port=port)
    try:
        too_soon = await dispatcher.run_once(now=clock.now())
        assert too_soon.still_pending == ("a", "b")
        assert revived.received == []  # backing off: Slack is not even asked
        clock.advance(60)
        later = await dispatcher.run_once(now=clock.now())
        assert later.delivered == ("a", "b")
        assert [r.payload["text"] for r in revived.received] == ["first", "second"]
    finally:
        revived.stop()


async def test_max_attempts_gives_up_on_persistent_5xx(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    slack.script = [Reply(500, "oops")] * 5
    outbox.enqueue("a", "hello", now=0)
    clock = ManualClock(start=0)
    dispatcher = dispatcher_for(outbox, slack.url, clock=clock, max_attempts=3, retries_per_round=1)
    first = await dispatcher.run_once(now=clock.now())
    assert first.still_pending == ("a",)
    clock.set(1000)
    second = await dispatcher.run_once(now=clock.now())
    assert second.given_up == ("a",)
    assert len(slack.received) == 3
    row = outbox.rows["a"]
    assert (row.state, row.attempts) == ("failed", 3)
    assert row.last_error == "gave up after 3 attempts: HTTP 500 from Slack: oops"
    clock.set(2000)
    assert (await dispatcher.run_once(now=clock.now())).given_up == ()
    assert len(slack.received) == 3


async def test_max_attempts_counts_attempts_recorded_before_a_restart(
    slack: FakeSlack, outbox: MemoryOutbox
) -> None:
    slack.script = [Reply(500, "oops")]
    outbox.enqueue("a", "hello", now=0)
    outbox.rows["a"].attempts = 4  # four failures recorded by a previous daemon run
    report = await dispatcher_for(outbox, slack.url, max_attempts=5).run_once(now=0)
    assert report.given_up == ("a",)
    assert len(slack.received) == 1


async def test_duplicate_keys_give_one_post(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    assert outbox.enqueue("budget:80:2026-03", BUDGET_TEXT, now=0) is True
    assert outbox.enqueue("budget:80:2026-03", BUDGET_TEXT, now=1) is False
    dispatcher = dispatcher_for(outbox, slack.url)
    await dispatcher.run_once(now=2)
    await dispatcher.run_once(now=3)
    assert len(slack.received) == 1


async def test_min_interval_spaces_posts(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    for key in ("a", "b", "c"):
        outbox.enqueue(key, key, now=0)
    report = await dispatcher_for(outbox, slack.url, min_interval_s=0.3).run_once(now=0)
    assert report.delivered == ("a", "b", "c")
    gaps = [later.at - earlier.at for earlier, later in zip(slack.received, slack.received[1:], strict=False)]
    assert len(gaps) == 2
    assert all(gap >= 0.28 for gap in gaps)


async def test_run_forever_delivers_on_wake_and_stops(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    dispatcher = dispatcher_for(outbox, slack.url, poll_interval_s=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop))
    await asyncio.sleep(0.05)
    outbox.enqueue("a", "woken", now=0)
    dispatcher.wake()
    for _ in range(100):
        if slack.received:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert [r.payload["text"] for r in slack.received] == ["woken"]


async def test_slack_markup_characters_are_escaped(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    outbox.enqueue("a", "cost <5 € & rising > plan", now=0)
    await dispatcher_for(outbox, slack.url).run_once(now=0)
    assert slack.received[0].payload == {"text": "cost &lt;5 € &amp; rising &gt; plan"}


# ---------------------------------------------------------------------------------------------- secrecy


async def test_webhook_url_never_appears_in_logs_errors_or_reprs(
    slack: FakeSlack, outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.script = [Reply(drop=True), Reply(drop=True), Reply(503, "down"), Reply(404, "no_service")]
    outbox.enqueue("a", "hello", now=0)
    dispatcher = dispatcher_for(outbox, slack.url, retries_per_round=3)
    report = await dispatcher.run_once(now=0)
    assert report.webhook_unusable is True
    probe = FakeSlack()
    dead_url = probe.url
    probe.stop()
    dead = dispatcher_for(outbox, dead_url, retries_per_round=0)
    outbox.enqueue("b", "hello again", now=0)
    dead_report = await dead.run_once(now=0)
    visible = [
        caplog.text,
        repr(dispatcher),
        repr(dead),
        repr(report),
        repr(dead_report),
        *(row.last_error for row in outbox.rows.values()),
    ]
    assert dead_report.last_error
    for text in visible:
        assert TOKEN not in text
        assert WEBHOOK_PATH not in text

    with pytest.raises(AlertError) as raised:
        AlertDispatcher(outbox, f"ftp://hooks.example{WEBHOOK_PATH}")
    assert TOKEN not in str(raised.value)


def test_secret_objects_are_accepted(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    class Secret:
        def __init__(self, value: str) -> None:
            self._value = value

        def reveal(self) -> str:
            return self._value

        def __repr__(self) -> str:
            return "Secret('***')"

    assert AlertDispatcher(outbox, Secret(slack.url)).webhook_configured
    assert TOKEN not in repr(AlertDispatcher(outbox, Secret(slack.url)))


def test_redact_removes_the_url_and_its_path() -> None:
    url = f"https://hooks.slack.com{WEBHOOK_PATH}"
    assert redact(f"POST {url} failed", url) == f"POST {REDACTED} failed"
    assert TOKEN not in redact(f"urlopen error for {WEBHOOK_PATH}", url)


# ---------------------------------------------------------------------------------------------- no webhook


async def test_without_webhook_alerts_are_logged_and_marked_sent(
    outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog.alerts")
    outbox.enqueue("budget:80", BUDGET_TEXT, now=0)
    report = await AlertDispatcher(outbox, None, clock=ManualClock()).run_once(now=7.0)
    assert report.logged == ("budget:80",)
    row = outbox.rows["budget:80"]
    assert (row.state, row.sent_at) == ("sent", 7.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "watchdog.alerts"]
    assert [r.getMessage() for r in warnings] == [f"Alert (no Slack webhook configured): {BUDGET_TEXT}"]


# ---------------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("status", "body", "headers", "result", "retry_after"),
    [
        (200, "ok", {}, "delivered", None),
        (429, "rate_limited", {"retry-after": "7"}, "retry", 7.0),
        (429, "rate_limited", {}, "retry", None),
        (502, "bad gateway", {}, "retry", None),
        (400, "invalid_payload", {}, "rejected", None),
        (404, "no_service", {}, "webhook_unusable", None),
        (410, "channel_is_archived", {}, "webhook_unusable", None),
        (403, "action_prohibited", {}, "webhook_unusable", None),
    ],
)
def test_classify_response(
    status: int, body: str, headers: dict[str, str], result: str, retry_after: float | None
) -> None:
    outcome = classify_response(status, body, headers)
    assert (outcome.result, outcome.retry_after_s) == (result, retry_after)


def test_budget_text() -> None:
    assert budget_alert_text(spent_eur=10, budget_eur=20, forecast_eur=19.5, threshold_pct=50) == (
        ":warning: Budget 50 % reached: 10.00 € of 20.00 € spent this month (forecast 19.50 €)"
    )
