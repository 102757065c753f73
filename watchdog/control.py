"""The daemon's control socket: how the TUI (and a sysadmin's scripts) read live state and ask for actions.

A Unix stream socket carrying one JSON object per line, request then response. Access is the socket
file's permissions: owner and group (the service's group, mode 0660), so "who may pause an endpoint" is
"who is in the runpod-watchdog group", which sysadmins already know how to manage. The TUI never talks to
RunPod: it asks the daemon, which applies the action, records it in the ledger and verifies it.

Requests:  {"op": "status"}
           {"op": "command", "kind": "pause" | "restore" | "cancel_job" | "set_rule_mode" | "ack_alert",
            "args": {...}}
Responses: {"ok": true, "status": {...}} | {"ok": true, "result": {...}} | {"ok": false, "error": "..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from watchdog.status import DaemonStatus, StatusRef

log = logging.getLogger(__name__)

COMMAND_KINDS = ("pause", "restore", "cancel_job", "set_rule_mode", "ack_alert")
MAX_REQUEST_BYTES = 64 * 1024

CommandHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    def __init__(
        self, path: str | Path, status: StatusRef, on_command: CommandHandler, mode: int = 0o660
    ) -> None:
        self.path = Path(path)
        self._status = status
        self._on_command = on_command
        self._mode = mode
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            # A stale socket from a killed daemon; the ledger lock already keeps a live one safe.
            self.path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
        )
        os.chmod(self.path, self._mode)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                response = await self._answer(line)
                writer.write(json.dumps(response, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"request is not JSON: {exc.msg}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "request must be a JSON object"}
        op = request.get("op")
        if op == "status":
            status = self._status.get()
            return {"ok": True, "status": status.to_dict() if status else None}
        if op == "command":
            kind, args = request.get("kind"), request.get("args", {})
            if kind not in COMMAND_KINDS:
                return {
                    "ok": False,
                    "error": f"unknown command {kind!r}; expected one of {', '.join(COMMAND_KINDS)}",
                }
            if not isinstance(args, dict):
                return {"ok": False, "error": "args must be a JSON object"}
            try:
                return {"ok": True, "result": await self._on_command(kind, args)}
            except (ValueError, KeyError, LookupError) as exc:
                return {"ok": False, "error": str(exc)}
            except Exception as exc:  # the daemon must outlive a bad command; say what happened
                log.exception("control command %s failed", kind)
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": False, "error": f"unknown op {op!r}; expected 'status' or 'command'"}


class ControlError(Exception):
    """The daemon could not be reached or refused the request."""


class ControlClient:
    """Blocking client (the TUI calls it from a worker thread); a short timeout so a stuck daemon never
    freezes the dashboard."""

    def __init__(self, path: str | Path, timeout_s: float = 2.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    def _request(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                sock.sendall(json.dumps(payload).encode() + b"\n")
                buffer = b""
                while not buffer.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buffer += chunk
        except FileNotFoundError as exc:
            raise ControlError(f"the daemon is not running (no control socket at {self.path})") from exc
        except PermissionError as exc:
            raise ControlError(
                f"permission denied on {self.path}: join the service's group "
                "(usermod -aG runpod-watchdog $USER)"
            ) from exc
        except (ConnectionRefusedError, TimeoutError, OSError) as exc:
            raise ControlError(f"the daemon did not answer on {self.path}: {exc}") from exc
        try:
            response = json.loads(buffer)
        except json.JSONDecodeError as exc:
            raise ControlError(f"unreadable answer from the daemon: {exc.msg}") from exc
        if not isinstance(response, dict):
            raise ControlError(f"unreadable answer from the daemon: a JSON {type(response).__name__}")
        if not response.get("ok"):
            raise ControlError(str(response.get("error", "the daemon refused the request")))
        return response

    def status(self) -> DaemonStatus | None:
        data = self._request({"op": "status"}).get("status")
        if data is not None and not isinstance(data, dict):
            raise ControlError("unreadable answer from the daemon: its status is not an object")
        return DaemonStatus.from_dict(data) if data else None

    def command(self, kind: str, **args: Any) -> dict[str, Any]:
        result = self._request({"op": "command", "kind": kind, "args": args}).get("result")
        if not isinstance(result, dict):
            raise ControlError("unreadable answer from the daemon: its result is not an object")
        return result
