"""The install flow through the Flask app, a real Redis and the Plane stand-in.

Covers the repeated-callback and state-binding regression cases: one token
request however often the callback is hit, and a state that works only once,
only in time and only in the browser that started the install.
"""

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ingress import oauth
from plane_standin import defaults
from shared.redis_client import key
from shared.settings import load_settings
from tests.conftest import STANDIN_CLIENT_SECRET, make_environ
from tests.jobs import JobThread
from workers import runtime

REDIRECT_URI = "http://127.0.0.1:8000/oauth/callback"
AT1 = "Gt4Hn8Kq2Wm6Rz1Xc5Vb9Nd3Lp7Sj0"
RT1 = "Pq3Wd7Zk1Tr5Yn9Bm2Xh6Cv0Lg4Fs8"


@pytest.fixture
def app_settings(redis_url, redis_conn, standin):
    return load_settings(
        make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
            PLANE_REDIRECT_URI=REDIRECT_URI,
        )
    )


@pytest.fixture
def browser(app_settings, make_app, redis_conn):
    runtime.init(app_settings, connection=redis_conn)
    return make_app(app_settings).test_client()


@pytest.fixture
def fast_callback(monkeypatch):
    monkeypatch.setattr(oauth, "CALLBACK_WAIT_SECONDS", 0.2)


def consent(browser) -> dict[str, str]:
    """Start an install and let the stand-in approve it; return the callback query."""
    start = browser.get("/oauth/install")
    assert start.status_code == 302
    approval = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert approval.status_code == 302
    query = parse_qs(urlsplit(approval.headers["Location"]).query)
    return {name: values[0] for name, values in query.items()}


def callback(client, **params):
    return client.get("/oauth/callback", query_string=params)


def install_jobs_enqueued(caplog) -> int:
    return sum(r.getMessage() == "install enqueued" for r in caplog.records)


# One exchange however often the callback is hit


def test_repeated_callback_exchanges_code_once(browser, standin, redis_conn, caplog):
    caplog.set_level(logging.INFO)
    standin.preset_tokens(AT1, RT1)
    params = consent(browser)
    worker = JobThread(redis_conn, ["install"], count=1)
    worker.start()

    pages = [callback(browser, **params) for _ in range(3)]
    worker.join(timeout=10)

    assert worker.errors == []
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert all("App installed" in page.get_data(as_text=True) for page in pages)
    code_requests = [
        r
        for r in standin.token_requests("authorization_code")
        if r.form["code"] == params["code"]
    ]
    assert len(code_requests) == 1
    assert install_jobs_enqueued(caplog) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "ingress.oauth"]
    assert messages.count("duplicate callback ignored") == 2
    assert messages.index("install enqueued") < messages.index(
        "duplicate callback ignored"
    )


def test_installation_stored_once_with_encrypted_tokens(browser, standin, redis_conn):
    standin.preset_tokens(AT1, RT1)
    params = consent(browser)
    worker = JobThread(redis_conn, ["install"], count=1)
    worker.start()
    callback(browser, **params)
    callback(browser, **params)
    worker.join(timeout=10)

    installations = list(redis_conn.scan_iter(key("installation", "*")))
    dump = b"".join(
        value
        for name in redis_conn.scan_iter("*")
        if redis_conn.type(name) == b"hash"
        for value in redis_conn.hgetall(name).values()
    ) + b"".join(
        redis_conn.get(name) or b""
        for name in redis_conn.scan_iter("*")
        if redis_conn.type(name) == b"string"
    )
    assert installations == [key("installation", defaults.INSTALLATION_ID).encode()]
    assert AT1.encode() not in dump
    assert RT1.encode() not in dump
    assert params["code"].encode() not in dump.replace(b"install", b"")


def test_same_state_with_another_code_is_a_replay(
    browser, standin, redis_conn, fast_callback
):
    params = consent(browser)
    first = callback(browser, **params)

    replay = callback(browser, **{**params, "code": "plc_Ab04Xy"})

    assert first.status_code in (200, 202)
    assert replay.status_code == 400
    assert "state already used" in replay.get_data(as_text=True)


# State checks


@pytest.mark.parametrize(
    ("state", "reason"),
    [(None, "missing state"), ("st_forged", "unknown state")],
)
def test_missing_or_forged_state_is_rejected(
    browser, standin, redis_conn, state, reason
):
    params = consent(browser)
    params.pop("state")
    if state:
        params["state"] = state

    page = callback(browser, **params)

    assert page.status_code == 400
    assert reason in page.get_data(as_text=True)
    assert_nothing_started(standin, redis_conn)


def test_expired_state_is_rejected(browser, standin, redis_conn, monkeypatch):
    params = consent(browser)
    issued_at = oauth.time.time()
    monkeypatch.setattr(oauth.time, "time", lambda: issued_at + 11 * 60)

    page = callback(browser, **params)

    assert page.status_code == 400
    assert "expired state" in page.get_data(as_text=True)
    assert_nothing_started(standin, redis_conn)


def test_state_from_another_browser_is_rejected(
    browser, app_settings, make_app, standin, redis_conn
):
    params = consent(browser)
    stranger = make_app(app_settings).test_client()

    page = callback(stranger, **params)

    assert page.status_code == 400
    assert "not started in this browser" in page.get_data(as_text=True)
    assert_nothing_started(standin, redis_conn)


def test_state_works_on_another_web_process(
    browser, app_settings, make_app, standin, redis_conn
):
    params = consent(browser)
    other_process = make_app(app_settings).test_client()
    cookie = browser.get_cookie("plane_app_session")
    other_process.set_cookie(cookie.key, cookie.value)
    worker = JobThread(redis_conn, ["install"], count=1)
    worker.start()

    page = callback(other_process, **params)
    worker.join(timeout=10)

    assert page.status_code == 200
    assert "App installed" in page.get_data(as_text=True)
    assert len(standin.token_requests("authorization_code")) == 1


def assert_nothing_started(standin, redis_conn):
    assert standin.token_requests() == []
    assert redis_conn.llen("rq:queue:install") == 0
    assert list(redis_conn.scan_iter(key("installation", "*"))) == []


# Installs started from Plane's side


def test_install_without_state_needs_setting(browser, standin, redis_conn):
    params = consent(browser)
    params.pop("state")

    page = callback(browser, **params)

    assert page.status_code == 400
    assert "PLANE_ALLOW_INSTALL_WITHOUT_STATE" in page.get_data(as_text=True)


def test_install_without_state_allowed_by_setting(
    redis_url, redis_conn, standin, make_app, caplog
):
    caplog.set_level(logging.INFO)
    settings = load_settings(
        make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
            PLANE_REDIRECT_URI=REDIRECT_URI,
            PLANE_ALLOW_INSTALL_WITHOUT_STATE="true",
        )
    )
    runtime.init(settings, connection=redis_conn)
    client = make_app(settings).test_client()
    code = standin.issue_code(redirect_uri=REDIRECT_URI)
    worker = JobThread(redis_conn, ["install"], count=1)
    worker.start()

    page = callback(client, code=code, app_installation_id=defaults.INSTALLATION_ID)
    worker.join(timeout=10)

    assert page.status_code == 200
    assert any("arrived without state" in r.getMessage() for r in caplog.records)


# Hostile parameters


def test_reflected_parameters_are_escaped(browser, standin, redis_conn):
    page = callback(
        browser,
        code="<script>alert(1)</script>",
        state='"><img src=x onerror=alert(1)>',
        app_installation_id=defaults.INSTALLATION_ID,
    )
    text = page.get_data(as_text=True)

    assert page.status_code == 400
    assert "<script>" not in text
    assert "<img" not in text


def test_install_redirects_only_to_plane(browser, app_settings):
    start = browser.get("/oauth/install?next=https://evil.example.com")

    assert start.headers["Location"].startswith(
        app_settings.plane_base_url + "/auth/o/authorize-app/"
    )


def test_callback_query_never_logged(
    browser, standin, redis_conn, caplog, fast_callback
):
    params = consent(browser)  # the test's own request to the stand-in logs the URL
    caplog.clear()
    caplog.set_level(logging.DEBUG)

    callback(browser, **params)

    assert params["code"] not in caplog.text
    assert params["state"] not in caplog.text


def test_failed_install_page_says_start_again(browser, standin, redis_conn):
    params = consent(browser)
    standin.script(
        "token:authorization_code",
        [{"status": 400, "json": {"error": "invalid_grant"}}],
    )
    worker = JobThread(redis_conn, ["install"], count=1)
    worker.start()

    page = callback(browser, **params)
    worker.join(timeout=10)
    text = page.get_data(as_text=True)

    assert page.status_code == 502
    assert "expired (codes live 60 seconds) or was already used" in text
    assert "/oauth/install" in text


def test_pending_install_page_refreshes_status(
    browser, standin, redis_conn, fast_callback
):
    params = consent(browser)

    page = callback(browser, **params)
    text = page.get_data(as_text=True)

    assert page.status_code == 202
    assert 'http-equiv="refresh"' in text
    assert "/oauth/status/" in text


def test_declined_consent_names_the_error(browser, standin, redis_conn):
    page = callback(browser, error="access_denied", state="whatever")

    assert page.status_code == 400
    assert "access_denied" in page.get_data(as_text=True)
    assert_nothing_started(standin, redis_conn)
