"""sd_notify over a real datagram socket, including a receiver that stopped reading."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from watchdog.sdnotify import SystemdNotifier


def test_messages_reach_the_socket_and_watchdog_interval_is_half(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_interval_s == 2.0
        assert notifier.ready("polling")
        assert notifier.watchdog()
        assert receiver.recv(1024) == b"READY=1\nSTATUS=polling"
        assert receiver.recv(1024) == b"WATCHDOG=1"


def test_a_full_queue_never_blocks(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))  # never reads
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
        started = time.monotonic()
        results = [notifier.status(f"tick {i}") for i in range(500)]
        assert time.monotonic() - started < 2.0
        assert results[0] and not all(results)


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled and notifier.watchdog_interval_s is None
    assert not notifier.ready("x")


def test_watchdog_for_another_pid_is_ignored() -> None:
    notifier = SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog_interval_s is None
