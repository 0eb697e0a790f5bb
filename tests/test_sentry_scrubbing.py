"""Sentry events keep no secret, and each failure is sent exactly once.

A transport stub keeps the envelopes Sentry would send; the tests search their
serialized bytes for every secret value the test used.
"""

import logging

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from ingress import create_app
from plane_standin import defaults
from plane_standin.server import StandIn
from shared import queues
from shared.deliveries import DeliveryQueue
from shared.monitoring import init_sentry
from tests.conftest import CASE_SECRET
from tests.delivery_flow import issue_created_body, post_delivery, worker_context
from workers.pool import PlaneWorker

# Never contacted: the transport stub replaces the HTTP transport.
STUB_DSN = "http://public@127.0.0.1:9/1"
OAUTH_CODE = "oauth-code-Zq8Wm4Kx2Rt6Yp0Nv3Bc"
SIGNATURE_VALUE = "a" * 64
DELIVERY_ID = "5c0d1e2f-0000-4000-8000-00000000b001"

handler_logger = logging.getLogger("tests.leaky_handler")


class KeepEnvelopes(Transport):
    """A Sentry transport that keeps what it is given instead of sending it."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == "event"
        ]

    def raw_text(self) -> str:
        return b"".join(e.serialize() for e in self.envelopes).decode(errors="replace")


@pytest.fixture
def standin():
    with StandIn(
        webhook_url="http://127.0.0.1:9/webhooks/plane",
        webhook_secret=CASE_SECRET,
        webhooks_for_api_changes=False,
    ) as running:
        yield running


@pytest.fixture
def sentry_events():
    transport = KeepEnvelopes()
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def context(redis_url, redis_conn, standin, sentry_events):
    context = worker_context(redis_url, redis_conn, standin, SENTRY_DSN=STUB_DSN)
    assert init_sentry(context.settings, process="worker", transport=sentry_events)
    return context


def run_worker(redis_conn) -> None:
    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    PlaneWorker([queue], connection=redis_conn).work(burst=True)
    sentry_sdk.flush()


def enqueue_delivery(redis_conn, body: bytes, retry_intervals=None):
    return queues.enqueue(
        queues.get_queue(queues.DELIVERY_QUEUE, redis_conn),
        queues.DELIVERY_JOB,
        args=(queues.encode_body(body), DELIVERY_ID, 0.0),
        description=f"delivery {DELIVERY_ID}",
        job_timeout=30,
        retry_intervals=retry_intervals,
    )


@pytest.fixture
def leaky_failure(context, redis_conn, sentry_events, caplog):
    """Fail a handler with the bot token in its locals, log line and error."""
    caplog.set_level(logging.INFO)

    @context.registry.on("issue", "created")
    def leaky(event, plane):
        token = context.credentials(defaults.INSTALLATION_ID).bot_token()
        copied = str(token)  # a name that says nothing about a token
        headers = {"Authorization": f"Bearer {copied}", "X-Plane-Signature": "x"}
        code = OAUTH_CODE
        handler_logger.info("calling Plane with %s", copied)
        raise RuntimeError(f"Plane refused {headers} for code={code}")

    enqueue_delivery(redis_conn, issue_created_body())
    run_worker(redis_conn)
    return context.credentials(defaults.INSTALLATION_ID).bot_token()


def test_handler_failure_reaches_sentry(leaky_failure, sentry_events):
    assert len(sentry_events.events()) == 1


def test_handler_failure_tagged_with_attempt(leaky_failure, sentry_events):
    tags = sentry_events.events()[0]["tags"]

    assert tags["attempt"] == "1"
    assert tags["handler"].endswith("leaky")
    assert tags["delivery_id"] == DELIVERY_ID


def test_event_keeps_frame_locals(leaky_failure, sentry_events):
    frames = sentry_events.events()[0]["exception"]["values"][-1]["stacktrace"]
    local_names = set(frames["frames"][-1]["vars"])

    assert {"token", "copied", "headers"} <= local_names


def test_event_holds_no_bot_token(leaky_failure, sentry_events):
    assert leaky_failure not in sentry_events.raw_text()


def test_event_holds_no_oauth_code(leaky_failure, sentry_events):
    assert OAUTH_CODE not in sentry_events.raw_text()


@pytest.mark.parametrize(
    "setting",
    [
        "PLANE_CLIENT_SECRET",
        "SECRET_KEY",
        "TOKEN_ENCRYPTION_KEYS",
        "PLANE_WEBHOOK_SECRET",
    ],
)
def test_event_holds_no_setting_secret(leaky_failure, sentry_events, context, setting):
    values = {
        "PLANE_CLIENT_SECRET": context.settings.plane_client_secret,
        "SECRET_KEY": context.settings.secret_key,
        "TOKEN_ENCRYPTION_KEYS": context.settings.token_encryption_keys[0],
        "PLANE_WEBHOOK_SECRET": context.settings.webhook_secrets[0],
    }

    assert values[setting] not in sentry_events.raw_text()


def test_event_holds_no_webhook_body(leaky_failure, sentry_events):
    assert "Login button unresponsive" not in sentry_events.raw_text()


def test_event_holds_no_job_arguments(leaky_failure, sentry_events):
    body_b64 = queues.encode_body(issue_created_body())

    assert body_b64[:40] not in sentry_events.raw_text()


def test_breadcrumb_keeps_message_without_token(leaky_failure, sentry_events):
    crumbs = sentry_events.events()[0]["breadcrumbs"]["values"]
    messages = [crumb.get("message") or "" for crumb in crumbs]

    assert any(message.startswith("calling Plane with") for message in messages)


def test_each_attempt_sent_once(context, redis_conn, sentry_events):
    @context.registry.on("issue", "created")
    def always_fails(event, plane):
        raise RuntimeError("Plane is down")

    enqueue_delivery(redis_conn, issue_created_body(), retry_intervals=[0])
    run_worker(redis_conn)

    attempts = [event["tags"]["attempt"] for event in sentry_events.events()]
    assert attempts == ["1", "2"]


def test_job_failure_sent_once(context, redis_conn, sentry_events):
    enqueue_delivery(redis_conn, b'{"not": "an envelope"}', retry_intervals=[0])
    run_worker(redis_conn)

    failures = [event["tags"]["failure"] for event in sentry_events.events()]
    assert failures == ["job"]


def test_web_error_event_holds_no_request_secrets(
    redis_conn, context, sentry_events, monkeypatch
):
    def broken_enqueue(*args, **kwargs):
        raise RuntimeError("Redis refused the job")

    monkeypatch.setattr(DeliveryQueue, "enqueue", broken_enqueue)
    client = create_app(context.settings, connection=redis_conn).test_client()

    response = post_delivery(client, issue_created_body(), DELIVERY_ID)
    sentry_sdk.flush()
    text = sentry_events.raw_text()

    assert response.status_code == 500
    assert len(sentry_events.events()) == 1
    assert CASE_SECRET not in text
    assert "Login button unresponsive" not in text
    signature = sentry_events.events()[0]["request"]["headers"]["X-Plane-Signature"]
    assert signature == "[redacted]"


def test_callback_error_event_holds_no_code(
    redis_conn, context, sentry_events, monkeypatch
):
    from ingress import oauth

    def broken_check(*args, **kwargs):
        raise RuntimeError("state lookup failed")

    monkeypatch.setattr(oauth, "_check_state", broken_check)
    client = create_app(context.settings, connection=redis_conn).test_client()

    client.get(
        "/oauth/callback",
        query_string={
            "code": OAUTH_CODE,
            "state": "state-value-Hn5Jk8Lm2",
            "app_installation_id": defaults.INSTALLATION_ID,
        },
        headers={"Authorization": f"Bearer {SIGNATURE_VALUE}"},
    )
    sentry_sdk.flush()
    text = sentry_events.raw_text()

    assert len(sentry_events.events()) == 1
    assert OAUTH_CODE not in text
    assert "state-value-Hn5Jk8Lm2" not in text
    assert SIGNATURE_VALUE not in text
