"""Sentry set-up and the explicit captures, shared by the web and worker processes.

Each failure is meant to reach Sentry once (the Sentry tests check the handler
and job cases), from one of three places:

* an exception a Flask view does not catch, through the Flask integration;
* a handler that raises, through ``capture_handler_failure``, on every attempt
  and tagged with the attempt number, so a failing Plane call shows within
  seconds rather than after the last retry about 15 minutes later;
* a job that fails for any other reason, through ``capture_job_failure`` once
  RQ gives up on it (the worker calls this from its ``handle_exception``, which
  replaces both RQ's handler and sentry-sdk's patch of it).

Log records become breadcrumbs only, never events, so a logged error is not a
second copy of a captured one.
"""

import logging

import sentry_sdk
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.rq import RqIntegration

from shared.redaction import register_secrets
from shared.scrubbing import scrub_breadcrumb, scrub_event
from shared.settings import Settings

# Tags an operator filters on; each comes from the delivery's log fields.
DELIVERY_TAGS = (
    "delivery_id",
    "event",
    "action",
    "workspace_slug",
    "installation_id",
    "job_id",
    "handler",
)


def init_sentry(settings: Settings, *, process: str, transport=None) -> bool:
    """Start Sentry when SENTRY_DSN is set; return whether it started.

    ``transport`` replaces the HTTP transport; tests pass one that keeps events.
    """
    register_secrets(secret_settings(settings))
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        integrations=[
            FlaskIntegration(),
            RqIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        data_collection={
            "user_info": False,
            # Request bodies carry webhook payloads; job arguments carry bodies
            # and OAuth codes.
            "http_bodies": [],
            "queues": False,
            # Locals help most with a failing handler; scrub_event replaces the
            # ones named for secrets or bodies and cuts out registered secrets.
            "stack_frame_variables": True,
        },
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        server_name=process,
        transport=transport,
    )
    return True


def secret_settings(settings: Settings) -> list[str]:
    """Return the setting values that must never appear in a log line or event."""
    values = [
        settings.plane_client_secret,
        settings.secret_key,
        settings.metrics_token,
        settings.dashboard_password,
        *settings.webhook_secrets,
        *settings.token_encryption_keys,
    ]
    return [value for value in values if value]


def capture_handler_failure(
    error: BaseException, *, attempt: int, fields: dict[str, object]
) -> None:
    """Send one handler's exception to Sentry, tagged with the delivery and attempt."""
    with sentry_sdk.new_scope() as scope:
        _tag_scope(scope, fields)
        scope.set_tag("attempt", str(attempt))
        scope.set_tag("failure", "handler")
        sentry_sdk.capture_exception(error)


def capture_job_failure(
    exc_info: tuple, *, attempt: int, fields: dict[str, object]
) -> None:
    """Send a job's final failure to Sentry, tagged with its queue and attempt."""
    with sentry_sdk.new_scope() as scope:
        _tag_scope(scope, fields)
        scope.set_tag("attempt", str(attempt))
        scope.set_tag("failure", "job")
        sentry_sdk.capture_exception(exc_info)


def _tag_scope(scope, fields: dict[str, object]) -> None:
    for name in (*DELIVERY_TAGS, "queue"):
        value = fields.get(name)
        if value not in (None, "", "-"):
            scope.set_tag(name, str(value))
