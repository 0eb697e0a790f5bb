"""A handler that always fails is retried on the schedule, then dead-lettered.

The schedule is ``shared.queues.DELIVERY_RETRY_INTERVALS_SECONDS`` (1, 2, 4 …
360 s, about 15 minutes in all). The first three retries run on their own,
and the test measures the waits between the handler's runs. For each later
retry the test reads the time RQ scheduled it for, checks it against the
schedule, and then moves it to now in RQ's scheduled registry, so the worker
pool's housekeeper enqueues it at once. After the last retry the job must sit
in RQ's failed-job registry with the error.
"""

import json
import time

import pytest
import redis

from plane_standin import defaults, payloads
from plane_standin.sender import build_body, send_webhook
from shared import queues
from shared.deliveries import dedupe_key_for
from shared.redis_client import key
from tests.chaos_stack import (
    metric_total,
    reset_database,
    start_quiet_stack,
    stop_stack,
)
from tests.conftest import CASE_SECRET
from tests.failing_handlers import ATTEMPTS_KEY, FAILURE_MESSAGE
from tests.processes import wait_for

INTERVALS = queues.DELIVERY_RETRY_INTERVALS_SECONDS
# Retries that wait up to this long run on their own, and longer ones are moved.
REAL_WAIT_LIMIT_SECONDS = 4
# RQ stores a scheduled time in whole seconds, rounded down, so a retry can run
# up to 1 s early. The housekeeper looks every half second, and a loaded machine
# adds its own delay to a run's start.
EARLY_SECONDS = 1.0
LATE_SECONDS = 2.0
# One failed attempt, from enqueue to the retry being scheduled, takes well
# under a second. This bound leaves room for a loaded machine.
ATTEMPT_TIMEOUT_SECONDS = 20
FAILING_HANDLER = "tests.failing_handlers.always_fail"
WELCOME_HANDLER = "handlers.work_items.welcome_new_work_item"


@pytest.fixture
def stack(redis_url):
    reset_database(redis_url)
    running = start_quiet_stack(redis_url, HANDLER_MODULES="tests.failing_handlers")
    assert running.install().status_code == 200
    yield running
    stop_stack(running)


def attempt_times(connection: redis.Redis) -> list[float]:
    return [float(value) for value in connection.lrange(ATTEMPTS_KEY, 0, -1)]


def wait_for_scheduled_retry(
    connection: redis.Redis, job_id: str, retries_left: int
) -> float:
    """Wait until the job is scheduled with ``retries_left``; return its due time."""
    registry_key = queues.get_queue(
        queues.DELIVERY_QUEUE, connection
    ).scheduled_job_registry.key

    def scheduled_at() -> float | None:
        left = connection.hget(f"rq:job:{job_id}", "retries_left")
        if left is None or int(left) != retries_left:
            return None
        return connection.zscore(registry_key, job_id)

    return wait_for(
        scheduled_at,
        timeout=ATTEMPT_TIMEOUT_SECONDS,
        interval=0.05,
        message=f"the retry with {retries_left} retries left to be scheduled",
    )


def wait_for_next_run(connection: redis.Redis, runs: int, interval: int) -> float:
    """Wait for run ``runs + 1`` of the handler, and return how long it waited."""
    wait_for(
        lambda: len(attempt_times(connection)) > runs,
        timeout=interval + ATTEMPT_TIMEOUT_SECONDS,
        interval=0.05,
        message=f"retry {runs} to run",
    )
    times = attempt_times(connection)
    return times[runs] - times[runs - 1]


def skipped_runs(worker_output: str, handler: str) -> list[str]:
    """Return the log lines of a handler skipped because an earlier run succeeded."""
    return [
        line
        for line in worker_output.splitlines()
        if "handler skipped: done in an earlier attempt" in line
        and f"handler={handler} " in line
    ]


def move_to_now(connection: redis.Redis, job_id: str) -> None:
    registry_key = queues.get_queue(
        queues.DELIVERY_QUEUE, connection
    ).scheduled_job_registry.key
    connection.zadd(registry_key, {job_id: int(time.time())}, xx=True)


@pytest.mark.timeout(120)
def test_failing_handler_retried_then_dead_lettered(stack, redis_url):
    connection = redis.Redis.from_url(redis_url)
    item = stack.standin.world.add_work_item("Always fails", defaults.INSTALLER_USER_ID)
    body = build_body(payloads.work_item_created(item))
    attempts = send_webhook(
        f"{stack.web_url}/webhooks/plane", body, secret=CASE_SECRET, event="issue"
    )
    assert attempts[-1].status == 202
    dedupe_key = key("dedupe", dedupe_key_for(body, json.loads(body)))
    job_id = connection.get(dedupe_key).decode()

    measured_waits = []
    scheduled_waits = []
    for number, interval in enumerate(INTERVALS, start=1):
        if interval <= REAL_WAIT_LIMIT_SECONDS:
            measured_waits.append(wait_for_next_run(connection, number, interval))
            continue
        scheduled_at = wait_for_scheduled_retry(
            connection, job_id, retries_left=len(INTERVALS) - number
        )
        scheduled_waits.append(scheduled_at - attempt_times(connection)[-1])
        move_to_now(connection, job_id)

    failed = queues.get_queue(queues.DELIVERY_QUEUE, connection).failed_job_registry
    wait_for(
        lambda: job_id in failed,
        timeout=ATTEMPT_TIMEOUT_SECONDS,
        interval=0.1,
        message=f"the job to reach the failed-job registry\n{stack.worker.output()}",
    )
    job = queues.fetch_job(job_id, connection)
    result = job.latest_result()
    worker_output = stack.worker.output()
    welcome = [
        comment
        for comment in stack.standin.comments_created()
        if comment["issue"] == item["id"]
    ]
    print(f"measured waits {measured_waits}, scheduled waits {scheduled_waits}")

    real_intervals = [i for i in INTERVALS if i <= REAL_WAIT_LIMIT_SECONDS]
    moved_intervals = INTERVALS[len(real_intervals) :]
    assert len(attempt_times(connection)) == len(INTERVALS) + 1
    for interval, waited in zip(real_intervals, measured_waits, strict=True):
        assert interval - EARLY_SECONDS <= waited <= interval + LATE_SECONDS
    for interval, waited in zip(moved_intervals, scheduled_waits, strict=True):
        assert interval - EARLY_SECONDS <= waited <= interval + EARLY_SECONDS
    assert job.retries_left == 0
    assert job.get_status().value == "failed"
    assert connection.ttl(key("delivery-done", job_id)) > 6 * 24 * 3600
    assert "HandlerFailedError" in result.exc_string
    assert FAILING_HANDLER in result.exc_string
    assert FAILURE_MESSAGE in worker_output
    assert len(welcome) == 1
    assert len(skipped_runs(worker_output, WELCOME_HANDLER)) == len(INTERVALS)
    assert metric_total(stack.web_url, "planeapp_job_failures_total", final="true") == 1
    assert metric_total(
        stack.web_url, "planeapp_job_failures_total", final="false"
    ) == len(INTERVALS)
