"""rq-dashboard at /rq: off without a password, behind Basic auth with one."""

import base64

import pytest

from shared import queues
from shared.settings import load_settings
from tests.conftest import make_environ

PASSWORD = "dashboard-password-Kx7Lm2Qp"


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def client(redis_url, make_app):
    settings = load_settings(make_environ(redis_url, RQ_DASHBOARD_PASSWORD=PASSWORD))
    return make_app(settings).test_client()


def test_dashboard_off_without_password(settings, make_app):
    client = make_app(settings).test_client()

    assert client.get("/rq/").status_code == 404


def test_dashboard_asks_for_credentials(client):
    response = client.get("/rq/")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_dashboard_rejects_wrong_password(client):
    assert client.get("/rq/", headers=basic("admin", "wrong")).status_code == 401


def test_dashboard_rejects_wrong_username(client):
    assert client.get("/rq/", headers=basic("root", PASSWORD)).status_code == 401


def test_dashboard_shows_queues(client, redis_conn):
    queues.enqueue(
        queues.get_queue(queues.DELIVERY_QUEUE, redis_conn),
        queues.DELIVERY_JOB,
        args=("e30=", "delivery", 0.0),
        description="queued delivery",
        job_timeout=30,
    )

    response = client.get("/rq/0/data/queues.json", headers=basic("admin", PASSWORD))

    names = {queue["name"] for queue in response.get_json()["queues"]}
    assert response.status_code == 200
    assert names == {queues.DELIVERY_QUEUE}


def test_dashboard_rejects_cross_site_post(client):
    headers = {**basic("admin", PASSWORD), "Origin": "https://evil.example"}

    response = client.post("/rq/queue/deliveries/failed/empty", headers=headers)

    assert response.status_code == 403


def test_short_dashboard_password_is_a_settings_error(redis_url):
    from shared.errors import SettingsError

    with pytest.raises(SettingsError, match="RQ_DASHBOARD_PASSWORD"):
        load_settings(make_environ(redis_url, RQ_DASHBOARD_PASSWORD="short"))
