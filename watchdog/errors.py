"""One exception tree for the whole product, so callers can catch exactly what they can handle.

::

    WatchdogError                 anything this product raises on purpose
    ├── ConfigError               the configuration file or environment is wrong (exit code 2)
    ├── RunPodError               talking to RunPod failed
    │   ├── RunPodAuthError       401/403: the API key is wrong; fatal, never retried
    │   ├── RunPodUnavailable     connect errors, timeouts, 5xx and 429 after the retries ran out
    │   │   └── RunPodDeadlineReached   (client.py) the call's deadline came before an answer
    │   ├── RunPodNotFound        404 on a resource (endpoint, job)
    │   ├── RunPodRejected        4xx other than the above (e.g. 422 validation of a PATCH)
    │   │   └── InvalidIdentifier       (client.py) an id that cannot go in a URL; nothing was sent
    │   └── RunPodProtocolError   a body that does not match what the route documents
    ├── LedgerError               the SQLite ledger is unusable (locked by another instance, corrupt)
    └── AlertError                an alert could not be delivered (it stays queued in the ledger)

Messages never contain secrets: the API key and the Slack webhook URL are redacted before they get here.
"""

from __future__ import annotations


class WatchdogError(Exception):
    """Base class; ``title`` is a short headline for logs and the TUI."""

    title = "Watchdog error"


class ConfigError(WatchdogError):
    """The configuration is invalid. ``problems`` holds one ``FILE:LINE: key: message`` line each."""

    title = "Invalid configuration"

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RunPodError(WatchdogError):
    """A call to RunPod failed. ``route`` names the call (e.g. ``GET /v2/serverless``)."""

    title = "RunPod API error"

    def __init__(self, message: str, *, route: str = "", status: int | None = None) -> None:
        self.route = route
        self.status = status
        prefix = f"{route}: " if route else ""
        super().__init__(f"{prefix}{message}")


class RunPodAuthError(RunPodError):
    title = "RunPod rejected the API key"


class RunPodUnavailable(RunPodError):
    title = "RunPod unavailable"


class RunPodNotFound(RunPodError):
    title = "Not found on RunPod"


class RunPodRejected(RunPodError):
    title = "RunPod rejected the request"


class RunPodProtocolError(RunPodError):
    """The answer did not have the documented shape; ``field`` names the offending field."""

    title = "Unexpected answer from RunPod"

    def __init__(self, message: str, *, route: str = "", field: str = "", status: int | None = None) -> None:
        self.field = field
        where = f"field {field!r}: " if field else ""
        super().__init__(f"{where}{message}", route=route, status=status)


class LedgerError(WatchdogError):
    title = "Ledger unusable"


class AlertError(WatchdogError):
    title = "Alert not delivered"
