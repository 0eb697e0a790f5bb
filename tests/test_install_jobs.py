"""Install and uninstall-check jobs, run in-process against the stand-in."""

import json

import pytest

from plane_standin import defaults
from shared import queues
from shared.errors import PlaneUnavailableError
from shared.installations import STATUS_INSTALLED, STATUS_UNINSTALLED
from shared.plane_oauth import token_retrying
from shared.redis_client import key
from shared.settings import load_settings
from tests.conftest import (
    STANDIN_CLIENT_SECRET,
    make_environ,
    make_installation,
)
from tests.jobs import perform_next_job
from workers import runtime

SERVER_ERROR = {"status": 500, "body": "<h1>Server Error (500)</h1>"}


@pytest.fixture
def context(redis_url, redis_conn, standin):
    settings = load_settings(
        make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
            PLANE_REDIRECT_URI=defaults.REDIRECT_URI,
            UNINSTALL_RECHECK_SECONDS="1",
        )
    )
    context = runtime.init(settings, connection=redis_conn)
    context.oauth.retrying = token_retrying(sleep=lambda seconds: None)
    context.store.save(make_installation())
    return context


def enqueue(context, func, *args):
    return queues.enqueue(
        queues.get_queue(queues.INSTALL_QUEUE, context.redis),
        func,
        args=args,
        description="test job",
        job_timeout=30,
    )


def install_result(context, job_id) -> dict:
    return json.loads(context.redis.get(key("install-result", job_id)))


# Uninstall checks


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 503, "body": "busy"},
        {"status": 429, "json": {"error_code": 5900, "error_message": "Too many"}},
        {"status": 401, "json": {"error": "invalid_client"}},
    ],
)
def test_inconclusive_failure_changes_nothing(context, standin, failure):
    standin.script("token:client_credentials", [failure] * 10)
    enqueue(context, queues.UNINSTALL_CHECK_JOB, defaults.INSTALLATION_ID)

    with pytest.raises(Exception):  # noqa: B017 - any error: RQ retries the check
        perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    assert context.store.get(defaults.INSTALLATION_ID).status == STATUS_INSTALLED


def test_one_refusal_schedules_a_recheck(context, standin):
    standin.script("token:client_credentials", [SERVER_ERROR] * 5)
    enqueue(context, queues.UNINSTALL_CHECK_JOB, defaults.INSTALLATION_ID)

    perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    scheduled = queues.get_queue(
        queues.INSTALL_QUEUE, context.redis
    ).scheduled_job_registry
    assert context.store.get(defaults.INSTALLATION_ID).status == STATUS_INSTALLED
    assert scheduled.count == 1


def test_second_refusal_marks_uninstalled(context, standin):
    standin.script("token:client_credentials", [SERVER_ERROR] * 5)
    queues.enqueue(
        queues.get_queue(queues.INSTALL_QUEUE, context.redis),
        queues.UNINSTALL_CHECK_JOB,
        args=(defaults.INSTALLATION_ID,),
        kwargs={"refusals": 1},
        description="second check",
        job_timeout=30,
    )

    perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    assert context.store.get(defaults.INSTALLATION_ID).status == STATUS_UNINSTALLED


def test_new_token_disproves_the_notice(context, standin):
    enqueue(context, queues.UNINSTALL_CHECK_JOB, defaults.INSTALLATION_ID)

    perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    assert context.store.get(defaults.INSTALLATION_ID).status == STATUS_INSTALLED


def test_unreachable_plane_proves_nothing(context, standin):
    standin.script("token:client_credentials", ["connection_reset"] * 10)
    enqueue(context, queues.UNINSTALL_CHECK_JOB, defaults.INSTALLATION_ID)

    with pytest.raises(PlaneUnavailableError):
        perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    assert context.store.get(defaults.INSTALLATION_ID).status == STATUS_INSTALLED


# Install jobs


def test_swapped_installation_id_fails_install(context, standin):
    code = standin.issue_code(redirect_uri=defaults.REDIRECT_URI)
    other_installation = "00000000-0000-4000-8000-0000000000aa"
    job = enqueue(context, queues.INSTALL_JOB, other_installation, code)

    with pytest.raises(Exception):  # noqa: B017 - the job fails, which is the point
        perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    assert install_result(context, job.id)["status"] == "failed"
    assert context.store.get(other_installation) is None
    assert standin.token_requests("client_credentials") == []


def test_malformed_token_response_fails_visibly(context, standin):
    code = standin.issue_code(redirect_uri=defaults.REDIRECT_URI)
    standin.script("token:authorization_code", [{"status": 200, "json": {}}])
    job = enqueue(context, queues.INSTALL_JOB, defaults.INSTALLATION_ID, code)

    with pytest.raises(Exception):  # noqa: B017 - the job fails, which is the point
        perform_next_job(context.redis, [queues.INSTALL_QUEUE])

    result = install_result(context, job.id)
    assert result["status"] == "failed"
    assert "no access_token" in result["message"]
