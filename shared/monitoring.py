"""Sentry set-up, shared by the web and worker processes."""

import sentry_sdk
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.rq import RqIntegration

from shared.settings import Settings


def init_sentry(settings: Settings, *, process: str) -> None:
    """Start Sentry when SENTRY_DSN is set; do nothing otherwise."""
    if not settings.sentry_dsn:
        return
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[FlaskIntegration(), RqIntegration()],
        send_default_pii=False,
        # Request bodies carry webhook payloads and OAuth codes: never send them.
        max_request_body_size="never",
        include_local_variables=False,
        server_name=process,
    )
