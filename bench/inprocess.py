"""Part 4: where the time goes, measured in the benchmark's own process.

Each step runs once per delivery over a few hundred distinct deliveries. The
report gives the median time of one call, and the Redis commands and round
trips it sent, counted by the redis-py connection. Whole requests go through
the apps' WSGI interface without HTTP or gunicorn, so they show the
application's share of a request. The steps below them show what that share
is made of.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Retry
from werkzeug.test import EnvironBuilder

from bench import endpoints
from bench.deliveries import (
    EVENT,
    WEBHOOK_PATH,
    Delivery,
    make_deliveries,
    workspace_id,
)
from bench.jobs import log_delivery_lines
from bench.machine_load import OtherLoadMeter
from bench.plan import Plan
from bench.redis_target import RedisTarget
from bench.repetitions import run_repetitions
from bench.stats import median
from ingress import create_app
from shared import queues
from shared.deliveries import DeliveryQueue
from shared.events import parse_event
from shared.logs import KeyValueFormatter
from shared.settings import Settings, load_settings
from shared.signature import check_signature
from workers import runtime
from workers.delivery import process_delivery
from workers.inbox import BATCH_SIZE, InboxMover

SAMPLES = 400
WARMUP_CALLS = 50


@dataclass
class RedisTraffic:
    """Commands and round trips sent through ``CountingConnection``s so far."""

    commands: int = 0
    round_trips: int = 0


_traffic = RedisTraffic()


class CountingConnection(redis.Connection):
    """A redis-py connection that adds what it sends to ``_traffic``.

    A single command is one command and one round trip. A pipeline is all its
    commands, MULTI and EXEC included, in one round trip.
    """

    def send_command(self, *args, **kwargs):
        _traffic.commands += 1
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands):
        commands = list(commands)
        _traffic.commands += len(commands)
        return super().pack_commands(commands)

    def send_packed_command(self, command, check_health=True):
        _traffic.round_trips += 1
        super().send_packed_command(command, check_health)


@dataclass(frozen=True)
class StepCost:
    """The median time of one call of a step, and its Redis traffic per call."""

    label: str
    microseconds: float
    redis_commands: float
    redis_round_trips: float


@dataclass
class InProcessResults:
    """Step costs of the ingress and of the delivery job."""

    ingress: list[StepCost]
    worker: list[StepCost]
    other_cores: float | None = None
    # Runs discarded and run again because the machine was busy.
    repeated: int = 0


def run_inprocess_part(
    plan: Plan,
    target: RedisTarget,
    env: dict[str, str],
    *,
    secret: str,
    log_path: Path,
    progress: Callable[[str], None],
) -> InProcessResults:
    """Time the ingress's and the delivery job's steps in this process.

    A run disturbed by other programs is run again like a repetition of the
    other parts. Even undisturbed, these times move with the machine's state.
    On the 2-core VM this was written on, one LPUSH of a 2 KB body took from 30
    to 110 us from one run to the next, so compare steps within one run.
    """
    settings = load_settings(env)
    _log_to_file(log_path, settings.log_level)
    connection = redis.Redis.from_url(target.url, connection_class=CountingConnection)

    def run_once(index: int) -> tuple[InProcessResults, float | None]:
        meter = OtherLoadMeter()
        results = InProcessResults(
            ingress=_ingress_steps(target, connection, settings, secret),
            worker=_worker_steps(target, connection, settings, secret),
        )
        results.other_cores = meter.cores()
        return results, results.other_cores

    try:
        (results,), repeated = run_repetitions(
            run_once,
            repetitions=1,
            max_repeats=plan.max_repeats,
            label="in process",
            progress=progress,
        )
    finally:
        connection.close()
        logging.getLogger().handlers.clear()
    results.repeated = repeated
    return results


def _ingress_steps(
    target: RedisTarget, connection: redis.Redis, settings: Settings, secret: str
) -> list[StepCost]:
    apps = {
        "bare endpoint, whole request (WSGI, no HTTP)": endpoints.create_bare_app(
            settings
        ),
        "HMAC + LPUSH endpoint, whole request": endpoints.create_lpush_app(
            settings, connection=connection
        ),
        "real ingress, whole request": create_app(settings, connection=connection),
    }
    costs = [
        _measure(target, label, _wsgi_call(app), _environs(secret))
        for label, app in apps.items()
    ]

    queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
    deliveries = DeliveryQueue(connection)
    steps = {
        "check_signature, one secret": lambda d: check_signature(
            d.body, d.signature, secrets=settings.webhook_secrets
        ),
        "json.loads of the body": lambda d: json.loads(d.body.decode("utf-8")),
        "one LPUSH of the body": lambda d: connection.lpush(
            endpoints.LPUSH_KEY, d.body
        ),
        "DeliveryQueue.enqueue: dedupe key and inbox push, one script": (
            lambda d: deliveries.enqueue(
                d.body,
                {"event": EVENT, "action": "updated"},
                delivery_id=d.delivery_id,
                received_at=time.time(),
            )
        ),
        "for comparison: queues.enqueue of the delivery job (RQ)": (
            lambda d: _enqueue_delivery(queue, d)
        ),
        "for comparison: queues.enqueue into a pipeline, then one EXEC": (
            lambda d: _enqueue_delivery_in_pipeline(queue, d)
        ),
        "RQ job built and serialized, nothing sent": lambda d: _build_delivery_job(
            queue, d
        ),
        "one INFO log line (the 'delivery enqueued' line)": (
            lambda d: endpoints.log_accepted(
                d.delivery_id, size=len(d.body), event=EVENT
            )
        ),
    }
    costs += [
        _measure(target, label, step, _deliveries(secret))
        for label, step in steps.items()
    ]
    return costs


def _worker_steps(
    target: RedisTarget, connection: redis.Redis, settings: Settings, secret: str
) -> list[StepCost]:
    store = runtime.init(settings, connection=connection).store
    workspace = workspace_id()
    steps = {
        "process_delivery with the no-op handler (outside RQ)": (
            lambda d: process_delivery(
                queues.encode_body(d.body),
                d.delivery_id,
                time.time(),
                completion_key=str(uuid.uuid4()),
            )
        ),
        "base64 decode and parse_event (JSON, marshmallow)": lambda d: parse_event(
            queues.decode_body(queues.encode_body(d.body)),
            delivery_id=d.delivery_id,
        ),
        "for comparison: store.get_by_workspace, off the delivery path": (
            lambda d: store.get_by_workspace(workspace)
        ),
        "the delivery's three INFO log lines": lambda d: log_delivery_lines(
            d.delivery_id, str(uuid.uuid4())
        ),
    }
    costs = [
        _measure(target, label, step, _deliveries(secret))
        for label, step in steps.items()
    ]
    costs.append(_measure_inbox_mover(target, connection, secret))
    return costs


def _measure_inbox_mover(
    target: RedisTarget, connection: redis.Redis, secret: str
) -> StepCost:
    """Time the inbox mover turning a backlog into jobs, per entry."""
    deliveries = DeliveryQueue(connection)
    entries = _deliveries(secret)
    for delivery in entries:
        deliveries.enqueue(
            delivery.body,
            {"event": EVENT, "action": "updated"},
            delivery_id=delivery.delivery_id,
            received_at=time.time(),
        )
    mover = InboxMover(connection)
    commands, round_trips = _traffic.commands, _traffic.round_trips
    started = time.perf_counter_ns()
    while mover.move_batch():
        pass
    elapsed = time.perf_counter_ns() - started
    commands = _traffic.commands - commands
    round_trips = _traffic.round_trips - round_trips
    target.delete_job_keys()
    return StepCost(
        label=f"inbox mover: backlog to jobs, batches of {BATCH_SIZE}, per entry",
        microseconds=elapsed / len(entries) / 1000,
        redis_commands=commands / len(entries),
        redis_round_trips=round_trips / len(entries),
    )


def _measure(
    target: RedisTarget,
    label: str,
    step: Callable[[object], object],
    inputs: Sequence[object],
) -> StepCost:
    for item in inputs[:WARMUP_CALLS]:
        step(item)
    measured = inputs[WARMUP_CALLS:]
    commands, round_trips = _traffic.commands, _traffic.round_trips
    durations = []
    for item in measured:
        started = time.perf_counter_ns()
        step(item)
        durations.append(time.perf_counter_ns() - started)
    commands = _traffic.commands - commands
    round_trips = _traffic.round_trips - round_trips
    target.delete_job_keys()
    return StepCost(
        label=label,
        microseconds=median(durations) / 1000,
        redis_commands=commands / len(measured),
        redis_round_trips=round_trips / len(measured),
    )


def _deliveries(secret: str) -> list[Delivery]:
    return list(make_deliveries(SAMPLES + WARMUP_CALLS, secret=secret))


def _environs(secret: str) -> list[dict]:
    environs = []
    for delivery in _deliveries(secret):
        builder = EnvironBuilder(
            path=WEBHOOK_PATH,
            method="POST",
            data=delivery.body,
            headers={
                "Content-Type": "application/json",
                "X-Plane-Delivery": delivery.delivery_id,
                "X-Plane-Event": EVENT,
                "X-Plane-Signature": delivery.signature,
            },
        )
        environs.append(builder.get_environ())
    return environs


def _wsgi_call(app) -> Callable[[dict], None]:
    def call(environ: dict) -> None:
        statuses = []

        def start_response(status, headers, exc_info=None):
            statuses.append(status)

        body = app(environ, start_response)
        b"".join(body)
        if not statuses[0].startswith("2"):
            raise RuntimeError(f"{app.name} responded {statuses[0]} in process")

    return call


def _delivery_job_options(delivery: Delivery) -> dict:
    """Return the arguments the ingress passes to ``queues.enqueue``."""
    return dict(
        args=(queues.encode_body(delivery.body), delivery.delivery_id, time.time()),
        description=f"delivery {delivery.delivery_id} issue.updated",
        job_timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
        retry_intervals=queues.DELIVERY_RETRY_INTERVALS_SECONDS,
    )


def _enqueue_delivery(queue, delivery: Delivery) -> None:
    queues.enqueue(queue, queues.DELIVERY_JOB, **_delivery_job_options(delivery))


def _enqueue_delivery_in_pipeline(queue, delivery: Delivery) -> None:
    with queue.connection.pipeline() as pipe:
        queues.enqueue(
            queue,
            queues.DELIVERY_JOB,
            pipeline=pipe,
            **_delivery_job_options(delivery),
        )
        pipe.execute()


def _build_delivery_job(queue, delivery: Delivery) -> None:
    """Build the job ``queues.enqueue`` would, and its Redis hash fields."""
    options = _delivery_job_options(delivery)
    intervals = options["retry_intervals"]
    job = queue.create_job(
        queues.DELIVERY_JOB,
        args=options["args"],
        description=options["description"],
        timeout=options["job_timeout"],
        retry=Retry(max=len(intervals), interval=intervals),
        failure_ttl=queues.FAILED_JOB_TTL_SECONDS,
    )
    job.to_dict()


def _log_to_file(path: Path, level: str) -> None:
    """Send this process's logs to ``path`` in the app's format, as the servers do."""
    handler = logging.FileHandler(path)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
