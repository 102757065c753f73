"""Logging to stderr that journald understands and that never carries a secret.

Under systemd (JOURNAL_STREAM is set) each line starts with a ``<N>`` syslog priority so journalctl can
filter by level, and no timestamp (journald adds its own). Elsewhere lines carry an ISO timestamp.
``SecretRedactor`` replaces every registered secret value wherever it appears in a record, as the last
line of defence behind code that never formats secrets in the first place.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


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
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message or record.exc_info:
            record.msg, record.args = redacted, None
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                for secret in self._secrets:
                    text = text.replace(secret, "***")
                record.exc_text, record.exc_info = text, None
        return True


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{super().format(record)}"


def setup_logging(level: str = "INFO", redactor: SecretRedactor | None = None) -> SecretRedactor:
    """Configure the root logger once; returns the redactor so secrets loaded later can be added."""
    redactor = redactor or SecretRedactor()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
