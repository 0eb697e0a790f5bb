"""``POST /webhooks/plane``: verify the signature, enqueue the raw body, return 202.

Plane counts any HTTP response as delivered and retries only when it gets none,
so the 202 goes out only after Redis has the job. No call to Plane happens here.
"""

import json
import logging
import time
import uuid

from flask import Blueprint, current_app, jsonify, request

from ingress.raw_body import BODY_SIZE_KEY, BODY_TOO_LARGE_KEY, RAW_BODY_KEY
from shared import metrics, queues
from shared.logs import safe_delivery_id
from shared.redis_client import key
from shared.signature import SignatureCheck, check_signature

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/plane"

# Plane's uninstall notice is the one body it sends unsigned: exactly these keys.
UNINSTALL_NOTICE_KEYS = {
    "workspace_id",
    "application_id",
    "app_installation_id",
    "status",
}

# At most one confirmation job per installation in this window, however many
# unsigned notices arrive: each job calls Plane's token endpoint.
UNINSTALL_CHECK_INTERVAL_SECONDS = 300

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

    event = str(payload.get("event") or request.headers.get("X-Plane-Event") or "-")
    action = str(payload.get("action") or "-")
    job = queues.enqueue(
        context.delivery_queue,
        queues.DELIVERY_JOB,
        args=(queues.encode_body(body), delivery_id, time.time()),
        description=f"delivery {delivery_id} {event}.{action}",
        job_timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
        retry_intervals=queues.DELIVERY_RETRY_INTERVALS_SECONDS,
    )
    logger.info(
        "delivery enqueued",
        extra={**log_fields, "event": event, "action": action, "job_id": job.id},
    )
    metrics.increment("webhook_deliveries_accepted", event=event)
    return jsonify(status="accepted", delivery_id=delivery_id), 202


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
    elif context.redis.set(
        key("uninstall-check", installation_id),
        "1",
        nx=True,
        ex=UNINSTALL_CHECK_INTERVAL_SECONDS,
    ):
        job = queues.enqueue(
            context.install_queue,
            queues.UNINSTALL_CHECK_JOB,
            args=(installation_id,),
            description=f"confirm uninstall of {installation_id}",
            job_timeout=queues.INSTALL_JOB_TIMEOUT_SECONDS,
        )
        logger.info(
            "unsigned uninstall notice: confirmation enqueued",
            extra={**fields, "job_id": job.id},
        )
    else:
        logger.info(
            "unsigned uninstall notice: confirmation already pending", extra=fields
        )
    return jsonify(status="accepted"), 202
