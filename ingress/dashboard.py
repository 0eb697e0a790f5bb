"""rq-dashboard at ``/rq``, behind HTTP Basic auth, only when a password is set.

The dashboard shows queues, workers and failed jobs, and can requeue or delete
jobs. It shows each job's arguments, which for a delivery are the webhook body
and for an install job Plane's authorization code (dead 60 s after consent).
"""

import hmac
from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, Response, request
from rq_dashboard.web import config as dashboard_config
from rq_dashboard.web import setup_rq_connection

from shared import queues
from shared.settings import Settings

DASHBOARD_PATH = "/rq"
DASHBOARD_BLUEPRINT = rq_dashboard.blueprint.name
REALM = "Plane app RQ dashboard"
# Requests that change jobs; a cross-site form could send them with the
# browser's cached Basic credentials.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def mount_dashboard(app: Flask, settings: Settings) -> bool:
    """Register rq-dashboard on ``app`` if RQ_DASHBOARD_PASSWORD is set.

    Returns whether it was mounted.
    """
    if not settings.dashboard_password:
        return False

    # rq-dashboard keeps its serializer in module state; ours is JSON.
    dashboard_config.serializer = queues.SERIALIZER
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=DASHBOARD_PATH)

    @app.before_request
    def require_dashboard_password():
        if request.blueprint != DASHBOARD_BLUEPRINT:
            return None
        if not _credentials_match(settings):
            return Response(
                "The dashboard requires a username and password.\n",
                401,
                {"WWW-Authenticate": f'Basic realm="{REALM}"'},
                mimetype="text/plain",
            )
        if request.method in UNSAFE_METHODS and not _same_origin():
            return Response("Cross-site request rejected.\n", 403)
        return None

    return True


def _credentials_match(settings: Settings) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    # Compare both, always, so the time taken does not reveal which was wrong.
    username_ok = hmac.compare_digest(
        (auth.username or "").encode(), settings.dashboard_username.encode()
    )
    password_ok = hmac.compare_digest(
        (auth.password or "").encode(), settings.dashboard_password.encode()
    )
    return username_ok and password_ok


def _same_origin() -> bool:
    """Tell whether a state-changing request came from the dashboard's own page.

    Current browsers send Sec-Fetch-Site or Origin with every cross-site POST. A
    request with neither is allowed, because clients such as curl send neither.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host
