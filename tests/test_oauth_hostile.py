"""The OAuth pages with hostile parameters: no open redirect, no injected markup."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.redis_client import key

INSTALLATION_ID = "9a8b7c6d-0000-4000-8000-000000000001"
HOSTILE_VALUES = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "https://evil.example/steal",
    "//evil.example",
    "\r\nLocation: https://evil.example",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "x" * 20_000,
]
MARKUP_FRAGMENTS = ("<script", "onerror=", "evil.example", "javascript:")
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def client(settings, make_app):
    return make_app(settings).test_client()


def assert_no_reflection(response) -> None:
    page = response.get_data(as_text=True)
    for fragment in MARKUP_FRAGMENTS:
        assert fragment not in page, fragment


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("parameter", ["code", "state", "app_installation_id"])
def test_callback_rejects_without_reflecting(client, parameter, value):
    query = {"code": "c", "state": "s", "app_installation_id": INSTALLATION_ID}
    query[parameter] = value

    response = client.get("/oauth/callback", query_string=query)

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert_no_reflection(response)


@pytest.mark.parametrize("parameter", ["next", "redirect_uri", "return_to", "url"])
def test_callback_ignores_redirect_parameters(client, parameter):
    response = client.get(
        "/oauth/callback",
        query_string={parameter: "https://evil.example/", "code": "c", "state": "s"},
    )

    assert "Location" not in response.headers
    assert_no_reflection(response)


@pytest.mark.parametrize("parameter", ["next", "redirect_uri", "state", "client_id"])
def test_install_redirects_only_to_plane(client, settings, parameter):
    response = client.get(
        "/oauth/install", query_string={parameter: "https://evil.example/"}
    )

    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    assert response.headers["Location"].startswith(settings.plane_base_url + "/")
    assert query["redirect_uri"] == [settings.plane_redirect_uri]
    assert query["client_id"] == [settings.plane_client_id]
    assert query["state"] != ["https://evil.example/"]


@pytest.mark.parametrize("job_id", HOSTILE_VALUES[:4])
def test_status_page_rejects_unknown_job(client, job_id):
    response = client.get(f"/oauth/status/{job_id}")

    assert response.status_code == 404
    assert_no_reflection(response)


def test_workspace_name_from_plane_is_escaped(client, redis_conn):
    job_id = "job-with-hostile-workspace"
    redis_conn.set(key("install-owner", job_id), "")
    redis_conn.set(
        key("install-result", job_id),
        json.dumps(
            {
                "status": "succeeded",
                "workspace_slug": "acme",
                "workspace_name": "<script>alert(1)</script>",
            }
        ),
    )

    response = client.get(f"/oauth/status/{job_id}")

    assert response.status_code == 200
    assert "&lt;script&gt;" in response.get_data(as_text=True)
    assert_no_reflection(response)


@FUZZ
@given(
    code=st.text(max_size=200),
    state=st.text(max_size=200),
    installation_id=st.text(max_size=80),
)
def test_any_callback_query_gets_a_page(client, code, state, installation_id):
    response = client.get(
        "/oauth/callback",
        query_string={
            "code": code,
            "state": state,
            "app_installation_id": installation_id,
        },
    )

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "<script" not in response.get_data(as_text=True)
