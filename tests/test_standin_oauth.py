"""The stand-in's OAuth side over loopback: consent, the three grants, lookups."""

import base64
import hashlib
import json
import string
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from plane_standin import StandIn
from plane_standin import defaults as ids
from plane_standin.receiver import WebhookReceiver

FIXTURES = Path(__file__).parent / "fixtures" / "plane"
SECRET = "plane_wh_3f9a1c0e7b2d4a6c8e0f1a2b3c4d5e6f"
REDIRECT_URI = "http://127.0.0.1:5000/oauth/callback"
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
COMMENTS_PATH = (
    f"/api/v1/workspaces/acme/projects/{ids.PROJECT_ID}"
    f"/work-items/{ids.WORK_ITEM_ID}/comments/"
)


class FrozenClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
def receiver():
    with WebhookReceiver() as receiver:
        yield receiver


def start_standin(clock, receiver, **options) -> StandIn:
    options.setdefault("redirect_uris", [REDIRECT_URI])
    return StandIn(
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        clock=clock,
        delay_scale=0.0,
        webhooks_for_api_changes=False,
        **options,
    ).start()


@pytest.fixture
def standin(clock, receiver):
    standin = start_standin(clock, receiver)
    yield standin
    standin.stop()


def authorize(standin: StandIn, **params) -> requests.Response:
    query = {
        "client_id": ids.CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "read write",
        "state": "st_9b1f",
        **params,
    }
    query = {key: value for key, value in query.items() if value is not None}
    return requests.get(
        standin.url + "/auth/o/authorize-app/", params=query, allow_redirects=False
    )


def callback_params(response: requests.Response) -> dict[str, str]:
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return {key: values[0] for key, values in query.items()}


def consent_code(standin: StandIn, **params) -> str:
    return callback_params(authorize(standin, **params))["code"]


def token_request(standin: StandIn, form: dict, *, basic: bool = True, **options):
    if basic:
        options.setdefault("auth", (ids.CLIENT_ID, ids.CLIENT_SECRET))
    else:
        form = {**form, "client_id": ids.CLIENT_ID, "client_secret": ids.CLIENT_SECRET}
    return requests.post(standin.url + "/auth/o/token/", data=form, **options)


def exchange(standin: StandIn, code: str, **options) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code}
    form["redirect_uri"] = options.pop("redirect_uri", REDIRECT_URI)
    return token_request(standin, form, **options)


def bot_token_request(standin: StandIn, **form) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "app_installation_id": ids.INSTALLATION_ID,
        **form,
    }
    return token_request(standin, form)


def list_comments(standin: StandIn, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(standin.url + COMMENTS_PATH, headers=headers)


# Consent


def test_consent_redirects_to_registered_uri(standin):
    location = authorize(standin).headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")


def test_consent_echoes_state_and_installation(standin):
    params = callback_params(authorize(standin, state="st_9b1f"))
    assert params["state"] == "st_9b1f"
    assert params["app_installation_id"] == ids.INSTALLATION_ID


def test_consent_code_is_30_alphanumeric(standin):
    code = consent_code(standin)
    assert len(code) == 30
    assert set(code) <= set(string.ascii_letters + string.digits)


def test_consent_without_state_omits_state(standin):
    params = callback_params(authorize(standin, state=None))
    assert "state" not in params


def test_consent_is_recorded(standin):
    authorize(standin, state="st_1")
    consent = standin.consents()[0]
    assert consent["state"] == "st_1"
    assert consent["scope"] == "read write"


def test_unregistered_redirect_uri_is_not_redirected(standin):
    response = authorize(standin, redirect_uri="https://evil.example/callback")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_unknown_client_id_is_rejected(standin):
    response = authorize(standin, client_id="not-our-app")
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_scope_outside_app_scopes_redirects_with_invalid_scope(standin):
    params = callback_params(authorize(standin, scope="read admin"))
    assert params["error"] == "invalid_scope"
    assert params["state"] == "st_9b1f"


def test_response_type_token_is_unsupported(standin):
    params = callback_params(authorize(standin, response_type="token"))
    assert params["error"] == "unsupported_response_type"


def test_consent_installs_app(clock, receiver):
    standin = start_standin(clock, receiver, preinstalled=False)
    try:
        params = callback_params(authorize(standin))
        assert standin.installation(params["app_installation_id"])["status"] == (
            "installed"
        )
    finally:
        standin.stop()


# authorization_code


def test_code_exchange_with_basic_auth_returns_tokens(standin):
    body = exchange(standin, consent_code(standin)).json()
    assert list(body) == [
        "access_token",
        "expires_in",
        "token_type",
        "scope",
        "refresh_token",
    ]
    assert body["expires_in"] == 36000
    assert body["token_type"] == "Bearer"


def test_code_exchange_with_body_credentials(standin):
    response = exchange(standin, consent_code(standin), basic=False)
    assert response.status_code == 200


def test_user_token_authorizes_api_calls(standin):
    token = exchange(standin, consent_code(standin)).json()["access_token"]
    assert list_comments(standin, token).status_code == 200


def test_json_body_is_unsupported_grant_type(standin):
    body = {
        "grant_type": "authorization_code",
        "code": consent_code(standin),
        "redirect_uri": REDIRECT_URI,
        "client_id": ids.CLIENT_ID,
        "client_secret": ids.CLIENT_SECRET,
    }
    response = requests.post(standin.url + "/auth/o/token/", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_unknown_grant_type_is_unsupported(standin):
    response = token_request(standin, {"grant_type": "password"})
    assert response.json() == {"error": "unsupported_grant_type"}


def test_wrong_client_secret_gets_401(standin):
    response = exchange(standin, consent_code(standin), auth=(ids.CLIENT_ID, "wrong"))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_client"'


def test_missing_client_credentials_get_401(standin):
    form = {"grant_type": "client_credentials"}
    response = requests.post(standin.url + "/auth/o/token/", data=form)
    assert response.status_code == 401


def test_missing_code_is_invalid_request(standin):
    response = token_request(standin, {"grant_type": "authorization_code"})
    assert response.json()["error"] == "invalid_request"


def test_reused_code_is_rejected(standin):
    code = consent_code(standin)
    exchange(standin, code)
    second = exchange(standin, code)
    assert second.status_code == 400
    assert second.json() == {"error": "invalid_grant"}


def test_reused_code_revokes_first_tokens(standin):
    code = consent_code(standin)
    first = exchange(standin, code).json()
    exchange(standin, code)
    assert list_comments(standin, first["access_token"]).json() == NOT_AUTHENTICATED
    refreshed = token_request(
        standin,
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert refreshed.json() == {"error": "invalid_grant"}


def test_code_works_until_its_lifetime_ends(standin, clock):
    code = consent_code(standin)
    clock.advance(59.9)
    assert exchange(standin, code).status_code == 200


def test_expired_code_is_rejected(standin, clock):
    code = consent_code(standin)
    clock.advance(60)
    assert exchange(standin, code).json() == {"error": "invalid_grant"}


def test_mismatching_redirect_uri_is_invalid_request(clock, receiver):
    other = "http://127.0.0.1:5000/other"
    standin = start_standin(clock, receiver, redirect_uris=[REDIRECT_URI, other])
    try:
        response = exchange(standin, consent_code(standin), redirect_uri=other)
        assert response.json()["error"] == "invalid_request"
    finally:
        standin.stop()


def pkce_pair() -> tuple[str, str]:
    verifier = "v" * 43
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_pkce_verifier_is_accepted(standin):
    verifier, challenge = pkce_pair()
    code = consent_code(standin, code_challenge=challenge, code_challenge_method="S256")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    assert token_request(standin, form).status_code == 200


def test_wrong_pkce_verifier_is_invalid_grant(standin):
    _, challenge = pkce_pair()
    code = consent_code(standin, code_challenge=challenge, code_challenge_method="S256")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "w" * 43,
    }
    assert token_request(standin, form).json() == {"error": "invalid_grant"}


def test_missing_pkce_verifier_is_invalid_request(standin):
    _, challenge = pkce_pair()
    code = consent_code(standin, code_challenge=challenge, code_challenge_method="S256")
    assert exchange(standin, code).json()["error"] == "invalid_request"


def test_token_query_string_is_rejected(standin):
    response = token_request(
        standin, {"grant_type": "client_credentials"}, params={"x": "1"}
    )
    assert response.json()["error"] == "invalid_request"


# refresh_token


def refresh(standin: StandIn, refresh_token: str, **options) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(standin, form, **options)


def test_refresh_returns_new_pair(standin):
    first = exchange(standin, consent_code(standin)).json()
    second = refresh(standin, first["refresh_token"], basic=False).json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]


def test_refresh_kills_old_access_token(standin):
    first = exchange(standin, consent_code(standin)).json()
    refresh(standin, first["refresh_token"])
    assert list_comments(standin, first["access_token"]).status_code == 403


def test_reused_refresh_token_is_rejected(standin):
    first = exchange(standin, consent_code(standin)).json()
    refresh(standin, first["refresh_token"])
    reused = refresh(standin, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant"}


def test_refresh_token_never_expires_by_time(standin, clock):
    first = exchange(standin, consent_code(standin)).json()
    clock.advance(90 * 24 * 3600)
    assert refresh(standin, first["refresh_token"]).status_code == 200


def test_access_token_expires_after_lifetime(standin, clock):
    token = exchange(standin, consent_code(standin)).json()["access_token"]
    clock.advance(36000)
    assert list_comments(standin, token).json() == NOT_AUTHENTICATED


def test_preset_tokens_are_issued_in_order(standin):
    standin.preset_tokens(
        "Gt4Hn8Kq2Wm6Rz1Xc5Vb9Nd3Lp7Sj0", "Pq3Wd7Zk1Tr5Yn9Bm2Xh6Cv0Lg4Fs8"
    )
    body = exchange(standin, standin.issue_code("plc_7Yk2Qm")).json()
    expected = json.loads(
        (FIXTURES / "oauth.token.authorization_code.json").read_text()
    )
    assert body == expected


# client_credentials


def test_bot_token_has_no_refresh_token(standin):
    body = bot_token_request(standin).json()
    assert list(body) == ["access_token", "expires_in", "token_type", "scope"]


def test_bot_token_is_new_on_every_call(standin):
    first = bot_token_request(standin).json()["access_token"]
    second = bot_token_request(standin).json()["access_token"]
    assert first != second
    assert list_comments(standin, first).status_code == 200


def test_bot_token_for_unknown_installation_is_500(standin):
    response = bot_token_request(standin, app_installation_id=ids.WORK_ITEM_ID)
    assert response.status_code == 500
    assert "json" not in response.headers["Content-Type"]


def test_bot_token_without_installation_is_500(standin):
    response = token_request(standin, {"grant_type": "client_credentials"})
    assert response.status_code == 500


def test_bot_token_after_uninstall_is_500(standin):
    standin.uninstall()
    assert bot_token_request(standin).status_code == 500


def test_granular_app_needs_explicit_scope(clock, receiver):
    standin = start_standin(
        clock,
        receiver,
        scopes="projects.work_items:read projects.work_items:write",
        granular_scopes_only=True,
    )
    try:
        assert bot_token_request(standin).json() == {"error": "invalid_scope"}
        explicit = bot_token_request(standin, scope="projects.work_items:read")
        assert explicit.json()["scope"] == "projects.work_items:read"
    finally:
        standin.stop()


def test_bot_scope_outside_app_scopes_is_invalid(standin):
    response = bot_token_request(standin, scope="read admin")
    assert response.json() == {"error": "invalid_scope"}


# Rate limit


def test_token_responses_carry_rate_limit_headers(standin):
    headers = bot_token_request(standin).headers
    assert headers["X-RateLimit-Limit"] == "300"
    assert headers["X-RateLimit-Remaining"] == "299"
    assert int(headers["X-RateLimit-Reset"]) == 1_780_000_060


def test_token_rate_limit_returns_429(clock, receiver):
    standin = start_standin(clock, receiver, token_rate_limit=2)
    try:
        bot_token_request(standin)
        bot_token_request(standin)
        limited = bot_token_request(standin)
        assert limited.status_code == 429
        assert limited.json() == json.loads(
            (FIXTURES / "oauth.token.error.rate_limited.json").read_text()
        )
        assert limited.headers["X-RateLimit-Remaining"] == "0"
    finally:
        standin.stop()


def test_token_rate_limit_window_slides(clock, receiver):
    standin = start_standin(clock, receiver, token_rate_limit=1)
    try:
        bot_token_request(standin)
        clock.advance(60)
        assert bot_token_request(standin).status_code == 200
    finally:
        standin.stop()


def test_body_client_id_has_own_limit(clock, receiver):
    standin = start_standin(clock, receiver, token_rate_limit=1)
    try:
        bot_token_request(standin)
        form = {
            "grant_type": "client_credentials",
            "app_installation_id": ids.INSTALLATION_ID,
        }
        assert token_request(standin, form, basic=False).status_code == 200
    finally:
        standin.stop()


# Installation lookup


def test_installation_lookup_has_fixture_shape(standin):
    token = bot_token_request(standin).json()["access_token"]
    response = requests.get(
        standin.url + "/auth/o/app-installation/",
        headers={"Authorization": f"Bearer {token}"},
    )
    expected = json.loads((FIXTURES / "oauth.app-installation.json").read_text())
    body = response.json()
    assert isinstance(body, list)
    assert list(body[0]) == list(expected[0])
    assert list(body[0]["workspace_detail"]) == list(expected[0]["workspace_detail"])
    assert body[0]["app_bot"] == ids.BOT_USER_ID


def test_installation_lookup_filters_by_id(standin):
    token = bot_token_request(standin).json()["access_token"]
    response = requests.get(
        standin.url + "/auth/o/app-installation/",
        params={"id": ids.WORK_ITEM_ID},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json() == []


def test_installation_lookup_with_bad_token_is_403(standin):
    response = requests.get(
        standin.url + "/auth/o/app-installation/",
        headers={"Authorization": "Bearer nope"},
    )
    assert response.status_code == 403
    assert response.json() == NOT_AUTHENTICATED
