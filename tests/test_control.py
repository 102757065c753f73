"""The control socket over a real Unix socket: status for the TUI, commands to the daemon, clear errors,
and what a hostile local client cannot do to it (robustness issue: 1,100 idle connections once took the
daemon's descriptors, its ticks and /metrics with them).

The server runs on the test's event loop, so every blocking client call goes through a thread. The accept()
EMFILE case runs in a subprocess whose RLIMIT_NOFILE is lowered to 64, so descriptors really run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from watchdog.control import (
    MAX_REQUEST_BYTES,
    TOO_MANY_CONNECTIONS,
    ControlClient,
    ControlError,
    ControlServer,
)
from watchdog.errors import RunPodNotFound
from watchdog.status import DaemonStatus, StatusRef

REPO = Path(__file__).resolve().parent.parent


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


# ----------------------------------------------------------------------------------------------------
# Hostile clients


async def _echo_command(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    if kind == "cancel_job":
        raise RunPodNotFound("no such job", route="POST /v2/ep/cancel/j")
    if kind == "restore":
        raise RuntimeError("a bug in the daemon")
    if kind == "ack_alert" and args.get("big"):
        return {"blob": "x" * 4_000_000}
    return {"kind": kind, "args": args}


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path, **limits: Any) -> AsyncIterator[ControlServer]:
    server = ControlServer(tmp_path / "c.sock", StatusRef(_status()), _echo_command, **limits)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def _connect(path: Path, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:  # the listen backlog is full for a moment
            if time.monotonic() > deadline:
                sock.close()
                raise
            time.sleep(0.001)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _ask(sock: socket.socket, raw: bytes) -> dict[str, Any]:
    sock.sendall(raw)
    answer = json.loads(_read_line(sock))
    assert isinstance(answer, dict)
    return answer


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records a hostile client must never cause: errors, or anything with a traceback."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]


async def test_connections_beyond_the_cap_get_one_line_and_are_closed_unread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _serving(tmp_path, max_clients=3) as server:
        path = server.path
        idle = [_connect(path) for _ in range(3)]
        try:
            await _until(lambda: server.clients == 3)
            extra = _connect(path)
            # It even sends a valid request first: it is not read, only refused.
            extra.sendall(b'{"op": "status"}\n')
            started = time.monotonic()
            refused = await asyncio.to_thread(_read_to_eof, extra)
            extra.close()
            assert refused == TOO_MANY_CONNECTIONS
            assert json.loads(refused) == {"ok": False, "error": "too many connections"}
            assert time.monotonic() - started < 1.0  # closed at once, not after a timeout
            assert server.clients == 3
            # The blocking client reports it as such, whether or not its request got out first.
            for _ in range(20):
                with pytest.raises(ControlError, match="too many connections"):
                    await asyncio.to_thread(ControlClient(path).status)
            # Only the first refusal of the episode is logged, and as a warning.
            warnings = [r for r in caplog.records if "refusing" in r.getMessage()]
            assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        finally:
            for sock in idle:
                sock.close()
        await _until(lambda: server.clients == 0)
        assert await asyncio.to_thread(ControlClient(path).status) == _status()
    assert not _problems(caplog)


async def test_a_request_line_must_come_whole_and_in_time(tmp_path: Path) -> None:
    async with _serving(tmp_path, request_timeout_s=0.4, idle_timeout_s=1.5) as server:
        path = server.path
        # Silent after connecting: told why, then closed.
        silent = _connect(path)
        started = time.monotonic()
        said = await asyncio.to_thread(_read_to_eof, silent)
        silent.close()
        assert json.loads(said)["error"] == "no complete request line within 0.4 s"
        assert 0.3 < time.monotonic() - started < 2.0

        # Slowloris: a byte every 0.1 s never completes a line within the 0.4 s.
        def trickle() -> bytes:
            with _connect(path) as sock:
                with contextlib.suppress(OSError):
                    for byte in b'{"op": "status"}':
                        sock.sendall(bytes([byte]))
                        time.sleep(0.1)
                return _read_to_eof(sock)

        assert b"no complete request line" in await asyncio.to_thread(trickle)

        # A client that keeps asking is served as long as it likes; idle 1.5 s after an answer, it is
        # closed without a word (its next request would otherwise read a stray line).
        def chatty() -> tuple[int, bytes, float]:
            with _connect(path) as sock:
                answered = 0
                for _ in range(4):
                    answered += _ask(sock, b'{"op": "status"}\n')["ok"] is True
                    time.sleep(0.6)  # longer than the request timeout: idle between requests is fine
                idle_from = time.monotonic()
                return answered, _read_to_eof(sock), time.monotonic() - idle_from

        answered, after_idle, waited = await asyncio.to_thread(chatty)
        assert answered == 4
        assert after_idle == b""
        assert 0.5 < waited < 3.0
        await _until(lambda: server.clients == 0)


async def test_an_oversize_line_gets_an_error_and_a_close_never_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _serving(tmp_path) as server:
        path = server.path

        def ten_megabytes() -> bytes:
            with _connect(path) as sock:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b'{"op": "' + b"x" * 10_000_000 + b'"}\n')
                return _read_to_eof(sock)

        said = await asyncio.to_thread(ten_megabytes)
        assert json.loads(said) == {"ok": False, "error": f"request longer than {MAX_REQUEST_BYTES} bytes"}

        # The limit is exact: a line of MAX_REQUEST_BYTES (newline excluded) is still a request.
        request = b'{"op": "status"}'
        padded = request + b" " * (MAX_REQUEST_BYTES - len(request)) + b"\n"

        def exactly_at_the_limit() -> dict[str, Any]:
            with _connect(path) as sock:
                return _ask(sock, padded)

        assert (await asyncio.to_thread(exactly_at_the_limit))["ok"] is True
        await _until(lambda: server.clients == 0)
        assert await asyncio.to_thread(ControlClient(path).status) == _status()
    assert not _problems(caplog)


async def test_garbage_requests_get_clear_errors_and_the_connection_stays_usable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"\x80\x81garbage\xc3\x28\n", "request is not UTF-8 text"),
        (b"\xff\xfe\x00\x01garbage\n", "request is not JSON"),  # a UTF-16 BOM: decoded, still not JSON
        (b"not json at all\n", "request is not JSON"),
        (b"\n", "request is not JSON"),
        (b"[1, 2, 3]\n", "request must be a JSON object"),
        (b'"status"\n', "request must be a JSON object"),
        (b"[" * 60_000 + b"\n", "nested too deeply"),
        (b'{"op": "' + b"9" * 50_000 + b'"}\n', "unknown op"),
        (b"9" * 50_000 + b"\n", "request is not usable JSON"),
        (b'{"op": "reboot"}\n', "unknown op 'reboot'"),
        (b'{"op": ["status"]}\n', "unknown op ['status']"),
        (b'{"op": "command", "kind": 7}\n', "unknown command 7"),
        (b'{"op": "command", "kind": ["pause"]}\n', "unknown command ['pause']"),
        (b'{"op": "command", "kind": {"k": 1}}\n', "unknown command {'k': 1}"),
        (b'{"op": "command", "kind": "pause", "args": null}\n', "args must be a JSON object"),
        (b'{"op": "command", "kind": "pause", "args": [1]}\n', "args must be a JSON object"),
        (b'{"op": "command", "kind": "cancel_job"}\n', "Not found on RunPod: POST /v2/ep/cancel/j"),
        (b'{"op": "command", "kind": "restore"}\n', "RuntimeError: a bug in the daemon"),
    ]
    async with _serving(tmp_path) as server:

        def converse() -> list[dict[str, Any]]:
            with _connect(server.path) as sock:
                answers = [_ask(sock, raw) for raw, _ in cases]
                answers.append(_ask(sock, b'{"op": "status"}\n'))
                return answers

        answers = await asyncio.to_thread(converse)
    for (raw, expected), answer in zip(cases, answers, strict=False):
        assert answer["ok"] is False, raw[:60]
        assert expected in answer["error"], (raw[:60], answer)
        assert len(answer["error"]) < 200, answer  # a 50 kB value is never echoed back whole
    assert answers[-1]["ok"] is True and answers[-1]["status"]["mode"] == "enforce"
    # RunPod refusing is a warning without a traceback; only a daemon bug carries one (an ERROR).
    tracebacks = [r for r in caplog.records if r.exc_info or r.exc_text]
    assert [r.getMessage() for r in tracebacks] == ["control command restore failed"]
    assert any(
        r.levelno == logging.WARNING and "control command cancel_job failed" in r.getMessage()
        for r in caplog.records
    )


async def test_pipelined_requests_and_a_last_line_without_newline_are_answered(tmp_path: Path) -> None:
    async with _serving(tmp_path) as server:

        def pipeline() -> list[dict[str, Any]]:
            with _connect(server.path) as sock:
                sock.sendall(b'{"op": "status"}\n' * 50 + b'{"op": "command", "kind": "pause"}')
                sock.shutdown(socket.SHUT_WR)
                return [json.loads(line) for line in _read_to_eof(sock).splitlines()]

        answers = await asyncio.to_thread(pipeline)
    assert len(answers) == 51
    assert all(a["ok"] for a in answers)
    assert answers[-1]["result"] == {"kind": "pause", "args": {}}


async def test_connect_and_close_at_once_costs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _serving(tmp_path, max_clients=4) as server:

        def hit_and_run() -> None:
            for _ in range(300):
                _connect(server.path).close()

        await asyncio.to_thread(hit_and_run)
        await _until(lambda: server.clients == 0)
        assert await asyncio.to_thread(ControlClient(server.path).status) == _status()
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and "refusing" not in r.getMessage()
    ]


async def test_a_client_that_never_reads_its_answers_cannot_block_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _serving(tmp_path, write_timeout_s=3.0) as server:
        hog = _connect(server.path)
        try:
            # 4 MB answers, asked for again and again, never read: far more than a socket buffer holds.
            hog.sendall(b'{"op": "command", "kind": "ack_alert", "args": {"big": true}}\n' * 20)
            await _until(lambda: server.clients == 1)
            # While the hog's answer is stuck, the loop still serves everyone else, promptly.
            started = time.monotonic()
            assert await asyncio.to_thread(ControlClient(server.path).status) == _status()
            assert time.monotonic() - started < 1.5
            # That client has gone, the hog is still there (its answer has waited less than 3 s)...
            await _until(lambda: server.clients == 1, timeout_s=1.0)
            # ...and is cut off once its answer has waited write_timeout_s.
            await _until(lambda: server.clients == 0, timeout_s=8.0)
        finally:
            hog.close()
    assert not _problems(caplog)


async def test_close_drops_idle_clients_at_once_but_lets_a_command_finish(tmp_path: Path) -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def slow_command(kind: str, args: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        finished.append(kind)
        return {"done": kind}

    server = ControlServer(tmp_path / "c.sock", StatusRef(_status()), slow_command)
    await server.start()
    idle = [_connect(server.path) for _ in range(5)]
    busy = _connect(server.path)
    busy.sendall(b'{"op": "command", "kind": "pause"}\n')
    await _until(lambda: server.clients == 6)
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(server.close())
    await asyncio.sleep(0.2)
    assert not closing.done()  # waits for the command in progress, not for the idle ones
    assert server.clients == 1
    release.set()
    await asyncio.wait_for(closing, 2.0)
    assert finished == ["pause"]
    answer = await asyncio.to_thread(_read_line, busy)
    assert json.loads(answer) == {"ok": True, "result": {"done": "pause"}}
    for sock in [*idle, busy]:
        sock.close()
    assert not server.path.exists()


_EMFILE_SCRIPT = textwrap.dedent(
    """
    import asyncio, errno, json, logging, os, resource, socket, sys

    from watchdog.control import ControlClient, ControlServer
    from watchdog.status import StatusRef

    path = sys.argv[1]
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.INFO)

    async def on_command(kind, args):
        return {"acknowledged": args.get("key")}

    async def main():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        server = ControlServer(path, StatusRef(None), on_command, max_clients=1000, request_timeout_s=1.0)
        await server.start()
        # 100 connections, made before the loop runs again: they wait in the listen backlog, and the
        # descriptors run out on this side first (socket() fails with EMFILE); whatever is left is taken.
        clients, fillers, client_emfile = [], [], False
        for _ in range(100):
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            except OSError as exc:
                client_emfile = exc.errno == errno.EMFILE
                break
            sock.connect(path)
            clients.append(sock)
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        await asyncio.sleep(3.0)  # every accept() the server tries now fails with EMFILE
        during = [(r.levelname, r.getMessage(), bool(r.exc_info or r.exc_text)) for r in records]
        for sock in clients:
            sock.close()
        for fd in fillers:
            os.close(fd)
        answer = await asyncio.to_thread(ControlClient(path, timeout_s=10).command, "ack_alert", key="k")
        await server.close()
        after = [(r.levelname, r.getMessage(), bool(r.exc_info or r.exc_text)) for r in records]
        print(json.dumps({
            "connected": len(clients), "client_emfile": client_emfile, "during": during,
            "after": after, "answer": answer,
        }))

    asyncio.run(main())
    """
)


def test_accept_out_of_descriptors_neither_stops_the_server_nor_floods_the_log(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _EMFILE_SCRIPT, str(tmp_path / "c.sock")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["client_emfile"] and report["connected"] > 20, report
    # accept() failed for 3 s: one warning that says so, no traceback, no flood.
    during = report["during"]
    assert len(during) == 1, during
    level, message, traceback = during[0]
    assert level == "WARNING" and "Too many open files" in message and not traceback
    # Descriptors free again: it accepts, says so once, and serves a command.
    assert report["answer"] == {"acknowledged": "k"}
    assert any("accepting connections again" in message for _, message, _ in report["after"])
    assert not any(traceback for _, _, traceback in report["after"])
