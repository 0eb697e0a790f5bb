"""The delivery job: parse a webhook, find its installation, run its handlers.

Each handler that succeeds is recorded against the job, so when one of three
handlers fails and RQ retries the job, only the failed one runs again.
"""

import dataclasses
import logging
import time

from rq import get_current_job

from shared import queues
from shared.errors import (
    InstallationNotFoundError,
    PlaneAppError,
    PlaneRateLimitedError,
)
from shared.events import Event, parse_event
from shared.installations import STATUS_UNINSTALLED, Installation
from shared.redis_client import key
from shared.registry import Registration
from workers import runtime

logger = logging.getLogger(__name__)

# Completion marks outlive every retry of a job (about 15 minutes in all).
COMPLETION_MARK_TTL_SECONDS = 24 * 3600
# A delivery Plane keeps rate-limiting is deferred at most this many times, then
# retried on RQ's normal schedule, so a stuck rate limit cannot loop forever.
MAX_DEFERRALS = 5


class HandlerFailedError(PlaneAppError):
    """One or more handlers raised; the job is retried for those alone."""

    retryable = True


def process_delivery(
    body_b64: str,
    delivery_id: str,
    received_at: float,
    completion_key: str | None = None,
    deferrals: int = 0,
) -> None:
    """Run the registered handlers for one webhook delivery.

    ``completion_key`` names the set of handlers already done; a deferred copy
    of a job passes its original job id so finished handlers stay finished.
    """
    context = runtime.current()
    job = get_current_job()
    fields = {"delivery_id": delivery_id, "job_id": job.id if job else "-"}
    completion_key = completion_key or fields["job_id"]

    event = parse_event(queues.decode_body(body_b64), delivery_id=delivery_id)
    fields.update(event=event.event, action=event.action)

    installation = context.store.get_by_workspace(event.workspace_id)
    if installation is None:
        logger.info("delivery waiting: workspace not installed yet", extra=fields)
        raise InstallationNotFoundError(
            f"No installation is stored for workspace {event.workspace_id} yet; "
            "the delivery will be retried (the install may still be running)."
        )
    fields.update(
        installation_id=installation.id, workspace_slug=installation.workspace_slug
    )
    event = dataclasses.replace(event, installation=installation)
    if installation.status == STATUS_UNINSTALLED:
        logger.warning("delivery dropped: installation is uninstalled", extra=fields)
        return

    registrations = context.registry.match(event.event, event.action)
    if not registrations:
        logger.info("delivery ignored: no handler for this event", extra=fields)
        return

    logger.info(
        "delivery started",
        extra={**fields, "queued_ms": round((time.time() - received_at) * 1000)},
    )
    failed, wait_seconds = _run_handlers(
        context, event, installation, registrations, fields, completion_key
    )
    if failed and wait_seconds and deferrals < MAX_DEFERRALS:
        queues.enqueue(
            queues.get_queue(queues.DELIVERY_QUEUE, context.redis),
            queues.DELIVERY_JOB,
            args=(body_b64, delivery_id, received_at),
            kwargs={"completion_key": completion_key, "deferrals": deferrals + 1},
            description=f"delivery {delivery_id} {event.event}.{event.action}",
            job_timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
            retry_intervals=queues.DELIVERY_RETRY_INTERVALS_SECONDS,
            delay_seconds=wait_seconds,
        )
        logger.warning(
            "delivery deferred: Plane rate-limited it",
            extra={**fields, "wait_seconds": round(wait_seconds, 1)},
        )
        return
    if failed:
        raise HandlerFailedError(
            f"{len(failed)} handler(s) failed for delivery {delivery_id}: "
            f"{', '.join(failed)}; the job will retry them."
        )
    logger.info("delivery done", extra=fields)


def _run_handlers(
    context,
    event: Event,
    installation: Installation,
    registrations: list[Registration],
    fields: dict,
    completion_key: str,
) -> tuple[list[str], float]:
    """Run each handler not done yet for this delivery.

    Returns the names of the handlers that failed, and the longest wait Plane
    requested through a 429 among those failures (0 when none did).
    """
    done_key = key("delivery-done", completion_key)
    done = {name.decode() for name in context.redis.smembers(done_key)}
    plane = context.bot_client(installation.id)
    failed: list[str] = []
    wait_seconds = 0.0

    for registration in registrations:
        name = registration.name
        handler_fields = {**fields, "handler": name}
        if name in done:
            logger.info(
                "handler skipped: done in an earlier attempt", extra=handler_fields
            )
            continue
        if _caused_by_bot(event, installation) and not registration.include_bot_events:
            logger.info(
                "handler skipped: event caused by this app's bot", extra=handler_fields
            )
            continue

        started = time.perf_counter()
        try:
            registration.handler(event, plane)
        except PlaneRateLimitedError as error:
            logger.warning("handler rate-limited by Plane", extra=handler_fields)
            failed.append(name)
            wait_seconds = max(wait_seconds, error.retry_after or 0.0)
            continue
        except Exception:  # one failing handler must not stop the others
            logger.exception("handler failed", extra=handler_fields)
            failed.append(name)
            continue

        with context.redis.pipeline() as pipe:
            pipe.sadd(done_key, name)
            pipe.expire(done_key, COMPLETION_MARK_TTL_SECONDS)
            pipe.execute()
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        logger.info("handler done", extra={**handler_fields, "duration_ms": elapsed_ms})
    return failed, wait_seconds


def _caused_by_bot(event: Event, installation: Installation) -> bool:
    return bool(installation.bot_user_id) and event.actor_id == installation.bot_user_id
