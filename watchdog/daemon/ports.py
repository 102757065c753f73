"""What a tick talks to: RunPod, the ledger, the log files, the published status, the alert dispatcher and
the clock, handed to :func:`watchdog.daemon.tick.run_tick` as one :class:`Ports` value.

Tests build it from the simulator's in-process app and a ``ManualClock``; the service builds it from the
configuration. The client is typed by what the daemon uses of it (:class:`RunPodPort`), so any object with
those coroutines will do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from watchdog.alerts import DeliveryHealth
from watchdog.clock import Clock
from watchdog.daemon.commands import CommandClient
from watchdog.daemon.fetch import RunPodReads
from watchdog.ledger import Ledger
from watchdog.logwatch import LogTailer
from watchdog.status import StatusRef
from watchdog.traffic import DenyList


class RunPodPort(RunPodReads, CommandClient, Protocol):
    """Everything the daemon reads from and does to RunPod."""


def _nothing() -> None:
    return None


def _log_alert(key: str, text: str) -> None:
    logging.getLogger("watchdog.alerts").error("Alert %s: %s", key, text)


def _no_delivery() -> DeliveryHealth | None:
    return None


@dataclass
class Ports:
    client: RunPodPort
    ledger: Ledger
    clock: Clock
    tailers: list[LogTailer] = field(default_factory=list)
    status: StatusRef = field(default_factory=StatusRef)
    deny_list: DenyList | None = None
    """The gateway's deny list (``pings.deny_list_path``), when configured."""
    wake_alerts: Callable[[], None] = _nothing
    """Tells the alert dispatcher that the ledger holds new alerts."""
    alert_without_ledger: Callable[[str, str], None] = _log_alert
    """Raises an alert the ledger cannot hold (it is about the ledger failing): key, text."""
    delivery: Callable[[], DeliveryHealth | None] = _no_delivery
    """How alert delivery stands (None: no dispatcher, e.g. a test driving ticks by hand)."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the daemon is told to stop: a tick reading RunPod abandons the read at once."""
    acting: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while decisions are executed and recorded: a deadline check acts while a tick is still
    reading RunPod, never while it acts."""
