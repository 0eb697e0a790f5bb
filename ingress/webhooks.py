"""``POST /webhooks/plane``: verify the signature, enqueue the raw body, return 202.

Plane counts any HTTP response as delivered and retries only when it gets none,
so the 202 goes out only after Redis has the job. No call to Plane happens here.
"""

import json
import logging
import socket
import struct
import time
import uuid

import redis
from flask import Blueprint, current_app, jsonify, request

from ingress.raw_body import BODY_SIZE_KEY, BODY_TOO_LARGE_KEY, RAW_BODY_KEY
from shared import metrics
from shared.logs import safe_delivery_id
from shared.signature import SignatureCheck, check_signature
from shared.uninstall_checks import schedule_uninstall_check

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/plane"

# Plane's uninstall notice is the one body it sends unsigned: exactly these keys.
UNINSTALL_NOTICE_KEYS = {
    "workspace_id",
    "application_id",
    "app_installation_id",
    "status",
}


blueprint = Blueprint("webhooks", __name__)


@blueprint.post(WEBHOOK_PATH)
def receive_webhook():
    context = current_app.extensions["planeapp"]
    delivery_id = safe_delivery_id(request.headers.get("X-Plane-Delivery"))
    body: bytes = request.environ[RAW_BODY_KEY]
    log_fields = {"delivery_id": delivery_id, "size": len(body)}

    if request.environ[BODY_TOO_LARGE_KEY]:
        limit = context.settings.webhook_max_body_bytes
        size = request.environ[BODY_SIZE_KEY]
        logger.error(
            "delivery rejected: body over the size limit, event lost",
            extra={**log_fields, "size": size, "limit": limit},
        )
        metrics.increment("webhook_deliveries_rejected", reason="body_too_large")
        return _reject(
            413, f"body exceeds the {limit}-byte limit (WEBHOOK_MAX_BODY_BYTES)"
        )

    signature = request.headers.get("X-Plane-Signature")
    check = check_signature(body, signature, secrets=context.settings.webhook_secrets)
    if check is SignatureCheck.MISSING:
        notice = _uninstall_notice(body)
        if notice is not None:
            return _accept_uninstall_notice(context, notice, log_fields)
    if check is not SignatureCheck.VALID:
        logger.warning("delivery rejected: %s", check.value, extra=log_fields)
        metrics.increment("webhook_deliveries_rejected", reason=check.name.lower())
        return _reject(401, check.value)

    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return _reject_body(log_fields, "body is not valid UTF-8 JSON")
    except RecursionError:
        return _reject_body(log_fields, "body is JSON nested too deeply to parse")
    except ValueError:
        return _reject_body(log_fields, "body is not valid JSON")
    if not isinstance(payload, dict):
        return _reject_body(log_fields, "body is JSON but not an object")

    log_fields.update(
        event=str(payload.get("event") or "-"), action=str(payload.get("action") or "-")
    )
    try:
        result = context.deliveries.enqueue(
            body, payload, delivery_id=delivery_id, received_at=time.time()
        )
    except redis.RedisError as error:
        # No status makes Plane retry, so the connection is dropped unanswered.
        logger.error(
            "delivery not stored: Redis failed (%s); closing the connection "
            "unanswered so Plane retries it",
            error,
            extra=log_fields,
        )
        metrics.increment("webhook_deliveries_rejected", reason="redis_unavailable")
        _abort_connection(request.environ)
        return _reject(503, "could not store the delivery; retry later")

    if result.duplicate:
        logger.info(
            "duplicate of %s, skipped",
            _describe_duplicate(result.dedupe_key),
            extra={**log_fields, "job_id": result.job_id},
        )
        metrics.increment("webhook_deliveries_duplicate")
        return jsonify(status="duplicate", delivery_id=delivery_id), 202
    logger.info("delivery enqueued", extra={**log_fields, "job_id": result.job_id})
    metrics.increment("webhook_deliveries_accepted", event=log_fields["event"])
    return jsonify(status="accepted", delivery_id=delivery_id), 202


def _describe_duplicate(dedupe_key: str) -> str:
    kind, _, value = dedupe_key.partition(":")
    if kind == "event":
        return f"event {value}"
    return f"an earlier delivery with the same body (sha256 {value[:12]})"


def _abort_connection(environ: dict) -> None:
    """Reset the client connection, so the sender gets no HTTP response at all.

    Only gunicorn exposes the socket; under another server the 503 goes out.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client is already gone, which is the outcome we want


def _reject(status: int, reason: str):
    return jsonify(error=reason), status


def _reject_body(log_fields: dict, reason: str):
    logger.warning("delivery rejected: %s", reason, extra=log_fields)
    metrics.increment("webhook_deliveries_rejected", reason="invalid_body")
    return _reject(400, reason)


def _uninstall_notice(body: bytes) -> dict | None:
    """Return the body as an uninstall notice if it has exactly that shape."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or set(payload) != UNINSTALL_NOTICE_KEYS:
        return None
    if payload["status"] != "uninstalled":
        return None
    try:
        for name in ("workspace_id", "application_id", "app_installation_id"):
            uuid.UUID(str(payload[name]))
    except ValueError:
        return None
    return payload


def _accept_uninstall_notice(context, notice: dict, log_fields: dict):
    """Queue a check of an unsigned uninstall notice; never act on it directly."""
    installation_id = str(notice["app_installation_id"])
    fields = {**log_fields, "installation_id": installation_id}
    installation = context.store.get(installation_id)

    if installation is None or installation.application_id != notice["application_id"]:
        logger.warning(
            "unsigned uninstall notice ignored: unknown installation or application",
            extra=fields,
        )
    else:
        schedule_uninstall_check(
            context.redis, installation_id, reason="unsigned uninstall notice"
        )
    return jsonify(status="accepted"), 202
