"""A handler that outlives a platform's shutdown grace, for the worker-kill tests.

It records "start" and "finish" in a Redis list, so a test can count runs.
"""

import time

from shared.registry import on
from workers import runtime

MARKS_KEY = "test:slow-handler:marks"
HANDLER_SECONDS = 45


@on("issue", "updated")
def slow_handler(event, plane) -> None:
    connection = runtime.current().redis
    connection.rpush(MARKS_KEY, f"start {event.delivery_id}")
    time.sleep(HANDLER_SECONDS)
    connection.rpush(MARKS_KEY, f"finish {event.delivery_id}")
