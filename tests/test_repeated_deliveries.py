"""Every delivery sent two or three times, in shuffled order, is handled once.

v1 copies carry the same bytes with a new ``X-Plane-Delivery`` id, as Plane's
retries do. v2 copies carry the same ``event_id`` with a new ``delivery_id``
in the body, so their bytes differ. Copies go out from several sender threads
at once, so two copies of one event can reach the two web workers together.
The counting handler records every run, so a second run shows even though the
stand-in's 409 would keep a second comment row out.
"""

import random
import uuid
from collections import Counter

import pytest
import redis

from plane_standin import defaults, payloads
from plane_standin.sender import build_body
from tests.chaos_stack import (
    SenderPool,
    counted_comments,
    delivery_backlog,
    metric_total,
    reset_database,
    start_quiet_stack,
    stop_stack,
)
from tests.counting_handlers import RUNS_KEY, external_id_for
from tests.processes import wait_for

V1_EVENTS = 60
V2_EVENTS = 40
SENDER_THREADS = 6
HANDLED_TIMEOUT_SECONDS = 60


@pytest.fixture
def stack(redis_url):
    reset_database(redis_url)
    running = start_quiet_stack(redis_url, HANDLER_MODULES="tests.counting_handlers")
    assert running.install().status_code == 200
    yield running
    stop_stack(running)


def v2_created_body(item: dict, *, event_id: str) -> bytes:
    """Build a v2 ``workitem.created`` body with a delivery id of its own."""
    payload = {
        "version": "v2",
        "delivery_id": str(uuid.uuid4()),
        "event_id": event_id,
        "entity_id": item["id"],
        "entity_type": "workitem",
        "event": "workitem.created",
        "webhook_id": defaults.WEBHOOK_ID,
        "workspace_id": item["workspace"],
        "data": {
            "id": item["id"],
            "name": item["name"],
            "project_id": item["project"],
            "workspace_id": item["workspace"],
            "created_by_id": defaults.INSTALLER_USER_ID,
        },
        "previous_attributes": {},
    }
    return build_body(payload)


def shuffled_copies(stack, rng: random.Random) -> list[tuple[str, bytes]]:
    """Return two or three copies of each event's body, shuffled together."""
    copies = []
    for number in range(V1_EVENTS + V2_EVENTS):
        item = stack.standin.world.add_work_item(
            f"Repeated delivery {number}", defaults.INSTALLER_USER_ID
        )
        count = 2 + number % 2
        if number < V1_EVENTS:
            body = build_body(payloads.work_item_created(item))
            copies.extend([(item["id"], body)] * count)
        else:
            event_id = f"evt_{uuid.uuid4().hex}"
            copies.extend(
                (item["id"], v2_created_body(item, event_id=event_id))
                for _ in range(count)
            )
    rng.shuffle(copies)
    return copies


@pytest.mark.timeout(HANDLED_TIMEOUT_SECONDS + 60)
def test_each_copy_handled_once(stack, redis_url):
    copies = shuffled_copies(stack, random.Random(4))
    events = V1_EVENTS + V2_EVENTS
    expected = {external_id_for(key) for key, _ in copies}
    connection = redis.Redis.from_url(redis_url)

    senders = SenderPool(
        f"{stack.web_url}/webhooks/plane", threads=SENDER_THREADS, delay_scale=0.01
    ).start(copies)
    try:
        assert senders.join(timeout=HANDLED_TIMEOUT_SECONDS)
    finally:
        senders.stop()
    wait_for(
        lambda: (
            set(counted_comments(stack.standin)) >= expected
            and delivery_backlog(connection) == 0
        ),
        timeout=HANDLED_TIMEOUT_SECONDS,
        interval=0.2,
        message="every event to be handled and the delivery queue to drain",
    )

    counted = counted_comments(stack.standin)
    runs = Counter(run.decode() for run in connection.lrange(RUNS_KEY, 0, -1))
    statuses = Counter(sent.status for sent in senders.results)
    accepted = metric_total(stack.web_url, "planeapp_webhook_deliveries_accepted_total")
    duplicates = metric_total(
        stack.web_url, "planeapp_webhook_deliveries_duplicate_total"
    )
    assert len(expected) == events
    assert statuses == {202: len(copies)}
    assert set(counted) == expected
    assert max(counted.values()) == 1
    assert set(runs) == expected
    assert max(runs.values()) == 1
    assert accepted == events
    assert duplicates == len(copies) - events
