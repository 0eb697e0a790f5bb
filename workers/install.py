"""Install jobs: turn Plane's callback into a stored, working installation.

``install_app`` runs on the install queue, which a worker of its own listens to,
because Plane's authorization code dies 60 s after consent.
"""

import json
import logging
import time

from rq import get_current_job

from shared import queues
from shared.errors import (
    InstallationNotFoundError,
    InvalidClientError,
    InvalidGrantError,
    OAuthError,
    PlaneAPIError,
    PlaneAppError,
)
from shared.installations import STATUS_INSTALLED, STATUS_UNINSTALLED, Installation
from shared.redis_client import key
from workers import runtime

logger = logging.getLogger(__name__)

# The callback page and the status page read the result this long.
INSTALL_RESULT_TTL_SECONDS = 3600
# Refusals of a bot token, some time apart, that mark an installation uninstalled.
UNINSTALL_REFUSALS_REQUIRED = 2


def install_app(installation_id: str, code: str) -> None:
    """Exchange the code, look the installation up, mint the bot token, store it.

    The lookup uses the installing user's new token, which Plane confines to
    the workspace the user consented in, so a callback whose
    ``app_installation_id`` was swapped for another workspace's fails here
    instead of overwriting that installation's tokens.
    """
    context = runtime.current()
    job_id = get_current_job().id
    fields = {"installation_id": installation_id, "job_id": job_id}
    logger.info("install started", extra=fields)

    try:
        user_tokens = context.oauth.exchange_code(code, installation_id=installation_id)
        details = context.oauth.get_installation(
            user_tokens.access_token, installation_id
        )
        bot_token = context.oauth.mint_bot_token(installation_id)
    except Exception as error:
        # Any failure must reach the waiting browser, or it shows "still working".
        message = _explain_failure(error)
        _record_result(context, job_id, status="failed", message=message)
        logger.error("install failed: %s", message, extra=fields)
        raise

    installation = _installation_from(details)
    now = time.time()
    context.store.save(installation)
    context.store.replace_user_tokens(
        installation_id,
        access_token=user_tokens.access_token,
        refresh_token=user_tokens.refresh_token or "",
        expires_at=now + user_tokens.expires_in,
    )
    context.store.save_bot_token(
        installation_id, bot_token.access_token, now + bot_token.expires_in
    )
    _record_result(
        context,
        job_id,
        status="succeeded",
        workspace_slug=installation.workspace_slug,
        workspace_name=installation.workspace_name,
    )
    logger.info(
        "install succeeded",
        extra={**fields, "workspace_slug": installation.workspace_slug},
    )


def confirm_uninstall(installation_id: str, refusals: int = 0) -> None:
    """Check an uninstall signal by asking Plane for a bot token.

    A new token proves the installation is still there. For an uninstalled
    installation Plane most likely returns HTTP 500 (a validation error in a
    plain Django view) or an OAuth 400. Anything else proves nothing and is
    retried: 502-504, 429, a network error, or ``invalid_client``, which is
    about our credentials. One refusal could be a passing fault, so the
    installation is marked uninstalled only after a second refusal later.
    """
    context = runtime.current()
    fields = {"installation_id": installation_id, "refusals": refusals}
    try:
        token = context.oauth.mint_bot_token(installation_id)
    except PlaneAPIError as error:
        if not _is_refusal(error):
            raise  # proves nothing; RQ retries the check later
        if refusals + 1 < UNINSTALL_REFUSALS_REQUIRED:
            _recheck_uninstall(context, installation_id, refusals + 1)
            logger.warning(
                "uninstall check: Plane refused a bot token (HTTP %s); checking "
                "again in %s s before marking the installation uninstalled",
                error.status,
                context.settings.uninstall_recheck_seconds,
                extra=fields,
            )
            return
        context.store.set_status(installation_id, STATUS_UNINSTALLED)
        logger.warning(
            "uninstall confirmed: Plane refused a bot token again (HTTP %s)",
            error.status,
            extra=fields,
        )
        return

    context.store.save_bot_token(
        installation_id, token.access_token, time.time() + token.expires_in
    )
    logger.warning(
        "uninstall notice not confirmed: Plane still issues bot tokens; ignored",
        extra=fields,
    )


def _is_refusal(error: PlaneAPIError) -> bool:
    if error.status == 500:
        return True
    return isinstance(error, OAuthError) and not isinstance(error, InvalidClientError)


def _recheck_uninstall(context, installation_id: str, refusals: int) -> None:
    queues.enqueue(
        queues.get_queue(queues.INSTALL_QUEUE, context.redis),
        queues.UNINSTALL_CHECK_JOB,
        args=(installation_id,),
        kwargs={"refusals": refusals},
        description=f"confirm uninstall of {installation_id} (again)",
        job_timeout=queues.INSTALL_JOB_TIMEOUT_SECONDS,
        delay_seconds=context.settings.uninstall_recheck_seconds,
    )


def _installation_from(details: dict) -> Installation:
    workspace = details.get("workspace_detail") or {}
    return Installation(
        id=details["id"],
        workspace_id=str(workspace.get("id") or details["workspace"]),
        workspace_slug=workspace.get("slug", ""),
        workspace_name=workspace.get("name", ""),
        bot_user_id=str(details.get("app_bot") or ""),
        application_id=str(details.get("application") or ""),
        installed_by=str(details.get("installed_by") or ""),
        status=STATUS_INSTALLED,
        updated_at=time.time(),
    )


def _explain_failure(error: Exception) -> str:
    if isinstance(error, InvalidGrantError):
        return (
            "Plane rejected the authorization code: it expired (codes live 60 "
            "seconds) or was already used."
        )
    if isinstance(error, InvalidClientError):
        return (
            "Plane rejected this app's client credentials. The operator must check "
            "PLANE_CLIENT_ID and PLANE_CLIENT_SECRET."
        )
    if isinstance(error, InstallationNotFoundError):
        return (
            "Plane does not list this installation for the user who consented; "
            "it may have been removed, or the link was altered."
        )
    if isinstance(error, PlaneAppError):
        return f"Plane could not complete the installation ({error})."
    return (
        "The installation failed on our side; the operator can find the error "
        "in the worker log."
    )


def _record_result(context, job_id: str, **result: str) -> None:
    context.redis.set(
        key("install-result", job_id), json.dumps(result), ex=INSTALL_RESULT_TTL_SECONDS
    )
