"""A tiny loopback HTTP server that records the job webhooks the simulator POSTs (for the tests).

``with WebhookReceiver(statuses=[500, 200]) as hook:`` answers the first POST 500, the next 200 (then 200
for ever), and keeps every request as ``hook.calls`` (path, headers, decoded JSON body, arrival time).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class WebhookCall:
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    """time.monotonic() of its arrival."""


class WebhookReceiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.calls: list[WebhookCall] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._lock:
                    receiver.calls.append(
                        WebhookCall(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            return [call.body for call in self.calls if path is None or call.path == path]

    def wait_for(self, count: int, timeout_s: float = 10.0, path: str | None = None) -> list[Any]:
        """Block until ``count`` calls (to ``path``) arrived; returns their bodies."""
        deadline = time.monotonic() + timeout_s
        while len(self.bodies(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.bodies(path))} webhook calls after {timeout_s:g}s, not {count}"
                )
            time.sleep(0.01)
        return self.bodies(path)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
