"""A handler that always raises, for the retry and dead-letter tests.

Load it with ``HANDLER_MODULES=tests.failing_handlers``. Each run appends the
Unix time it started to ``ATTEMPTS_KEY`` in Redis before it raises, so a test
can measure the waits between RQ's retries.
"""

import time

from shared.events import Event
from shared.registry import on
from workers import runtime

ATTEMPTS_KEY = "test:failing-handler:attempts"
FAILURE_MESSAGE = "the failing test handler always raises"


class AlwaysFailsError(RuntimeError):
    """Raised by ``always_fail`` on every run."""


@on("issue", "created")
def always_fail(event: Event, plane) -> None:
    runtime.current().redis.rpush(ATTEMPTS_KEY, repr(time.time()))
    raise AlwaysFailsError(f"{FAILURE_MESSAGE} (delivery {event.delivery_id})")
