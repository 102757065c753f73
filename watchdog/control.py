"""The daemon's control socket: how the TUI (and a sysadmin's scripts) read live state and ask for actions.

A Unix stream socket carrying one JSON object per line, request then response. Access is the socket
file's permissions: owner and group (the service's group, mode 0660), so "who may pause an endpoint" is
"who is in the runpod-watchdog group", which sysadmins already know how to manage. The TUI never talks to
RunPod: it asks the daemon, which applies the action, records it in the ledger and verifies it.

Requests:  {"op": "status"}
           {"op": "command", "kind": "pause" | "restore" | "cancel_job" | "set_rule_mode" | "ack_alert",
            "args": {...}}
Responses: {"ok": true, "status": {...}} | {"ok": true, "result": {...}} | {"ok": false, "error": "..."}

Every peer is treated as a hostile local process (under systemd's ``PrivateUsers=`` they all look like UID
65534 anyway), because the daemon shares one open-file budget between this socket, RunPod's connection
pool, the ledger, the log files and /metrics; 1,100 idle connections once stopped all of them. So:

- at most ``max_clients`` (32) connections are served at once; the next one gets the single line
  ``{"ok": false, "error": "too many connections"}`` and is closed at once, without being read;
- a request line must be complete ``request_timeout_s`` (5 s) after the connection opens or after its first
  byte; a connection idle for ``idle_timeout_s`` (30 s) after an answer is closed; a line longer than
  ``MAX_REQUEST_BYTES`` gets an error and a close; an answer the client does not read within
  ``write_timeout_s`` (5 s) closes the connection, so no client can hold the event loop or a descriptor;
- ``accept()`` failing (EMFILE/ENFILE: no descriptor left) is logged once, retried with a back-off, and
  never stops the server: it serves again as soon as descriptors are free;
- a malformed request (not UTF-8, not JSON, not an object, an unknown op or kind) gets a one-line error,
  never a traceback in the log; the connection stays usable.

What it touches: the socket file (created, chmod-ed, removed at close) and its directory (created if
missing). It answers from the published ``StatusRef`` and hands commands to the daemon's handler; it never
calls RunPod or opens the ledger itself. ``ControlClient`` (the TUI's side) opens one connection per request
and turns every failure, "too many connections" included, into a ``ControlError`` the dashboard can show.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from watchdog.errors import WatchdogError
from watchdog.status import DaemonStatus, StatusRef

log = logging.getLogger(__name__)

COMMAND_KINDS = ("pause", "restore", "cancel_job", "set_rule_mode", "ack_alert")
MAX_REQUEST_BYTES = 64 * 1024
"""The longest request line accepted, newline excluded."""
MAX_CLIENTS = 32
"""Connections served at once; the dashboard uses one at a time."""
REQUEST_TIMEOUT_S = 5.0
"""A request line must be complete this long after the connection opens, or after its first byte."""
IDLE_TIMEOUT_S = 30.0
"""A connection that sends nothing this long after an answer is closed."""
WRITE_TIMEOUT_S = 5.0
"""An answer the client has not taken this long after it was sent closes the connection."""
CLOSE_GRACE_S = 10.0
"""At close, how long a command already being carried out may take to finish (TimeoutStopSec is 30)."""
LISTEN_BACKLOG = 128

CommandHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

TOO_MANY_CONNECTIONS = b'{"ok": false, "error": "too many connections"}\n'
_READ_CHUNK = 64 * 1024
_ACCEPT_RETRY_MIN_S = 0.05
_ACCEPT_RETRY_MAX_S = 1.0
_ACCEPT_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN})
"""accept() errors about one connection (it went away) or none (a signal): go on at once, no back-off."""
_ERROR_ECHO_CHARS = 80


class _HangUp(Exception):
    """End this connection; ``error``, if any, is told to the client first (best effort, never blocking)."""

    def __init__(self, error: str = "") -> None:
        super().__init__(error)
        self.error = error


def _line(response: dict[str, Any]) -> bytes:
    return json.dumps(response, default=str).encode() + b"\n"


def _error(message: str) -> bytes:
    return _line({"ok": False, "error": message})


def _echo(value: object) -> str:
    """A client's value quoted back in an error, cut short (a request may be 64 KiB of one string)."""
    text = repr(value)
    return text if len(text) <= _ERROR_ECHO_CHARS else text[: _ERROR_ECHO_CHARS - 3] + "..."


class ControlServer:
    """Serves the control protocol on a Unix socket, bounded against hostile local clients (see above)."""

    def __init__(
        self,
        path: str | Path,
        status: StatusRef,
        on_command: CommandHandler,
        mode: int = 0o660,
        *,
        max_clients: int = MAX_CLIENTS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self._status = status
        self._on_command = on_command
        self._mode = mode
        self.max_clients = max_clients
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.write_timeout_s = write_timeout_s
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self._closing = False
        self._refused = 0
        """Connections refused since the server was last full (0: not full)."""
        self._accept_failing_since: float | None = None
        self._status_cache: tuple[DaemonStatus | None, bytes] | None = None

    @property
    def clients(self) -> int:
        """Connections being served now."""
        return len(self._clients)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            # A stale socket from a killed daemon; the ledger lock already keeps a live one safe.
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, self._mode)  # before listen(): nobody connects through a laxer mode
            listener.listen(LISTEN_BACKLOG)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        self._closing = False
        self._listener = listener
        self._acceptor = asyncio.create_task(self._accept_forever(listener), name="control-accept")

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Stop accepting, drop idle clients, let a command in progress finish (up to ``grace_s``)."""
        self._closing = True
        if self._acceptor is not None:
            self._acceptor.cancel()
            await asyncio.wait([self._acceptor])
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for task in self._clients - self._busy:
            task.cancel()
        if self._clients:
            await asyncio.wait(set(self._clients), timeout=grace_s)
        if self._clients:
            for task in self._clients:
                task.cancel()
            await asyncio.wait(set(self._clients))
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- accepting --------------------------------------------------------------------------------------

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        retry_s = _ACCEPT_RETRY_MIN_S
        while True:
            try:
                conn, _address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _ACCEPT_TRANSIENT:
                    continue
                # EMFILE/ENFILE (no descriptor left), ENOBUFS/ENOMEM: the pending connections wait in the
                # kernel's backlog, costing the daemon nothing; say so once, retry until it works.
                if self._accept_failing_since is None:
                    self._accept_failing_since = loop.time()
                    log.warning(
                        "control socket: cannot accept connections (%s); retrying until it can",
                        exc.strerror or exc,
                    )
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, _ACCEPT_RETRY_MAX_S)
                continue
            retry_s = _ACCEPT_RETRY_MIN_S
            if self._accept_failing_since is not None:
                log.info(
                    "control socket: accepting connections again after %.1f s",
                    loop.time() - self._accept_failing_since,
                )
                self._accept_failing_since = None
            self._admit(conn)
            # Let the new client's task take its first step before the next accept: one that already
            # hung up leaves at once, so a burst of dead connections does not fill the cap.
            await asyncio.sleep(0)

    def _admit(self, conn: socket.socket) -> None:
        if self._closing:
            conn.close()
            return
        if len(self._clients) >= self.max_clients:
            # One short line into an empty socket buffer never blocks; nothing is read from the client.
            with contextlib.suppress(OSError):
                conn.send(TOO_MANY_CONNECTIONS)
            conn.close()
            self._refused += 1
            if self._refused == 1:
                log.warning(
                    "control socket: %d clients connected, the most it serves; refusing new ones",
                    self.max_clients,
                )
            return
        if self._refused:
            log.info("control socket: serving again (%d connections refused while full)", self._refused)
            self._refused = 0
        task = asyncio.create_task(self._serve_client(conn), name="control-client")
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    # -- one client -------------------------------------------------------------------------------------

    async def _serve_client(self, conn: socket.socket) -> None:
        me = asyncio.current_task()
        assert me is not None
        buffer = bytearray()
        first = True
        try:
            while not self._closing:
                line = await self._next_line(conn, buffer, first=first)
                if line is None:
                    return
                first = False
                self._busy.add(me)  # close() lets the request in progress finish and be answered
                try:
                    await self._send(conn, await self._respond(line))
                finally:
                    self._busy.discard(me)
                await asyncio.sleep(0)  # a client pipelining requests must not starve the loop
        except _HangUp as hang_up:
            if hang_up.error:
                with contextlib.suppress(OSError):
                    conn.send(_error(hang_up.error))
        except OSError:
            pass  # the peer went away (reset, broken pipe): nothing to tell anyone
        except Exception:  # a bug here must not kill the server or leak the descriptor
            log.exception("control socket: a connection failed")
        finally:
            conn.close()
            self._clients.discard(me)  # now, not a loop iteration later: the slot is free

    async def _next_line(self, conn: socket.socket, buffer: bytearray, *, first: bool) -> bytes | None:
        """The next request line (newline included), or None when the client closed cleanly.

        Raises:
            _HangUp: the line is too long, or did not come in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout_s if first else self.idle_timeout_s)
        line_started = first
        while True:
            end = buffer.find(b"\n")
            if end > MAX_REQUEST_BYTES or (end < 0 and len(buffer) > MAX_REQUEST_BYTES):
                raise _HangUp(f"request longer than {MAX_REQUEST_BYTES} bytes")
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                return line
            if buffer and not line_started:
                line_started = True
                deadline = loop.time() + self.request_timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await loop.sock_recv(conn, _READ_CHUNK)
            except TimeoutError:
                if line_started:
                    raise _HangUp(f"no complete request line within {self.request_timeout_s:g} s") from None
                raise _HangUp() from None  # idle after an answer: just close
            if not chunk:
                if buffer:  # a last request without its newline, then EOF: answer it
                    line = bytes(buffer)
                    buffer.clear()
                    return line
                return None
            buffer += chunk

    async def _send(self, conn: socket.socket, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await loop.sock_sendall(conn, data)
        except TimeoutError:
            raise _HangUp() from None  # it does not read its answers

    # -- answers ----------------------------------------------------------------------------------------

    async def _respond(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            return _error(f"request is not JSON: {exc.msg}")
        except UnicodeDecodeError:
            return _error("request is not UTF-8 text")
        except RecursionError:
            return _error("request is not JSON: nested too deeply")
        except ValueError as exc:  # e.g. an integer longer than Python converts
            return _error(f"request is not usable JSON: {exc}")
        if not isinstance(request, dict):
            return _error("request must be a JSON object")
        op = request.get("op")
        if op == "status":
            return self._status_line()
        if op == "command":
            return await self._command(request.get("kind"), request.get("args", {}))
        return _error(f"unknown op {_echo(op)}; expected 'status' or 'command'")

    def _status_line(self) -> bytes:
        """The status answer, encoded once per published status (it is swapped whole, never mutated)."""
        status = self._status.get()
        cached = self._status_cache
        if cached is None or cached[0] is not status:
            cached = (status, _line({"ok": True, "status": status.to_dict() if status else None}))
            self._status_cache = cached
        return cached[1]

    async def _command(self, kind: object, args: object) -> bytes:
        if not isinstance(kind, str) or kind not in COMMAND_KINDS:
            return _error(f"unknown command {_echo(kind)}; expected one of {', '.join(COMMAND_KINDS)}")
        if not isinstance(args, dict):
            return _error("args must be a JSON object")
        try:
            result = await self._on_command(kind, args)
        except (ValueError, KeyError, LookupError) as exc:
            return _error(str(exc))
        except WatchdogError as exc:  # RunPod refused or was unreachable: expected, no traceback
            log.warning("control command %s failed: %s", kind, exc)
            return _error(f"{exc.title}: {exc}")
        except Exception as exc:  # the daemon must outlive a bad command; say what happened
            log.exception("control command %s failed", kind)
            return _error(f"{type(exc).__name__}: {exc}")
        try:
            return _line({"ok": True, "result": result})
        except (TypeError, ValueError) as exc:
            log.error("control command %s: its result cannot be sent: %s", kind, exc)
            return _error(f"the result of {kind} cannot be encoded")


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
                self._connect(sock)
                # Refused before it read us ("too many connections")? Its one line is still to be read.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(json.dumps(payload).encode() + b"\n")
                buffer = b""
                while not buffer.endswith(b"\n"):
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        break  # closed with our request unread; what it sent first is kept
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
        if not buffer:
            raise ControlError(f"the daemon closed the connection on {self.path} without answering")
        try:
            response = json.loads(buffer)
        except json.JSONDecodeError as exc:
            raise ControlError(f"unreadable answer from the daemon: {exc.msg}") from exc
        if not isinstance(response, dict):
            raise ControlError(f"unreadable answer from the daemon: a JSON {type(response).__name__}")
        if not response.get("ok"):
            raise ControlError(str(response.get("error", "the daemon refused the request")))
        return response

    def _connect(self, sock: socket.socket) -> None:
        """A full listen backlog fails a Unix connect() at once (EAGAIN): retry until the timeout."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                sock.connect(str(self.path))
                return
            except BlockingIOError as exc:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"its control socket stayed busy for {self.timeout_s:g} s") from exc
                time.sleep(0.01)

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
