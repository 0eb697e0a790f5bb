"""``manage.py dead-letters``, ``replay`` and ``replay-delivery``."""

import json
import time
from pathlib import Path

import pytest
from rq import Queue

from shared import queues
from shared.deliveries import DeliveryQueue
from tests.delivery_flow import worker_context
from tests.jobs import move_inbox, perform_next_job
from tests.test_manage_commands import manage
from workers.pool import PlaneWorker

FIXTURES = Path(__file__).parent / "fixtures" / "plane"


@pytest.fixture
def failed_job(redis_conn):
    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    job = queues.enqueue(
        queue,
        "tests.failing_jobs.fail_always",
        args=("for the dead-letter test",),
        description="a job that always fails",
        job_timeout=30,
    )
    dequeued, origin = Queue.dequeue_any(
        [queue], None, connection=redis_conn, serializer=queues.SERIALIZER
    )
    PlaneWorker([queue], connection=redis_conn).execute_job(dequeued, origin)
    return job


def test_dead_letters_lists_failure_with_error(redis_url, standin, failed_job):
    result = manage(redis_url, standin, "dead-letters")

    assert result.returncode == 0, result.stderr
    assert failed_job.id in result.stdout
    assert "RuntimeError: always fails: for the dead-letter test" in result.stdout


def test_replay_requeues_failed_job(redis_url, standin, failed_job, redis_conn):
    result = manage(redis_url, standin, "replay", failed_job.id)

    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    assert result.returncode == 0, result.stderr
    assert queue.job_ids == [failed_job.id]
    assert failed_job.id not in queue.failed_job_registry


def test_replay_all_requeues_everything(redis_url, standin, failed_job, redis_conn):
    result = manage(redis_url, standin, "replay", "--all")

    assert result.returncode == 0, result.stderr
    assert "replayed 1 of 1 jobs" in result.stdout


def test_replay_unknown_job_says_so(redis_url, standin, redis_conn):
    result = manage(redis_url, standin, "replay", "no-such-job")

    assert result.returncode == 1
    assert "not in the failed-job registry" in result.stdout


def accept_delivery(redis_conn, delivery_id: str) -> None:
    payload = json.loads((FIXTURES / "issue.created.json").read_text())
    body = json.dumps(payload).encode()
    DeliveryQueue(redis_conn).enqueue(
        body, payload, delivery_id=delivery_id, received_at=time.time()
    )


def test_replay_delivery_enqueues_it_again(redis_url, standin, redis_conn):
    accept_delivery(redis_conn, "5c0d1e2f-0000-4000-8000-00000000dd01")
    move_inbox(redis_conn)

    result = manage(
        redis_url, standin, "replay-delivery", "5c0d1e2f-0000-4000-8000-00000000dd01"
    )

    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
    assert result.returncode == 0, result.stderr
    assert len(jobs) == 2
    assert jobs[0].args == jobs[1].args


def test_replay_unknown_delivery_is_a_clear_error(redis_url, standin, redis_conn):
    result = manage(redis_url, standin, "replay-delivery", "unknown-delivery")

    assert result.returncode == 1
    assert "No delivery 'unknown-delivery' is in the delivery log" in result.stderr


def test_replay_delivery_still_in_inbox(redis_url, standin, redis_conn):
    accept_delivery(redis_conn, "5c0d1e2f-0000-4000-8000-00000000dd02")

    result = manage(
        redis_url, standin, "replay-delivery", "5c0d1e2f-0000-4000-8000-00000000dd02"
    )

    assert result.returncode == 1
    assert "still waits in the inbox" in result.stderr
    assert redis_conn.llen("planeapp:inbox") == 1


def test_replay_delivery_runs_handlers_again(redis_url, standin, redis_conn):
    context = worker_context(redis_url, redis_conn, standin)
    runs = []

    @context.registry.on("issue", "created")
    def record(event, plane):
        runs.append(event.delivery_id)

    accept_delivery(redis_conn, "5c0d1e2f-0000-4000-8000-00000000dd03")
    perform_next_job(redis_conn, [queues.DELIVERY_QUEUE])

    result = manage(
        redis_url, standin, "replay-delivery", "5c0d1e2f-0000-4000-8000-00000000dd03"
    )
    perform_next_job(redis_conn, [queues.DELIVERY_QUEUE])

    assert result.returncode == 0, result.stderr
    assert runs == ["5c0d1e2f-0000-4000-8000-00000000dd03"] * 2
