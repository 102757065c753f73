"""The exporter's own cost and its limits: a status is rendered once (in the renderer thread, never in a
scrape), a render that fails keeps the last exposition served, and the HTTP server caps its connections,
drops what is idle or slow, and answers only ``GET /metrics``. A real daemon under a scrape flood is in
test_metrics_flood.py; the series themselves in test_metrics.py."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.test_metrics import sample_status
from watchdog import metrics
from watchdog.metrics import MetricsPublisher, MetricsServer, start_exporter
from watchdog.status import DaemonStatus, StatusRef


def _status(spend: float = 6.45, endpoints: int = 1) -> DaemonStatus:
    base = sample_status()
    template = dataclasses.replace(base.endpoints[0], spend_month_eur=spend)
    return dataclasses.replace(
        base,
        endpoints=tuple(dataclasses.replace(template, id=f"ep-{i:05d}") for i in range(endpoints)),
    )


def _spend(text: str, endpoint: str = "ep-00000") -> float:
    prefix = f'runpod_watchdog_endpoint_month_spend_eur{{endpoint="{endpoint}"}} '
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return float(line.rsplit(" ", 1)[1])


@contextlib.contextmanager
def _server(ref: StatusRef, **limits: float) -> Iterator[MetricsServer]:
    publisher = MetricsPublisher(ref, with_process_metrics=False)
    server = MetricsServer(publisher, "127.0.0.1:0", **limits)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


def _get(server: MetricsServer, path: str = "/metrics", **kwargs: object) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.server_port}{path}", timeout=5, **kwargs)  # type: ignore[arg-type]


def _raw(server: MetricsServer, data: bytes, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.server_port))
    if data:
        sock.sendall(data)
    return sock


def _closed_by_server(sock: socket.socket, within_s: float = 5.0) -> bool:
    """True once the server closed the connection (EOF or reset), reading and discarding what it sent."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


# --------------------------------------------------------------------------------------------------------
# Rendering


def test_status_ref_versions_and_wakes_its_subscribers() -> None:
    ref = StatusRef()
    woken: list[int] = []
    unsubscribe = ref.subscribe(lambda: woken.append(ref.get_versioned()[0]))
    assert ref.get_versioned() == (0, None)
    status = _status()
    ref.set(status)
    ref.set(status)  # the same object again is still a new publication
    assert ref.get_versioned() == (2, status)
    assert woken == [1, 2]
    unsubscribe()
    ref.set(status)
    assert woken == [1, 2]


def test_a_status_is_rendered_once_in_the_renderer_thread_never_in_a_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    real_render = metrics.render

    def spy(status: DaemonStatus | None, version: int = 0) -> metrics.Exposition:
        threads.append(threading.current_thread().name)
        return real_render(status, version)

    monkeypatch.setattr(metrics, "render", spy)
    ref = StatusRef(_status(1.0))
    with _server(ref) as server:
        for _ in range(30):
            assert _spend(_get(server).text) == 1.0
        assert server.publisher.renders == 1  # at start, for the status already there
        ref.set(_status(2.0))
        assert server.publisher.wait_current(10)
        for _ in range(30):
            assert _spend(_get(server).text) == 2.0
        assert server.publisher.renders == 2
    # the empty exposition made by the constructor, the start, then the new status: in the renderer thread
    assert threads == ["MainThread", "MainThread", "metrics-render"]


def test_a_failing_render_keeps_the_last_exposition_served(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ref = StatusRef(_status(1.0))
    with _server(ref) as server:
        monkeypatch.setattr(metrics, "render", lambda *_args: 1 / 0)
        with caplog.at_level(logging.ERROR, logger="watchdog.metrics"):
            ref.set(_status(2.0))
            deadline = time.monotonic() + 10
            while "rendering the status failed" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.01)
        assert "rendering the status failed" in caplog.text
        response = _get(server)
        assert response.status_code == 200 and _spend(response.text) == 1.0
        monkeypatch.undo()
        ref.set(_status(3.0))  # the renderer thread survived the failure
        assert server.publisher.wait_current(10)
        assert _spend(_get(server).text) == 3.0


def test_data_age_is_computed_at_each_scrape_on_the_daemons_clock() -> None:
    """It must keep growing when ticks stop, so it is not part of the rendered status."""
    now = [1_764_000_100.0]
    ref = StatusRef(dataclasses.replace(_status(), last_ok_at=1_764_000_100.0))
    publisher = MetricsPublisher(ref, clock=lambda: now[0], with_process_metrics=False)
    publisher.refresh()
    assert b"runpod_watchdog_data_age_seconds 0.0\n" in publisher.body()
    now[0] += 42
    assert b"runpod_watchdog_data_age_seconds 42.0\n" in publisher.body()
    assert publisher.renders == 1


def test_process_metrics_are_read_at_most_once_a_second_however_many_scrapes() -> None:
    ticks = [100.0]
    publisher = MetricsPublisher(StatusRef(_status()), monotonic=lambda: ticks[0])
    publisher.refresh()
    first = publisher.body()
    reads = 0
    real = publisher._process
    assert real is not None
    original = real.collect

    def counting() -> object:
        nonlocal reads
        reads += 1
        return original()

    real.collect = counting  # type: ignore[method-assign]
    for _ in range(100):
        publisher.body()
    assert reads == 0
    ticks[0] += 1.0
    publisher.body()
    publisher.body()
    assert reads == 1
    assert b"process_resident_memory_bytes" in first


# --------------------------------------------------------------------------------------------------------
# Serving


def test_only_get_metrics_is_answered() -> None:
    with _server(StatusRef(_status())) as server:
        assert _get(server, "/").status_code == 200
        assert _get(server, "/metrics?x=1").status_code == 200
        assert _get(server, "/favicon.ico").status_code == 404
        port = server.server_port
        assert httpx.post(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 405
        head = httpx.head(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert head.status_code == 200 and int(head.headers["content-length"]) > 1000 and not head.content
        refused_gzip = _get(server, headers={"Accept-Encoding": "gzip;q=0, identity"})
        assert "content-encoding" not in refused_gzip.headers
        garbage = _raw(server, b"\x16\x03\x01 hello\r\n\r\n")
        assert garbage.recv(100).startswith(b"HTTP/1.1 400 ")
        garbage.close()
        huge = _raw(server, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 40_000)
        assert huge.recv(100).startswith(b"HTTP/1.1 431 ")
        huge.close()
        assert _get(server).status_code == 200


def test_idle_connections_beyond_the_cap_make_room_for_a_scrape() -> None:
    """A flood of connections that never complete a request cannot lock Prometheus out: when the server
    is full, the oldest of them is dropped for the newcomer."""
    with _server(StatusRef(_status()), max_connections=4, request_timeout_s=30.0) as server:
        idle = [_raw(server, b"GET /metr") for _ in range(20)]
        try:
            for _ in range(5):
                response = _get(server)
                assert response.status_code == 200
            assert server.dropped >= 16
            closed = sum(_closed_by_server(sock, 0.5) for sock in idle)
            assert closed >= 16
        finally:
            for sock in idle:
                sock.close()


def test_a_request_not_complete_in_time_is_dropped() -> None:
    with _server(StatusRef(_status()), request_timeout_s=0.3) as server:
        trickle = _raw(server, b"GET /metrics HTTP/1.1\r\n")
        silent = _raw(server, b"")
        try:
            assert _closed_by_server(trickle, 5.0)
            assert _closed_by_server(silent, 5.0)
            assert server.dropped >= 2
        finally:
            trickle.close()
            silent.close()
        assert _get(server).status_code == 200


def test_a_client_that_does_not_read_its_answer_is_cut_and_others_are_told_busy_meanwhile() -> None:
    """With the only slot held by a client that reads nothing of a big answer (more than the kernel's
    socket buffers hold), a newcomer gets a 503 at once (not a hang), and the slow one is cut after the
    write timeout."""
    with _server(StatusRef(_status()), max_connections=1, write_timeout_s=0.5) as server:
        big = (b"# " + b"x" * 30_000_000 + b"\n",)
        real_body = server.publisher.body_parts
        server.publisher.body_parts = lambda gzip=False: big  # type: ignore[method-assign]
        slow = _raw(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=4096)
        try:
            deadline = time.monotonic() + 5
            busy = None
            while time.monotonic() < deadline:
                busy = _get(server)
                if busy.status_code == 503:
                    break
                time.sleep(0.01)
            assert busy is not None and busy.status_code == 503
            assert "too many connections" in busy.text
            while server.dropped == 0 and time.monotonic() < deadline + 10:
                time.sleep(0.05)  # the slow client reads nothing meanwhile
            assert server.dropped == 1
            assert _closed_by_server(slow, 5.0)
        finally:
            slow.close()
        server.publisher.body_parts = real_body  # type: ignore[method-assign]
        assert server.refused >= 1
        response = _get(server)
        assert response.status_code == 200 and _spend(response.text) == 6.45


def test_a_taken_port_fails_at_start_and_shutdown_frees_it() -> None:
    first = start_exporter(StatusRef(), "127.0.0.1:0", with_process_metrics=False)
    port = first.server_port
    try:
        with pytest.raises(OSError):
            start_exporter(StatusRef(), f"127.0.0.1:{port}", with_process_metrics=False)
    finally:
        first.shutdown()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    again = start_exporter(StatusRef(), f"127.0.0.1:{port}", with_process_metrics=False)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    finally:
        again.shutdown()
