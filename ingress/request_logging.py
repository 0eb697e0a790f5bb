"""Give every line logged during a webhook request the delivery id and elapsed time.

The hook also writes the first line of a delivery's story, "delivery received",
before the signature is checked, so even a rejected request leaves its id.
"""

import logging

from flask import Flask, g, request

from ingress.raw_body import BODY_SIZE_KEY
from ingress.webhooks import WEBHOOK_PATH
from shared.logs import log_context, safe_delivery_id

logger = logging.getLogger(__name__)


def open_request_log_context(app: Flask) -> None:
    """Register hooks that hold a log context open for each webhook request."""

    @app.before_request
    def enter_log_context():
        if request.path != WEBHOOK_PATH or request.method != "POST":
            return
        delivery_id = safe_delivery_id(request.headers.get("X-Plane-Delivery"))
        g.log_context = log_context(delivery_id=delivery_id)
        g.log_context.__enter__()
        logger.info(
            "delivery received",
            extra={"size": request.environ.get(BODY_SIZE_KEY, 0)},
        )

    @app.teardown_request
    def exit_log_context(error):
        opened = g.pop("log_context", None)
        if opened is not None:
            opened.__exit__(None, None, None)
