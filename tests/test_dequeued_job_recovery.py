"""A delivery taken off the queue by a worker that died before starting it.

A general worker listens to the install queue and the delivery queue. For more
than one queue RQ 3.0 pops with ``BLPOP`` (``Queue.dequeue_any``), so until
the worker puts the job into the started registry no list or registry contains
its id. This test pops a job exactly as a general worker does and then drops
it, as a worker killed at that moment would, and expects the restarted pool to
run it within the bound the worker-kill tests use.
"""

import pytest
import redis
from rq import Queue

from plane_standin import defaults, payloads
from plane_standin.sender import build_body, send_webhook
from shared import queues
from shared.settings import load_settings
from tests.chaos_stack import (
    counted_comments,
    kill_process_group,
    locate_delivery_job,
    reset_database,
    start_quiet_stack,
    stop_stack,
    wait_for_worker_pool,
)
from tests.conftest import CASE_SECRET
from tests.counting_handlers import external_id_for
from tests.jobs import move_inbox
from tests.processes import AppProcess, wait_for
from workers.pool import worker_plan

RECOVERY_BOUND_SECONDS = 60
BLOCKING_POPS = {"blpop", "blmove", "brpoplpush"}


@pytest.fixture
def stack(redis_url):
    reset_database(redis_url)
    running = start_quiet_stack(redis_url, HANDLER_MODULES="tests.counting_handlers")
    assert running.install().status_code == 200
    yield running
    stop_stack(running)


def general_worker_queues(env: dict[str, str], connection: redis.Redis) -> list:
    """Return the queues of a general worker, in the order it listens to them."""
    _, names = worker_plan(load_settings(env))[1]
    return [queues.get_queue(name, connection) for name in names]


def wait_until_no_blocked_pop(connection: redis.Redis) -> None:
    """Wait until Redis has dropped the killed workers' blocking pops.

    Redis serves a blocked pop to a connection the kernel has not closed yet,
    so a job pushed before that would go to a dead worker.
    """
    database = connection.connection_pool.connection_kwargs.get("db", 0)
    wait_for(
        lambda: (
            not any(
                client["cmd"] in BLOCKING_POPS and int(client["db"]) == database
                for client in connection.client_list()
            )
        ),
        timeout=10,
        interval=0.1,
        message="the killed workers' connections to close",
    )


@pytest.mark.timeout(RECOVERY_BOUND_SECONDS + 60)
def test_job_popped_by_dead_worker_still_runs(stack, redis_url):
    connection = redis.Redis.from_url(redis_url)
    kill_process_group(stack.worker)
    wait_until_no_blocked_pop(connection)
    item = stack.standin.world.add_work_item("Popped", defaults.INSTALLER_USER_ID)
    body = build_body(payloads.work_item_created(item))
    attempts = send_webhook(
        f"{stack.web_url}/webhooks/plane", body, secret=CASE_SECRET, event="issue"
    )

    # The killed pool's inbox mover would have made the job; this pops it then.
    assert move_inbox(connection) == 1
    popped = Queue.dequeue_any(
        general_worker_queues(stack.worker.env, connection),
        None,
        connection=connection,
        serializer=queues.SERIALIZER,
    )
    assert attempts[-1].status == 202
    assert popped is not None
    stack.worker = AppProcess("worker", stack.worker.command, stack.worker.env)
    stack.worker.start()
    wait_for_worker_pool(stack.worker)
    expected = external_id_for(item["id"])
    try:
        wait_for(
            lambda: expected in counted_comments(stack.standin),
            timeout=RECOVERY_BOUND_SECONDS,
            interval=0.5,
        )
    except AssertionError as error:
        raise AssertionError(
            f"the popped delivery never ran: {locate_delivery_job(connection, body)}"
        ) from error

    assert counted_comments(stack.standin)[expected] == 1
