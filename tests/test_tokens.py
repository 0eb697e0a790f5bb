"""Token renewal and retries against the Plane stand-in and a real Redis.

Covers the token-expiry and retry-policy regression cases. A token is renewed
before expiry and once after Plane rejects it, never on a permission error.
Token calls retry only 429, 5xx and network errors, and raise the real error.
"""

import threading
import time

import pytest
from plane.errors import HttpError
from plane.models.work_items import CreateWorkItemComment

from plane_standin import defaults
from shared.credentials import InstallationCredentials
from shared.errors import (
    InvalidClientError,
    PlaneUnavailableError,
    ReauthorizationRequiredError,
)
from shared.installations import (
    STATUS_NEEDS_REAUTHORIZATION,
    InstallationStore,
    TokenCipher,
)
from shared.plane_api import LiveTokenAuth, build_plane_client
from shared.plane_oauth import PlaneOAuthClient, token_retrying
from tests.conftest import (
    STANDIN_CLIENT_SECRET,
    TEST_ENCRYPTION_KEY,
    make_installation,
)

INSTALLATION_ID = defaults.INSTALLATION_ID
REFRESH_MARGIN_SECONDS = 60
CREDENTIALS_MISSING = {"detail": "Authentication credentials were not provided."}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(redis_conn):
    store = InstallationStore(redis_conn, TokenCipher((TEST_ENCRYPTION_KEY,)))
    store.save(make_installation())
    return store


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def oauth(standin, sleeps):
    return PlaneOAuthClient(
        base_url=standin.url,
        client_id=defaults.CLIENT_ID,
        client_secret=STANDIN_CLIENT_SECRET,
        redirect_uri=defaults.REDIRECT_URI,
        scopes="read write",
        retrying=token_retrying(sleep=sleeps.append),
    )


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def credentials(store, oauth, redis_conn, clock):
    return InstallationCredentials(
        INSTALLATION_ID,
        store=store,
        oauth=oauth,
        connection=redis_conn,
        refresh_margin_seconds=REFRESH_MARGIN_SECONDS,
        clock=clock,
    )


@pytest.fixture
def plane(standin, credentials):
    auth = LiveTokenAuth(
        credentials.bot_token, credentials.renew_bot_token, INSTALLATION_ID
    )
    return build_plane_client(standin.url, auth)


def post_comment(plane):
    plane.work_items.comments.create(
        defaults.WORKSPACE_SLUG,
        defaults.PROJECT_ID,
        defaults.WORK_ITEM_ID,
        CreateWorkItemComment(comment_html="<p>hello</p>"),
    )


def comment_tokens(standin) -> list[str]:
    return [r.bearer_token for r in standin.requests("api:comments", "POST")]


def store_bot_token(standin, store, clock, lifetime: float) -> str:
    token = standin.issue_bot_token()
    store.save_bot_token(INSTALLATION_ID, token, clock.now + lifetime)
    return token


def store_user_tokens(standin, store, clock, lifetime: float) -> tuple[str, str]:
    access, refresh = standin.issue_user_token()
    store.replace_user_tokens(
        INSTALLATION_ID,
        access_token=access,
        refresh_token=refresh,
        expires_at=clock.now + lifetime,
    )
    return access, refresh


# Expiry and renewal


def test_bot_token_renewed_before_expiry(standin, store, clock, plane):
    original = store_bot_token(standin, store, clock, lifetime=300)

    post_comment(plane)
    clock.now += 330
    post_comment(plane)

    tokens = comment_tokens(standin)
    assert tokens[0] == original
    assert tokens[1] != original
    assert len(standin.token_requests("client_credentials")) == 1


def test_user_token_refreshed_inside_margin(standin, store, clock, credentials):
    access, refresh = store_user_tokens(standin, store, clock, lifetime=3600)
    clock.now += 3590

    current = credentials.user_token()

    assert current != access
    assert len(standin.token_requests("refresh_token")) == 1
    assert store.load_user_tokens(INSTALLATION_ID).access_token == current


@pytest.mark.parametrize(
    "rejection",
    [
        {"status": 401, "json": CREDENTIALS_MISSING},
        {"status": 403, "json": CREDENTIALS_MISSING},
    ],
)
def test_rejected_token_renewed_once_then_retried(
    standin, store, clock, plane, rejection
):
    original = store_bot_token(standin, store, clock, lifetime=36000)
    standin.script("api:comments", [rejection])

    post_comment(plane)

    tokens = comment_tokens(standin)
    assert len(standin.token_requests("client_credentials")) == 1
    assert len(tokens) == 2
    assert tokens[0] == original
    assert tokens[1] != original


def test_second_rejection_surfaces(standin, store, clock, plane):
    store_bot_token(standin, store, clock, lifetime=36000)
    standin.script("api:comments", [{"status": 401, "json": CREDENTIALS_MISSING}] * 2)

    with pytest.raises(HttpError) as raised:
        post_comment(plane)

    assert raised.value.status_code == 401
    assert len(comment_tokens(standin)) == 2
    assert len(standin.token_requests("client_credentials")) == 1


def test_permission_error_is_not_renewed(standin, store, clock, plane):
    store_bot_token(standin, store, clock, lifetime=36000)
    standin.script("api:comments", [{"status": 403, "json": NO_PERMISSION}])

    with pytest.raises(HttpError) as raised:
        post_comment(plane)

    assert raised.value.status_code == 403
    assert len(comment_tokens(standin)) == 1
    assert standin.token_requests("client_credentials") == []


def test_concurrent_refresh_calls_plane_once(standin, store, clock, oauth, redis_url):
    import redis

    store_user_tokens(standin, store, clock, lifetime=20)
    standin.script("token:refresh_token", [{"delay": 0.15}])
    results: list[str] = []

    def refresh_in_own_connection():
        connection = redis.Redis.from_url(redis_url)
        own_store = InstallationStore(connection, TokenCipher((TEST_ENCRYPTION_KEY,)))
        credentials = InstallationCredentials(
            INSTALLATION_ID,
            store=own_store,
            oauth=oauth,
            connection=connection,
            refresh_margin_seconds=REFRESH_MARGIN_SECONDS,
            clock=clock,
        )
        results.append(credentials.user_token())

    threads = [threading.Thread(target=refresh_in_own_connection) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(standin.token_requests("refresh_token")) == 1
    assert len(results) == 2
    assert results[0] == results[1]


# Retry policy of token calls


def test_invalid_grant_marks_installation_for_reinstall(
    standin, store, clock, credentials
):
    store_user_tokens(standin, store, clock, lifetime=10)
    standin.script(
        "token:refresh_token", [{"status": 400, "json": {"error": "invalid_grant"}}]
    )

    with pytest.raises(ReauthorizationRequiredError) as raised:
        credentials.user_token()

    assert len(standin.token_requests("refresh_token")) == 1
    assert INSTALLATION_ID in str(raised.value)
    assert "reinstall the app" in str(raised.value)
    assert store.get(INSTALLATION_ID).status == STATUS_NEEDS_REAUTHORIZATION


def test_invalid_client_points_at_settings(standin, oauth):
    standin.script(
        "token:client_credentials",
        [{"status": 401, "json": {"error": "invalid_client"}}],
    )

    with pytest.raises(InvalidClientError) as raised:
        oauth.mint_bot_token(INSTALLATION_ID)

    assert len(standin.token_requests("client_credentials")) == 1
    assert "PLANE_CLIENT_ID" in str(raised.value)
    assert "PLANE_CLIENT_SECRET" in str(raised.value)


def test_server_errors_retried_until_success(standin, oauth, sleeps):
    standin.script("token:client_credentials", [{"status": 503, "body": "busy"}] * 2)

    token = oauth.mint_bot_token(INSTALLATION_ID)

    assert token.access_token
    assert len(standin.token_requests("client_credentials")) == 3
    assert len(sleeps) == 2


def test_rate_limit_waits_for_retry_after(standin, oauth, sleeps):
    standin.script(
        "token:client_credentials",
        [
            {
                "status": 429,
                "json": {
                    "error_code": 5900,
                    "error_message": "Too many requests, please try again later.",
                },
                "headers": {"Retry-After": "2"},
            }
        ],
    )

    oauth.mint_bot_token(INSTALLATION_ID)

    assert len(sleeps) == 1
    assert sleeps[0] >= 2


def test_unreachable_plane_raises_connection_error_after_cap(sleeps):
    from tests.redis_server import free_port

    oauth = PlaneOAuthClient(
        base_url=f"http://127.0.0.1:{free_port()}",
        client_id=defaults.CLIENT_ID,
        client_secret=STANDIN_CLIENT_SECRET,
        redirect_uri=defaults.REDIRECT_URI,
        scopes="read write",
        retrying=token_retrying(sleep=sleeps.append),
    )

    with pytest.raises(PlaneUnavailableError) as raised:
        oauth.mint_bot_token(INSTALLATION_ID)

    assert len(sleeps) == 4
    assert sum(sleeps) <= 30
    assert INSTALLATION_ID in str(raised.value)


def test_mint_server_error_schedules_uninstall_check(
    standin, store, clock, credentials
):
    standin.script(
        "token:client_credentials",
        [{"status": 500, "body": "<h1>Server Error (500)</h1>"}] * 5,
    )

    with pytest.raises(PlaneUnavailableError):
        credentials.bot_token()

    install_queue = store.redis.lrange("rq:queue:install", 0, -1)
    assert len(install_queue) == 1


def test_lost_refresh_response_marks_reauthorization(
    standin, store, clock, credentials, monkeypatch
):
    from shared import plane_oauth

    monkeypatch.setattr(plane_oauth, "TOKEN_REQUEST_TIMEOUT_SECONDS", 0.3)
    store_user_tokens(standin, store, clock, lifetime=20)
    # The stand-in rotates at once, then delays its response past the timeout.
    standin.script("token:refresh_token", [{"delay": 1.0}])

    with pytest.raises(PlaneUnavailableError):
        credentials.user_token()
    with pytest.raises(ReauthorizationRequiredError):
        credentials.user_token()
    with pytest.raises(ReauthorizationRequiredError):
        credentials.user_token()

    assert len(standin.token_requests("refresh_token")) == 2
    assert store.get(INSTALLATION_ID).status == STATUS_NEEDS_REAUTHORIZATION


def test_connection_reset_is_retried(standin, oauth, sleeps):
    standin.script("token:client_credentials", ["connection_reset"])

    token = oauth.mint_bot_token(INSTALLATION_ID)

    assert token.access_token
    assert len(standin.token_requests("client_credentials")) == 2
    assert len(sleeps) == 1
