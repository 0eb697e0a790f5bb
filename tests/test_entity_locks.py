"""Entity locks: which events take one, the wait for a busy one, lease renewal."""

import json
import logging
import time
from pathlib import Path

import pytest

from shared.events import parse_event
from workers.entity_locks import ENTITY_LOCK_POLL_SECONDS, EntityLock, EntityLocks

FIXTURES = Path(__file__).parent / "fixtures" / "plane"
LEASE_SECONDS = 1
RENEW_SECONDS = 0.05


def event_from(name: str):
    body = (FIXTURES / f"{name}.json").read_bytes()
    return parse_event(body, delivery_id="d-1")


@pytest.fixture
def locks(redis_conn):
    return EntityLocks(
        redis_conn,
        lease_seconds=LEASE_SECONDS,
        renew_seconds=RENEW_SECONDS,
        wait_seconds=0.3,
    )


def take(redis_conn, lock: EntityLock) -> None:
    assert redis_conn.set(lock.name, lock.token, nx=True, px=LEASE_SECONDS * 1000)


def test_work_item_event_gets_a_lock(locks):
    event = event_from("issue.updated")

    lock = locks.lock_for(event)

    assert lock.name.endswith(f":issue:{event.entity_id}")
    assert lock.name.startswith("planeapp:lock:entity:")


def test_each_lock_gets_its_own_token(locks):
    event = event_from("issue.updated")

    assert locks.lock_for(event).token != locks.lock_for(event).token


def test_agent_event_gets_no_lock(locks):
    assert locks.lock_for(event_from("agent_run_user_prompt")) is None


def test_event_without_entity_gets_no_lock(locks):
    payload = json.loads((FIXTURES / "issue.updated.json").read_text())
    # An event with no entity schema may carry data without an id.
    payload.update(event="label", data={})
    event = parse_event(json.dumps(payload).encode(), delivery_id="d-1")

    assert event.entity_id is None
    assert locks.lock_for(event) is None


def test_renewer_extends_held_lease(locks, redis_conn):
    lock = locks.lock_for(event_from("issue.updated"))
    take(redis_conn, lock)

    locks.renew(lock, {})
    time.sleep(0.4)

    assert redis_conn.pttl(lock.name) > 800
    locks.stop_renewing(lock)


def test_renewer_stops_after_stop_renewing(locks, redis_conn):
    lock = locks.lock_for(event_from("issue.updated"))
    take(redis_conn, lock)
    locks.renew(lock, {})
    time.sleep(0.2)

    locks.stop_renewing(lock)
    time.sleep(0.4)

    assert 0 < redis_conn.pttl(lock.name) < 700


def test_renewer_leaves_other_holders_lock(locks, redis_conn, caplog):
    lock = locks.lock_for(event_from("issue.updated"))
    redis_conn.set(lock.name, "another-holder", px=LEASE_SECONDS * 1000)

    locks.renew(lock, {"delivery_id": "d-1"})
    time.sleep(0.4)

    assert redis_conn.pttl(lock.name) < 700
    assert redis_conn.get(lock.name) == b"another-holder"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "entity lock renewal failed: the lease ran out"
    ]
    assert warnings[0].delivery_id == "d-1"


def test_renewer_serves_several_locks(locks, redis_conn):
    first = locks.lock_for(event_from("issue.updated"))
    second = locks.lock_for(event_from("issue_comment.updated"))
    for lock in (first, second):
        take(redis_conn, lock)
        locks.renew(lock, {})

    time.sleep(0.4)
    locks.stop_renewing(first)
    time.sleep(0.4)

    assert redis_conn.pttl(first.name) < 700
    assert redis_conn.pttl(second.name) > 800
    locks.stop_renewing(second)


def test_wait_takes_lock_once_freed(locks, redis_conn):
    lock = locks.lock_for(event_from("issue.updated"))
    redis_conn.set(lock.name, "another-holder", px=150)

    assert locks.wait_for(lock)
    assert redis_conn.get(lock.name) == lock.token.encode()


def test_wait_gives_up_on_busy_lock(locks, redis_conn):
    lock = locks.lock_for(event_from("issue.updated"))
    redis_conn.set(lock.name, "another-holder", px=5000)

    started = time.monotonic()

    assert not locks.wait_for(lock)
    # redis-py stops once a further poll would end past the wait.
    assert time.monotonic() - started >= 0.3 - ENTITY_LOCK_POLL_SECONDS
    assert redis_conn.get(lock.name) == b"another-holder"
