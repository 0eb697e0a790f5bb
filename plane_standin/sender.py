"""Webhook delivery the way Plane's v1 sender does it.

Plane posts each event from a Celery task (`webhook_send_task`) declared with
`autoretry_for=(requests.RequestException,)`, `max_retries=5`, `retry_backoff=600`
and full jitter. So only a transport failure is retried, every HTTP response (4xx
and 5xx included) counts as delivered, and each retry waits a random 0-600 s. The
task makes a new `X-Plane-Delivery` id on every attempt, while body and signature
stay the same.
"""

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import types
import uuid
from dataclasses import asdict, dataclass

import requests

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 30.0
MAX_RETRIES = 5
# Celery draws each wait from randrange(min(600, 600 * 2**n) + 1): whole seconds,
# uniform over 0-600 whatever the retry number.
MAX_RETRY_WAIT_SECONDS = 600
USER_AGENT = "Autopilot"


@dataclass
class Attempt:
    """One POST of a webhook: its delivery id and what came back."""

    delivery_id: str
    status: int | None
    error: str | None
    elapsed: float
    wait_before: float

    @property
    def delivered(self) -> bool:
        """True when the receiver returned an HTTP response, whatever its status."""
        return self.status is not None

    def to_dict(self) -> dict:
        return asdict(self)


def build_body(payload: dict) -> bytes:
    """Serialize a payload exactly as Plane signs and sends it.

    Plane signs `json.dumps(payload)` and posts with `requests.post(json=payload)`,
    which serializes with the same defaults: one line, `", "` and `": "` separators,
    non-ASCII escaped as `\\uXXXX`. So the wire bytes equal the signed bytes.
    """
    return json.dumps(payload).encode("utf-8")


def sign(body: bytes, *, secret: str) -> str:
    """Return the `X-Plane-Signature` value: hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_headers(body: bytes, *, secret: str | None, event: str | None) -> dict:
    """Build Plane's headers for one attempt, with a new delivery id."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Plane-Delivery": str(uuid.uuid4()),
    }
    if event is not None:
        headers["X-Plane-Event"] = event
    if secret is not None:
        headers["X-Plane-Signature"] = sign(body, secret=secret)
    return headers


def send_webhook(
    url: str,
    body: bytes,
    *,
    secret: str | None,
    event: str | None,
    timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    max_retries: int = MAX_RETRIES,
    delay_scale: float = 1.0,
    rng: random.Random | types.ModuleType = random,
    stop: threading.Event | None = None,
) -> list[Attempt]:
    """POST a webhook body, retrying transport failures as Plane does.

    Returns every attempt made: one when the receiver responded, at most
    `max_retries + 1` when it never did. Waits are Plane's times `delay_scale`. A
    set `stop` event ends the retries early, so a stopped stand-in leaves no sender.
    """
    attempts: list[Attempt] = []
    wait = 0.0
    for attempt_number in range(max_retries + 1):
        if attempt_number > 0:
            wait = rng.randrange(MAX_RETRY_WAIT_SECONDS + 1) * delay_scale
            if _wait_or_stop(wait, stop):
                break

        attempt = _post_once(url, body, secret=secret, event=event, timeout=timeout)
        attempt.wait_before = wait
        attempts.append(attempt)
        if attempt.delivered:
            break
        logger.info(
            "webhook %s attempt %d of %d failed: %s",
            event,
            attempt_number + 1,
            max_retries + 1,
            attempt.error,
            extra={"delivery_id": attempt.delivery_id, "event": event},
        )
    return attempts


def _wait_or_stop(seconds: float, stop: threading.Event | None) -> bool:
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


def _post_once(
    url: str, body: bytes, *, secret: str | None, event: str | None, timeout: float
) -> Attempt:
    headers = webhook_headers(body, secret=secret, event=event)
    delivery_id = headers["X-Plane-Delivery"]
    started = time.monotonic()
    try:
        # NOTE: Plane's requests.post follows redirects, and a 301 or 302 turns its
        # POST into a GET without body or signature. This sender follows none and
        # records the 3xx as delivered, so it cannot show what the target of a
        # redirect would have received.
        response = requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.RequestException as exc:
        return Attempt(
            delivery_id=delivery_id,
            status=None,
            error=f"{type(exc).__name__}: {exc}",
            elapsed=time.monotonic() - started,
            wait_before=0.0,
        )
    response.close()
    return Attempt(
        delivery_id=delivery_id,
        status=response.status_code,
        error=None,
        elapsed=time.monotonic() - started,
        wait_before=0.0,
    )
