"""The inbox mover turns each accepted delivery into exactly one RQ job."""

import json
import logging
import threading
import time

import redis

from shared import queues
from shared.deliveries import (
    INBOX_KEY,
    MOVERS_KEY,
    REJECTED_KEY,
    DeliveryQueue,
    claim_key,
    decode_entry,
)
from tests.redis_server import ThrowawayRedis
from workers.housekeeping import Housekeeper
from workers.inbox import InboxMover, liveness_key, return_abandoned_claims


def accept(redis_conn, count: int, *, start: int = 0) -> list[str]:
    """Accept ``count`` distinct deliveries; return their job ids in order."""
    deliveries = DeliveryQueue(redis_conn)
    job_ids = []
    for number in range(start, start + count):
        payload = {"event": "issue", "action": "updated", "data": {"n": number}}
        result = deliveries.enqueue(
            json.dumps(payload).encode(),
            payload,
            delivery_id=f"delivery-{number}",
            received_at=time.time(),
        )
        job_ids.append(result.job_id)
    return job_ids


def queued_job_ids(redis_conn) -> list[str]:
    return queues.get_queue(queues.DELIVERY_QUEUE, redis_conn).job_ids


def test_entries_become_jobs_in_order(redis_conn):
    job_ids = accept(redis_conn, 3)

    moved = InboxMover(redis_conn).move_batch()

    assert moved == 3
    assert queued_job_ids(redis_conn) == job_ids
    assert redis_conn.llen(INBOX_KEY) == 0


def test_job_carries_the_delivery(redis_conn):
    [job_id] = accept(redis_conn, 1)
    entry = decode_entry(redis_conn.lindex(INBOX_KEY, 0))

    InboxMover(redis_conn).move_batch()

    job = queues.fetch_job(job_id, redis_conn)
    assert job.func_name == queues.DELIVERY_JOB
    assert queues.decode_body(job.args[0]) == entry.body
    assert job.args[1:] == ["delivery-0", entry.received_at]
    assert job.description == "delivery delivery-0 issue.updated"
    assert job.get_status() == "queued"
    assert job.retries_left == len(queues.DELIVERY_RETRY_INTERVALS_SECONDS)


def test_backlog_moves_in_batches(redis_conn):
    job_ids = accept(redis_conn, 25)
    mover = InboxMover(redis_conn, batch_size=10)

    batches = [mover.move_batch() for _ in range(4)]

    assert batches == [10, 10, 5, 0]
    assert queued_job_ids(redis_conn) == job_ids


def test_unreadable_entry_is_set_aside(redis_conn, caplog):
    accept(redis_conn, 1)
    redis_conn.rpush(INBOX_KEY, b"not an entry")
    accept(redis_conn, 1, start=1)

    with caplog.at_level(logging.ERROR, logger="workers.inbox"):
        moved = InboxMover(redis_conn).move_batch()

    assert moved == 3
    assert len(queued_job_ids(redis_conn)) == 2
    assert redis_conn.lrange(REJECTED_KEY, 0, -1) == [b"not an entry"]
    assert "inbox entry rejected" in caplog.text


def test_empty_inbox_waits_then_returns(redis_conn):
    started = time.monotonic()

    moved = InboxMover(redis_conn).move_batch(wait_seconds=1)

    assert moved == 0
    assert time.monotonic() - started >= 0.9


def test_waiting_mover_takes_new_entry(redis_conn):
    mover = InboxMover(redis_conn)
    results = []
    waiter = threading.Thread(target=lambda: results.append(mover.move_batch(5)))
    waiter.start()
    time.sleep(0.2)

    job_ids = accept(redis_conn, 1)
    waiter.join(timeout=10)

    assert results == [1]
    assert queued_job_ids(redis_conn) == job_ids


def claim_without_commit(redis_conn, mover: InboxMover) -> list[bytes]:
    """Claim entries the way a mover does, then stop as if killed."""
    mover._renew_liveness()
    return mover._claim(
        keys=[INBOX_KEY, claim_key(mover.mover_id), MOVERS_KEY],
        args=[mover.batch_size, mover.mover_id],
    )


def test_dead_movers_claims_return_to_inbox(redis_conn):
    job_ids = accept(redis_conn, 5)
    dead = InboxMover(redis_conn, batch_size=3)
    claim_without_commit(redis_conn, dead)
    redis_conn.delete(liveness_key(dead.mover_id))

    returned = return_abandoned_claims(redis_conn)
    InboxMover(redis_conn).move_batch()

    assert returned == 3
    assert queued_job_ids(redis_conn) == job_ids
    assert not redis_conn.exists(claim_key(dead.mover_id))


def test_live_movers_claims_stay(redis_conn):
    accept(redis_conn, 5)
    alive = InboxMover(redis_conn, batch_size=3)
    claim_without_commit(redis_conn, alive)

    returned = return_abandoned_claims(redis_conn)

    assert returned == 0
    assert redis_conn.llen(claim_key(alive.mover_id)) == 3
    assert DeliveryQueue(redis_conn).inbox_counts() == {
        "waiting": 2,
        "claimed": 3,
        "rejected": 0,
    }
    assert alive.move_batch() == 3
    assert len(queued_job_ids(redis_conn)) == 3


def test_paused_mover_writes_nothing_after_return(redis_conn, caplog):
    job_ids = accept(redis_conn, 4)
    paused = InboxMover(redis_conn)
    entries = claim_without_commit(redis_conn, paused)
    redis_conn.delete(liveness_key(paused.mover_id))
    return_abandoned_claims(redis_conn)

    with caplog.at_level(logging.WARNING, logger="workers.inbox"):
        written = paused._write_jobs(entries)
    InboxMover(redis_conn).move_batch()

    assert written == 0
    assert "lost its claim" in caplog.text
    assert queued_job_ids(redis_conn) == job_ids


def test_interrupted_commit_is_finished_next_time(redis_conn):
    job_ids = accept(redis_conn, 3)
    mover = InboxMover(redis_conn)
    claim_without_commit(redis_conn, mover)

    moved = mover.move_batch()

    assert moved == 3
    assert queued_job_ids(redis_conn) == job_ids
    assert redis_conn.llen(INBOX_KEY) == 0


def test_racing_movers_make_each_job_once(redis_url, redis_conn):
    job_ids = accept(redis_conn, 1000)

    def drain() -> None:
        mover = InboxMover(redis.Redis.from_url(redis_url), batch_size=7)
        while mover.move_batch():
            pass

    movers = [threading.Thread(target=drain) for _ in range(4)]
    for thread in movers:
        thread.start()
    for thread in movers:
        thread.join(timeout=60)

    queued = queued_job_ids(redis_conn)
    assert len(queued) == 1000
    assert sorted(queued) == sorted(job_ids)
    assert redis_conn.llen(INBOX_KEY) == 0


def test_run_rides_out_redis_outage(caplog):
    server = ThrowawayRedis(persistent=True).start()
    try:
        connection = redis.Redis.from_url(server.url, socket_timeout=2)
        job_ids = accept(connection, 2)
        stop = threading.Event()
        runner = threading.Thread(target=InboxMover(connection).run, args=(stop,))

        with caplog.at_level(logging.ERROR, logger="workers.inbox"):
            server.halt()
            runner.start()
            time.sleep(1.5)
            server.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not queued_job_ids(connection):
                time.sleep(0.1)
            stop.set()
            runner.join(timeout=10)

        assert "inbox mover paused: Redis failed" in caplog.text
        assert queued_job_ids(connection) == job_ids
        assert not runner.is_alive()
    finally:
        server.stop()


def test_housekeeper_returns_dead_claims(redis_conn):
    job_ids = accept(redis_conn, 2)
    dead = InboxMover(redis_conn)
    claim_without_commit(redis_conn, dead)
    redis_conn.delete(liveness_key(dead.mover_id))
    housekeeper = Housekeeper(
        redis_conn, [queues.DELIVERY_QUEUE], on_abandoned=lambda *args: True
    )

    housekeeper.tick()

    assert redis_conn.llen(INBOX_KEY) == 2
    assert not redis_conn.exists(claim_key(dead.mover_id))
    assert InboxMover(redis_conn).move_batch() == 2
    assert queued_job_ids(redis_conn) == job_ids


# A version 1 header whose timestamp is beyond what datetime accepts.
OUT_OF_RANGE_ENTRY = (
    b'{"v":1,"job_id":"poison","delivery_id":"poison","received_at":1e300,'
    b'"event":"issue","action":"created"}\n{}'
)


def test_out_of_range_entry_is_set_aside(redis_conn):
    redis_conn.rpush(INBOX_KEY, OUT_OF_RANGE_ENTRY)
    job_ids = accept(redis_conn, 2)

    moved = InboxMover(redis_conn).move_batch()

    assert moved == 3
    assert queued_job_ids(redis_conn) == job_ids
    assert redis_conn.lrange(REJECTED_KEY, 0, -1) == [OUT_OF_RANGE_ENTRY]


def test_run_survives_unexpected_error(redis_conn, monkeypatch, caplog):
    job_ids = accept(redis_conn, 1)
    mover = InboxMover(redis_conn)
    original = mover.move_batch
    calls = []

    def fail_first_call(wait_seconds: float = 0) -> int:
        calls.append(wait_seconds)
        if len(calls) == 1:
            raise RuntimeError("a bug in the mover")
        return original(wait_seconds)

    monkeypatch.setattr(mover, "move_batch", fail_first_call)
    stop = threading.Event()
    runner = threading.Thread(target=mover.run, args=(stop,))
    with caplog.at_level(logging.ERROR, logger="workers.inbox"):
        runner.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not queued_job_ids(redis_conn):
            time.sleep(0.05)
        stop.set()
        runner.join(timeout=5)

    assert "inbox mover failed unexpectedly" in caplog.text
    assert queued_job_ids(redis_conn) == job_ids
    assert not runner.is_alive()


def test_existing_job_never_overwritten(redis_conn, caplog):
    [job_id] = accept(redis_conn, 1)
    entry = redis_conn.lindex(INBOX_KEY, 0)
    InboxMover(redis_conn).move_batch()
    stored = redis_conn.hgetall(f"rq:job:{job_id}")
    redis_conn.rpush(INBOX_KEY, entry)

    with caplog.at_level(logging.ERROR, logger="workers.inbox"):
        moved = InboxMover(redis_conn).move_batch()

    assert moved == 1
    assert redis_conn.hgetall(f"rq:job:{job_id}") == stored
    assert queued_job_ids(redis_conn) == [job_id]
    assert "a job with its id already exists" in caplog.text
