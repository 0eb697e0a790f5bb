"""Redis stops during deliveries: nothing unstored is acknowledged, nothing is lost.

Uses a throwaway redis-server with an append-only file, never the shared one.
"""

import threading
import time

import pytest

from tests.e2e import start_stack
from tests.processes import wait_for
from tests.redis_server import ThrowawayRedis


@pytest.fixture
def outage_redis():
    server = ThrowawayRedis(persistent=True).start()
    yield server
    server.stop()


def test_deliveries_during_outage_are_retried_and_handled(outage_redis):
    stack = start_stack(outage_redis.url)
    try:
        assert stack.install().status_code == 200
        outage_redis.halt()
        results = {}

        def create_during_outage(number: int) -> None:
            results[number] = stack.standin.create_work_item(
                f"During the outage {number}"
            )

        senders = [
            threading.Thread(target=create_during_outage, args=(n,)) for n in range(3)
        ]
        for sender in senders:
            sender.start()
        time.sleep(1.0)
        outage_redis.start()
        for sender in senders:
            sender.join(timeout=60)

        for result in results.values():
            attempts = result["deliveries"][0]["attempts"]
            work_item_id = result["work_item"]["id"]
            wait_for(
                lambda work_item_id=work_item_id: stack.bot_comments_on(work_item_id),
                timeout=30,
                message=f"the comment on {work_item_id}",
            )
            assert attempts[0]["status"] is None
            assert [a["status"] for a in attempts if a["status"] is not None] == [202]
            assert len(stack.bot_comments_on(work_item_id)) == 1
        assert len(results) == 3
        assert "closing the connection unanswered" in stack.web.output()
    finally:
        stack.stop()
