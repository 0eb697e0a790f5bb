"""A worker stopped or killed in the middle of a job does not lose the delivery.

Covers the worker-killed-mid-job regression case with the Procfile's worker
line: SIGTERM then SIGKILL 30 s later (a platform restart), and SIGKILL alone.
Either way the handler runs to completion exactly once, within the bound the
README states (30 s after the kill for an interrupted or abandoned job).
"""

import signal
import time

import pytest
import redis

from tests.e2e import start_stack
from tests.processes import AppProcess, wait_for
from tests.slow_handlers import HANDLER_SECONDS, MARKS_KEY

RECOVERY_BOUND_SECONDS = 60


@pytest.fixture
def stack(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    running = start_stack(redis_url, HANDLER_MODULES="tests.slow_handlers")
    assert running.install().status_code == 200
    yield running
    running.stop()


def marks(redis_url) -> list[str]:
    return [
        m.decode() for m in redis.Redis.from_url(redis_url).lrange(MARKS_KEY, 0, -1)
    ]


def restart_worker(stack) -> AppProcess:
    replacement = AppProcess("worker", stack.worker.command, stack.worker.env).start()
    stack.worker = replacement
    return replacement


@pytest.mark.parametrize("signals", ["term-then-kill", "kill"])
def test_interrupted_job_finishes_once(stack, redis_url, signals):
    sent = stack.standin.send_fixture("issue.updated")
    delivery_id = sent["deliveries"][0]["attempts"][-1]["delivery_id"]
    wait_for(lambda: marks(redis_url), timeout=20, message="the handler to start")

    time.sleep(2)
    if signals == "term-then-kill":
        stack.worker.signal_group(signal.SIGTERM)
        time.sleep(30)
    stack.worker.signal_group(signal.SIGKILL)
    killed_at = time.monotonic()
    first_output = stack.worker.output()
    restart_worker(stack)

    wait_for(
        lambda: f"finish {delivery_id}" in marks(redis_url),
        timeout=RECOVERY_BOUND_SECONDS + HANDLER_SECONDS + 10,
        interval=0.5,
        message=f"the handler to finish\n{stack.worker.output()[-3000:]}",
    )
    restarted_within = time.monotonic() - killed_at - HANDLER_SECONDS

    assert marks(redis_url).count(f"finish {delivery_id}") == 1
    assert restarted_within < RECOVERY_BOUND_SECONDS
    if signals == "term-then-kill":
        assert "job interrupted by shutdown" in first_output
