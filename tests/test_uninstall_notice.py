"""Plane's unsigned uninstall notice: checked through a job, never trusted."""

import json

import pytest

from plane_standin import defaults
from shared import queues
from shared.installations import (
    InstallationStore,
    TokenCipher,
)
from tests.conftest import TEST_ENCRYPTION_KEY, make_installation

NOTICE = {
    "workspace_id": defaults.WORKSPACE_ID,
    "application_id": defaults.APPLICATION_ID,
    "app_installation_id": defaults.INSTALLATION_ID,
    "status": "uninstalled",
}


@pytest.fixture
def client(settings, make_app):
    return make_app(settings).test_client()


@pytest.fixture
def installed(redis_conn):
    store = InstallationStore(redis_conn, TokenCipher((TEST_ENCRYPTION_KEY,)))
    store.save(make_installation())


def post_unsigned(client, payload):
    return client.post(
        "/webhooks/plane", data=json.dumps(payload), content_type="application/json"
    )


def confirmation_jobs(redis_conn):
    queue = queues.get_queue(queues.INSTALL_QUEUE, redis_conn)
    return [queue.fetch_job(job_id) for job_id in queue.job_ids]


def test_notice_for_known_installation_queues_one_check(client, redis_conn, installed):
    response = post_unsigned(client, NOTICE)

    jobs = confirmation_jobs(redis_conn)
    assert response.status_code == 202
    assert len(jobs) == 1
    assert jobs[0].func_name == queues.UNINSTALL_CHECK_JOB
    assert jobs[0].args == [defaults.INSTALLATION_ID]


def test_repeated_notices_add_one_follow_up_check(client, redis_conn, installed):
    responses = [post_unsigned(client, NOTICE) for _ in range(5)]

    scheduled = queues.get_queue(
        queues.INSTALL_QUEUE, redis_conn
    ).scheduled_job_registry
    assert [r.status_code for r in responses] == [202] * 5
    assert len(confirmation_jobs(redis_conn)) == 1
    assert scheduled.count == 1


def test_notice_for_unknown_installation_queues_nothing(client, redis_conn):
    response = post_unsigned(client, NOTICE)

    assert response.status_code == 202
    assert confirmation_jobs(redis_conn) == []


def test_notice_for_other_application_queues_nothing(client, redis_conn, installed):
    response = post_unsigned(
        client, {**NOTICE, "application_id": "00000000-0000-4000-8000-000000000000"}
    )

    assert response.status_code == 202
    assert confirmation_jobs(redis_conn) == []


@pytest.mark.parametrize(
    "payload",
    [
        {**NOTICE, "status": "installed"},
        {**NOTICE, "extra": "key"},
        {k: v for k, v in NOTICE.items() if k != "status"},
        {**NOTICE, "app_installation_id": "not-a-uuid"},
        {"event": "issue", "action": "created", "workspace_id": defaults.WORKSPACE_ID},
    ],
)
def test_other_unsigned_bodies_are_rejected(client, redis_conn, installed, payload):
    response = post_unsigned(client, payload)

    assert response.status_code == 401
    assert confirmation_jobs(redis_conn) == []
    assert redis_conn.llen("rq:queue:deliveries") == 0
