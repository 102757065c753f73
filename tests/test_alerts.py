"""AlertDispatcher against a real loopback HTTP server playing Slack's incoming webhook, with scripted answers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from watchdog.alerts import (
    REDACTED,
    SLACK_TEXT_LIMIT,
    AlertDispatcher,
    DeliveryHealth,
    PendingAlert,
    budget_alert_text,
    classify_response,
    redact,
    slack_text,
)
from watchdog.clock import ManualClock, SystemClock
from watchdog.errors import AlertError, LedgerError
from watchdog.ledger import AlertRow, Ledger

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
        self.max_text: int | None = None
        """Like Slack with a payload limit: a longer ``text`` gets 400 ``msg_too_long`` (script untouched)."""
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                payload = json.loads(raw)
                with fake._lock:
                    fake.received.append(Received(self.path, payload, time.monotonic()))
                    if fake.max_text is not None and len(payload.get("text", "")) > fake.max_text:
                        reply = Reply(400, "msg_too_long")
                    else:
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
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
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


class FlakyLedger(Ledger):
    """The real SQLite ledger with a fault switch: the next N calls of a method raise LedgerError first, as
    a full disk or a read-only file makes the real one do. Everything else is the real ledger."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.faults: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.fault_message = "updating an alert failed in ledger.sqlite3: database or disk is full"

    def _maybe_fail(self, method: str) -> None:
        self.calls[method] += 1
        if self.faults[method] > 0:
            self.faults[method] -= 1
            raise LedgerError(self.fault_message)

    def pending_alerts(self, limit: int = 20) -> list[AlertRow]:
        self._maybe_fail("pending_alerts")
        return super().pending_alerts(limit)

    def mark_alert_sent(self, key: str, now: float) -> None:
        self._maybe_fail("mark_alert_sent")
        super().mark_alert_sent(key, now)

    def mark_alert_failed(self, key: str, now: float, error: str) -> None:
        self._maybe_fail("mark_alert_failed")
        super().mark_alert_failed(key, now, error)

    def enqueue(self, key: str, text: str, now: float) -> bool:
        return self.enqueue_alert(key, "blind", "critical", text, None, now)

    def row(self, key: str) -> AlertRow:
        return next(row for row in self.recent_alerts(1000) if row.key == key)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[FlakyLedger]:
    with FlakyLedger.open(tmp_path / "ledger.sqlite3") as opened:
        assert isinstance(opened, FlakyLedger)
        yield opened


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


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


async def test_404_no_service_marks_the_webhook_dead(
    slack: FakeSlack, outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    slack.script = [Reply(404, "no_service")]
    outbox.enqueue("a", "hello", now=0)
    outbox.enqueue("b", "second", now=0)
    clock = ManualClock(start=5.0)
    dispatcher = dispatcher_for(outbox, slack.url, clock=clock)
    report = await dispatcher.run_once(now=5.0)
    assert report.webhook_unusable is True
    assert report.still_pending == ("a", "b")
    assert len(slack.received) == 1  # no retry, and "b" is not even tried against a removed webhook
    row = outbox.rows["a"]
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == "HTTP 404, Slack refused the webhook: no_service"
    assert "Slack refused the alert webhook" in caplog.text
    assert report.retry_not_before == 65.0  # re-probed after dead_probe_base_s (60 s)
    # Rounds before the probe do not hammer the dead webhook; the alerts stay queued.
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
        (403, "invalid_token", {}, "webhook_unusable", None),
        (401, "", {}, "webhook_unusable", None),
        (408, "request timeout", {}, "retry", None),
        (425, "too early", {}, "retry", None),
        (503, "down", {"Retry-After": "2"}, "retry", 2.0),
        (400, "no_text", {}, "rejected", None),
        (400, "msg_too_long", {}, "rejected", None),
        (413, "payload too large", {}, "rejected", None),
        (400, "channel_not_found", {}, "webhook_unusable", None),
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


# ---------------------------------------------------------------------------------------------- robustness
# Each of these reproduces a failure of the dispatcher before the robustness work (see the issue).


async def test_a_single_408_is_retried_and_later_alerts_still_go_out(
    slack: FakeSlack, outbox: MemoryOutbox
) -> None:
    slack.script = [Reply(408, "request timeout")]
    outbox.enqueue("a", "first", now=0)
    dispatcher = dispatcher_for(outbox, slack.url)
    assert (await dispatcher.run_once(now=0)).delivered == ("a",)
    outbox.enqueue("b", "second", now=1)
    assert (await dispatcher.run_once(now=1)).delivered == ("b",)
    assert [r.payload["text"] for r in slack.received] == ["first", "first", "second"]
    assert dispatcher.health() == DeliveryHealth(0, "ok", None, 0)


async def test_a_single_403_is_re_probed_and_delivery_resumes(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    slack.script = [Reply(403, "invalid_token")]
    outbox.enqueue("a", "first", now=1000)
    clock = ManualClock(start=1000.0)
    dispatcher = dispatcher_for(outbox, slack.url, clock=clock)

    refused = await dispatcher.run_once(now=clock.now())
    assert (refused.still_pending, refused.webhook_unusable, refused.retry_not_before) == (
        ("a",),
        True,
        1060.0,
    )
    health = dispatcher.health()
    assert (health.webhook, health.undelivered) == ("dead", 1)
    assert health.last_error == "HTTP 403, Slack refused the webhook: invalid_token"

    clock.advance(59)
    assert (await dispatcher.run_once(now=clock.now())).still_pending == ("a",)
    assert len(slack.received) == 1  # not before the probe is due
    clock.advance(1)
    assert (await dispatcher.run_once(now=clock.now())).delivered == ("a",)
    assert dispatcher.health() == DeliveryHealth(0, "ok", None, 0)
    outbox.enqueue("b", "second", now=clock.now())
    assert (await dispatcher.run_once(now=clock.now())).delivered == ("b",)
    assert [r.payload["text"] for r in slack.received] == ["first", "first", "second"]


async def test_a_webhook_answering_404_for_a_while_is_re_probed_with_backoff_until_it_recovers(
    slack: FakeSlack, outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    slack.script = [Reply(404, "no_service")] * 3
    outbox.enqueue("a", "first", now=1000)
    outbox.enqueue("b", "second", now=1000)
    clock = ManualClock(start=1000.0)
    dispatcher = dispatcher_for(outbox, slack.url, clock=clock, dead_probe_max_s=150.0)

    probes = []
    for _ in range(3):
        report = await dispatcher.run_once(now=clock.now())
        assert (report.delivered, report.still_pending) == ((), ("a", "b"))
        assert report.retry_not_before is not None
        probes.append(report.retry_not_before - clock.now())
        assert dispatcher.health() == DeliveryHealth(
            2, "dead", "HTTP 404, Slack refused the webhook: no_service", 0
        )
        clock.advance(report.retry_not_before - clock.now() - 1)
        assert (await dispatcher.run_once(now=clock.now())).still_pending == ("a", "b")  # not yet
        clock.advance(1)
    assert probes == [60.0, 120.0, 150.0]  # doubling from a minute, capped

    recovered = await dispatcher.run_once(now=clock.now())
    assert recovered.delivered == ("a", "b")
    assert dispatcher.health() == DeliveryHealth(0, "ok", None, 0)
    # one post per probe (always the oldest alert), then the queue; nothing lost, nothing twice after a 200
    assert [r.payload["text"] for r in slack.received] == ["first"] * 4 + ["second"]
    assert {(row.state, row.attempts) for row in outbox.rows.values()} == {("sent", 4), ("sent", 1)}
    refusals = [r for r in caplog.records if "refuse" in r.getMessage() and r.levelno >= logging.ERROR]
    assert len(refusals) == 1  # one ERROR when it died, not one per probe
    assert "accepts the alert webhook again" in caplog.text


async def test_an_alert_slack_accepted_is_never_resent_while_the_ledger_cannot_record_it(
    slack: FakeSlack, ledger: FlakyLedger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchdog.alerts")
    ledger.faults["mark_alert_sent"] = 3  # a full disk: "sent" cannot be written three times in a row
    ledger.enqueue("blind", "The watchdog is blind", now=1000.0)
    clock = ManualClock(start=1000.0)
    dispatcher = dispatcher_for(ledger, slack.url, clock=clock)  # type: ignore[arg-type]

    first = await dispatcher.run_once(now=clock.now())
    assert (first.delivered, first.not_recorded) == (("blind",), ("blind",))
    assert first.ledger_error is not None and "database or disk is full" in first.ledger_error
    assert [row.key for row in ledger.pending_alerts()] == ["blind"]  # the ledger still thinks it pending
    health = dispatcher.health()
    assert (health.undelivered, health.delivered_not_recorded, health.webhook) == (0, 1, "ok")
    assert health.last_error is not None and "database or disk is full" in health.last_error

    clock.advance(5)
    ledger.enqueue("second", "Another alert meanwhile", now=clock.now())
    second = await dispatcher.run_once(now=clock.now())  # recording "blind" fails again; "second" goes out
    assert (second.delivered, second.not_recorded) == (("second",), ("second",))
    assert dispatcher.health().delivered_not_recorded == 2

    clock.advance(5)
    third = await dispatcher.run_once(now=clock.now())  # the ledger works again: both are recorded
    assert (third.delivered, third.not_recorded, third.ledger_error) == ((), (), None)
    assert ledger.calls["mark_alert_sent"] == 5
    assert [r.payload["text"] for r in slack.received] == ["The watchdog is blind", "Another alert meanwhile"]
    assert (ledger.row("blind").state, ledger.row("blind").sent_at) == ("sent", 1000.0)  # when Slack took it
    assert (ledger.row("second").state, ledger.row("second").sent_at) == ("sent", 1005.0)
    assert ledger.pending_alerts() == []
    assert dispatcher.health() == DeliveryHealth(0, "ok", None, 0)
    assert (
        len([r for r in caplog.records if "disk is full" in r.getMessage() and r.levelno >= logging.ERROR])
        == 1
    )
    assert "Alert outbox (ledger) works again" in caplog.text


async def test_run_forever_posts_once_when_the_ledger_refuses_to_record_it(
    slack: FakeSlack, ledger: FlakyLedger
) -> None:
    """The issue's reproduction: a read-only ledger once turned the blind alert into one post per round."""
    ledger.faults["mark_alert_sent"] = 8
    ledger.enqueue("blind", "The watchdog is blind", now=time.time())
    dispatcher = dispatcher_for(ledger, slack.url, poll_interval_s=0.02)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop))
    try:
        await eventually(lambda: ledger.row("blind").state == "sent")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert len(slack.received) == 1
    assert ledger.row("blind").state == "sent"
    assert dispatcher.health().delivered_not_recorded == 0


async def test_pending_alerts_failing_is_retried_with_backoff_and_reported(
    slack: FakeSlack, ledger: FlakyLedger
) -> None:
    ledger.faults["pending_alerts"] = 2
    ledger.enqueue("a", "hello", now=0.0)
    clock = ManualClock(start=0.0)
    dispatcher = dispatcher_for(ledger, slack.url, clock=clock, retry_base_s=1.0)  # type: ignore[arg-type]

    failed = await dispatcher.run_once(now=0.0)  # must not raise
    assert failed.ledger_error == (
        "reading the pending alerts: LedgerError: updating an alert failed in ledger.sqlite3: database or disk is full"
    )
    assert dispatcher.health().last_error == failed.ledger_error
    assert (await dispatcher.run_once(now=0.5)).ledger_error == failed.ledger_error  # backing off: not asked
    assert ledger.calls["pending_alerts"] == 1
    await dispatcher.run_once(now=1.0)  # fails again: the wait doubles to 2 s
    assert (await dispatcher.run_once(now=2.9)).delivered == ()
    assert ledger.calls["pending_alerts"] == 2
    recovered = await dispatcher.run_once(now=3.0)
    assert (recovered.delivered, recovered.ledger_error) == (("a",), None)
    assert dispatcher.health() == DeliveryHealth(0, "ok", None, 0)
    assert len(slack.received) == 1


async def test_run_forever_survives_pending_alerts_failing_and_logs_the_problem_once(
    slack: FakeSlack, ledger: FlakyLedger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchdog.alerts")
    ledger.fault_message = "reading the ledger failed: disk I/O error " + "x" * 5000
    ledger.faults["pending_alerts"] = 5
    ledger.enqueue("a", "hello", now=time.time())
    dispatcher = dispatcher_for(ledger, slack.url, poll_interval_s=0.01, retry_base_s=0.01)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop))
    try:
        await eventually(lambda: ledger.calls["pending_alerts"] >= 3)
        assert not task.done()
        await eventually(lambda: ledger.row("a").state == "sent")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert ledger.calls["pending_alerts"] >= 6
    assert [r.payload["text"] for r in slack.received] == ["hello"]
    problems = [r.getMessage() for r in caplog.records if "disk I/O error" in r.getMessage()]
    assert len(problems) == 1  # once per problem, not once per round
    assert len(problems[0]) < 500  # bounded, not 5,000 characters
    assert "Alert outbox (ledger) works again" in caplog.text


async def test_without_webhook_a_logged_alert_is_not_logged_again_while_the_ledger_cannot_record_it(
    ledger: FlakyLedger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog.alerts")
    ledger.faults["mark_alert_sent"] = 2
    ledger.enqueue("a", "budget 80 %", now=0.0)
    dispatcher = AlertDispatcher(ledger, None, clock=ManualClock())
    assert (await dispatcher.run_once(now=1.0)).not_recorded == ("a",)
    assert dispatcher.health() == DeliveryHealth(0, "absent", dispatcher.health().last_error, 1)
    await dispatcher.run_once(now=2.0)
    await dispatcher.run_once(now=3.0)
    assert (ledger.row("a").state, ledger.row("a").sent_at) == ("sent", 1.0)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "Alert (no Slack webhook configured): budget 80 %"
    ]
    assert dispatcher.health() == DeliveryHealth(0, "absent", None, 0)


async def test_an_over_long_text_is_cut_not_dropped(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    slack.max_text = 40_000  # Slack's hard limit
    text = "Suspicious traffic: " + "ping " * 12_000  # 60,020 characters
    outbox.enqueue("a", text, now=0)
    report = await dispatcher_for(outbox, slack.url).run_once(now=0)
    assert (report.delivered, report.given_up) == (("a",), ())
    sent = slack.received[0].payload["text"]
    assert len(slack.received) == 1
    assert len(sent) <= SLACK_TEXT_LIMIT
    assert sent.startswith("Suspicious traffic: ping ping")
    assert sent.endswith("… [cut: 60,020 characters in all]")


async def test_a_long_text_slack_still_refuses_is_tried_once_shorter(
    slack: FakeSlack, outbox: MemoryOutbox
) -> None:
    slack.max_text = 2000  # stricter than we assumed
    outbox.enqueue("a", "x" * 3000, now=0)
    outbox.enqueue("b", "short", now=0)
    report = await dispatcher_for(outbox, slack.url).run_once(now=0)
    assert report.delivered == ("a", "b")
    assert [len(r.payload["text"]) for r in slack.received] == [3000, 1000, 5]
    assert outbox.rows["a"].state == "sent"


def test_slack_text_never_splits_an_escape() -> None:
    assert slack_text("a < b", 100) == "a &lt; b"
    mark = " … [cut: 3,000 characters in all]"
    for pad in range(5):
        cut = slack_text("y" * pad + "&" * (3000 - pad), 200)
        assert len(cut) <= 200
        body = cut.removesuffix(mark)
        assert body != cut
        assert body.removeprefix("y" * pad).replace("&amp;", "") == ""  # whole escapes only


async def test_health_in_each_state(slack: FakeSlack, outbox: MemoryOutbox) -> None:
    assert AlertDispatcher(outbox, None).health() == DeliveryHealth(0, "absent", None, 0)
    clock = ManualClock(start=0.0)
    dispatcher = dispatcher_for(outbox, slack.url, clock=clock, retries_per_round=0)
    assert dispatcher.health() == DeliveryHealth(0, "ok", None, 0)
    with pytest.raises(FrozenInstanceError):
        dispatcher.health().undelivered = 5  # type: ignore[misc]

    slack.script = [Reply(503, "down"), Reply(400, "invalid_payload"), Reply(410, "channel_is_archived")]
    outbox.enqueue("a", "first", now=0)
    outbox.enqueue("b", "second", now=0)
    await dispatcher.run_once(now=clock.now())  # 503: retrying
    assert dispatcher.health() == DeliveryHealth(2, "retrying", "HTTP 503 from Slack: down", 0)
    clock.advance(10)
    await dispatcher.run_once(now=clock.now())  # "a" refused as a message (given up), then 410 on "b"
    assert dispatcher.health() == DeliveryHealth(
        2, "dead", "HTTP 410, Slack refused the webhook: channel_is_archived", 0
    )
    clock.advance(60)
    await dispatcher.run_once(now=clock.now())  # "b" goes out; "a" stays undelivered, and says why
    health = await asyncio.to_thread(dispatcher.health)  # readable from another thread
    assert health == DeliveryHealth(
        1, "ok", "not retried: HTTP 400, Slack refused this message: invalid_payload", 0
    )
    assert outbox.rows["a"].state == "failed"


async def test_an_alert_about_the_ledger_goes_out_while_the_ledger_refuses_everything(
    slack: FakeSlack, ledger: FlakyLedger
) -> None:
    """The "ledger failing" alert cannot wait in the ledger it is about: it is held in memory, delivered
    once, before the ledger's queue, and counted as undelivered until Slack takes it."""
    ledger.faults["pending_alerts"] = 100
    dispatcher = dispatcher_for(ledger, slack.url)  # type: ignore[arg-type]
    dispatcher.raise_without_ledger("ledger-failing:1", "the ledger refuses writes")
    dispatcher.raise_without_ledger("ledger-failing:1", "the same alert, raised again")
    assert dispatcher.health().undelivered == 1
    report = await dispatcher.run_once(now=2.0)
    assert report.delivered == ("ledger-failing:1",)
    assert [r.payload["text"] for r in slack.received] == ["the ledger refuses writes"]
    assert dispatcher.health().undelivered == 0
    await dispatcher.run_once(now=3.0)
    dispatcher.raise_without_ledger("ledger-failing:1", "never twice")
    await dispatcher.run_once(now=4.0)
    assert len(slack.received) == 1
    assert ledger.recent_alerts() == []  # nothing was written to the ledger
