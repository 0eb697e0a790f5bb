"""Part 2: jobs per second of the worker pool, real delivery path against plain RQ.

One worker pool, started with the Procfile's worker command, drains every kind
of job, so the RQ worker class, serializer, scheduler loop, worker count and log
set-up are the same for all of them. Only the job function differs. Each drain
pushes all its jobs in one MULTI/EXEC and polls the finished registry. The
real delivery path's drain pushes inbox entries instead, as the ingress stores
them, so the pool's inbox mover, which makes them jobs, is part of its cost. The rate
counts the jobs finished between the first poll that finds a finished job and
the poll that finds them all, which leaves out the time redis-py spends reading
the EXEC reply after the workers have started. Nothing here waits for a
worker to exit, because an RQ worker can hang on exit.
"""

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry

from bench.deliveries import Delivery, make_deliveries, workspace_id
from bench.machine_load import OtherLoadMeter
from bench.plan import Plan
from bench.redis_target import RedisTarget
from bench.repetitions import run_repetitions
from shared import queues
from shared.deliveries import INBOX_KEY, InboxEntry, encode_entry
from shared.installations import STATUS_INSTALLED, Installation, InstallationStore
from shared.settings import load_settings

PLAIN = "plain"
LOGGING = "logging"
DELIVERY = "delivery"
JOB_FUNCTIONS = {
    PLAIN: "bench.jobs.do_nothing",
    LOGGING: "bench.jobs.log_like_delivery",
    DELIVERY: queues.DELIVERY_JOB,
}
# The comparison worker logs the same lines as the real delivery path, so the
# ratio compares the work around the handlers, not the logging both must do.
BASELINE = LOGGING
WARMUP_JOBS = 50
POLL_SECONDS = 0.01
# A drain slower than this many jobs per second is reported as stuck.
MIN_EXPECTED_JOBS_PER_SECOND = 20
MIN_DRAIN_TIMEOUT_SECONDS = 30
BOT_TOKEN_LIFETIME_SECONDS = 36000


@dataclass
class WorkerResults:
    """Jobs per second of every kept drain, by job kind."""

    rates: dict[str, list[float]] = field(default_factory=dict)
    # Cores other programs used during each kept drain.
    other_cores: list[float | None] = field(default_factory=list)
    # Repetitions discarded and run again because the machine was busy.
    repeated: int = 0

    def ratios(self, kind: str, baseline: str = BASELINE) -> list[float]:
        """Jobs per second of ``kind`` over ``baseline``'s, per repetition."""
        return [
            rate / base
            for rate, base in zip(self.rates[kind], self.rates[baseline], strict=True)
        ]


def store_installation(target: RedisTarget, env: dict[str, str]) -> Installation:
    """Store an installation for the deliveries' workspace, with a bot token.

    The handlers never call Plane, but a stored bot token keeps the delivery
    path from trying to mint one if anything requests a token from the client.
    """
    settings = load_settings(env)
    store = InstallationStore.from_settings(target.connection, settings)
    installation = Installation(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id(),
        workspace_slug="bench",
        workspace_name="Benchmark",
        bot_user_id=str(uuid.uuid4()),
        application_id=str(uuid.uuid4()),
        installed_by=str(uuid.uuid4()),
        status=STATUS_INSTALLED,
        updated_at=time.time(),
    )
    store.save(installation)
    store.save_bot_token(
        installation.id,
        f"bench-bot-token-{uuid.uuid4()}",
        time.time() + BOT_TOKEN_LIFETIME_SECONDS,
    )
    return installation


def run_worker_part(
    plan: Plan,
    target: RedisTarget,
    *,
    secret: str,
    progress: Callable[[str], None],
) -> WorkerResults:
    """Drain ``plan.worker_jobs`` jobs of each kind, ``plan.repetitions`` times."""
    for function in JOB_FUNCTIONS.values():
        enqueue_and_drain(
            target, function, list(make_deliveries(WARMUP_JOBS, secret=secret))
        )

    def drain_each_kind(index: int):
        kinds = list(JOB_FUNCTIONS)
        shift = index % len(kinds)
        drains = {}
        for kind in kinds[shift:] + kinds[:shift]:
            deliveries = list(make_deliveries(plan.worker_jobs, secret=secret))
            meter = OtherLoadMeter()
            rate = enqueue_and_drain(target, JOB_FUNCTIONS[kind], deliveries)
            drains[kind] = (rate, meter.cores())
            progress(f"worker {kind:<8} run {index + 1}: {rate:6.0f} jobs/s")
        measured = [cores for _, cores in drains.values() if cores is not None]
        return drains, max(measured) if measured else None

    repetitions, repeated = run_repetitions(
        drain_each_kind,
        repetitions=plan.repetitions,
        max_repeats=plan.max_repeats,
        label="worker",
        progress=progress,
    )
    results = WorkerResults(repeated=repeated)
    for drains in repetitions:
        for kind, (rate, other_cores) in drains.items():
            results.rates.setdefault(kind, []).append(rate)
            results.other_cores.append(other_cores)
    return results


def enqueue_and_drain(
    target: RedisTarget, function: str, deliveries: Sequence[Delivery]
) -> float:
    """Enqueue a job per delivery at once, wait for all, and return jobs per second."""
    connection = target.connection
    queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
    with connection.pipeline(transaction=True) as pipe:
        if function == queues.DELIVERY_JOB:
            # The real path starts where the ingress leaves a delivery: in the
            # inbox, from which the pool's inbox mover makes the jobs.
            pipe.rpush(INBOX_KEY, *(inbox_entry(d) for d in deliveries))
            deliveries_to_enqueue: Sequence[Delivery] = ()
        else:
            deliveries_to_enqueue = deliveries
        for delivery in deliveries_to_enqueue:
            queues.enqueue(
                queue,
                function,
                args=(
                    queues.encode_body(delivery.body),
                    delivery.delivery_id,
                    time.time(),
                ),
                description=f"delivery {delivery.delivery_id} issue.updated",
                job_timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
                retry_intervals=queues.DELIVERY_RETRY_INTERVALS_SECONDS,
                pipeline=pipe,
            )
        pipe.execute()
    started = time.monotonic()
    first_seen, first_count, finished = wait_for_finished_jobs(
        connection, len(deliveries)
    )
    target.delete_job_keys()
    if first_count < len(deliveries):
        return (len(deliveries) - first_count) / (finished - first_seen)
    return len(deliveries) / (finished - started)


def inbox_entry(delivery: Delivery) -> bytes:
    """Return the inbox entry the ingress would store for ``delivery``."""
    entry = InboxEntry(
        job_id=str(uuid.uuid4()),
        delivery_id=delivery.delivery_id,
        received_at=time.time(),
        event="issue",
        action="updated",
        body=delivery.body,
    )
    return encode_entry(entry)


def wait_for_finished_jobs(
    connection: redis.Redis, count: int
) -> tuple[float, int, float]:
    """Poll the delivery queue's registries until ``count`` jobs have finished.

    Returns the ``time.monotonic()`` of the first poll that found a finished
    job, how many it found, and the time of the poll that found all of them.
    Raises ``RuntimeError`` if any job failed (a failed delivery job waits in
    the scheduled registry for its retry), or if the jobs take longer than a
    pool of even ``MIN_EXPECTED_JOBS_PER_SECOND`` would.
    """
    finished = FinishedJobRegistry(queues.DELIVERY_QUEUE, connection=connection)
    failed = FailedJobRegistry(queues.DELIVERY_QUEUE, connection=connection)
    retrying = ScheduledJobRegistry(queues.DELIVERY_QUEUE, connection=connection)
    timeout = max(MIN_DRAIN_TIMEOUT_SECONDS, count / MIN_EXPECTED_JOBS_PER_SECOND)
    deadline = time.monotonic() + timeout
    first_seen, first_count = 0.0, 0
    while True:
        with connection.pipeline(transaction=False) as pipe:
            pipe.zcard(finished.key)
            pipe.zcard(failed.key)
            pipe.zcard(retrying.key)
            done, failed_count, retrying_count = pipe.execute()
        polled = time.monotonic()
        if done and not first_count:
            first_seen, first_count = polled, done
        failures = failed_count + retrying_count
        if failures:
            raise RuntimeError(
                f"{failures} benchmark jobs failed. See the worker's log in the "
                "run's log directory"
            )
        if done >= count:
            return first_seen, first_count, polled
        if polled > deadline:
            raise RuntimeError(
                f"only {done} of {count} jobs finished within {timeout:.0f} s. See "
                "the worker's log in the run's log directory"
            )
        time.sleep(POLL_SECONDS)
