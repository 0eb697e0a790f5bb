"""The two comparison endpoints the ingress is measured against.

gunicorn serves them with the web process's own config file, for example
``gunicorn -c ingress/gunicorn_conf.py 'bench.endpoints:create_bare_app()'``.
Both log the two INFO lines the real endpoint logs for an accepted delivery,
"delivery received" and "delivery enqueued", with the same fields, through
``shared.logs``, so logging costs the same on every endpoint.
"""

import logging
import uuid

import redis
from flask import Flask, jsonify, request

from shared.logs import configure_logging, safe_delivery_id
from shared.redis_client import connect
from shared.settings import Settings, load_settings
from shared.signature import SignatureCheck, check_signature

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/plane"
# The list the HMAC + LPUSH endpoint pushes bodies onto. The benchmark deletes it
# between runs.
LPUSH_KEY = "bench:lpush-bodies"


def create_bare_app(settings: Settings | None = None) -> Flask:
    """Build an app whose webhook endpoint returns 200 and does nothing else.

    Without ``settings`` (as gunicorn calls it) it loads them from the
    environment and sets up logging as the web process does.
    """
    _settings_or_load(settings)
    app = Flask(__name__)

    @app.post(WEBHOOK_PATH)
    def accept_without_work():
        _log_request_received(size=request.content_length or 0)
        _log_request_accepted(size=request.content_length or 0)
        return "", 200

    return app


def create_lpush_app(
    settings: Settings | None = None, *, connection: redis.Redis | None = None
) -> Flask:
    """Build an app that verifies the signature and does one LPUSH of the body.

    Without ``settings`` it loads them as ``create_bare_app`` does.
    """
    settings = _settings_or_load(settings)
    connection = connection or connect(settings.redis_url)
    app = Flask(__name__)

    @app.post(WEBHOOK_PATH)
    def verify_and_push():
        _log_request_received(size=request.content_length or 0)
        body = request.get_data()
        signature = request.headers.get("X-Plane-Signature")
        check = check_signature(body, signature, secrets=settings.webhook_secrets)
        if check is not SignatureCheck.VALID:
            logger.warning("delivery rejected: %s", check.value)
            return jsonify(error=check.value), 401
        connection.lpush(LPUSH_KEY, body)
        delivery_id = _log_request_accepted(size=len(body))
        return jsonify(status="accepted", delivery_id=delivery_id), 202

    return app


def log_accepted(delivery_id: str, *, size: int, event: str) -> None:
    """Log the real endpoint's "delivery enqueued" line, with a new job id."""
    logger.info(
        "delivery enqueued",
        extra={
            "delivery_id": delivery_id,
            "size": size,
            "event": event,
            "action": "-",
            "job_id": str(uuid.uuid4()),
        },
    )


def _settings_or_load(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


def _log_request_received(*, size: int) -> None:
    delivery_id = safe_delivery_id(request.headers.get("X-Plane-Delivery"))
    logger.info("delivery received", extra={"delivery_id": delivery_id, "size": size})


def _log_request_accepted(*, size: int) -> str:
    delivery_id = safe_delivery_id(request.headers.get("X-Plane-Delivery"))
    log_accepted(
        delivery_id, size=size, event=request.headers.get("X-Plane-Event", "-")
    )
    return delivery_id
