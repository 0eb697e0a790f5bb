"""The delivery job: parse a webhook, find its installation, run its handlers.

Each handler that succeeds is recorded against the job, so when one of three
handlers fails and RQ retries the job, only the failed one runs again. Copies
of one edit run the handlers once (``workers.coalesce``), and deliveries for one
entity run one at a time (``workers.entity_locks``). ``workers.delivery_state``
does the Redis reads and writes of all three. A stop request for an agent run is
recorded here, by the stop prompt's own job.
"""

import dataclasses
import logging
import time

from rq import get_current_job

from shared import metrics, queues
from shared.agents import request_stop, run_agent_handler
from shared.errors import (
    InstallationNotFoundError,
    PlaneAppError,
    PlaneRateLimitedError,
)
from shared.events import Event, EventParseError, parse_event
from shared.events.names import AGENT_EVENTS
from shared.installations import STATUS_UNINSTALLED, Installation
from shared.logs import log_context
from shared.monitoring import capture_handler_failure
from shared.registry import Registration
from workers import runtime
from workers.delivery_state import DeliveryProgress

logger = logging.getLogger(__name__)

# A delivery Plane keeps rate-limiting is deferred at most this many times, then
# retried on RQ's normal schedule, so a stuck rate limit cannot loop forever.
MAX_DEFERRALS = 5


class EntityBusyError(PlaneAppError):
    """Another worker is running handlers for the same entity; retry shortly."""

    retryable = True


class HandlerFailedError(PlaneAppError):
    """One or more handlers raised; the job is retried for those alone."""

    retryable = True


def process_delivery(
    body_b64: str,
    delivery_id: str,
    received_at: float,
    completion_key: str | None = None,
    deferrals: int = 0,
    replay: bool = False,
) -> None:
    """Run the registered handlers for one webhook delivery.

    ``completion_key`` names the set of handlers already done; a deferred copy
    of a job passes its original job id so finished handlers stay finished.
    A ``replay`` (``manage.py replay-delivery``) skips the coalescing claim, so
    an operator's replay runs even within the window that drops repeats.
    """
    job = get_current_job()
    job_id = job.id if job else "-"
    attempt = queues.attempt_number(job)
    with log_context(delivery_id=delivery_id, job_id=job_id, attempt=attempt):
        _process_delivery(
            body_b64, delivery_id, received_at, completion_key, deferrals, replay
        )


def _process_delivery(
    body_b64: str,
    delivery_id: str,
    received_at: float,
    completion_key: str | None,
    deferrals: int,
    replay: bool,
) -> None:
    context = runtime.current()
    job = get_current_job()
    fields = {"delivery_id": delivery_id, "job_id": job.id if job else "-"}
    completion_key = completion_key or fields["job_id"]

    event = _parse(queues.decode_body(body_b64), delivery_id, fields)
    fields.update(event=event.event, action=event.action)
    registrations = context.registry.match_event(event)
    with context.deliveries.running(
        event,
        owner=completion_key,
        lock_entity=bool(registrations),
        claim_changes=not replay,
        fields=fields,
    ) as progress:
        event = _check_delivery(context, event, progress, registrations, fields)
        if event is None:
            return
        logger.info(
            "delivery started",
            extra={**fields, "queued_ms": round((time.time() - received_at) * 1000)},
        )
        metrics.observe("delivery_queue_wait_seconds", time.time() - received_at)
        _wait_for_entity(event, progress, fields)
        failed, wait_seconds = _run_handlers(
            context, event, progress, registrations, fields
        )

    metrics.increment("deliveries_processed", outcome="failed" if failed else "done")
    if failed and wait_seconds and deferrals < MAX_DEFERRALS:
        queues.enqueue(
            queues.get_queue(queues.DELIVERY_QUEUE, context.redis),
            queues.DELIVERY_JOB,
            args=(body_b64, delivery_id, received_at),
            kwargs={
                "completion_key": completion_key,
                "deferrals": deferrals + 1,
                "replay": replay,
            },
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


def _check_delivery(
    context,
    event: Event,
    progress: DeliveryProgress,
    registrations: list[Registration],
    fields: dict,
) -> Event | None:
    """Return the event with its installation, or None when no handler is to run.

    Raises ``InstallationNotFoundError`` while the workspace is not installed.
    """
    installation = progress.installation
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
        return None

    _note_agent_event(context, event, fields)
    if not progress.claimed:
        logger.info(
            "delivery ignored: another delivery of the same change ran",
            extra=fields,
        )
        metrics.increment("deliveries_processed", outcome="ignored_repeated_change")
        return None
    if not event.known_action:
        logger.warning(
            "delivery has an action Plane is not known to send; only handlers of "
            "the whole event and catch-all handlers run",
            extra=fields,
        )
    if not registrations:
        logger.info("delivery ignored: no handler for this event", extra=fields)
        metrics.increment("deliveries_processed", outcome="ignored_no_handler")
        return None
    return event


def _wait_for_entity(event: Event, progress: DeliveryProgress, fields: dict) -> None:
    """Wait while another delivery holds the entity; raise if it keeps holding it."""
    if progress.take_busy_lock(fields):
        return
    logger.info("delivery waiting: another delivery of this entity runs", extra=fields)
    raise EntityBusyError(
        f"Another delivery for {event.event} {event.entity_id} is running; "
        "this one will be retried after it."
    )


def _parse(body: bytes, delivery_id: str, fields: dict) -> Event:
    """Parse the body; log a body that does not fit before it goes to failed jobs."""
    try:
        return parse_event(body, delivery_id=delivery_id)
    except EventParseError as error:
        logger.error(
            "delivery rejected: the payload does not fit Plane's webhook format; "
            "the job goes to the failed-job registry: %s",
            error,
            extra=fields,
        )
        raise


def _note_agent_event(context, event: Event, fields: dict) -> None:
    """Record a stop request, and warn when agent events meet a disabled setting."""
    if event.event not in AGENT_EVENTS:
        return
    if not context.settings.app_mentions:
        logger.warning(
            "agent event received while PLANE_APP_MENTIONS is off, so the plain "
            "mention reply may answer the same mention; set PLANE_APP_MENTIONS=true",
            extra=fields,
        )
    if event.prompt is not None and event.prompt.is_stop:
        request_stop(context.redis, event.prompt)
        logger.info(
            "agent run stop requested",
            extra={**fields, "agent_run_id": event.prompt.run_id},
        )


def _run_handlers(
    context,
    event: Event,
    progress: DeliveryProgress,
    registrations: list[Registration],
    fields: dict,
) -> tuple[list[str], float]:
    """Run each handler not done yet for this delivery.

    Returns the names of the handlers that failed, and the longest wait Plane
    requested through a 429 among those failures (0 when none did).
    """
    installation = event.installation
    plane = context.bot_client(installation.id)
    failed: list[str] = []
    wait_seconds = 0.0
    to_run = [
        r.name
        for r in registrations
        if not progress.is_done(r.name)
        and _reason_to_skip(context, event, installation, r) is None
    ]

    for registration in registrations:
        name = registration.name
        handler_fields = {**fields, "handler": name}
        if progress.is_done(name):
            logger.info(
                "handler skipped: done in an earlier attempt", extra=handler_fields
            )
            metrics.increment("handler_runs", handler=name, outcome="skipped_done")
            continue
        reason = _reason_to_skip(context, event, installation, registration)
        if reason is not None:
            logger.info("handler skipped: %s", reason, extra=handler_fields)
            metrics.increment("handler_runs", handler=name, outcome="skipped")
            continue

        started = time.perf_counter()
        try:
            with log_context(**handler_fields):
                _call(context, registration, event, plane)
        except PlaneRateLimitedError as error:
            logger.warning("handler rate-limited by Plane", extra=handler_fields)
            metrics.increment("handler_runs", handler=name, outcome="rate_limited")
            failed.append(name)
            wait_seconds = max(wait_seconds, error.retry_after or 0.0)
            continue
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

        progress.handler_done(name, last=name == to_run[-1])
        elapsed = time.perf_counter() - started
        logger.info(
            "handler done",
            extra={**handler_fields, "duration_ms": round(elapsed * 1000)},
        )
        metrics.increment("handler_runs", handler=name, outcome="succeeded")
        metrics.observe("handler_duration_seconds", elapsed, handler=name)
    return failed, wait_seconds


def _reason_to_skip(
    context, event: Event, installation: Installation, registration: Registration
) -> str | None:
    if _caused_by_bot(event, installation) and not registration.include_bot_events:
        return "event caused by this app's bot"
    if registration.replaced_by_agent and _agent_answers_mentions(context):
        return "an agent handler answers mentions"
    if registration.agent and event.prompt is not None and event.prompt.is_stop:
        return "a stop request is not a prompt to answer"
    return None


def _call(context, registration: Registration, event: Event, plane) -> None:
    if not registration.agent:
        registration.handler(event, plane)
        return
    run_agent_handler(
        registration.handler,
        event,
        plane,
        context.redis,
        first_thought=registration.first_thought,
        heartbeat_seconds=context.agent_heartbeat_seconds,
    )


def _agent_answers_mentions(context) -> bool:
    return context.settings.app_mentions and context.registry.has_agent_handlers()


def _caused_by_bot(event: Event, installation: Installation) -> bool:
    return bool(installation.bot_user_id) and event.actor_id == installation.bot_user_id
