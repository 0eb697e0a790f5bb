"""``GET /metrics``: every process's counters, and the queues, in Prometheus format.

Counters and histograms come from the Redis hashes ``shared.metrics`` writes.
Queue depths, the age of the oldest queued job and the worker count are read
from RQ's keys at scrape time. With METRICS_TOKEN set the endpoint requires
``Authorization: Bearer <token>``.
"""

import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import redis
from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from shared import metrics, queues
from shared.deliveries import (
    INBOX_KEY,
    DeliveryQueue,
    InboxEntryError,
    decode_entry,
)

METRICS_PATH = "/metrics"

blueprint = Blueprint("metrics", __name__)


@blueprint.get(METRICS_PATH)
def render_metrics():
    context = current_app.extensions["planeapp"]
    token = context.settings.metrics_token
    if token and not _bearer_matches(token):
        return Response(
            "metrics require a bearer token (METRICS_TOKEN)\n",
            401,
            {"WWW-Authenticate": "Bearer"},
            mimetype="text/plain",
        )

    metrics.flush()  # this process's own recent writes; others land within 1 s
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(context.redis))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _bearer_matches(token: str) -> bool:
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return hmac.compare_digest(presented.encode(), token.encode())


class RedisCollector:
    """A prometheus_client collector that reads the figures from Redis."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection

    def collect(self) -> Iterator[Metric]:
        for family in metrics.FAMILIES.values():
            stored = self.redis.hgetall(metrics.family_key(family.name))
            samples = {k.decode(): v.decode() for k, v in stored.items()}
            if family.kind == "counter":
                yield _counter(family, samples)
            else:
                yield _histogram(family, samples)
        yield from self._queue_figures()

    def _queue_figures(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            f"{metrics.NAMESPACE}_queue_jobs",
            "Jobs per queue and state: queued, started, scheduled (retries "
            "waiting), failed (RQ gave up).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            f"{metrics.NAMESPACE}_queue_oldest_job_age_seconds",
            "Seconds the oldest queued job has waited (0 when the queue is empty).",
            labels=["queue"],
        )
        for name in (queues.INSTALL_QUEUE, queues.DELIVERY_QUEUE):
            queue = queues.get_queue(name, self.redis)
            counts = {
                "queued": queue.count,
                "started": StartedJobRegistry(queue=queue).count,
                "scheduled": ScheduledJobRegistry(queue=queue).count,
                "failed": FailedJobRegistry(queue=queue).count,
            }
            for state, count in counts.items():
                jobs.add_metric([name, state], count)
            oldest.add_metric([name], _oldest_job_age_seconds(queue))
        yield jobs
        yield oldest
        yield from self._inbox_figures()

        workers = GaugeMetricFamily(
            f"{metrics.NAMESPACE}_workers", "RQ workers registered in Redis."
        )
        workers.add_metric([], Worker.count(connection=self.redis))
        yield workers

    def _inbox_figures(self) -> Iterator[Metric]:
        entries = self.redis.lrange(INBOX_KEY, 0, 0)
        waiting = GaugeMetricFamily(
            f"{metrics.NAMESPACE}_inbox_deliveries",
            "Accepted deliveries not yet made into jobs: waiting for an inbox "
            "mover (grows while no worker pool runs), claimed by one, or "
            "rejected as unreadable (kept for a person to inspect).",
            labels=["state"],
        )
        for state, count in DeliveryQueue(self.redis).inbox_counts().items():
            waiting.add_metric([state], count)
        oldest = GaugeMetricFamily(
            f"{metrics.NAMESPACE}_inbox_oldest_delivery_age_seconds",
            "Seconds the oldest delivery in the inbox has waited (0 when empty).",
        )
        oldest.add_metric([], _oldest_entry_age_seconds(entries))
        yield waiting
        yield oldest


def _oldest_entry_age_seconds(entries: list[bytes]) -> float:
    if not entries:
        return 0.0
    try:
        received_at = decode_entry(entries[0]).received_at
    except InboxEntryError:
        return 0.0
    return max(0.0, time.time() - received_at)


def _counter(family: metrics.Family, samples: dict[str, str]) -> Metric:
    counter = CounterMetricFamily(
        f"{metrics.NAMESPACE}_{family.name}", family.help, labels=family.labels
    )
    for field, value in sorted(samples.items()):
        counter.add_metric(json.loads(field), int(value))
    return counter


def _histogram(family: metrics.Family, samples: dict[str, str]) -> Metric:
    histogram = HistogramMetricFamily(
        f"{metrics.NAMESPACE}_{family.name}", family.help, labels=family.labels
    )
    label_sets = {field.split("|")[0] for field in samples}
    for labels in sorted(label_sets):
        count = int(samples.get(f"{labels}|count", 0))
        buckets = [
            (str(bound), int(samples.get(f"{labels}|le|{bound}", 0)))
            for bound in family.buckets
        ]
        buckets.append(("+Inf", count))
        total = float(samples.get(f"{labels}|sum", 0))
        histogram.add_metric(json.loads(labels), buckets, total)
    return histogram


def _oldest_job_age_seconds(queue) -> float:
    job_ids = queue.get_job_ids(0, 1)
    if not job_ids:
        return 0.0
    job = queues.fetch_job(job_ids[0], queue.connection)
    if job is None or job.enqueued_at is None:
        return 0.0
    enqueued_at = job.enqueued_at
    if enqueued_at.tzinfo is None:
        enqueued_at = enqueued_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - enqueued_at).total_seconds())
