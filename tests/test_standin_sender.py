"""The stand-in's webhook sender against a local receiver: bytes, headers, retries."""

import hashlib
import hmac
import json
import socket
import threading
import uuid
from pathlib import Path

import pytest

from plane_standin import build_body, send_webhook
from plane_standin.payloads import fixture
from plane_standin.receiver import RESET, WebhookReceiver

VECTORS = json.loads(
    (
        Path(__file__).parent / "fixtures" / "plane" / "webhook-signature-vectors.json"
    ).read_text(encoding="utf-8")
)
SECRET = "plane_wh_0123456789abcdef0123456789abcdef"


class FixedRandom:
    """Stands in for `random`: records the bound of each draw, returns the largest."""

    def __init__(self) -> None:
        self.bounds: list[int] = []

    def randrange(self, stop: int) -> int:
        self.bounds.append(stop)
        return stop - 1


@pytest.fixture
def receiver():
    with WebhookReceiver() as receiver:
        yield receiver


def closed_port_url() -> str:
    """Return a loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhooks/plane"


def send(receiver_url: str, body: bytes, **options):
    options.setdefault("secret", SECRET)
    options.setdefault("event", "issue")
    options.setdefault("delay_scale", 0.0)
    return send_webhook(receiver_url, body, **options)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["fixture"] for v in VECTORS])
def test_signature_matches_vector(receiver, vector):
    body = vector["raw_body"].encode("utf-8")
    send(receiver.url, body, secret=vector["secret"])
    sent = receiver.received[0].headers["X-Plane-Signature"]
    assert sent == vector["headers"]["X-Plane-Signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["fixture"] for v in VECTORS])
def test_build_body_reproduces_vector_bytes(vector):
    payload = json.loads(vector["raw_body"])
    assert build_body(payload) == vector["raw_body"].encode("utf-8")


def test_build_body_of_fixture_equals_plane_wire_bytes():
    assert build_body(fixture("issue.created")) == VECTORS[0]["raw_body"].encode()


def test_body_arrives_byte_for_byte(receiver):
    body = build_body(fixture("issue_comment.created"))
    send(receiver.url, body)
    assert receiver.received[0].body == body


def test_headers_are_plane_headers(receiver):
    send(receiver.url, b'{"event": "issue"}', event="issue")
    headers = receiver.received[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Autopilot"
    assert headers["X-Plane-Event"] == "issue"
    assert uuid.UUID(headers["X-Plane-Delivery"]).version == 4


def test_signature_is_hmac_of_body(receiver):
    body = b'{"event": "project", "action": "deleted"}'
    send(receiver.url, body)
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert receiver.received[0].headers["X-Plane-Signature"] == expected


def test_no_signature_without_secret(receiver):
    send(receiver.url, b"{}", secret=None)
    assert "X-Plane-Signature" not in receiver.received[0].headers


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_http_error_response_is_not_retried(receiver, status):
    receiver.plan(status)
    attempts = send(receiver.url, b"{}")
    assert [attempt.status for attempt in attempts] == [status]
    assert len(receiver.received) == 1


def test_connection_reset_retried_until_response(receiver):
    receiver.plan(RESET, RESET, 202)
    attempts = send(receiver.url, b"{}")
    assert [attempt.status for attempt in attempts] == [None, None, 202]


def test_each_attempt_has_new_delivery_id(receiver):
    receiver.plan(RESET, RESET, 200)
    attempts = send(receiver.url, b"{}")
    received_ids = [r.headers["X-Plane-Delivery"] for r in receiver.received]
    assert len(set(received_ids)) == 3
    assert received_ids == [attempt.delivery_id for attempt in attempts]


def test_retries_repeat_body_and_signature(receiver):
    receiver.plan(RESET, 200)
    send(receiver.url, b'{"a": 1}')
    first, second = receiver.received
    assert first.body == second.body
    assert first.headers["X-Plane-Signature"] == second.headers["X-Plane-Signature"]


def test_unreachable_receiver_gets_six_attempts():
    attempts = send(closed_port_url(), b"{}")
    assert len(attempts) == 6
    assert all(attempt.error for attempt in attempts)


def test_timeout_is_retried(receiver):
    receiver.plan(("delay", 0.5, 200), 200)
    attempts = send(receiver.url, b"{}", timeout=0.2)
    assert [attempt.status for attempt in attempts] == [None, 200]
    assert "Timeout" in attempts[0].error


def test_waits_are_whole_seconds_up_to_600_scaled():
    rng = FixedRandom()
    attempts = send(closed_port_url(), b"{}", rng=rng, delay_scale=1e-5)
    assert rng.bounds == [601] * 5
    assert [a.wait_before for a in attempts] == [0.0] + [600 * 1e-5] * 5


def test_redirect_is_not_followed(receiver):
    receiver.plan(302)
    attempts = send(receiver.url, b"{}")
    assert [attempt.status for attempt in attempts] == [302]
    assert len(receiver.received) == 1


def test_stop_event_ends_retries():
    stop = threading.Event()
    stop.set()
    attempts = send(closed_port_url(), b"{}", delay_scale=1.0, stop=stop)
    assert len(attempts) == 1
