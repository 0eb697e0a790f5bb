"""2,000 signed deliveries while the worker pool and the web process are killed.

The worker pool's process group gets SIGKILL three times and gunicorn's once,
each restarted from the Procfile line (gunicorn on the same port). Senders
retry as Plane does, only when no HTTP response comes back, with a new
``X-Plane-Delivery`` id each time. Every delivery is a distinct work item, and
the counting handler comments once per work item with an ``external_id``, so
the stand-in's comment rows count the deliveries handled.
"""

import time
from collections import Counter

import pytest
import redis
from rq.registry import FailedJobRegistry

from plane_standin import defaults, payloads
from plane_standin.sender import build_body
from shared import queues
from tests.chaos_stack import (
    SenderPool,
    counted_comments,
    kill_and_restart_web,
    kill_and_restart_worker,
    locate_delivery_job,
    metric_total,
    reset_database,
    start_quiet_stack,
    stop_stack,
)
from tests.counting_handlers import RUNS_KEY, external_id_for
from tests.processes import AppProcess

DELIVERIES = 2000
SENDER_THREADS = 8
WORKER_CONCURRENCY = 4
# Plane waits 0-600 s before a retry; 0.01 makes that 0-6 s, so a sender that
# meets the restarting web process retries through the gap.
SENDER_DELAY_SCALE = 0.01
# The worker pool is killed when this share of deliveries has been handled, and
# gunicorn when this share has been sent, so the kills hit a busy system.
WORKER_KILL_SHARES = (0.15, 0.40, 0.65)
WEB_KILL_SHARE = 0.5
POLL_SECONDS = 0.25
# All 2,000 took about 30 s without kills on a 2-core machine shared with other
# test runs. A kill delays the jobs it abandoned by the pool's recovery time, an
# estimated 25-35 s (20 s execution TTL, 5 s checks, a 10 s housekeeping lease).
# With the three kills, the last comment came about 30 s after the first send.
DEADLINE_SECONDS = 150
RESTARTS = {"worker": kill_and_restart_worker, "web": kill_and_restart_web}


@pytest.fixture
def stack(redis_url):
    reset_database(redis_url)
    running = start_quiet_stack(
        redis_url,
        HANDLER_MODULES="tests.counting_handlers",
        WORKER_CONCURRENCY=str(WORKER_CONCURRENCY),
    )
    assert running.install().status_code == 200
    yield running
    stop_stack(running)


def work_item_bodies(stack, count: int) -> list[tuple[str, bytes]]:
    """Create ``count`` work items without webhooks; return their signed bodies."""
    bodies = []
    for number in range(count):
        item = stack.standin.world.add_work_item(
            f"Chaos delivery {number}", defaults.INSTALLER_USER_ID
        )
        bodies.append((item["id"], build_body(payloads.work_item_created(item))))
    return bodies


def run_kill_plan(
    stack, senders: SenderPool, deadline: float
) -> list[tuple[str, AppProcess]]:
    """Kill and restart processes as deliveries go through.

    Returns a label and the killed process for each kill, in order. Each kill
    fires once its share is reached, one at a time, and returns after the
    replacement answers, so no kill hits a pool still starting.
    """
    pending = [("worker", share) for share in WORKER_KILL_SHARES]
    pending.append(("web", WEB_KILL_SHARE))
    done = []
    while pending and time.monotonic() < deadline:
        handled = len(counted_comments(stack.standin)) / DELIVERIES
        sent = senders.finished_count / DELIVERIES
        for step in pending:
            name, share = step
            progress = handled if name == "worker" else sent
            if progress < share:
                continue
            restart = RESTARTS[name]
            done.append((f"{name} at {progress:.0%}", restart(stack)))
            pending.remove(step)
            break
        time.sleep(POLL_SECONDS)
    return done


def wait_until_counted(
    stack, expected: set[str], deadline: float
) -> tuple[Counter, float]:
    """Poll the stand-in until every expected external id has a comment.

    Returns the comments by external id, and the monotonic time at which the
    last new one was seen.
    """
    counted = counted_comments(stack.standin)
    last_new_at = time.monotonic()
    while time.monotonic() < deadline and not expected <= set(counted):
        time.sleep(POLL_SECONDS)
        latest = counted_comments(stack.standin)
        if len(latest) > len(counted):
            last_new_at = time.monotonic()
        counted = latest
    return counted, last_new_at


def wait_until_run(
    connection: redis.Redis, expected: set[str], deadline: float
) -> Counter:
    """Poll the counting handler's runs until every expected id has one.

    A worker killed after its comment but before recording the run leaves the
    comment in place while its job waits for recovery, so runs can trail the
    comments by the recovery time.
    """
    while True:
        runs = Counter(run.decode() for run in connection.lrange(RUNS_KEY, 0, -1))
        if expected <= set(runs) or time.monotonic() >= deadline:
            return runs
        time.sleep(POLL_SECONDS)


def describe_missing(
    connection: redis.Redis, senders: SenderPool, counted: set[str], elapsed: float
) -> str:
    """List the accepted deliveries without a comment, with where their jobs are."""
    lines = [
        f"{external_id_for(sent.key)}: {locate_delivery_job(connection, sent.body)}"
        for sent in senders.results
        if sent.status == 202 and external_id_for(sent.key) not in counted
    ]
    header = f"{len(lines)} accepted deliveries have no comment after {elapsed:.0f} s"
    return "\n".join([header, *lines])


def all_worker_output(stack, killed: list[AppProcess]) -> str:
    logs = [process.output() for process in killed if process.name == "worker"]
    return "\n".join([*logs, stack.worker.output()])


@pytest.mark.timeout(DEADLINE_SECONDS + 60)
def test_deliveries_handled_once_through_kills(stack, redis_url):
    bodies = work_item_bodies(stack, DELIVERIES)
    started = time.monotonic()
    deadline = started + DEADLINE_SECONDS
    senders = SenderPool(
        f"{stack.web_url}/webhooks/plane",
        threads=SENDER_THREADS,
        delay_scale=SENDER_DELAY_SCALE,
    ).start(bodies)
    try:
        kills = run_kill_plan(stack, senders, deadline)
        senders.join(timeout=max(0.0, deadline - time.monotonic()))
        accepted = {sent.key for sent in senders.results if sent.status == 202}
        expected = {external_id_for(key) for key in accepted}
        counted, last_new_at = wait_until_counted(stack, expected, deadline)
    finally:
        senders.stop()
    elapsed = time.monotonic() - started

    connection = redis.Redis.from_url(redis_url)
    runs = wait_until_run(connection, expected, deadline)
    repeated_runs = sum(count - 1 for count in runs.values())
    statuses = Counter(sent.status for sent in senders.results)
    retried = sum(len(sent.attempts) - 1 for sent in senders.results)
    failed_jobs = FailedJobRegistry(
        queues.DELIVERY_QUEUE, connection=connection, serializer=queues.SERIALIZER
    )
    worker_output = all_worker_output(stack, [process for _, process in kills])
    duplicates = metric_total(
        stack.web_url, "planeapp_webhook_deliveries_duplicate_total"
    )
    labels = ", ".join(label for label, _ in kills)
    print(
        f"{DELIVERIES} deliveries; the last comment after "
        f"{last_new_at - started:.1f} s, the test's wait ended after "
        f"{elapsed:.1f} s; kills: {labels}; "
        f"statuses {dict(statuses)}; sender retries {retried}; "
        f"resends dropped as duplicates {duplicates:.0f}; "
        f"repeated handler runs {repeated_runs}"
    )

    assert len(kills) == len(WORKER_KILL_SHARES) + 1
    assert senders.done()
    assert statuses == {202: DELIVERIES}
    assert retried > 0
    assert set(counted) == expected, describe_missing(
        connection, senders, set(counted), elapsed
    )
    assert max(counted.values()) == 1
    assert set(runs) == expected
    assert repeated_runs <= len(WORKER_KILL_SHARES) * WORKER_CONCURRENCY
    assert "job abandoned by a dead worker" in worker_output
    assert failed_jobs.count == 0
