"""Install, webhooks and handler replies, end to end over loopback."""

from pathlib import Path

import pytest
import redis

from plane_standin import defaults
from shared.redis_client import key
from tests.e2e import start_stack
from tests.processes import wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "plane"
WEBHOOK_FIXTURES = sorted(
    path.stem
    for path in FIXTURES.glob("*.json")
    if not path.name.startswith(("oauth.", "webhook-signature"))
)


@pytest.fixture(scope="module")
def stack(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    running = start_stack(redis_url)
    running.install_page = running.install()
    yield running
    running.stop()


def test_install_shows_success_page(stack):
    page = stack.install_page

    assert page.status_code == 200
    assert "App installed" in page.text
    assert "Acme Corp" in page.text


def test_install_stores_encrypted_tokens(stack, redis_url):
    connection = redis.Redis.from_url(redis_url)
    installation = connection.hgetall(key("installation", defaults.INSTALLATION_ID))
    tokens = connection.hgetall(key("tokens", defaults.INSTALLATION_ID))
    issued = [
        request.response_json["access_token"]
        for request in stack.standin.token_requests()
        if request.status == 200
    ]

    assert installation[b"workspace_slug"] == b"acme"
    assert installation[b"bot_user_id"] == defaults.BOT_USER_ID.encode()
    assert issued
    for token in issued:
        assert all(token.encode() not in value for value in tokens.values())


def test_work_item_created_gets_one_comment(stack):
    created = stack.standin.create_work_item("End-to-end work item")
    work_item_id = created["work_item"]["id"]
    delivery_id = created["deliveries"][0]["attempts"][-1]["delivery_id"]

    stack.wait_for_delivery(delivery_id)

    comments = stack.bot_comments_on(work_item_id)
    assert len(comments) == 1
    assert "picked up by the app" in comments[0]["comment_html"]


def test_comment_is_posted_with_bot_token(stack):
    created = stack.standin.create_work_item("Bot token check")
    stack.wait_for_delivery(created["deliveries"][0]["attempts"][-1]["delivery_id"])

    posts = [
        r for r in stack.standin.requests("api:comments", "POST") if r.status == 201
    ]
    bot_tokens = {
        r.response_json["access_token"]
        for r in stack.standin.token_requests("client_credentials")
        if r.status == 200
    }
    assert posts
    assert {r.bearer_token for r in posts} <= bot_tokens


def test_mention_gets_one_reply_and_no_loop(stack):
    work_item_id = stack.standin.create_work_item("Mention target")["work_item"]["id"]
    comment = stack.standin.create_comment(
        work_item_id, "can you look?", mention_bot=True
    )
    delivery_id = comment["deliveries"][0]["attempts"][-1]["delivery_id"]

    stack.wait_for_delivery(delivery_id)
    wait_for(
        lambda: (
            "handler skipped: event caused by this app's bot" in stack.worker.output()
        ),
        timeout=30,
        message="the bot's own comment to come back and be skipped",
    )

    replies = [
        c
        for c in stack.bot_comments_on(work_item_id)
        if "I saw the mention" in c["comment_html"]
    ]
    assert len(replies) == 1


@pytest.mark.parametrize("fixture", WEBHOOK_FIXTURES)
def test_every_fixture_is_accepted_and_routed(stack, fixture):
    sent = stack.standin.send_fixture(fixture)
    attempt = sent["deliveries"][0]["attempts"][-1]

    assert attempt["status"] == 202
    if fixture == "app.uninstalled":
        wait_for(
            lambda: "uninstall notice not confirmed" in stack.worker.output(),
            timeout=30,
            message="the uninstall confirmation job",
        )
        return
    outcome = stack.wait_for_delivery(attempt["delivery_id"], outcome="delivery")
    assert "failed" not in outcome


def test_resent_fixture_is_skipped_as_duplicate(stack):
    sent = [stack.standin.send_fixture("issue.created") for _ in range(2)]
    second = sent[1]["deliveries"][0]["attempts"][-1]["delivery_id"]

    wait_for(
        lambda: f"delivery_id={second}" in stack.web.output(),
        timeout=10,
        message="the second delivery to reach the web process",
    )
    comments = stack.bot_comments_on(defaults.WORK_ITEM_ID)
    welcome = [c for c in comments if "picked up by the app" in c["comment_html"]]
    assert "duplicate of an earlier delivery" in stack.web.output()
    assert len(welcome) == 1


def test_token_calls_are_counted(stack):
    checks = stack.worker.output().count("uninstall notice not confirmed")

    assert len(stack.standin.token_requests("authorization_code")) == 1
    assert len(stack.standin.token_requests("refresh_token")) == 0
    # One bot token at install, plus one for each uninstall notice checked.
    assert len(stack.standin.token_requests("client_credentials")) == 1 + checks


def test_no_secret_in_process_logs(stack):
    issued = [
        r.response_json.get("access_token")
        for r in stack.standin.token_requests()
        if r.status == 200
    ]
    codes = [
        r.form.get("code") for r in stack.standin.token_requests("authorization_code")
    ]
    logs = stack.web.output() + stack.worker.output()

    for secret in [*issued, *codes, "e2e-client-secret-0123456789abcdef"]:
        assert secret not in logs
    assert "/oauth/callback?" not in logs
