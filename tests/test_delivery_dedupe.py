"""One event delivered several times is enqueued once.

Covers the duplicate-job-id regression case with Plane's v2 bodies (same
``event_id``, new ``delivery_id``), and v1 resends (same bytes, new header id).
"""

import json
import logging
import threading
import time
from pathlib import Path

import pytest
import redis

from shared import queues
from shared.deliveries import DeliveryQueue
from tests.test_webhook_ingress import BODY_A, SIGNATURE_A, delivery_jobs, post

CASES = Path(__file__).parent / "fixtures" / "cases"
V2_BODIES = [
    ((CASES / f"v2-event-{n}.json").read_bytes(), signature, f"0000000012{n:02d}")
    for n, signature in [
        (1, "366b775854e0fd36cb170d1ce3ff135f0b21bf3e527d0532ca1ff2bad4f0dbfc"),
        (2, "5eb03d514d07c85410679672e320006f01d61f089ad02e489dbb3fee8a8d8a55"),
        (3, "36856d7380859bfa84e5f30cf54fa54cb16d279ec4b86880fd8f76960dcf2c99"),
    ]
]


@pytest.fixture
def client(settings, make_app):
    return make_app(settings).test_client()


def test_v2_event_enqueued_once(client, redis_conn, caplog):
    caplog.set_level(logging.INFO)

    responses = [
        post(client, body, signature, delivery=f"5c0d1e2f-0000-4000-8000-{suffix}")
        for body, signature, suffix in V2_BODIES
    ]

    jobs = delivery_jobs(redis_conn)
    skipped = [
        r
        for r in caplog.records
        if "duplicate of event evt_0b6b3d1e_0001" in r.getMessage()
    ]
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert len(jobs) == 1
    assert json.loads(queues.decode_body(jobs[0].args[0]))["delivery_id"].endswith(
        "1201"
    )
    assert [r.delivery_id for r in skipped] == [
        "5c0d1e2f-0000-4000-8000-000000001202",
        "5c0d1e2f-0000-4000-8000-000000001203",
    ]


def test_v1_resend_with_new_delivery_id_enqueued_once(client, redis_conn):
    first = post(
        client, BODY_A, SIGNATURE_A, delivery="5c0d1e2f-0000-4000-8000-000000001101"
    )
    again = post(
        client, BODY_A, SIGNATURE_A, delivery="5c0d1e2f-0000-4000-8000-000000001102"
    )

    assert first.get_json()["status"] == "accepted"
    assert again.get_json()["status"] == "duplicate"
    assert len(delivery_jobs(redis_conn)) == 1


def test_duplicate_never_overwrites_first_job(client, redis_conn):
    post(client, *V2_BODIES[0][:2], delivery="5c0d1e2f-0000-4000-8000-000000001201")
    job = delivery_jobs(redis_conn)[0]
    stored_before = redis_conn.hgetall(job.key)

    post(client, *V2_BODIES[1][:2], delivery="5c0d1e2f-0000-4000-8000-000000001202")

    assert redis_conn.hgetall(job.key) == stored_before


def test_parallel_pairs_each_enqueued_once(redis_url, redis_conn):
    pairs = 50
    barrier = threading.Barrier(2)
    results: list[list[bool]] = [[], []]

    def send(slot: int) -> None:
        connection = redis.Redis.from_url(redis_url)
        deliveries = DeliveryQueue(connection)
        for number in range(pairs):
            payload = {
                "version": "v2",
                "event_id": f"evt_parallel_{number}",
                "event": "x.y",
            }
            body = json.dumps({**payload, "delivery_id": f"{slot}-{number}"}).encode()
            barrier.wait()
            result = deliveries.enqueue(
                body, payload, delivery_id=f"{slot}-{number}", received_at=time.time()
            )
            results[slot].append(result.duplicate)

    threads = [threading.Thread(target=send, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [a != b for a, b in zip(results[0], results[1], strict=True)]
    assert len(delivery_jobs(redis_conn)) == pairs
    assert all(winners)


def test_dedupe_key_expires_after_retry_window(client, redis_conn):
    post(client, BODY_A, SIGNATURE_A)

    ttls = [redis_conn.ttl(name) for name in redis_conn.scan_iter("planeapp:dedupe:*")]
    assert len(ttls) == 1
    assert 3600 < ttls[0] <= 2 * 3600


def test_resend_id_finds_first_job(client, redis_conn):
    post(client, BODY_A, SIGNATURE_A, delivery="5c0d1e2f-0000-4000-8000-000000001301")
    post(client, BODY_A, SIGNATURE_A, delivery="5c0d1e2f-0000-4000-8000-000000001302")
    deliveries = DeliveryQueue(redis_conn)

    first = deliveries.job_id_for_delivery("5c0d1e2f-0000-4000-8000-000000001301")
    resend = deliveries.job_id_for_delivery("5c0d1e2f-0000-4000-8000-000000001302")

    assert first is not None
    assert resend == first


@pytest.mark.parametrize("header", ["", "not a delivery id!"])
def test_unusable_delivery_id_not_logged(client, redis_conn, header):
    response = post(client, BODY_A, SIGNATURE_A, delivery=header)

    assert response.status_code == 202
    assert list(redis_conn.scan_iter("planeapp:delivery:*")) == []
    assert len(delivery_jobs(redis_conn)) == 1
