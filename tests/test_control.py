"""The control socket over a real Unix socket: status for the TUI, commands to the daemon, clear errors."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest

from watchdog.control import ControlClient, ControlError, ControlServer
from watchdog.status import DaemonStatus, StatusRef


def _status() -> DaemonStatus:
    return DaemonStatus(
        started_at=1.0,
        last_tick_at=2.0,
        last_tick_ok=True,
        last_tick_duration_s=0.1,
        tick_interval_s=5.0,
        blind=False,
        blind_reason="",
        mode="enforce",
        budget=None,
    )


async def test_status_and_commands_round_trip(tmp_path: Path) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    async def on_command(kind: str, args: dict[str, Any]) -> dict[str, Any]:
        received.append((kind, args))
        if args.get("endpoint_id") == "nope":
            raise LookupError("no endpoint 'nope'")
        return {"queued": True}

    path = tmp_path / "run" / "control.sock"
    server = ControlServer(path, StatusRef(_status()), on_command)
    await server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        client = ControlClient(path)
        status = await asyncio.to_thread(client.status)
        assert status == _status()
        result = await asyncio.to_thread(client.command, "pause", endpoint_id="ep-1")
        assert result == {"queued": True}
        assert received == [("pause", {"endpoint_id": "ep-1"})]
        with pytest.raises(ControlError, match="no endpoint 'nope'"):
            await asyncio.to_thread(client.command, "pause", endpoint_id="nope")
        with pytest.raises(ControlError, match="unknown command 'reboot'"):
            await asyncio.to_thread(client.command, "reboot")
    finally:
        await server.close()
    assert not path.exists()


def test_client_says_the_daemon_is_down(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="not running"):
        ControlClient(tmp_path / "absent.sock").status()
