"""The app's processes under faults: kills, restarts and Plane-like senders.

The stand-in here sends no webhooks for the app's own API writes, so the only
deliveries the app receives are the ones a test sends. Every wait is bounded.
"""

import json
import os
import queue
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from plane_standin.sender import Attempt, send_webhook
from plane_standin.server import StandIn
from shared import metrics, queues
from shared.deliveries import DeliveryQueue, dedupe_key_for
from shared.redis_client import key
from tests.conftest import CASE_SECRET
from tests.counting_handlers import COUNTING_SOURCE
from tests.e2e import Stack, start_stack
from tests.processes import AppProcess, wait_for
from workers.housekeeping import LEASE_SECONDS

# A killed process group exits at once, so this only bounds the wait for the kernel.
EXIT_TIMEOUT_SECONDS = 10
# Teardown gives the app's processes this long after SIGTERM, then kills them.
# An idle pool usually exits in under a second, but a worker can hang for up to
# a minute in RQ's pubsub teardown, and the supervisor then waits its full
# ``workers.pool.SHUTDOWN_GRACE_SECONDS`` (25 s) before it kills the worker.
TEARDOWN_GRACE_SECONDS = 5
# The lock that ``workers.housekeeping.Housekeeper`` takes while a pool runs.
HOUSEKEEPER_LEASE_KEY = key("lock", "housekeeper")
POOL_START_TIMEOUT_SECONDS = 30
WEB_START_TIMEOUT_SECONDS = 30
# While senders keep gunicorn's workers busy, /healthz can take seconds.
HEALTH_REQUEST_TIMEOUT_SECONDS = 5
# A sender thread waits this long for the next body before it checks for a stop.
QUEUE_POLL_SECONDS = 0.2


def start_quiet_stack(redis_url: str, **settings: str) -> Stack:
    """Start the stand-in, web and worker pool, with no webhooks for API writes.

    ``settings`` are extra environment variables for both app processes.
    """
    return start_stack(redis_url, echo_api_changes=False, **settings)


def wait_for_worker_pool(worker: AppProcess) -> None:
    """Wait until every RQ worker of the pool has started."""
    expected = 1 + int(worker.env["WORKER_CONCURRENCY"])
    wait_for(
        lambda: worker.output().count("worker started") >= expected,
        timeout=POOL_START_TIMEOUT_SECONDS,
        interval=0.2,
        message=f"the worker pool to start\n{worker.output()[-3000:]}",
    )


def reset_database(redis_url: str) -> None:
    """Empty the test database once no earlier worker pool can write to it.

    ``AppProcess.stop`` returns when the group's leader, ``/bin/sh``, exits,
    which it does at once on SIGTERM, while the pool's supervisor may still run
    one more housekeeping pass. A lease written after the flush would keep this
    test's housekeeper idle for ``LEASE_SECONDS``, and with it every retry.
    """
    connection = redis.Redis.from_url(redis_url)
    wait_for(
        lambda: not connection.exists(HOUSEKEEPER_LEASE_KEY),
        timeout=LEASE_SECONDS + 5,
        interval=0.1,
        message="the housekeeping lease of an earlier worker pool to lapse",
    )
    connection.flushdb()
    connection.close()


def live_group_members(process_group: int) -> list[int]:
    """Return the ids of the processes in a group that are not zombies (Linux)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command's closing parenthesis: state, ppid, pgrp.
        state, _, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == process_group and state != "Z":
            members.append(int(entry.name))
    return members


def signal_whole_group(process: AppProcess, signum: int) -> None:
    """Signal every process of the group, even after its leader has exited."""
    try:
        os.killpg(process.process.pid, signum)
    except ProcessLookupError:
        pass


def wait_for_group_exit(process: AppProcess, timeout: float) -> bool:
    """Wait until no process of the group is left. Return False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.process.poll()
        if not live_group_members(process.process.pid):
            return True
        time.sleep(0.05)
    return False


def kill_process_group(process: AppProcess) -> None:
    """SIGKILL every process of the group and wait until all have exited."""
    signal_whole_group(process, signal.SIGKILL)
    if not wait_for_group_exit(process, EXIT_TIMEOUT_SECONDS):
        raise AssertionError(f"{process.name} survived SIGKILL")
    process.process.wait(timeout=EXIT_TIMEOUT_SECONDS)
    process.log.close()


def stop_process_group(process: AppProcess) -> None:
    """SIGTERM the group and wait until every process in it exited.

    What is left after TEARDOWN_GRACE_SECONDS gets SIGKILL.
    """
    signal_whole_group(process, signal.SIGTERM)
    if not wait_for_group_exit(process, TEARDOWN_GRACE_SECONDS):
        kill_process_group(process)
        return
    process.process.wait(timeout=EXIT_TIMEOUT_SECONDS)
    process.log.close()


def stop_stack(stack: Stack) -> None:
    """Stop the worker pool, the web process and the stand-in.

    Once no pool runs, the pool's housekeeping lease is deleted, so the next
    test does not wait for it to lapse.
    """
    stop_process_group(stack.worker)
    stop_process_group(stack.web)
    stack.standin.stop()
    connection = redis.Redis.from_url(stack.worker.env["REDIS_URL"])
    connection.delete(HOUSEKEEPER_LEASE_KEY)
    connection.close()


def kill_and_restart_worker(stack: Stack) -> AppProcess:
    """SIGKILL the worker pool's group, start the Procfile line again.

    Returns the killed process, whose log the caller may still read.
    """
    killed = stack.worker
    kill_process_group(killed)
    stack.worker = AppProcess("worker", killed.command, killed.env).start()
    wait_for_worker_pool(stack.worker)
    return killed


def kill_and_restart_web(stack: Stack) -> AppProcess:
    """SIGKILL gunicorn's group, start it again on the same port.

    Returns the killed process, whose log the caller may still read.
    """
    killed = stack.web
    kill_process_group(killed)
    stack.web = AppProcess("web", killed.command, killed.env).start()
    wait_for_web(stack.web_url, stack.web)
    return killed


def wait_for_web(web_url: str, web: AppProcess) -> None:
    """Wait until /healthz returns 200, treating a slow response as not ready yet.

    ``tests.processes.wait_for_http`` fails on the first response slower than
    1 s, which gunicorn sends while its workers still import the app on a busy
    machine, or while a stream of deliveries keeps them busy.
    """
    deadline = time.monotonic() + WEB_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not web.alive():
            raise AssertionError(f"web exited early:\n{web.output()}")
        try:
            response = requests.get(
                f"{web_url}/healthz", timeout=HEALTH_REQUEST_TIMEOUT_SECONDS
            )
            if response.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"web did not respond to /healthz in {WEB_START_TIMEOUT_SECONDS} s:\n"
        f"{web.output()[-3000:]}"
    )


def counted_comments(standin: StandIn) -> Counter:
    """Count the counting handler's comment rows by external id."""
    return Counter(
        comment["external_id"]
        for comment in standin.comments_created()
        if comment["external_source"] == COUNTING_SOURCE
    )


def locate_delivery_job(connection: redis.Redis, body: bytes) -> str:
    """Describe the job that carries ``body``, its state and what contains its id.

    A job whose id no queue list and no registry contains will never run.
    """
    job_id = connection.get(key("dedupe", dedupe_key_for(body, json.loads(body))))
    if job_id is None:
        return "no dedupe key, so the body was never stored"
    job = queues.fetch_job(job_id.decode(), connection)
    if job is None and DeliveryQueue(connection).waits_in_inbox(job_id.decode()):
        return f"job {job_id.decode()} not made yet: the delivery waits in the inbox"
    if job is None:
        claimed = [
            name.decode()
            for name in connection.scan_iter(key("inbox", "claimed", "*"))
            if any(job_id in entry for entry in connection.lrange(name, 0, -1))
        ]
        if claimed:
            return f"job {job_id.decode()} not made yet: claimed in {claimed[0]}"
        return f"job {job_id.decode()} no longer exists"
    queue = queues.get_queue(job.origin, connection)
    containers = [
        name
        for name, ids in (
            ("queue", queue.get_job_ids()),
            ("intermediate queue", queue.intermediate_queue.get_job_ids()),
        )
        if job.id in ids
    ]
    for name, registry in (
        ("started", queue.started_job_registry),
        ("scheduled", queue.scheduled_job_registry),
        ("failed", queue.failed_job_registry),
        ("finished", queue.finished_job_registry),
    ):
        if job.id in registry:
            containers.append(f"{name} registry")
    where = ", ".join(containers) or "no queue or registry"
    return (
        f"job {job.id}: status {job.get_status().value}, started at {job.started_at}, "
        f"worker {job.worker_name or '-'}, in {where}"
    )


def delivery_backlog(connection: redis.Redis) -> int:
    """Count deliveries in the inbox and delivery jobs queued, running or waiting."""
    queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
    return (
        DeliveryQueue(connection).inbox_length()
        + queue.count
        + queue.started_job_registry.count
        + queue.scheduled_job_registry.count
    )


def metric_total(web_url: str, name: str, **labels: str) -> float:
    """Sum one counter of ``/metrics`` over the series that carry ``labels``.

    Each process sends its metric writes at most FLUSH_INTERVAL_SECONDS late,
    so the read waits that long, with a margin, for the other processes'.
    """
    time.sleep(metrics.FLUSH_INTERVAL_SECONDS * 1.5)
    text = requests.get(f"{web_url}/metrics", timeout=10).text
    pattern = re.compile(rf"^{re.escape(name)}({{[^}}]*}})? (\S+)$", re.MULTILINE)
    wanted = [f'{label}="{value}"' for label, value in labels.items()]
    return sum(
        float(value)
        for series, value in pattern.findall(text)
        if all(pair in series for pair in wanted)
    )


@dataclass
class SentBody:
    """One webhook body and every POST its sender made of it."""

    key: str
    body: bytes
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        """The HTTP status the sender finally got, or None when it never got one."""
        return self.attempts[-1].status if self.attempts else None


class SenderPool:
    """Threads that POST signed bodies with Plane's retries on transport failures.

    Each body is sent as Plane's sender sends it: one POST, and up to five
    retries with a new ``X-Plane-Delivery`` id while no HTTP response comes
    back, each after Plane's 0-600 s wait times ``delay_scale``.
    """

    def __init__(
        self, url: str, *, threads: int, delay_scale: float, seed: int = 0
    ) -> None:
        self.url = url
        self.threads = threads
        self.delay_scale = delay_scale
        self.seed = seed
        self.stop_event = threading.Event()
        self.results: list[SentBody] = []
        self._pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self, bodies: list[tuple[str, bytes]]) -> "SenderPool":
        for item in bodies:
            self._pending.put(item)
        for number in range(self.threads):
            thread = threading.Thread(
                target=self._send_until_empty,
                args=(random.Random(self.seed * 1000 + number),),
                name=f"chaos-sender-{number}",
                daemon=True,
            )
            thread.start()
            self._workers.append(thread)
        return self

    @property
    def finished_count(self) -> int:
        with self._lock:
            return len(self.results)

    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._workers)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in total. Return True if all senders ended."""
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.done()

    def stop(self) -> None:
        """End retry waits and stop taking bodies. A POST in flight still completes."""
        self.stop_event.set()

    def _send_until_empty(self, rng: random.Random) -> None:
        while not self.stop_event.is_set():
            try:
                key, body = self._pending.get(timeout=QUEUE_POLL_SECONDS)
            except queue.Empty:
                return
            attempts = send_webhook(
                self.url,
                body,
                secret=CASE_SECRET,
                event="issue",
                delay_scale=self.delay_scale,
                rng=rng,
                stop=self.stop_event,
            )
            with self._lock:
                self.results.append(SentBody(key=key, body=body, attempts=attempts))
