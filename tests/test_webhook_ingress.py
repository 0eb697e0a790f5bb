"""The webhook endpoint against a real Redis: signatures, bodies, sizes, enqueueing.

Covers the regression cases on wire bytes, body parsing before verification,
missing signatures and large bodies.
"""

import hashlib
import json
import logging
from pathlib import Path

import pytest
from flask import request

from shared import queues
from shared.signature import compute_signature
from tests.conftest import CASE_SECRET
from tests.jobs import move_inbox

CASES = Path(__file__).parent / "fixtures" / "cases"
BODY_A = (CASES / "body-a.json").read_bytes()
BODY_B = (CASES / "body-b.json").read_bytes()
BODY_B_NOT_UTF8 = (CASES / "body-b-not-utf8.bin").read_bytes()
SIGNATURE_A = "f507d65257a8441e9ca335e0f30239b784f439969a4904007498795ab11de2e9"
SIGNATURE_B = "56f09da995698b6fadaae9dfcd246f0abbfbbdbd96a0c1368ab1866637d1f544"
SIGNATURE_NOT_UTF8 = "75917994cc935486b487f9ac7543144fd89b044f80be05d813cc0094f11ef3df"
EMPTY_BODY_SIGNATURE = (
    "5305a9fb9b4f89726427adb2e51ed5f08e34e53e85d8d707d2c41b4888f64dd7"
)


@pytest.fixture
def client(settings, make_app):
    return make_app(settings).test_client()


def post(
    client,
    body,
    signature,
    *,
    delivery="5c0d1e2f-0000-4000-8000-000000000101",
    content_type="application/json",
):
    headers = {"X-Plane-Event": "issue", "X-Plane-Delivery": delivery}
    if signature is not None:
        headers["X-Plane-Signature"] = signature
    return client.post(
        "/webhooks/plane", data=body, headers=headers, content_type=content_type
    )


def delivery_jobs(redis_conn):
    move_inbox(redis_conn)
    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    return [queue.fetch_job(job_id) for job_id in queue.job_ids]


def stored_body_digest(job) -> str:
    return hashlib.sha256(queues.decode_body(job.args[0])).hexdigest()


# Wire bytes (HMAC over the raw body, whatever its layout)


@pytest.mark.parametrize(
    ("body", "signature"), [(BODY_A, SIGNATURE_A), (BODY_B, SIGNATURE_B)]
)
def test_signed_body_is_accepted_and_enqueued(client, redis_conn, body, signature):
    response = post(client, body, signature)

    jobs = delivery_jobs(redis_conn)
    assert response.status_code == 202
    assert len(jobs) == 1
    assert stored_body_digest(jobs[0]) == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (BODY_B, SIGNATURE_A),
        (BODY_A, SIGNATURE_A[:-1] + "8"),
        (BODY_B, SIGNATURE_B[:-1] + "5"),
    ],
)
def test_wrong_signature_gets_401_and_nothing_enqueued(
    client, redis_conn, body, signature
):
    response = post(client, body, signature)

    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid signature"}
    assert delivery_jobs(redis_conn) == []


def test_signed_non_utf8_body_gets_400(client, redis_conn, caplog):
    caplog.set_level(logging.INFO)
    response = post(
        client,
        BODY_B_NOT_UTF8,
        SIGNATURE_NOT_UTF8,
        delivery="5c0d1e2f-0000-4000-8000-000000000106",
    )

    assert response.status_code == 400
    assert "not valid UTF-8 JSON" in response.get_json()["error"]
    assert delivery_jobs(redis_conn) == []
    rejection = [
        r for r in caplog.records if r.getMessage().startswith("delivery rejected")
    ]
    assert len(rejection) == 1
    assert rejection[0].delivery_id == "5c0d1e2f-0000-4000-8000-000000000106"
    assert "signature" not in rejection[0].getMessage()


# Body read before verification (form content types, hooks reading the form)


@pytest.fixture
def client_with_form_hook(settings, make_app):
    app = make_app(settings)

    @app.before_request
    def read_form_values():
        # What a CSRF extension or a request logger does before any view runs.
        assert request.values is not None

    return app.test_client()


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-www-form-urlencoded", None]
)
def test_body_survives_form_parsing_hook(
    client_with_form_hook, redis_conn, content_type
):
    response = post(
        client_with_form_hook, BODY_A, SIGNATURE_A, content_type=content_type
    )

    jobs = delivery_jobs(redis_conn)
    assert response.status_code == 202
    assert len(jobs) == 1
    assert stored_body_digest(jobs[0]) == hashlib.sha256(BODY_A).hexdigest()


def test_test_client_sends_no_content_type_when_none(client_with_form_hook):
    environ = client_with_form_hook.post("/healthz", content_type=None).request.environ

    assert "CONTENT_TYPE" not in environ or environ["CONTENT_TYPE"] == ""


def test_empty_body_signature_with_form_type_is_rejected(
    client_with_form_hook, redis_conn
):
    response = post(
        client_with_form_hook,
        BODY_A,
        EMPTY_BODY_SIGNATURE,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 401
    assert delivery_jobs(redis_conn) == []


def test_empty_body_is_never_enqueued(client, redis_conn):
    response = post(client, b"", EMPTY_BODY_SIGNATURE)

    assert response.status_code == 400
    assert delivery_jobs(redis_conn) == []


# Missing or malformed signature, missing secret


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing X-Plane-Signature"),
        ("", "missing X-Plane-Signature"),
        ("zz", "malformed X-Plane-Signature"),
        (SIGNATURE_A[:-1], "malformed X-Plane-Signature"),
    ],
)
def test_missing_or_malformed_signature_gets_401(
    client, redis_conn, caplog, signature, reason
):
    caplog.set_level(logging.INFO)
    response = post(
        client, BODY_A, signature, delivery="5c0d1e2f-0000-4000-8000-000000000301"
    )

    assert response.status_code == 401
    assert response.get_json()["error"].startswith(reason)
    assert delivery_jobs(redis_conn) == []
    rejections = [
        r for r in caplog.records if r.getMessage().startswith("delivery rejected")
    ]
    assert len(rejections) == 1
    assert rejections[0].delivery_id == "5c0d1e2f-0000-4000-8000-000000000301"
    assert CASE_SECRET not in caplog.text
    if signature:
        assert signature not in caplog.text


# Size limit


def large_body(characters: int) -> bytes:
    actor = {"id": "0b6b3d1e-4444-4a4a-9c9c-000000000004", "display_name": "alex"}
    return json.dumps(
        {
            "event": "issue",
            "action": "updated",
            "webhook_id": "0b6b3d1e-1111-4a4a-9c9c-000000000001",
            "workspace_id": "0b6b3d1e-2222-4a4a-9c9c-000000000002",
            "data": {
                "id": "0b6b3d1e-3333-4a4a-9c9c-000000000003",
                "description_html": "<p>" + "x" * characters + "</p>",
            },
            "activity": {
                "field": "description_html",
                "new_value": None,
                "old_value": None,
                "actor": actor,
            },
        }
    ).encode()


def test_large_signed_body_is_accepted(client, redis_conn):
    body = large_body(460000)

    response = post(
        client, body, "ea7e0e7aab729e8a60a17812bcb00b475926c9a9d794913136566cc0c67a5117"
    )

    jobs = delivery_jobs(redis_conn)
    assert len(body) == 460398
    assert response.status_code == 202
    assert (
        stored_body_digest(jobs[0])
        == "013bd9dc9557f789d40b970a6834f4502787a71d8d4a0a49bb6dacdd88757d47"
    )


def test_large_form_typed_body_is_not_413(client_with_form_hook, redis_conn):
    body = large_body(600000)

    response = post(
        client_with_form_hook,
        body,
        "76db3d3e995d9469afaa17999ad7b83ff8e96f2739ae3ecf89e97250336479ce",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 202
    assert len(delivery_jobs(redis_conn)) == 1


def test_body_over_limit_gets_413_with_limit(redis_url, redis_conn, make_app, caplog):
    from shared.settings import load_settings
    from tests.conftest import make_environ

    settings = load_settings(make_environ(redis_url, WEBHOOK_MAX_BODY_BYTES="1000"))
    client = make_app(settings).test_client()
    body = large_body(1000 - 398 + 1)
    caplog.set_level(logging.INFO)

    response = post(
        client,
        body,
        compute_signature(body, secret=CASE_SECRET),
        delivery="5c0d1e2f-0000-4000-8000-000000000403",
    )

    assert len(body) == 1001
    assert response.status_code == 413
    assert "1000-byte limit" in response.get_json()["error"]
    assert delivery_jobs(redis_conn) == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].delivery_id == "5c0d1e2f-0000-4000-8000-000000000403"
    assert errors[0].size == 1001


def test_body_at_limit_is_accepted(redis_url, redis_conn, make_app):
    from shared.settings import load_settings
    from tests.conftest import make_environ

    settings = load_settings(make_environ(redis_url, WEBHOOK_MAX_BODY_BYTES="1000"))
    client = make_app(settings).test_client()
    body = large_body(1000 - 398)

    response = post(client, body, compute_signature(body, secret=CASE_SECRET))

    assert len(body) == 1000
    assert response.status_code == 202


# Other signed bodies


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_signed_bad_json_gets_400(client, redis_conn, body, reason):
    response = post(client, body, compute_signature(body, secret=CASE_SECRET))

    assert response.status_code == 400
    assert reason in response.get_json()["error"]
    assert delivery_jobs(redis_conn) == []


def test_job_description_hides_body(client, redis_conn):
    post(client, BODY_A, SIGNATURE_A)

    job = delivery_jobs(redis_conn)[0]
    assert (
        job.description == "delivery 5c0d1e2f-0000-4000-8000-000000000101 issue.updated"
    )
    assert job.func_name == queues.DELIVERY_JOB


def test_health_reports_redis(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "redis": "ok"}
