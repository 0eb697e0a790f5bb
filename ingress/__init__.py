"""The web process: a thin Flask app that verifies, stores and responds.

``create_app`` builds the app from checked ``Settings``; ``ingress.wsgi`` is the
module gunicorn serves.
"""

from dataclasses import dataclass

import redis
from flask import Flask, Request, jsonify
from flask.sessions import SecureCookieSessionInterface
from rq import Queue

from ingress import metrics as metrics_endpoint
from ingress import oauth, webhooks
from ingress.dashboard import mount_dashboard
from ingress.raw_body import RawBodyMiddleware
from ingress.request_logging import open_request_log_context
from shared import metrics, queues
from shared.deliveries import DeliveryQueue
from shared.installations import InstallationStore
from shared.plane_oauth import PlaneOAuthClient
from shared.redis_client import connect
from shared.settings import Settings


@dataclass(frozen=True)
class IngressContext:
    """Dependencies the request handlers share, in ``app.extensions["planeapp"]``."""

    settings: Settings
    redis: redis.Redis
    store: InstallationStore
    oauth: PlaneOAuthClient
    install_queue: Queue
    deliveries: DeliveryQueue


class OAuthSessionInterface(SecureCookieSessionInterface):
    """Open the signed session cookie only on the OAuth routes, the ones that use it.

    Flask builds a signing serializer for every request that opens a session,
    which costs a webhook request about a tenth of its time for a cookie it
    never reads.
    """

    def open_session(self, app: Flask, request: Request):
        if not request.path.startswith(oauth.PATH_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)


def create_app(settings: Settings, *, connection: redis.Redis | None = None) -> Flask:
    """Build the ingress app for ``settings``."""
    app = Flask(__name__)
    app.session_interface = OAuthSessionInterface()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="plane_app_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax still sends the cookie on Plane's top-level redirect to the callback.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.plane_redirect_uri.startswith("https://"),
    )

    connection = connection or connect(settings.redis_url)
    metrics.configure(connection)
    app.extensions["planeapp"] = IngressContext(
        settings=settings,
        redis=connection,
        store=InstallationStore.from_settings(connection, settings),
        oauth=PlaneOAuthClient.from_settings(settings),
        install_queue=queues.get_queue(queues.INSTALL_QUEUE, connection),
        deliveries=DeliveryQueue(connection),
    )

    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(oauth.blueprint)
    app.register_blueprint(metrics_endpoint.blueprint)
    mount_dashboard(app, settings)
    open_request_log_context(app)
    app.add_url_rule("/healthz", "healthz", _health)
    app.wsgi_app = RawBodyMiddleware(
        app.wsgi_app,
        paths=(webhooks.WEBHOOK_PATH,),
        max_bytes=settings.webhook_max_body_bytes,
    )
    return app


def _health():
    from flask import current_app

    try:
        current_app.extensions["planeapp"].redis.ping()
    except redis.RedisError:
        return jsonify(status="unavailable", redis="unreachable"), 503
    return jsonify(status="ok", redis="ok"), 200
