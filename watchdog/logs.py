"""Logging to stderr that journald understands, that never carries a secret, and that a flood cannot fill.

Under systemd (JOURNAL_STREAM is set) each line starts with a ``<N>`` syslog priority so journalctl can
filter by level, and no timestamp (journald adds its own). Elsewhere lines carry an ISO timestamp.
``SecretRedactor`` replaces every registered secret value wherever it appears in a record, as the last
line of defence behind code that never formats secrets in the first place.
``RepeatLimiter`` lets the first record of each (logger, message template) through, holds back its
repeats for a window (60 s) and then logs one "... (repeated N times in the last 60 s)" line: a failure
that recurs every few milliseconds (accept() out of descriptors, RunPod down, a hostile client) costs a
few lines a minute instead of megabytes of journal. No first occurrence is ever dropped, and the first
few distinct texts of one template (a config reload's problems) all pass.

This module touches only the root logger's handler list and stderr (plus a timer thread that writes the
pending summaries at the end of their window).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def _message(record: logging.LogRecord) -> tuple[str, bool]:
    """The record's text and whether it formatted; a call whose arguments do not fit its template still
    gives text (template and arguments side by side) instead of raising into the code that logged."""
    try:
        return record.getMessage(), True
    except Exception:  # TypeError, ValueError, KeyError... from `msg % args`, or a failing __str__
        try:
            return f"{record.msg} (arguments not formatted: {record.args!r})", False
        except Exception:
            return "(a log record that cannot be formatted)", False


class SecretRedactor(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message, formatted = _message(record)
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message or record.exc_info or not formatted:
            record.msg, record.args = redacted, None
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                for secret in self._secrets:
                    text = text.replace(secret, "***")
                record.exc_text, record.exc_info = text, None
        return True


@dataclass
class _Window:
    started: float
    passed: set[str]
    """The distinct texts of this template let through in the window."""
    repeats: int = 0
    last: logging.LogRecord | None = None


class RepeatLimiter(logging.Filter):
    """Rate-limits repeated log lines per (logger name, message template), on a handler.

    The first record of a key passes and opens a ``window_s`` window. Inside it, a record whose text was
    already logged is a repeat: counted and dropped. So are records beyond the first ``distinct_texts``
    distinct texts of the template (a flood whose arguments vary, a descriptor number or a counter, is
    bounded too), while a short list such as a config reload's problems still passes whole. When the
    window ends (a timer thread, the next record logged after it, or ``flush``) one summary line goes out:
    the last repeat's text with "(repeated N times in the last 60 s)", at its level, without its
    traceback. The next record of that key then opens a new window.

    The summary is handed to the same handler, so its other filters (``SecretRedactor``) still apply.
    At most ``max_keys`` keys are tracked; a record beyond that passes untracked rather than be dropped.
    A record logged with ``extra={"repeat_limit": False}`` always passes and is not counted (for lines
    that are themselves a delivery channel, such as alerts logged when no Slack webhook is configured).
    """

    SUMMARY_ATTRIBUTE = "repeat_summary"
    EXEMPT_ATTRIBUTE = "repeat_limit"

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        distinct_texts: int = 10,
        clock: Callable[[], float] = time.monotonic,
        timer: bool = True,
        max_keys: int = 1024,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.distinct_texts = distinct_texts
        self._clock = clock
        self._use_timer = timer
        self._max_keys = max_keys
        self._windows: dict[tuple[str, str], _Window] = {}
        """Open windows, oldest first (a key is inserted when it opens and removed when it closes)."""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._handler: logging.Handler | None = None

    def attach(self, handler: logging.Handler) -> None:
        """Filter ``handler``'s records and write summaries through it."""
        self._handler = handler
        handler.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            getattr(record, self.SUMMARY_ATTRIBUTE, False)
            or getattr(record, self.EXEMPT_ATTRIBUTE, True) is False
        ):
            return True
        key = (record.name, str(record.msg))
        text = _message(record)[0]
        now = self._clock()
        with self._lock:
            due = self._close_windows(lambda window: now - window.started >= self.window_s)
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) < self._max_keys:
                    self._windows[key] = _Window(started=now, passed={text})
                passed = True
            elif text not in window.passed and len(window.passed) < self.distinct_texts:
                window.passed.add(text)
                passed = True
            else:
                window.repeats += 1
                window.last = record
                passed = False
                self._arm_timer(now)
        self._write(due)
        return passed

    def flush(self) -> None:
        """Write the summaries of every window holding repeats now (at exit, for instance)."""
        now = self._clock()
        with self._lock:
            due = self._close_windows(lambda window: True)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._write(due, now=now)

    def _close_windows(self, ended: Callable[[_Window], bool]) -> list[tuple[_Window, float]]:
        """Remove the windows that ended (oldest first, so stop at the first open one); their summaries."""
        due: list[tuple[_Window, float]] = []
        while self._windows:
            key = next(iter(self._windows))
            window = self._windows[key]
            if not ended(window):
                break
            del self._windows[key]
            if window.repeats:
                due.append((window, window.started))
        return due

    def _arm_timer(self, now: float) -> None:
        if not self._use_timer or self._timer is not None:
            return
        pending = [w.started for w in self._windows.values() if w.repeats]
        if not pending:
            return
        delay = max(0.0, min(pending) + self.window_s - now)
        self._timer = threading.Timer(delay, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        now = self._clock()
        with self._lock:
            self._timer = None
            due = self._close_windows(lambda window: now - window.started >= self.window_s)
            self._arm_timer(now)
        self._write(due)

    def _write(self, due: list[tuple[_Window, float]], now: float | None = None) -> None:
        for window, started in due:
            last = window.last
            assert last is not None
            text = _message(last)[0]
            span = self.window_s if now is None else min(self.window_s, max(1.0, now - started))
            summary = logging.LogRecord(
                last.name,
                last.levelno,
                last.pathname,
                last.lineno,
                f"{text} (repeated {window.repeats} times in the last {_seconds(span)} s)",
                None,
                None,
                last.funcName,
            )
            setattr(summary, self.SUMMARY_ATTRIBUTE, True)
            if self._handler is not None:
                self._handler.handle(summary)
            else:
                logging.getLogger(last.name).handle(summary)


def _seconds(span: float) -> str:
    return f"{span:.0f}" if span >= 1 else f"{span:.1g}"


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{super().format(record)}"


def setup_logging(
    level: str = "INFO", redactor: SecretRedactor | None = None, *, repeat_window_s: float = 60.0
) -> SecretRedactor:
    """Configure the root logger once; returns the redactor so secrets loaded later can be added.

    Repeats of a (logger, message template) within ``repeat_window_s`` are folded into one summary line
    (``RepeatLimiter``); the limiter runs before the redactor, so it keys on the template and its summaries
    are redacted like any other line.
    """
    redactor = redactor or SecretRedactor()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    limiter = RepeatLimiter(repeat_window_s)
    limiter.attach(handler)
    handler.addFilter(redactor)
    atexit.register(limiter.flush)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
