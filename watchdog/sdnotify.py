"""systemd's notify protocol (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1) without a dependency.

The protocol is one datagram on the AF_UNIX socket named by $NOTIFY_SOCKET (a leading '@' means the
abstract namespace). Outside systemd the variable is unset and every call is a cheap no-op, so the daemon
code never has to ask whether it runs under systemd.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self._address = address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s: float | None = int(usec) / 2_000_000 if watchdog_for_us else None
        """Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends; None when no watchdog is set."""

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``notify(READY=1, STATUS="polling")``. Never raises."""
        if self._address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                # Never block the event loop: a reader that stopped reading fills the datagram queue
                # (about ten messages), and a blocking send would then freeze the daemon. Drop instead.
                sock.send(message, socket.MSG_DONTWAIT)
        except OSError:  # includes BlockingIOError (queue full) and a vanished socket
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)
