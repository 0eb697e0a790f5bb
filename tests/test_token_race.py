"""Many worker processes, one installation: one renewal reaches Plane.

Jobs run in the worker pool the Procfile starts, against the Plane stand-in,
which rotates refresh tokens and revokes the old pair at once, as Plane does.
"""

import signal
import time

import pytest
import redis
from rq.job import Job, JobStatus

from plane_standin import defaults
from scripts.procfile import read_procfile
from shared import queues
from shared.installations import (
    STATUS_NEEDS_REAUTHORIZATION,
    InstallationStore,
    TokenCipher,
)
from tests.conftest import (
    STANDIN_CLIENT_SECRET,
    TEST_ENCRYPTION_KEY,
    make_environ,
    make_installation,
)
from tests.processes import AppProcess, wait_for

JOBS = 50
INSTALLATION_ID = defaults.INSTALLATION_ID


@pytest.fixture
def store(redis_url):
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    store = InstallationStore(connection, TokenCipher((TEST_ENCRYPTION_KEY,)))
    store.save(make_installation())
    return store


def start_worker_pool(redis_url, standin) -> AppProcess:
    env = make_environ(
        redis_url,
        PLANE_BASE_URL=standin.url,
        PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
        WORKER_CONCURRENCY="4",
    )
    pool = AppProcess("worker", read_procfile()["worker"], env).start()
    wait_for(
        lambda: pool.output().count("Listening on") >= 5,
        timeout=20,
        message="five RQ workers to listen",
    )
    return pool


def enqueue_jobs(connection, func: str, count: int) -> list[str]:
    queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
    with connection.pipeline() as pipe:
        jobs = [
            queues.enqueue(
                queue,
                func,
                args=(INSTALLATION_ID,),
                description="token race",
                job_timeout=60,
                pipeline=pipe,
            )
            for _ in range(count)
        ]
        pipe.execute()
    return [job.id for job in jobs]


def finished_statuses(connection, job_ids: list[str]) -> list[JobStatus]:
    jobs = Job.fetch_many(job_ids, connection=connection, serializer=queues.SERIALIZER)
    return [job.get_status() for job in jobs]


def wait_until_done(connection, job_ids, timeout=60) -> list[JobStatus]:
    def all_done():
        statuses = finished_statuses(connection, job_ids)
        done = all(s in (JobStatus.FINISHED, JobStatus.FAILED) for s in statuses)
        return statuses if done else None

    return wait_for(all_done, timeout=timeout, interval=0.1, message="jobs to finish")


def store_expired_user_tokens(standin, store) -> tuple[str, str]:
    """Store a live user token pair that the store says expired a second ago."""
    access, refresh = standin.issue_user_token()
    store.replace_user_tokens(
        INSTALLATION_ID,
        access_token=access,
        refresh_token=refresh,
        expires_at=time.time() - 1,
    )
    return access, refresh


def test_expired_user_token_refreshed_once(redis_url, standin, store):
    access, refresh = store_expired_user_tokens(standin, store)
    standin.script("token:refresh_token", [{"delay": 0.15}])
    pool = start_worker_pool(redis_url, standin)
    try:
        job_ids = enqueue_jobs(store.redis, "tests.token_jobs.call_plane_as_user", JOBS)
        statuses = wait_until_done(store.redis, job_ids)
    finally:
        pool.stop()

    assert statuses == [JobStatus.FINISHED] * JOBS
    assert len(standin.token_requests("refresh_token")) == 1
    assert store.load_user_tokens(INSTALLATION_ID).refresh_token != refresh
    assert refresh not in pool.output()
    assert access not in pool.output()


def test_expired_bot_token_minted_once(redis_url, standin, store):
    store.save_bot_token(INSTALLATION_ID, standin.issue_bot_token(), time.time() - 1)
    standin.script("token:client_credentials", [{"delay": 0.15}])
    pool = start_worker_pool(redis_url, standin)
    try:
        job_ids = enqueue_jobs(store.redis, "tests.token_jobs.call_plane_as_bot", JOBS)
        statuses = wait_until_done(store.redis, job_ids)
    finally:
        pool.stop()

    minted = [
        r.response_json["access_token"]
        for r in standin.token_requests("client_credentials")
    ]
    assert statuses == [JobStatus.FINISHED] * JOBS
    assert len(minted) == 1
    assert minted[0] not in pool.output()


def test_worker_killed_mid_refresh_marks_reauthorization(redis_url, standin, store):
    access, refresh = store_expired_user_tokens(standin, store)
    # Plane rotates at once, but its response is held until after the kill.
    standin.script("token:refresh_token", [{"delay": 30}])
    pool = start_worker_pool(redis_url, standin)
    enqueue_jobs(store.redis, "tests.token_jobs.call_plane_as_user", 5)
    wait_for(
        lambda: "Listening on" in pool.output() and _refresh_started(standin),
        timeout=20,
        message="the first refresh to reach the stand-in",
    )
    pool.signal_group(signal.SIGKILL)
    pool.stop()

    replacement = start_worker_pool(redis_url, standin)
    try:
        job_ids = enqueue_jobs(store.redis, "tests.token_jobs.call_plane_as_user", 5)
        statuses = wait_until_done(store.redis, job_ids, timeout=60)
        time.sleep(1)  # a retry loop, if any, would show more refreshes by now
    finally:
        replacement.stop()

    assert statuses == [JobStatus.FAILED] * 5
    assert store.get(INSTALLATION_ID).status == STATUS_NEEDS_REAUTHORIZATION
    assert len(standin.token_requests("refresh_token")) <= 2
    assert "reinstall the app" in replacement.output()


def _refresh_started(standin) -> bool:
    """Tell whether the stand-in has rotated (revoked) a refresh token yet."""
    with standin.world.lock:
        return any(token.revoked for token in standin.world.tokens.refresh.values())
