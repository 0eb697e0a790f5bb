"""Install jobs: turn Plane's callback into a stored, working installation.

``install_app`` runs on the install queue, which a worker of its own listens to,
because Plane's authorization code dies 60 s after consent.
"""

import json
import logging
import time

from rq import get_current_job

from shared.errors import (
    InstallationNotFoundError,
    InvalidClientError,
    InvalidGrantError,
    PlaneAPIError,
    PlaneAppError,
)
from shared.installations import STATUS_INSTALLED, STATUS_UNINSTALLED, Installation
from shared.redis_client import key
from workers import runtime

logger = logging.getLogger(__name__)

# The callback page and the status page read the result this long.
INSTALL_RESULT_TTL_SECONDS = 3600


def install_app(installation_id: str, code: str) -> None:
    """Exchange the code, mint the bot token, look the installation up, store it."""
    context = runtime.current()
    job_id = get_current_job().id
    fields = {"installation_id": installation_id, "job_id": job_id}
    logger.info("install started", extra=fields)

    try:
        user_tokens = context.oauth.exchange_code(code, installation_id=installation_id)
        bot_token = context.oauth.mint_bot_token(installation_id)
        details = context.oauth.get_installation(
            bot_token.access_token, installation_id
        )
    except PlaneAppError as error:
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


def confirm_uninstall(installation_id: str) -> None:
    """Check an unsigned uninstall notice by asking Plane for a bot token.

    Plane refuses bot tokens for an uninstalled installation (most likely with a
    5xx rather than an OAuth error), so a refusal confirms the notice and a new
    token proves it false.
    """
    context = runtime.current()
    fields = {"installation_id": installation_id}
    try:
        token = context.oauth.mint_bot_token(installation_id)
    except PlaneAPIError as error:
        if error.status is None:
            raise  # Plane could not be reached: this proves nothing, let RQ record it.
        context.store.set_status(installation_id, STATUS_UNINSTALLED)
        logger.warning(
            "uninstall confirmed: Plane refused a bot token (HTTP %s)",
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


def _explain_failure(error: PlaneAppError) -> str:
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
        return "Plane does not list this installation any more."
    return f"Plane could not complete the installation ({error})."


def _record_result(context, job_id: str, **result: str) -> None:
    context.redis.set(
        key("install-result", job_id), json.dumps(result), ex=INSTALL_RESULT_TTL_SECONDS
    )
