"""The delivery job: parse a webhook, find its installation, run its handlers.

Each handler that succeeds is recorded against the job, so when one of three
handlers fails and RQ retries the job, only the failed one runs again.
"""

import dataclasses
import logging
import time

from rq import get_current_job

from shared import metrics, queues
from shared.errors import InstallationNotFoundError, PlaneAppError
from shared.events import Event, parse_event
from shared.installations import STATUS_UNINSTALLED, Installation
from shared.logs import log_context
from shared.monitoring import capture_handler_failure
from shared.redis_client import key
from shared.registry import Registration
from workers import runtime

logger = logging.getLogger(__name__)

# Completion marks outlive every retry of a job (about 15 minutes in all).
COMPLETION_MARK_TTL_SECONDS = 24 * 3600


class HandlerFailedError(PlaneAppError):
    """One or more handlers raised; the job is retried for those alone."""

    retryable = True


def process_delivery(body_b64: str, delivery_id: str, received_at: float) -> None:
    """Run the registered handlers for one webhook delivery."""
    job = get_current_job()
    job_id = job.id if job else "-"
    attempt = queues.attempt_number(job)
    with log_context(delivery_id=delivery_id, job_id=job_id, attempt=attempt):
        _process_delivery(body_b64, delivery_id, received_at)


def _process_delivery(body_b64: str, delivery_id: str, received_at: float) -> None:
    context = runtime.current()
    job = get_current_job()
    fields = {"delivery_id": delivery_id, "job_id": job.id if job else "-"}

    event = parse_event(queues.decode_body(body_b64), delivery_id=delivery_id)
    fields.update(event=event.event, action=event.action)

    installation = context.store.get_by_workspace(event.workspace_id)
    if installation is None:
        logger.info("delivery waiting: workspace not installed yet", extra=fields)
        metrics.increment("deliveries_processed", outcome="waiting_for_install")
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
        metrics.increment("deliveries_processed", outcome="dropped_uninstalled")
        return

    registrations = context.registry.match(event.event, event.action)
    if not registrations:
        logger.info("delivery ignored: no handler for this event", extra=fields)
        metrics.increment("deliveries_processed", outcome="ignored_no_handler")
        return

    logger.info(
        "delivery started",
        extra={**fields, "queued_ms": round((time.time() - received_at) * 1000)},
    )
    metrics.observe("delivery_queue_wait_seconds", time.time() - received_at)
    failed = _run_handlers(context, event, installation, registrations, fields)
    metrics.increment("deliveries_processed", outcome="failed" if failed else "done")
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
) -> list[str]:
    """Run each handler not yet done for this job; return the names that failed."""
    done_key = key("delivery-done", fields["job_id"])
    done = {name.decode() for name in context.redis.smembers(done_key)}
    plane = context.bot_client(installation.id)
    failed: list[str] = []

    for registration in registrations:
        name = registration.name
        handler_fields = {**fields, "handler": name}
        if name in done:
            logger.info(
                "handler skipped: done in an earlier attempt", extra=handler_fields
            )
            metrics.increment("handler_runs", handler=name, outcome="skipped_done")
            continue
        if _caused_by_bot(event, installation) and not registration.include_bot_events:
            logger.info(
                "handler skipped: event caused by this app's bot", extra=handler_fields
            )
            metrics.increment("handler_runs", handler=name, outcome="skipped_bot")
            continue

        started = time.perf_counter()
        try:
            with log_context(**handler_fields):
                registration.handler(event, plane)
        except Exception as error:  # one failing handler must not stop the others
            elapsed = time.perf_counter() - started
            logger.exception(
                "handler failed",
                extra={**handler_fields, "duration_ms": round(elapsed * 1000)},
            )
            capture_handler_failure(
                error,
                attempt=queues.attempt_number(get_current_job()),
                fields=handler_fields,
            )
            metrics.increment("handler_runs", handler=name, outcome="failed")
            metrics.observe("handler_duration_seconds", elapsed, handler=name)
            failed.append(name)
            continue

        with context.redis.pipeline() as pipe:
            pipe.sadd(done_key, name)
            pipe.expire(done_key, COMPLETION_MARK_TTL_SECONDS)
            pipe.execute()
        elapsed = time.perf_counter() - started
        logger.info(
            "handler done",
            extra={**handler_fields, "duration_ms": round(elapsed * 1000)},
        )
        metrics.increment("handler_runs", handler=name, outcome="succeeded")
        metrics.observe("handler_duration_seconds", elapsed, handler=name)
    return failed


def _caused_by_bot(event: Event, installation: Installation) -> bool:
    return bool(installation.bot_user_id) and event.actor_id == installation.bot_user_id
