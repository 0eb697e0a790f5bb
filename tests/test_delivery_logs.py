"""A delivery's log lines, captured from ingress to handler, tell its story."""

import logging

import pytest
import redis

from handlers.work_items import welcome_new_work_item
from ingress import create_app
from plane_standin.server import StandIn
from shared import queues
from shared.plane_api import DELIVERY_ID_HEADER
from tests.conftest import CASE_SECRET
from tests.delivery_flow import (
    captured_json_logs,
    issue_created_body,
    post_delivery,
    worker_context,
)
from tests.jobs import perform_next_job

DELIVERY_ID = "5c0d1e2f-0000-4000-8000-00000000a001"
STEPS = ("delivery received", "delivery enqueued", "delivery started", "delivery done")

handler_logger = logging.getLogger("tests.handler")


@pytest.fixture(scope="module")
def standin():
    with StandIn(
        webhook_url="http://127.0.0.1:9/webhooks/plane",
        webhook_secret=CASE_SECRET,
        webhooks_for_api_changes=False,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def story(redis_url, standin):
    """Receive, enqueue and run one delivery; return its log lines as dicts."""
    redis_conn = redis.Redis.from_url(redis_url)
    redis_conn.flushdb()
    context = worker_context(redis_url, redis_conn, standin)

    @context.registry.on("issue", "created")
    def log_and_comment(event, plane):
        handler_logger.info("handler wrote its own line")
        welcome_new_work_item(event, plane)

    client = create_app(context.settings, connection=redis_conn).test_client()
    with captured_json_logs() as lines:
        response = post_delivery(client, issue_created_body(), DELIVERY_ID)
        perform_next_job(redis_conn, [queues.DELIVERY_QUEUE])
    assert response.status_code == 202
    return lines


def line(lines: list[dict], message: str) -> dict:
    return next(entry for entry in lines if entry["message"] == message)


@pytest.mark.parametrize("message", STEPS)
def test_each_step_carries_delivery_id(story, message):
    assert line(story, message)["delivery_id"] == DELIVERY_ID


def test_handler_own_line_carries_delivery_id(story):
    assert line(story, "handler wrote its own line")["delivery_id"] == DELIVERY_ID


def test_handler_line_names_event_and_workspace(story):
    entry = line(story, "handler done")

    assert entry["event"] == "issue"
    assert entry["action"] == "created"
    assert entry["workspace_slug"] == "acme"
    assert entry["installation_id"]
    assert entry["job_id"]
    assert isinstance(entry["duration_ms"], int)


def test_worker_lines_share_job_id(story):
    enqueued = line(story, "delivery enqueued")

    assert line(story, "delivery done")["job_id"] == enqueued["job_id"]


def test_plane_call_line_carries_delivery_id(story):
    entry = line(story, "Plane responded")

    assert entry["delivery_id"] == DELIVERY_ID


def test_plane_call_sends_delivery_id_header(story, standin):
    comment_post = standin.requests("api:comments", "POST")[0]
    headers = {name.lower(): value for name, value in comment_post.headers.items()}

    assert headers[DELIVERY_ID_HEADER.lower()] == DELIVERY_ID


def test_no_line_holds_a_secret(story, standin):
    text = "\n".join(str(entry) for entry in story)
    bot_tokens = [
        request.bearer_token
        for request in standin.requests("api")
        if request.bearer_token
    ]

    assert CASE_SECRET not in text
    assert bot_tokens
    assert all(token not in text for token in bot_tokens)
    assert "Login button unresponsive" not in text
