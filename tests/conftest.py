"""Shared fixtures: a real Redis per test, checked settings, the Flask app."""

import pytest
import redis
from cryptography.fernet import Fernet

from shared import metrics
from shared.settings import load_settings
from tests.redis_server import choose_test_redis

CASE_SECRET = "plane_wh_3f9a1c0e7b2d4a6c8e0f1a2b3c4d5e6f"
# The Plane stand-in's client secret in the tests; settings built with
# ``make_environ`` use it too.
STANDIN_CLIENT_SECRET = "standin-test-client-secret"
TEST_REDIRECT_URI = "http://127.0.0.1:8000/oauth/callback"
TEST_ENCRYPTION_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def redis_url():
    url, server = choose_test_redis()
    yield url
    if server is not None:
        server.stop()


@pytest.fixture
def redis_conn(redis_url):
    """A client for an emptied test database."""
    connection = redis.Redis.from_url(redis_url)
    # Metric writes an earlier test left buffered must not land in this test.
    metrics.flush()
    connection.flushdb()
    yield connection
    connection.close()


def make_environ(redis_url: str, **overrides: str) -> dict[str, str]:
    environ = {
        "PLANE_BASE_URL": "http://127.0.0.1:9",
        "PLANE_CLIENT_ID": "kQ3vYtq8Zr0pXw2LmN7aBcDeFgHiJkLmNoPqRsTu",
        "PLANE_CLIENT_SECRET": STANDIN_CLIENT_SECRET,
        "PLANE_REDIRECT_URI": TEST_REDIRECT_URI,
        "PLANE_WEBHOOK_SECRET": CASE_SECRET,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123",
        "TOKEN_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    }
    environ.update(overrides)
    return environ


@pytest.fixture
def standin():
    """A running Plane stand-in that sends webhooks nowhere (port 9 refuses)."""
    from plane_standin import defaults
    from plane_standin.server import StandIn

    with StandIn(
        webhook_url="http://127.0.0.1:9/webhooks/plane",
        webhook_secret=CASE_SECRET,
        client_secret=STANDIN_CLIENT_SECRET,
        redirect_uris=[TEST_REDIRECT_URI, defaults.REDIRECT_URI],
        webhooks_for_api_changes=False,
    ) as running:
        yield running


@pytest.fixture
def settings(redis_url, redis_conn):
    return load_settings(make_environ(redis_url))


@pytest.fixture
def make_app(redis_conn):
    from ingress import create_app

    def build(settings):
        app = create_app(settings, connection=redis_conn)
        app.testing = True
        return app

    return build


def make_installation(status: str = "installed"):
    """Return the stand-in's seeded installation as the store keeps it."""
    import time

    from plane_standin import defaults
    from shared.installations import Installation

    return Installation(
        id=defaults.INSTALLATION_ID,
        workspace_id=defaults.WORKSPACE_ID,
        workspace_slug=defaults.WORKSPACE_SLUG,
        workspace_name=defaults.WORKSPACE_NAME,
        bot_user_id=defaults.BOT_USER_ID,
        application_id=defaults.APPLICATION_ID,
        installed_by=defaults.INSTALLER_USER_ID,
        status=status,
        updated_at=time.time(),
    )
