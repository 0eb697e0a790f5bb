"""Queue names, the job serializer and the enqueue helper.

This module is the one place that names the serializer: the web process enqueues
with it, the worker class in ``workers.pool`` sets it, and anyone reading jobs
with ``rq info`` or ``Job.fetch`` must pass it too (``--serializer
rq.serializers.JSONSerializer``). JSON keeps jobs readable from any language and
rules out unpickling code from Redis; raw webhook bodies therefore travel as
base64 text.
"""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.errors import JobArgumentError

SERIALIZER = JSONSerializer
SERIALIZER_PATH = "rq.serializers.JSONSerializer"

# The install queue has a worker of its own, because Plane's authorization code
# dies 60 s after consent and must not wait behind deliveries.
INSTALL_QUEUE = "install"
DELIVERY_QUEUE = "deliveries"

INSTALL_JOB = "workers.install.install_app"
DELIVERY_JOB = "workers.delivery.process_delivery"
UNINSTALL_CHECK_JOB = "workers.install.confirm_uninstall"

INSTALL_JOB_TIMEOUT_SECONDS = 60
DELIVERY_JOB_TIMEOUT_SECONDS = 300

# A delivery can reach us before the install job has stored its workspace, and
# a handler can fail on a passing Plane error: retry soon, then back off. The
# waits add up to about 15 minutes before the job lands in the failed registry.
DELIVERY_RETRY_INTERVALS_SECONDS = [1, 2, 4, 8, 15, 30, 60, 120, 300, 360]


# Failed jobs stay inspectable (``rq info``, the dashboard) for a week.
FAILED_JOB_TTL_SECONDS = 7 * 24 * 3600


def delivery_retry() -> Retry:
    """Return the retry schedule of delivery jobs."""
    return Retry(
        max=len(DELIVERY_RETRY_INTERVALS_SECONDS),
        interval=DELIVERY_RETRY_INTERVALS_SECONDS,
    )


def get_queue(name: str, connection: redis.Redis) -> Queue:
    """Return queue ``name`` bound to the project's serializer."""
    return Queue(name, connection=connection, serializer=SERIALIZER)


def fetch_job(job_id: str, connection: redis.Redis) -> Job | None:
    """Return the job with ``job_id``, or None if Redis no longer has it."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except NoSuchJobError:
        return None


def encode_body(body: bytes) -> str:
    """Encode a raw body as base64 text so it survives the JSON serializer."""
    return base64.b64encode(body).decode("ascii")


def decode_body(text: str) -> bytes:
    """Reverse ``encode_body``."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def enqueue(
    queue: Queue,
    func: str,
    *,
    args: tuple = (),
    kwargs: dict | None = None,
    description: str,
    job_timeout: int,
    job_id: str | None = None,
    retry_intervals: list[int] | None = None,
    delay_seconds: float | None = None,
    pipeline: Any = None,
) -> Job:
    """Enqueue ``func`` (a dotted path) after checking its arguments serialize.

    ``description`` replaces RQ's default, which would print the arguments (an
    OAuth code, a request body) in every worker log line. With
    ``delay_seconds`` the job waits in RQ's scheduled registry until then.
    """
    _check_json_arguments(args)
    _check_json_arguments(tuple((kwargs or {}).values()))
    retry = None
    if retry_intervals:
        retry = Retry(max=len(retry_intervals), interval=retry_intervals)
    options = dict(
        kwargs=kwargs,
        description=description,
        job_id=job_id,
        timeout=job_timeout,
        retry=retry,
        failure_ttl=FAILED_JOB_TTL_SECONDS,
    )
    if delay_seconds is None:
        return queue.enqueue_call(func, args=args, pipeline=pipeline, **options)

    job = queue.create_job(func, args=args, **options)
    when = datetime.now(UTC) + timedelta(seconds=delay_seconds)
    return queue.schedule_job(job, when, pipeline=pipeline)


def _check_json_arguments(args: tuple) -> None:
    for position, value in enumerate(args):
        if isinstance(value, bytes | bytearray | memoryview):
            raise JobArgumentError(
                f"job argument {position} is {type(value).__name__}; the JSON job "
                "serializer cannot carry raw bytes. Pass encode_body(value) instead."
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise JobArgumentError(
                f"job argument {position} cannot be serialized as JSON: {exc}"
            ) from exc


def attempt_number(job: Job | None) -> int:
    """Return which attempt of ``job`` is running: 1 for the first run.

    ``enqueue`` sets RQ's maximum retries to the number of intervals, and RQ
    lowers ``retries_left`` only after an attempt fails.
    """
    if job is None or not job.retry_intervals or job.retries_left is None:
        return 1
    return len(job.retry_intervals) - job.retries_left + 1
