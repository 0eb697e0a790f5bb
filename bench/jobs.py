"""Jobs that the plain RQ baseline runs in place of the delivery job.

They take the delivery job's arguments (base64 body, delivery id, receive time),
so the worker reads and deserializes the same 2 KB payload.
"""

import logging

from rq import get_current_job

logger = logging.getLogger(__name__)

# Stand-ins for the ids a parsed delivery carries, so that each log line has the
# length of the real one.
PLACEHOLDER_INSTALLATION_ID = "00000000-0000-4000-8000-000000000000"
PLACEHOLDER_WORKSPACE_SLUG = "bench"


def do_nothing(body_b64: str, delivery_id: str, received_at: float) -> None:
    """Return at once: the cost of RQ alone."""


def log_like_delivery(body_b64: str, delivery_id: str, received_at: float) -> None:
    """Log the three INFO lines a delivery with one handler logs, and nothing else."""
    log_delivery_lines(delivery_id, get_current_job().id)


def log_delivery_lines(delivery_id: str, job_id: str) -> None:
    """Log ``workers.delivery``'s messages and fields, with placeholder values."""
    fields = {
        "delivery_id": delivery_id,
        "job_id": job_id,
        "event": "issue",
        "action": "updated",
        "installation_id": PLACEHOLDER_INSTALLATION_ID,
        "workspace_slug": PLACEHOLDER_WORKSPACE_SLUG,
    }
    logger.info("delivery started", extra={**fields, "queued_ms": 0})
    logger.info(
        "handler done",
        extra={**fields, "handler": f"{__name__}.log_like_delivery", "duration_ms": 0},
    )
    logger.info("delivery done", extra=fields)
