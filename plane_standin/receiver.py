"""A tiny webhook receiver on 127.0.0.1 that records what it gets, for tests.

Each request gets the next planned response: an HTTP status, `"reset"` (close the
connection without responding) or `("delay", seconds, status)`. When the plan runs
out, the receiver responds with `default_status`.
"""

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESET = "reset"
# How often the serving loop checks for shutdown, so tests stop quickly.
SHUTDOWN_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """Records requests and responds to them as planned. Use as a context manager."""

    def __init__(self, default_status: int = 200) -> None:
        self.default_status = default_status
        self.received: list[ReceivedRequest] = []
        self._plan: deque = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/webhooks/plane"

    def plan(self, *responses: int | str | tuple) -> None:
        """Queue responses for the next requests."""
        with self._lock:
            self._plan.extend(responses)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_response(self) -> int | str | tuple:
        with self._lock:
            return self._plan.popleft() if self._plan else self.default_status

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.received.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._respond()

            def do_GET(self) -> None:
                self._respond()

            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver._record(
                    ReceivedRequest(self.command, self.path, dict(self.headers), body)
                )
                planned = receiver._next_response()
                if isinstance(planned, tuple):
                    _, seconds, planned = planned
                    time.sleep(seconds)
                if planned == RESET:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                try:
                    self.send_response(planned)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except ConnectionError:
                    # The sender gave up waiting, as after a timeout.
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler
