"""Plane's `/auth/o/` endpoints: consent, token and installation lookup.

Consent is implicit. The installing user (Ada) approves every valid authorization
request at once, as if she had clicked "Accept" on Plane's consent page.
"""

import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, g, redirect, request

from . import defaults, grants
from .api_auth import authenticate_bearer
from .responses import drf_json, oauth_json, server_error
from .runtime import current_runtime
from .tokens import AuthorizationCode, generate_token

blueprint = Blueprint("oauth", __name__)

# oauthlib rejects a token request that repeats one of these.
SINGLE_VALUED_PARAMETERS = ("grant_type", "client_id", "redirect_uri", "scope", "code")
PKCE_METHODS = ("plain", "S256")
RATE_LIMITED_BODY = {
    "error_code": 5900,
    "error_message": "Too many requests, please try again later.",
}


@blueprint.get("/auth/o/authorize-app/")
def authorize() -> Response:
    """Validate an authorization request, consent, and redirect with a code."""
    runtime = current_runtime()
    config, world = runtime.config, runtime.world
    args = request.args
    client_id = args.get("client_id")
    if not client_id:
        return _fatal("Missing client_id parameter.")
    if client_id != config.client_id:
        return _fatal("Invalid client_id parameter value.")
    redirect_uri = args.get("redirect_uri") or config.redirect_uris[0]
    if redirect_uri not in config.redirect_uris:
        return _fatal("Mismatching redirect URI.")

    state = args.get("state")
    error = _authorization_error(args)
    scope = grants.resolve_scope(args.get("scope"), config)
    if error is None and scope is None:
        error = {"error": "invalid_scope"}
    if error is not None:
        return redirect(_with_params(redirect_uri, {**error, "state": state}))

    with world.lock:
        installation = world.install()
        code = AuthorizationCode(
            code=generate_token(),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            user_id=defaults.INSTALLER_USER_ID,
            installation_id=installation.id,
            workspace_id=installation.record["workspace"],
            expires_at=config.clock() + config.code_lifetime,
            code_challenge=args.get("code_challenge"),
            code_challenge_method=_challenge_method(args),
        )
        world.tokens.codes[code.code] = code
        world.consents.append(
            {
                "at": config.clock(),
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
                "installation_id": installation.id,
                "user_id": code.user_id,
                "code": code.code,
            }
        )
    params = {"code": code.code, "state": state, "app_installation_id": installation.id}
    return redirect(_with_params(redirect_uri, params))


def _fatal(description: str) -> Response:
    # oauthlib does not redirect these errors, since the redirect target is unsafe.
    return oauth_json(
        {"error": "invalid_request", "error_description": description}, 400
    )


def _authorization_error(args) -> dict | None:
    response_type = args.get("response_type")
    if not response_type:
        return {
            "error": "invalid_request",
            "error_description": "Missing response_type parameter.",
        }
    if response_type != "code":
        return {"error": "unsupported_response_type"}
    if args.get("code_challenge") and _challenge_method(args) not in PKCE_METHODS:
        return {
            "error": "invalid_request",
            "error_description": "Transform algorithm not supported.",
        }
    return None


def _challenge_method(args) -> str | None:
    if not args.get("code_challenge"):
        return None
    return args.get("code_challenge_method") or "plain"


def _with_params(uri: str, params: dict) -> str:
    """Append params to a URI's query, leaving out those that are None."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(key, value) for key, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


@blueprint.post("/auth/o/token/")
def token() -> Response:
    """Issue tokens. The body is read only as form data, as Django's request.POST."""
    runtime = current_runtime()
    limit = runtime.token_limiter.hit(_token_rate_limit_key())
    g.rate_limit = limit
    if not limit.allowed:
        return oauth_json(RATE_LIMITED_BODY, 429)
    if request.query_string:
        return grants.oauth_error(
            "invalid_request", "URL query parameters are not allowed"
        )
    for name in SINGLE_VALUED_PARAMETERS:
        if len(request.form.getlist(name)) > 1:
            return grants.oauth_error("invalid_request", f"Duplicate {name} parameter.")

    handler = grants.GRANT_HANDLERS.get(request.form.get("grant_type", ""))
    if handler is None:
        return grants.oauth_error("unsupported_grant_type")
    return handler(runtime)


@blueprint.post("/auth/o/revoke-token/")
def revoke_token() -> Response:
    """Revoke an access or refresh token (RFC 7009), as django-oauth-toolkit does.

    Unknown tokens still get 200, so a client cannot probe which tokens exist.
    """
    runtime = current_runtime()
    if not grants.authenticate_client(runtime.config):
        return grants.oauth_error("invalid_client")
    token_value = request.form.get("token")
    if not token_value:
        return grants.oauth_error("invalid_request", "Missing token parameter.")
    with runtime.world.lock:
        runtime.world.tokens.revoke(token_value)
    return Response(status=200)


def _token_rate_limit_key() -> str:
    # Plane keys on the user, else `client_id` from the form body, else the IP. A
    # backend that authenticates with HTTP Basic is therefore limited per IP.
    client_id = request.form.get("client_id")
    if client_id:
        return f"client:{client_id}"
    return f"ip:{request.remote_addr}"


@blueprint.get("/auth/o/app-installation/")
def app_installation() -> Response:
    """List the installations the token's user can see, optionally one by `id`."""
    runtime = current_runtime()
    access = authenticate_bearer(runtime)
    requested_id = request.args.get("id")
    if requested_id is not None and not _is_uuid(requested_id):
        # Django raises ValidationError for a malformed UUID in a filter.
        return server_error()

    with runtime.world.lock:
        records = [
            dict(installation.record)
            for installation in runtime.world.installations.values()
            if installation.record["workspace"] == access.workspace_id
            and installation.record["deleted_at"] is None
            and (requested_id is None or installation.id == requested_id)
        ]
    return drf_json(records)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
