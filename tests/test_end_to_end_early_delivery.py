"""A webhook that arrives before its installation is stored is handled after."""

import pytest
import redis

from plane_standin import defaults
from tests.e2e import start_stack
from tests.processes import wait_for


@pytest.fixture
def stack(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    running = start_stack(redis_url)
    yield running
    running.stop()


def test_delivery_before_install_runs_after_install(stack):
    sent = stack.standin.send_fixture("issue.created")
    delivery_id = sent["deliveries"][0]["attempts"][-1]["delivery_id"]
    wait_for(
        lambda: (
            "delivery waiting: workspace not installed yet" in stack.worker.output()
        ),
        timeout=30,
        message="the delivery to wait for its installation",
    )

    assert stack.bot_comments_on(defaults.WORK_ITEM_ID) == []
    assert stack.install().status_code == 200

    stack.wait_for_delivery(delivery_id)
    assert len(stack.bot_comments_on(defaults.WORK_ITEM_ID)) == 1
