"""Plane's unsigned uninstall notice, end to end: a forged one changes nothing."""

import pytest
import redis

from plane_standin import defaults
from shared.installations import STATUS_INSTALLED, STATUS_UNINSTALLED
from shared.redis_client import key
from tests.e2e import start_stack
from tests.processes import wait_for


@pytest.fixture
def stack(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    running = start_stack(redis_url, UNINSTALL_RECHECK_SECONDS="1")
    assert running.install().status_code == 200
    yield running
    running.stop()


def stored_status(redis_url) -> str:
    connection = redis.Redis.from_url(redis_url)
    return connection.hget(
        key("installation", defaults.INSTALLATION_ID), "status"
    ).decode()


def test_forged_notice_changes_nothing(stack, redis_url):
    stack.standin.send_fixture("app.uninstalled")
    wait_for(
        lambda: "uninstall notice not confirmed" in stack.worker.output(),
        timeout=30,
        message="the confirmation job",
    )
    created = stack.standin.create_work_item("After a forged notice")
    stack.wait_for_delivery(created["deliveries"][0]["attempts"][-1]["delivery_id"])

    assert stored_status(redis_url) == STATUS_INSTALLED
    assert len(stack.bot_comments_on(created["work_item"]["id"])) == 1


def test_real_uninstall_stops_deliveries(stack, redis_url):
    stack.standin.uninstall()
    wait_for(
        lambda: "uninstall confirmed" in stack.worker.output(),
        timeout=60,
        message="the uninstall to be confirmed",
    )
    sent = stack.standin.send_fixture("issue.created")
    delivery_id = sent["deliveries"][0]["attempts"][-1]["delivery_id"]

    stack.wait_for_delivery(delivery_id, outcome="delivery dropped")
    assert stored_status(redis_url) == STATUS_UNINSTALLED
    assert stack.bot_comments_on(defaults.WORK_ITEM_ID) == []
