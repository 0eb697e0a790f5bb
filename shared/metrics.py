"""Counters and timings kept in Redis, so every process adds to the same figures.

The web process and each worker record into one hash per metric family under
``planeapp:metrics:``; the web process renders them in Prometheus format
(``ingress.metrics``). Only the web process listens on a port. ``configure``
runs once per process; until then recording does nothing, so code paths that
run without Redis (unit tests, scripts) need no set-up.

A Redis failure while recording is logged and swallowed, so a lost count does
not fail a delivery. A wrong metric or label name raises, because it is a bug.
"""

import atexit
import functools
import json
import logging
import os
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import redis

from shared.redis_client import key

logger = logging.getLogger(__name__)

NAMESPACE = "planeapp"
# A Redis outage would otherwise log one warning per count.
WARNING_INTERVAL_SECONDS = 60

# Seconds; from a fast Plane call up to the delivery job's 300 s timeout.
DURATION_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Seconds between receipt and start; retries wait up to 6 minutes each.
QUEUE_WAIT_BUCKETS_SECONDS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)

# Label values are printable ASCII without spaces or "|", which separates the
# parts of a histogram's hash fields. Event names come from signed bodies, but
# a label value must still stay short.
_LABEL_VALUE = re.compile(r"[\x21-\x7b\x7d\x7e]{1,200}")
OTHER_LABEL_VALUE = "other"
# Label sets whose hash field is cached. Event names in labels come from webhook
# requests, so the cache is bounded.
ENCODED_LABELS_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Family:
    """One metric family: its kind, help text, label names and buckets."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


FAMILIES = {
    family.name: family
    for family in (
        Family(
            "webhook_deliveries_accepted",
            "counter",
            "Signed webhook deliveries enqueued, by event.",
            ("event",),
        ),
        Family(
            "webhook_deliveries_rejected",
            "counter",
            "Webhook requests answered 4xx, by reason.",
            ("reason",),
        ),
        Family(
            "webhook_deliveries_duplicate",
            "counter",
            "Webhook deliveries dropped because their delivery id was seen before.",
        ),
        Family(
            "deliveries_processed",
            "counter",
            "Delivery job attempts, by outcome.",
            ("outcome",),
        ),
        Family(
            "delivery_queue_wait_seconds",
            "histogram",
            "Seconds from receipt by the web process to the start of the handlers.",
            buckets=QUEUE_WAIT_BUCKETS_SECONDS,
        ),
        Family(
            "handler_runs",
            "counter",
            "Handler runs, by handler and outcome.",
            ("handler", "outcome"),
        ),
        Family(
            "handler_duration_seconds",
            "histogram",
            "Seconds a handler ran, successful or not.",
            ("handler",),
            DURATION_BUCKETS_SECONDS,
        ),
        Family(
            "job_failures",
            "counter",
            "Failed RQ job attempts, by queue and whether RQ gave up (final).",
            ("queue", "final"),
        ),
        Family(
            "token_renewals",
            "counter",
            "Bot token mints and user token refreshes, by kind and outcome.",
            ("kind", "outcome"),
        ),
        Family(
            "plane_api_calls",
            "counter",
            "HTTP responses from Plane, by client (api, oauth) and status code.",
            ("client", "status"),
        ),
        Family(
            "plane_api_call_duration_seconds",
            "histogram",
            "Seconds Plane took to respond, by client.",
            ("client",),
            DURATION_BUCKETS_SECONDS,
        ),
    )
}

_connection: redis.Redis | None = None
# Writes waiting for the next flush, summed per (hash key, hash field). Each
# field becomes one HINCRBY, or one HINCRBYFLOAT for a histogram's sum.
_pending_counts: Counter[tuple[str, str]] = Counter()
_pending_sums: defaultdict[tuple[str, str], float] = defaultdict(float)
_pending_lock = threading.Lock()
_flusher_pid: int | None = None
# Metric writes reach Redis at most this late; /metrics flushes its own first.
FLUSH_INTERVAL_SECONDS = 1.0
_warning_lock = threading.Lock()
_last_warning = 0.0


def configure(connection: redis.Redis | None) -> None:
    """Record into ``connection`` from now on (None stops recording)."""
    global _connection
    _connection = connection


def family_key(name: str) -> str:
    """Return the key of the Redis hash that contains one family's samples."""
    return key("metrics", name)


def label_value(value: object) -> str:
    """Return ``value`` as a label value, or ``other`` if it is unfit for one."""
    text = str(value)
    return text if _LABEL_VALUE.fullmatch(text) else OTHER_LABEL_VALUE


def encode_labels(family: Family, labels: dict[str, object]) -> str:
    """Return the hash field for one label set, checking the names first."""
    return _encoded_labels(family, tuple((k, str(v)) for k, v in labels.items()))


@functools.lru_cache(maxsize=ENCODED_LABELS_CACHE_SIZE)
def _encoded_labels(family: Family, items: tuple[tuple[str, str], ...]) -> str:
    labels = dict(items)
    if set(labels) != set(family.labels):
        raise ValueError(
            f"metric {family.name!r} takes labels {sorted(family.labels)}, "
            f"got {sorted(labels)}"
        )
    return json.dumps([label_value(labels[name]) for name in family.labels])


def increment(name: str, amount: int = 1, **labels: object) -> None:
    """Add ``amount`` to a counter."""
    family = FAMILIES[name]
    field = encode_labels(family, labels)
    if _connection is None:
        return
    with _pending_lock:
        _pending_counts[family_key(name), field] += amount
        _start_flusher_once()


def observe(name: str, seconds: float, **labels: object) -> None:
    """Add one observation to a histogram: its bucket counts, sum and count."""
    family = FAMILIES[name]
    field = encode_labels(family, labels)
    if _connection is None:
        return
    hash_key = family_key(name)
    with _pending_lock:
        for bound in family.buckets:
            if seconds <= bound:
                _pending_counts[hash_key, f"{field}|le|{bound}"] += 1
        _pending_counts[hash_key, f"{field}|count"] += 1
        _pending_sums[hash_key, f"{field}|sum"] += seconds
        _start_flusher_once()


def plane_response_hook(client: str):
    """Return a ``requests`` response hook that counts and times Plane's responses."""

    def count_response(response, *args, **kwargs):
        status = str(response.status_code)
        seconds = response.elapsed.total_seconds()
        increment("plane_api_calls", client=client, status=status)
        observe("plane_api_call_duration_seconds", seconds, client=client)
        logger.debug(
            "Plane responded",
            extra={
                "client": client,
                "method": response.request.method,
                "path": response.request.path_url.split("?")[0],
                "status": response.status_code,
                "duration_ms": round(seconds * 1000),
            },
        )
        return response

    return count_response


def flush() -> None:
    """Send every summed metric write to Redis now, in one pipeline.

    Recording in line would add a Redis round trip to every webhook request
    and several to every job. A flush every FLUSH_INTERVAL_SECONDS costs one,
    with one command per hash field written since the last flush.
    """
    connection = _connection
    with _pending_lock:
        counts = dict(_pending_counts)
        sums = dict(_pending_sums)
        _pending_counts.clear()
        _pending_sums.clear()
    if connection is None or not (counts or sums):
        return
    try:
        with connection.pipeline(transaction=False) as pipe:
            for (hash_key, field), amount in counts.items():
                pipe.hincrby(hash_key, field, amount)
            for (hash_key, field), seconds in sums.items():
                pipe.hincrbyfloat(hash_key, field, seconds)
            pipe.execute()
    except redis.RedisError as error:
        _warn_rarely(error)


def _start_flusher_once() -> None:
    """Start this process's flusher thread (again after a fork, which drops it)."""
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    _flusher_pid = os.getpid()
    threading.Thread(target=_flush_forever, name="metrics-flusher", daemon=True).start()
    atexit.register(flush)


def _flush_forever() -> None:
    """Flush every FLUSH_INTERVAL_SECONDS; any failure loses one batch, not the thread.

    redis-py can raise other errors than RedisError, such as an AttributeError
    when the connection is closed under a running pipeline.
    """
    while True:
        time.sleep(FLUSH_INTERVAL_SECONDS)
        try:
            flush()
        except Exception:
            logger.exception("metrics flush failed; the next flush tries again")


def _warn_rarely(error: redis.RedisError) -> None:
    global _last_warning
    with _warning_lock:
        now = time.monotonic()
        if now - _last_warning < WARNING_INTERVAL_SECONDS:
            return
        _last_warning = now
    logger.warning(
        "metrics not recorded: Redis failed (%s); further failures within %s s "
        "are not logged",
        error,
        WARNING_INTERVAL_SECONDS,
    )
