"""Hostile input to the webhook endpoint: never a 5xx, never an unsigned job.

Hypothesis generates bodies (random bytes, truncated and deeply nested JSON,
huge numbers, invalid UTF-8), content types and header values. Each property
runs a bounded number of examples with no example database, so the run is
repeatable in cost and leaves no files behind.
"""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from shared import queues
from shared.deliveries import DeliveryQueue
from shared.settings import load_settings
from shared.signature import compute_signature
from tests.conftest import CASE_SECRET, make_environ

MAX_BODY_BYTES = 4096
SAMPLE_BODY = (
    Path(__file__).parent / "fixtures" / "plane" / "issue.created.json"
).read_bytes()
# 300 examples per property: about 3 s for the whole file on a 2-core machine
# (measured with pytest --durations), so it runs in every test run.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain; charset=utf-16",
    "application/json; charset=latin-1",
    "",
    "\x00/\x00",
]


@pytest.fixture
def app(redis_url, make_app):
    settings_ = load_settings(
        make_environ(redis_url, WEBHOOK_MAX_BODY_BYTES=str(MAX_BODY_BYTES))
    )
    return make_app(settings_)


def truncated_sample(cut: int) -> bytes:
    return SAMPLE_BODY[:cut]


def with_byte_replaced(position: int, value: int) -> bytes:
    body = bytearray(SAMPLE_BODY)
    body[position % len(body)] = value
    return bytes(body)


bodies = st.one_of(
    st.binary(max_size=MAX_BODY_BYTES + 64),
    st.integers(0, len(SAMPLE_BODY)).map(truncated_sample),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 200_000).map(lambda depth: b'{"a":' * depth),
    st.integers(4000, 20_000).map(lambda digits: b'{"event": ' + b"9" * digits + b"}"),
    st.sampled_from([b"1e999999", b"-0", b"NaN", b"null", b"[]", b'"issue"', b"{}"]),
    st.tuples(st.integers(0, 10_000), st.integers(0x80, 0xFF)).map(
        lambda args: with_byte_replaced(*args)
    ),
    st.just(SAMPLE_BODY),
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300
)


def queue_lengths(redis_conn) -> tuple[int, int]:
    """Return (deliveries accepted and not run, install jobs queued)."""
    return (
        DeliveryQueue(redis_conn).inbox_length()
        + queues.get_queue(queues.DELIVERY_QUEUE, redis_conn).count,
        queues.get_queue(queues.INSTALL_QUEUE, redis_conn).count,
    )


def parses_to_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body.decode("utf-8")), dict)
    except (ValueError, RecursionError):
        return False


@FUZZ
@given(
    body=bodies,
    signed=st.booleans(),
    content_type=st.sampled_from(CONTENT_TYPES),
    delivery=header_text,
)
def test_any_body_gets_a_4xx_or_202(
    app, redis_conn, body, signed, content_type, delivery
):
    client = app.test_client()
    headers = {"X-Plane-Delivery": delivery}
    if signed:
        headers["X-Plane-Signature"] = compute_signature(body, secret=CASE_SECRET)
    before = queue_lengths(redis_conn)

    response = client.post(
        "/webhooks/plane", data=body, headers=headers, content_type=content_type
    )

    after = queue_lengths(redis_conn)
    assert response.status_code in (202, 400, 401, 413)
    assert b"Traceback" not in response.data
    assert response.is_json
    assert after[1] == before[1]
    if response.status_code == 202:
        # A body seen before is acknowledged as a duplicate and not enqueued again.
        enqueued = 0 if response.get_json()["status"] == "duplicate" else 1
        assert signed
        assert len(body) <= MAX_BODY_BYTES
        assert parses_to_object(body)
        assert after[0] == before[0] + enqueued
    else:
        assert after[0] == before[0]


@FUZZ
@given(signature=header_text, size=st.integers(0, 200_000))
def test_any_signature_header_is_rejected(app, redis_conn, signature, size):
    client = app.test_client()
    padded = (signature * (size // max(len(signature), 1) + 1))[:size] or signature

    response = client.post(
        "/webhooks/plane",
        data=SAMPLE_BODY,
        headers={"X-Plane-Signature": padded},
        content_type="application/json",
    )

    assert response.status_code == 401
    assert queue_lengths(redis_conn) == (0, 0)


@FUZZ
@given(delivery=header_text, size=st.integers(0, 100_000))
def test_enormous_delivery_header_is_not_echoed(app, redis_conn, delivery, size):
    client = app.test_client()
    value = (delivery + "x") * (size // (len(delivery) + 1) + 1)

    response = client.post(
        "/webhooks/plane",
        data=SAMPLE_BODY,
        headers={
            "X-Plane-Delivery": value,
            "X-Plane-Signature": compute_signature(SAMPLE_BODY, secret=CASE_SECRET),
        },
        content_type="application/json",
    )

    assert response.status_code == 202
    assert len(response.get_json()["delivery_id"]) <= 64


@pytest.mark.parametrize(
    "injected",
    [
        "abc\r\nX-Injected: 1",
        "abc\nSet-Cookie: session=evil",
        "abc\r\n\r\n<script>alert(1)</script>",
    ],
)
def test_header_injection_is_not_reflected(app, redis_conn, injected):
    environ = EnvironBuilder(
        path="/webhooks/plane",
        method="POST",
        data=SAMPLE_BODY,
        content_type="application/json",
    ).get_environ()
    environ["HTTP_X_PLANE_DELIVERY"] = injected
    environ["HTTP_X_PLANE_SIGNATURE"] = compute_signature(
        SAMPLE_BODY, secret=CASE_SECRET
    )

    app_iter, status, headers = run_wsgi_app(app, environ)
    body = b"".join(app_iter)

    assert status.startswith("202")
    assert "X-Injected" not in headers
    assert "Set-Cookie" not in headers
    assert b"<script>" not in body
    assert json.loads(body)["delivery_id"] == "(invalid)"
