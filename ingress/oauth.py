"""The install flow: send the browser to Plane's consent page, take the callback.

The state is random, single use, kept in Redis (so any web process can check
it) and bound to the browser by a value in Flask's signed session cookie. The
callback enqueues the install job at once, because Plane's code dies 60 s after
consent, then waits a few seconds for the job's result. Nothing here calls Plane.
"""

import hashlib
import json
import logging
import secrets
import time
import uuid

from flask import Blueprint, current_app, redirect, render_template, request, session

from shared import queues
from shared.redis_client import key

logger = logging.getLogger(__name__)

# A state is valid this long after /oauth/install; Plane's own code lives 60 s.
STATE_LIFETIME_SECONDS = 600
# States are remembered longer than they are valid, so a late callback is
# reported as "expired" rather than "unknown".
STATE_RECORD_TTL_SECONDS = 3600
# Results and claims are kept for the status page and for repeated callbacks.
INSTALL_RECORD_TTL_SECONDS = 3600
# The callback page waits this long for the install job before showing a page
# that refreshes itself.
CALLBACK_WAIT_SECONDS = 5.0
CALLBACK_POLL_SECONDS = 0.1

BROWSER_SESSION_KEY = "install_browser"
# Every route here starts with this; only these routes read the session cookie.
PATH_PREFIX = "/oauth/"

blueprint = Blueprint("oauth", __name__)


class CallbackRejected(Exception):
    """A callback that must not start an install; ``reason`` is shown to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@blueprint.get("/oauth/install")
def start_install():
    context = current_app.extensions["planeapp"]
    browser_id = session.setdefault(BROWSER_SESSION_KEY, secrets.token_urlsafe(16))
    state = secrets.token_urlsafe(32)
    record = {"browser": browser_id, "issued_at": time.time()}
    context.redis.set(
        _state_key(state), json.dumps(record), ex=STATE_RECORD_TTL_SECONDS
    )
    logger.info("install started, redirecting to Plane's consent page")
    return redirect(context.oauth.authorization_url(state), code=302)


@blueprint.get("/oauth/callback")
def finish_install():
    context = current_app.extensions["planeapp"]
    code = request.args.get("code", "")
    state = request.args.get("state", "")
    installation_id = request.args.get("app_installation_id", "")
    logger.info(
        "install callback received",
        extra={
            "installation_id": installation_id if _is_uuid(installation_id) else "-"
        },
    )

    try:
        _check_parameters(code, installation_id)
        if state:
            claim_key, owner = _check_state(context, state)
        else:
            claim_key, owner = _allow_without_state(context, code, installation_id)
        job_id = _claim_and_enqueue(context, claim_key, owner, code, installation_id)
    except CallbackRejected as rejection:
        logger.warning(
            "install callback rejected: %s",
            rejection.reason,
            extra={
                "installation_id": installation_id if _is_uuid(installation_id) else "-"
            },
        )
        return render_template("install_rejected.html", reason=rejection.reason), 400

    return _render_result(context, job_id, wait_seconds=CALLBACK_WAIT_SECONDS)


@blueprint.get("/oauth/status/<job_id>")
def install_status(job_id: str):
    context = current_app.extensions["planeapp"]
    owner = context.redis.get(key("install-owner", job_id))
    if owner is None:
        return render_template(
            "install_rejected.html", reason="unknown or expired install"
        ), 404
    owner = owner.decode()
    if owner and owner != session.get(BROWSER_SESSION_KEY):
        return render_template(
            "install_rejected.html", reason="install not started in this browser"
        ), 400
    return _render_result(context, job_id, wait_seconds=0)


def _check_parameters(code: str, installation_id: str) -> None:
    error = request.args.get("error")
    if error:
        # An OAuth error redirect (RFC 6749 4.1.2.1), e.g. access_denied.
        raise CallbackRejected(f"Plane returned the OAuth error {error[:64]!r}")
    if not code:
        raise CallbackRejected("missing code")
    if not _is_uuid(installation_id):
        raise CallbackRejected("missing or invalid app_installation_id")


def _check_state(context, state: str) -> tuple[str, str]:
    """Return the claim key and browser for a valid state, or raise."""
    raw = context.redis.get(_state_key(state))
    if raw is None:
        raise CallbackRejected("unknown state")
    record = json.loads(raw)
    if time.time() - record["issued_at"] > STATE_LIFETIME_SECONDS:
        raise CallbackRejected("expired state")
    if record["browser"] != session.get(BROWSER_SESSION_KEY):
        raise CallbackRejected("state not started in this browser")
    return key("install-claim", "state", _digest(state)), record["browser"]


def _allow_without_state(context, code: str, installation_id: str) -> tuple[str, str]:
    if not context.settings.allow_install_without_state:
        raise CallbackRejected(
            "missing state (installs started from Plane are accepted only when "
            "PLANE_ALLOW_INSTALL_WITHOUT_STATE is true)"
        )
    logger.warning(
        "install callback arrived without state; accepted because "
        "PLANE_ALLOW_INSTALL_WITHOUT_STATE is true",
        extra={"installation_id": installation_id},
    )
    return key("install-claim", "code", _digest(code)), ""


def _claim_and_enqueue(
    context, claim_key: str, owner: str, code: str, installation_id: str
) -> str:
    """Enqueue the install job for the first use of a claim; repeats share its job."""
    job_id = uuid.uuid4().hex
    claim = json.dumps({"code": _digest(code), "job_id": job_id})
    if context.redis.set(claim_key, claim, nx=True, ex=INSTALL_RECORD_TTL_SECONDS):
        context.redis.set(
            key("install-owner", job_id), owner, ex=INSTALL_RECORD_TTL_SECONDS
        )
        queues.enqueue(
            context.install_queue,
            queues.INSTALL_JOB,
            args=(installation_id, code),
            job_id=job_id,
            description=f"install {installation_id}",
            job_timeout=queues.INSTALL_JOB_TIMEOUT_SECONDS,
        )
        logger.info(
            "install enqueued",
            extra={"installation_id": installation_id, "job_id": job_id},
        )
        return job_id

    existing = json.loads(context.redis.get(claim_key) or "{}")
    if existing.get("code") != _digest(code):
        raise CallbackRejected("state already used")
    logger.info(
        "duplicate callback ignored",
        extra={"installation_id": installation_id, "job_id": existing["job_id"]},
    )
    return existing["job_id"]


def _render_result(context, job_id: str, *, wait_seconds: float):
    deadline = time.monotonic() + wait_seconds
    while True:
        raw = context.redis.get(key("install-result", job_id))
        if raw is not None or time.monotonic() >= deadline:
            break
        time.sleep(CALLBACK_POLL_SECONDS)

    if raw is None:
        return render_template("install_pending.html", job_id=job_id), 202
    result = json.loads(raw)
    if result["status"] == "succeeded":
        return render_template("install_succeeded.html", result=result), 200
    return render_template("install_failed.html", result=result), 502


def _state_key(state: str) -> str:
    return key("oauth-state", _digest(state))


def _digest(value: str) -> str:
    """Hash a secret value before it becomes part of a Redis key."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
