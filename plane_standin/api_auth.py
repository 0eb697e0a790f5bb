"""Bearer authentication, workspace confinement, scopes and throttling of the API.

The checks run in DRF's order: authentication (403 when it fails), permissions
(403), then the throttle (429).
"""

from flask import g, request

from .responses import NO_PERMISSION, NOT_AUTHENTICATED, abort_drf
from .runtime import Runtime
from .tokens import AccessToken

# Scopes that allow reading or writing each kind of resource. `read` and `write` are
# Plane's global pair. NOTE: of the granular names, only `projects.work_items:read`
# and `agents.run_activities:write` appear in what we know of Plane. The others
# are guesses that follow the same pattern.
COMMENT_SCOPES = {
    "read": {"read", "projects.work_items:read", "projects.work_items.comments:read"},
    "write": {
        "write",
        "projects.work_items:write",
        "projects.work_items.comments:write",
    },
}
AGENT_RUN_SCOPES = {
    "read": {"read", "agents.runs:read", "agents.run_activities:read"},
    "write": {"write", "agents.run_activities:write"},
}


def bearer_token() -> str | None:
    """Return the token of an `Authorization: Bearer` header, if there is one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def authenticate_bearer(runtime: Runtime) -> AccessToken:
    """Return the request's valid access token, or stop with Plane's 403.

    `X-Api-Key` is never accepted, because apps authenticate only with OAuth
    tokens.
    """
    token = bearer_token()
    with runtime.world.lock:
        access = runtime.world.tokens.find_valid_access(token) if token else None
    if access is None:
        abort_drf({"detail": NOT_AUTHENTICATED}, 403)
    g.access_token = access
    return access


def authorize_api(
    runtime: Runtime, slug: str, scopes: dict[str, set[str]]
) -> AccessToken:
    """Authenticate, confine the token to its workspace, check scope and throttle."""
    access = authenticate_bearer(runtime)
    in_workspace = (
        slug == runtime.config.workspace_slug
        and access.workspace_id == runtime.config.workspace_id
    )
    needed = "read" if request.method in ("GET", "HEAD") else "write"
    if not in_workspace or not scopes[needed] & set(access.scope.split()):
        abort_drf({"detail": NO_PERMISSION}, 403)

    limit = runtime.api_limiter.hit(access.token)
    g.rate_limit = limit
    if not limit.allowed:
        wait = max(0, int(limit.reset_at - runtime.config.clock()))
        abort_drf(
            {"detail": f"Request was throttled. Expected available in {wait} seconds."},
            429,
        )
    return access
