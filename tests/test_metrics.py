"""GET /metrics renders figures that match a known burst of deliveries."""

import json
import subprocess
import sys
import threading
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from handlers.work_items import welcome_new_work_item
from ingress import create_app
from plane_standin import defaults
from shared import metrics, queues
from tests.delivery_flow import issue_created_body, post_delivery, worker_context
from tests.jobs import move_inbox, perform_next_job
from tests.processes import ROOT
from workers.delivery import HandlerFailedError

MAX_BODY_BYTES = 100_000
ACCEPTED = 5
PROCESSED = 3
WRONG_SIGNATURES = 3
INVALID_BODIES = 2
METRICS_TOKEN = "metrics-token-Wq2Er4Ty6Ui8"


@pytest.fixture
def context(redis_url, redis_conn, standin):
    return worker_context(
        redis_url, redis_conn, standin, WEBHOOK_MAX_BODY_BYTES=str(MAX_BODY_BYTES)
    )


@pytest.fixture
def client(context, redis_conn):
    return create_app(context.settings, connection=redis_conn).test_client()


def distinct_issue_created_body(standin, number: int) -> bytes:
    """Return an ``issue``/``created`` body for a new work item in the stand-in.

    Each body differs, so neither the ingress's dedupe nor the worker's
    coalescing of repeated changes skips any of them.
    """
    work_item = standin.world.add_work_item(
        f"Burst {number}", defaults.INSTALLER_USER_ID
    )
    data = {**json.loads(issue_created_body())["data"], "id": work_item["id"]}
    return issue_created_body(data=data)


@pytest.fixture
def burst(context, client, redis_conn, standin):
    """Send a known mix of requests and run some deliveries; return the samples."""

    @context.registry.on("issue", "created")
    def comment(event, plane):
        welcome_new_work_item(event, plane)

    @context.registry.on("issue")
    def broken(event, plane):
        raise RuntimeError("always fails")

    for number in range(ACCEPTED):
        body = distinct_issue_created_body(standin, number)
        post_delivery(client, body, f"5c0d1e2f-0000-4000-8000-00000000c{number:03d}")
    for _ in range(WRONG_SIGNATURES):
        post_delivery(client, issue_created_body(), "d1", secret="not-the-secret")
    for _ in range(INVALID_BODIES):
        post_delivery(client, b"[1, 2", "d2")
    post_delivery(client, b"x" * (MAX_BODY_BYTES + 1), "d3")
    for _ in range(PROCESSED):
        with pytest.raises(HandlerFailedError):
            perform_next_job(redis_conn, [queues.DELIVERY_QUEUE])

    return scrape(client)


def scrape(client, **headers) -> dict:
    """Return ``{(sample name, sorted label items): value}`` from /metrics."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_accepted_deliveries_counted(burst):
    key = ("planeapp_webhook_deliveries_accepted_total", (("event", "issue"),))

    assert burst[key] == ACCEPTED


def test_wrong_signatures_counted(burst):
    key = ("planeapp_webhook_deliveries_rejected_total", (("reason", "mismatch"),))

    assert burst[key] == WRONG_SIGNATURES


def test_invalid_bodies_counted(burst):
    key = ("planeapp_webhook_deliveries_rejected_total", (("reason", "invalid_body"),))

    assert burst[key] == INVALID_BODIES


def test_oversized_body_counted(burst):
    key = (
        "planeapp_webhook_deliveries_rejected_total",
        (("reason", "body_too_large"),),
    )

    assert burst[key] == 1


def handler_label(name: str) -> tuple[str, str]:
    return ("handler", f"tests.test_metrics.burst.<locals>.{name}")


def test_handler_successes_counted(burst):
    key = (
        "planeapp_handler_runs_total",
        (handler_label("comment"), ("outcome", "succeeded")),
    )

    assert burst[key] == PROCESSED


def test_handler_failures_counted(burst):
    key = (
        "planeapp_handler_runs_total",
        (handler_label("broken"), ("outcome", "failed")),
    )

    assert burst[key] == PROCESSED


def test_handler_durations_counted(burst):
    key = ("planeapp_handler_duration_seconds_count", (handler_label("broken"),))

    assert burst[key] == PROCESSED


def test_unfit_label_value_becomes_other():
    assert metrics.label_value("issue\nforged") == metrics.OTHER_LABEL_VALUE


def test_failed_deliveries_counted(burst):
    key = ("planeapp_deliveries_processed_total", (("outcome", "failed"),))

    assert burst[key] == PROCESSED


def test_plane_calls_counted(burst):
    calls = sum(
        value
        for (name, labels), value in burst.items()
        if name == "planeapp_plane_api_calls_total" and ("client", "api") in labels
    )

    assert calls == PROCESSED


def test_queue_depth_matches_unprocessed(burst):
    key = ("planeapp_queue_jobs", (("queue", "deliveries"), ("state", "queued")))

    assert burst[key] == ACCEPTED - PROCESSED


def test_oldest_job_age_reported(burst):
    key = ("planeapp_queue_oldest_job_age_seconds", (("queue", "deliveries"),))

    assert burst[key] >= 0


def test_empty_queue_has_zero_age(client):
    key = ("planeapp_queue_oldest_job_age_seconds", (("queue", "install"),))

    assert scrape(client)[key] == 0


def test_inbox_counts_unmoved_deliveries(client, redis_conn, standin):
    for number in range(2):
        body = distinct_issue_created_body(standin, number)
        post_delivery(client, body, f"5c0d1e2f-0000-4000-8000-00000000e{number:03d}")
    time.sleep(0.05)

    before = scrape(client)
    move_inbox(redis_conn)
    after = scrape(client)

    assert before[("planeapp_inbox_deliveries", (("state", "waiting"),))] == 2
    assert before[("planeapp_inbox_deliveries", (("state", "claimed"),))] == 0
    assert before[("planeapp_inbox_deliveries", (("state", "rejected"),))] == 0
    assert 0.05 <= before[("planeapp_inbox_oldest_delivery_age_seconds", ())] < 60
    assert after[("planeapp_inbox_deliveries", (("state", "waiting"),))] == 0
    assert after[("planeapp_inbox_oldest_delivery_age_seconds", ())] == 0


def test_counts_from_other_processes_add_up(client, redis_url):
    script = (
        "import redis; from shared import metrics; "
        f"metrics.configure(redis.Redis.from_url({redis_url!r})); "
        "[metrics.increment('job_failures', queue='deliveries', final='true') "
        "for _ in range(10)]"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)

    key = (
        "planeapp_job_failures_total",
        (("final", "true"), ("queue", "deliveries")),
    )
    assert scrape(client)[key] == 20


def test_metrics_token_required_when_set(redis_url, redis_conn, standin):
    context = worker_context(
        redis_url, redis_conn, standin, METRICS_TOKEN=METRICS_TOKEN
    )
    client = create_app(context.settings, connection=redis_conn).test_client()

    assert client.get("/metrics").status_code == 401


def test_metrics_token_accepted(redis_url, redis_conn, standin):
    context = worker_context(
        redis_url, redis_conn, standin, METRICS_TOKEN=METRICS_TOKEN
    )
    client = create_app(context.settings, connection=redis_conn).test_client()

    assert scrape(client, Authorization=f"Bearer {METRICS_TOKEN}")


def test_unknown_label_names_rejected():
    with pytest.raises(ValueError, match="takes labels"):
        metrics.increment("handler_runs", handler="h")


def test_flush_sums_writes_per_field(redis_url, redis_conn):
    sent = []

    class RecordingConnection(redis.Connection):
        def pack_commands(self, commands):
            commands = list(commands)
            sent.extend(commands)
            return super().pack_commands(commands)

    connection = redis.Redis.from_url(redis_url, connection_class=RecordingConnection)
    metrics.configure(connection)
    try:
        for _ in range(100):
            metrics.increment("deliveries_processed", outcome="done")
            metrics.observe("handler_duration_seconds", 0.2, handler="h")
        metrics.flush()
    finally:
        metrics.configure(None)
        connection.close()

    processed = redis_conn.hgetall(metrics.family_key("deliveries_processed"))
    durations = redis_conn.hgetall(metrics.family_key("handler_duration_seconds"))
    assert processed == {b'["done"]': b"100"}
    assert durations[b'["h"]|le|0.25'] == b"100"
    assert b'["h"]|le|0.1' not in durations
    assert durations[b'["h"]|count'] == b"100"
    assert float(durations[b'["h"]|sum']) == pytest.approx(20.0)
    # One command per hash field: the counter, 9 buckets, count and sum.
    assert len(sent) == 12


# The SystemExit that ends the flusher thread is reported as a thread exception.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_flusher_survives_unexpected_error(monkeypatch):
    calls = []

    def flaky_flush() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise AttributeError("connection closed under the pipeline")
        raise SystemExit  # ends the thread once the second flush has run

    monkeypatch.setattr(metrics, "FLUSH_INTERVAL_SECONDS", 0.01)
    monkeypatch.setattr(metrics, "flush", flaky_flush)
    flusher = threading.Thread(target=metrics._flush_forever)
    flusher.start()
    flusher.join(timeout=5)

    assert calls == [0, 1]
    assert not flusher.is_alive()
