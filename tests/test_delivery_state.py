"""A delivery's Redis state: installation, claim, entity lock and completion marks.

Each test runs ``process_delivery`` outside RQ, with handlers of its own, and
reads what the job left in Redis.
"""

import json
import logging
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from shared import queues
from shared.installations import STATUS_UNINSTALLED
from shared.registry import HandlerRegistry
from shared.settings import load_settings
from tests.conftest import make_environ, make_installation
from workers import runtime
from workers.delivery import process_delivery

FIXTURES = Path(__file__).parent / "fixtures" / "plane"
BODY = (FIXTURES / "issue.updated.json").read_bytes()
WORK_ITEM_ID = json.loads(BODY)["data"]["id"]
WORKSPACE_ID = json.loads(BODY)["workspace_id"]
LOCK_KEY = f"planeapp:lock:entity:{WORKSPACE_ID}:issue:{WORK_ITEM_ID}"


class CountingConnection(redis.Connection):
    """A connection that counts the round trips the counting thread sends."""

    counting_thread: int | None = None
    round_trips = 0

    def send_packed_command(self, command, check_health=True):
        if threading.get_ident() == CountingConnection.counting_thread:
            CountingConnection.round_trips += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def context(redis_url, redis_conn):
    connection = redis.Redis.from_url(redis_url, connection_class=CountingConnection)
    context = runtime.init(
        load_settings(make_environ(redis_url)), connection=connection
    )
    context.registry = HandlerRegistry()
    context.store.save(make_installation())
    yield context
    connection.close()


def priority_change(priority: str) -> bytes:
    """Return the sample body for a change of the work item's priority."""
    payload = json.loads(BODY)
    payload["activity"]["new_value"] = priority
    return json.dumps(payload).encode()


def deliver(completion_key: str | None = None, body: bytes = BODY) -> str:
    """Run the sample ``issue``/``updated`` delivery; return its completion key."""
    completion_key = completion_key or str(uuid.uuid4())
    process_delivery(
        queues.encode_body(body),
        "5c0d1e2f-0000-4000-8000-00000000c001",
        time.time(),
        completion_key=completion_key,
    )
    return completion_key


def done_handlers(redis_conn, completion_key: str) -> set[bytes]:
    return redis_conn.smembers(f"planeapp:delivery-done:{completion_key}")


def test_one_handler_takes_two_round_trips(context):
    calls = []
    context.registry.on("issue", "updated")(lambda event, plane: calls.append(1))
    # The first delivery loads the scripts into Redis, which costs extra round trips.
    deliver(body=priority_change("low"))
    CountingConnection.counting_thread = threading.get_ident()
    CountingConnection.round_trips = 0

    deliver(body=priority_change("urgent"))

    assert calls == [1, 1]
    assert CountingConnection.round_trips == 2


def test_two_handlers_take_three_round_trips(context):
    calls = []

    # Named functions: completion marks tell handlers apart by name.
    @context.registry.on("issue", "updated")
    def first(event, plane):
        calls.append(1)

    @context.registry.on("issue")
    def second(event, plane):
        calls.append(2)

    deliver(body=priority_change("low"))
    CountingConnection.counting_thread = threading.get_ident()
    CountingConnection.round_trips = 0

    deliver(body=priority_change("urgent"))

    assert calls == [1, 2, 1, 2]
    # Begin, the first handler's mark, and the last mark with the release.
    assert CountingConnection.round_trips == 3


def test_lock_held_while_handler_runs(context, redis_conn):
    seen = []

    @context.registry.on("issue", "updated")
    def look_at_lock(event, plane):
        seen.append(redis_conn.pttl(LOCK_KEY))

    deliver()

    assert len(seen) == 1
    assert seen[0] > 0
    assert not redis_conn.exists(LOCK_KEY)


def test_mark_written_before_next_handler(context, redis_conn):
    seen = []
    completion_key = str(uuid.uuid4())

    @context.registry.on("issue", "updated")
    def first(event, plane):
        pass

    @context.registry.on("issue")
    def second(event, plane):
        seen.extend(done_handlers(redis_conn, completion_key))

    deliver(completion_key)

    assert [name.decode().rsplit(".", 1)[-1] for name in seen] == ["first"]
    assert len(done_handlers(redis_conn, completion_key)) == 2


def test_last_mark_written_at_finish(context, redis_conn):
    context.registry.on("issue", "updated")(lambda event, plane: None)

    completion_key = deliver()

    assert len(done_handlers(redis_conn, completion_key)) == 1
    assert redis_conn.ttl(f"planeapp:delivery-done:{completion_key}") > 0


def test_copy_runs_nothing_and_takes_no_lock(context, redis_conn):
    calls = []
    context.registry.on("issue", "updated")(lambda event, plane: calls.append(1))
    deliver()
    seen = []
    redis_conn.set(LOCK_KEY, "another-holder", px=5000)

    context.registry.on("issue")(lambda event, plane: seen.append(1))
    deliver()

    assert calls == [1]
    assert seen == []
    assert redis_conn.get(LOCK_KEY) == b"another-holder"


def test_uninstalled_claims_nothing(context, redis_conn):
    calls = []
    context.registry.on("issue", "updated")(lambda event, plane: calls.append(1))
    context.store.save(make_installation(STATUS_UNINSTALLED))

    deliver()

    assert calls == []
    assert list(redis_conn.scan_iter("planeapp:change:*")) == []
    assert not redis_conn.exists(LOCK_KEY)


def test_missing_installation_claims_nothing(context, redis_conn):
    from shared.errors import InstallationNotFoundError

    context.registry.on("issue", "updated")(lambda event, plane: None)
    redis_conn.delete(f"planeapp:workspace:{WORKSPACE_ID}")

    with pytest.raises(InstallationNotFoundError):
        deliver()
    assert list(redis_conn.scan_iter("planeapp:change:*")) == []
    assert not redis_conn.exists(LOCK_KEY)


def test_busy_entity_waits_then_reads_marks(context, redis_conn):
    calls = []
    completion_key = str(uuid.uuid4())

    @context.registry.on("issue", "updated")
    def finished_before(event, plane):
        calls.append("finished_before")

    @context.registry.on("issue")
    def still_to_run(event, plane):
        calls.append("still_to_run")

    redis_conn.sadd(
        f"planeapp:delivery-done:{completion_key}",
        f"{finished_before.__module__}.{finished_before.__qualname__}",
    )
    redis_conn.set(LOCK_KEY, "another-holder", px=300)

    deliver(completion_key)

    assert calls == ["still_to_run"]
    assert not redis_conn.exists(LOCK_KEY)


def test_lost_lease_logged_other_lock_kept(context, redis_conn, caplog):
    @context.registry.on("issue", "updated")
    def lose_lease(event, plane):
        redis_conn.set(LOCK_KEY, "another-holder", px=5000)

    with caplog.at_level(logging.WARNING):
        completion_key = deliver()

    assert redis_conn.get(LOCK_KEY) == b"another-holder"
    assert len(done_handlers(redis_conn, completion_key)) == 1
    assert "entity lock lease ran out before the handlers ended" in [
        r.getMessage() for r in caplog.records
    ]
