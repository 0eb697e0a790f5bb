"""Handlers the benchmark registers through ``HANDLER_MODULES=bench.handlers``.

The throughput deliveries (``issue``/``updated``) reach only the no-op handler.
End-to-end probes (``issue``/``deleted``) reach only the timing handler. The
example handlers in ``handlers/`` take neither event, so no Plane call happens.
"""

import time

from shared.events import Event
from shared.registry import on
from workers import runtime

# Redis list of "<delivery id> <Unix time>" entries, one per probe handled.
HANDLER_STARTS_KEY = "bench:handler-starts"


@on("issue", "updated")
def ignore_work_item_update(event: Event, plane) -> None:
    """Do nothing, so a throughput run measures the delivery path alone."""


@on("issue", "deleted")
def record_handler_start(event: Event, plane) -> None:
    """Record when this handler started, for the end-to-end latency."""
    started_at = time.time()
    runtime.current().redis.rpush(
        HANDLER_STARTS_KEY, f"{event.delivery_id} {started_at!r}"
    )
