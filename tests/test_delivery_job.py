"""The delivery job, run in-process against a real Redis and the Plane stand-in."""

import json
import time
from pathlib import Path

import pytest

from plane_standin import defaults
from shared import queues
from shared.errors import InstallationNotFoundError
from shared.events import EventParseError
from shared.installations import STATUS_INSTALLED, STATUS_UNINSTALLED
from shared.registry import HandlerRegistry
from shared.settings import load_settings
from tests.conftest import (
    STANDIN_CLIENT_SECRET,
    make_environ,
    make_installation,
)
from workers import runtime
from workers.delivery import HandlerFailedError
from workers.delivery_state import DeliveryState
from workers.entity_locks import EntityLocks

FIXTURES = Path(__file__).parent / "fixtures" / "plane"


@pytest.fixture
def context(redis_url, redis_conn, standin):
    settings = load_settings(
        make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
        )
    )
    context = runtime.init(settings, connection=redis_conn)
    context.registry = HandlerRegistry()
    context.store.save(make_installation(STATUS_INSTALLED))
    context.store.save_bot_token(
        defaults.INSTALLATION_ID, standin.issue_bot_token(), time.time() + 3600
    )
    return context


def enqueue_fixture(redis_conn, name: str, **changes):
    payload = json.loads((FIXTURES / f"{name}.json").read_text())
    payload.update(changes)
    body = json.dumps(payload).encode()
    return queues.enqueue(
        queues.get_queue(queues.DELIVERY_QUEUE, redis_conn),
        queues.DELIVERY_JOB,
        args=(
            queues.encode_body(body),
            "5c0d1e2f-0000-4000-8000-000000009901",
            time.time(),
        ),
        description="test delivery",
        job_timeout=30,
    )


def test_handlers_get_event_and_bot_client(context, redis_conn):
    seen = []

    @context.registry.on("issue", "created")
    def record(event, plane):
        seen.append(
            (event.event, event.action, event.workspace_slug, event.data["id"], plane)
        )

    enqueue_fixture(redis_conn, "issue.created").perform()

    assert len(seen) == 1
    assert seen[0][:4] == ("issue", "created", "acme", defaults.WORK_ITEM_ID)
    assert seen[0][4] is context.bot_client(defaults.INSTALLATION_ID)


def test_failed_handler_does_not_stop_others(context, redis_conn):
    calls = []

    @context.registry.on("issue", "created")
    def broken(event, plane):
        calls.append("broken")
        raise RuntimeError("boom")

    @context.registry.on("issue")
    def working(event, plane):
        calls.append("working")

    job = enqueue_fixture(redis_conn, "issue.created")

    with pytest.raises(HandlerFailedError, match="broken"):
        job.perform()
    assert calls == ["broken", "working"]


def test_retry_runs_only_failed_handlers(context, redis_conn):
    calls = []
    attempts = {"broken": 0}

    @context.registry.on("issue", "created")
    def flaky(event, plane):
        calls.append("flaky")
        attempts["broken"] += 1
        if attempts["broken"] == 1:
            raise RuntimeError("first attempt fails")

    @context.registry.on_any
    def steady(event, plane):
        calls.append("steady")

    job = enqueue_fixture(redis_conn, "issue.created")
    with pytest.raises(HandlerFailedError):
        job.perform()
    job.perform()

    assert calls == ["flaky", "steady", "flaky"]


def test_bot_caused_event_skipped_unless_asked(context, redis_conn):
    calls = []

    @context.registry.on("issue", "created")
    def ordinary(event, plane):
        calls.append("ordinary")

    @context.registry.on("issue", "created", include_bot_events=True)
    def wants_bot_events(event, plane):
        calls.append("wants_bot_events")

    payload = json.loads((FIXTURES / "issue.created.json").read_text())
    payload["activity"]["actor"]["id"] = defaults.BOT_USER_ID
    enqueue_fixture(redis_conn, "issue.created", activity=payload["activity"]).perform()

    assert calls == ["wants_bot_events"]


def test_unknown_workspace_raises_retryable(context, redis_conn):
    job = enqueue_fixture(
        redis_conn, "issue.created", workspace_id="00000000-0000-4000-8000-000000000000"
    )

    with pytest.raises(InstallationNotFoundError) as raised:
        job.perform()

    assert raised.value.retryable is True


def test_uninstalled_workspace_is_dropped(context, redis_conn):
    calls = []
    context.store.save(make_installation(STATUS_UNINSTALLED))

    @context.registry.on_any
    def anything(event, plane):
        calls.append(event)

    enqueue_fixture(redis_conn, "issue.created").perform()

    assert calls == []


def test_envelope_without_uuid_workspace_is_not_retried(context, redis_conn):
    job = enqueue_fixture(redis_conn, "issue.created", workspace_id="acme")

    with pytest.raises(EventParseError) as raised:
        job.perform()

    assert raised.value.retryable is False


@pytest.mark.parametrize(
    ("error", "retries_left"),
    [
        (EventParseError("not a Plane webhook envelope"), 0),
        (InstallationNotFoundError("not installed yet"), 2),
    ],
)
def test_worker_retries_only_passing_errors(context, redis_conn, error, retries_left):
    from workers.pool import PlaneWorker

    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    job = queues.enqueue(
        queue,
        queues.DELIVERY_JOB,
        args=("e30=", "delivery", 0.0),
        description="failing delivery",
        job_timeout=30,
        retry_intervals=[1, 2],
    )
    worker = PlaneWorker([queue], connection=redis_conn)

    worker.handle_exception(job, type(error), error, None)

    assert job.retries_left == retries_left


def test_same_work_item_deliveries_never_overlap(context, redis_conn):
    import threading

    spans: list[tuple[float, float]] = []

    @context.registry.on("issue", "updated")
    def slow(event, plane):
        started = time.monotonic()
        time.sleep(0.3)
        spans.append((started, time.monotonic()))

    payload = json.loads((FIXTURES / "issue.updated.json").read_text())
    jobs = [
        enqueue_fixture(
            redis_conn,
            "issue.updated",
            activity={**payload["activity"], "new_value": value},
        )
        for value in ("high", "urgent")
    ]
    threads = [threading.Thread(target=job.perform) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    spans.sort()
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0]


def test_entity_lock_renewed_during_long_handler(context, redis_conn):
    locks = EntityLocks(redis_conn, lease_seconds=1, renew_seconds=0.2)
    context.deliveries = DeliveryState(redis_conn, locks)
    ttls = []

    @context.registry.on("issue", "updated")
    def slow(event, plane):
        time.sleep(1.5)
        ttls.extend(
            redis_conn.pttl(name)
            for name in redis_conn.scan_iter("planeapp:lock:entity:*")
        )

    enqueue_fixture(redis_conn, "issue.updated").perform()

    assert len(ttls) == 1
    assert ttls[0] > 0


def test_spent_api_budget_defers_delivery(context, redis_conn):
    from shared.rate_limits import RateBudget

    context.api_budget = RateBudget(redis_conn, kind="api", per_minute=1)
    context._clients.clear()

    @context.registry.on("issue", "created")
    def two_calls(event, plane):
        for _ in range(2):
            plane.work_items.comments.list(
                defaults.WORKSPACE_SLUG, defaults.PROJECT_ID, defaults.WORK_ITEM_ID
            )

    enqueue_fixture(redis_conn, "issue.created").perform()

    scheduled = queues.get_queue(
        queues.DELIVERY_QUEUE, redis_conn
    ).scheduled_job_registry
    assert scheduled.count == 1
