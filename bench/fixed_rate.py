"""An open-loop HTTP client that starts requests at a fixed rate (wrk cannot).

Request ``i`` is due at ``start + i / rate`` whether or not earlier ones have
returned, so a slow server makes requests pile up instead of slowing the
client down. Each request opens its own connection, as Plane's sender and
gunicorn's sync workers do. Latency runs from the moment the client opens the
connection to the end of the response. ``start_lag`` records how late that
moment was against the schedule, which shows when the client itself fell behind.

The client drives non-blocking sockets from one ``selectors`` loop, because it
shares the machine with the server it measures. At 800 requests per second on
a 2-core machine it used 0.13 cores, and an asyncio client 0.25; the CPU time
the client takes away from the server shows up as server latency.
"""

import errno
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.deliveries import Delivery

REQUEST_TIMEOUT_SECONDS = 5.0
_RECEIVE_BYTES = 65536
# How long the loop waits for sockets when no request is due sooner.
_IDLE_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class Outcome:
    """One request: its delivery id, status (None on error) and timings."""

    delivery_id: str
    status: int | None
    started_at: float
    latency: float
    start_lag: float


class _Request:
    """A request in flight: its socket, the bytes still to send, what came back."""

    def __init__(self, delivery: Delivery, payload: bytes, due: float) -> None:
        self.delivery = delivery
        self.unsent = memoryview(payload)
        self.due = due
        self.started = time.perf_counter()
        self.started_at = time.time()
        self.response = bytearray()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)

    def outcome(self, status: int | None) -> Outcome:
        return Outcome(
            delivery_id=self.delivery.delivery_id,
            status=status,
            started_at=self.started_at,
            latency=time.perf_counter() - self.started,
            start_lag=max(0.0, self.started - self.due),
        )


def send_at_fixed_rate(
    host: str, port: int, deliveries: Sequence[Delivery], *, rate: float
) -> list[Outcome]:
    """Send every delivery, ``rate`` per second, and return one outcome each.

    ``started_at`` is the wall-clock time (``time.time()``) the request began,
    comparable across processes on this machine. A request without a complete
    response after ``REQUEST_TIMEOUT_SECONDS`` gets status None.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    payloads = [delivery.http_request(f"{host}:{port}") for delivery in deliveries]
    selector = selectors.DefaultSelector()
    outcomes: list[Outcome] = []
    start = time.perf_counter() + 0.01
    next_index = 0
    try:
        while next_index < len(deliveries) or selector.get_map():
            now = time.perf_counter()
            while next_index < len(deliveries) and start + next_index / rate <= now:
                due = start + next_index / rate
                request = _Request(deliveries[next_index], payloads[next_index], due)
                _connect(selector, request, host, port, outcomes)
                next_index += 1

            if next_index < len(deliveries):
                wait = max(0.0, start + next_index / rate - time.perf_counter())
            else:
                wait = _IDLE_WAIT_SECONDS
            for key, events in selector.select(wait):
                _advance(selector, key.data, events, outcomes)
            _expire(selector, outcomes)
    finally:
        for key in list(selector.get_map().values()):
            key.data.sock.close()
        selector.close()
    return outcomes


def _connect(selector, request: _Request, host: str, port: int, outcomes) -> None:
    error = request.sock.connect_ex((host, port))
    if error not in (0, errno.EINPROGRESS):
        request.sock.close()
        outcomes.append(request.outcome(None))
        return
    selector.register(request.sock, selectors.EVENT_WRITE, request)


def _advance(selector, request: _Request, events: int, outcomes) -> None:
    """Send what is left of the request, or read what the server sent."""
    try:
        if events & selectors.EVENT_WRITE:
            sent = request.sock.send(request.unsent)
            request.unsent = request.unsent[sent:]
            if not request.unsent:
                selector.modify(request.sock, selectors.EVENT_READ, request)
            return
        chunk = request.sock.recv(_RECEIVE_BYTES)
    except OSError:
        _finish(selector, request, None, outcomes)
        return
    if chunk:
        request.response += chunk
        return
    _finish(selector, request, _status(bytes(request.response)), outcomes)


def _expire(selector, outcomes) -> None:
    deadline = time.perf_counter() - REQUEST_TIMEOUT_SECONDS
    for key in list(selector.get_map().values()):
        if key.data.started < deadline:
            _finish(selector, key.data, None, outcomes)


def _finish(selector, request: _Request, status: int | None, outcomes) -> None:
    selector.unregister(request.sock)
    request.sock.close()
    outcomes.append(request.outcome(status))


def _status(response: bytes) -> int | None:
    """Return the status code of ``HTTP/1.1 202 ACCEPTED``, or None if malformed."""
    parts = response.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])
