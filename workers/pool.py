"""The worker pool the Procfile's ``worker`` line starts (``python -m workers``).

One supervisor process starts ``1 + WORKER_CONCURRENCY`` RQ workers:

* one listens only to the install queue, so an install starts within a second
  even while deliveries or slow handlers keep the others busy (Plane's
  authorization code dies 60 s after consent);
* the others listen to the install queue first, then the delivery queue.

Every worker runs RQ's scheduler loop, which moves scheduled retries back onto
their queue. The supervisor restarts a worker that dies and, on SIGTERM or
SIGINT, passes one SIGTERM to each worker so it finishes its job and stops.
"""

import logging
import multiprocessing
import os
import signal
import sys
import time

import redis
from rq import SimpleWorker
from rq.job_lifecycle import call_exception_handlers

from shared import metrics, queues
from shared.errors import PlaneAppError, SettingsError
from shared.logs import configure_logging
from shared.monitoring import capture_job_failure, init_sentry
from shared.redis_client import connect
from shared.settings import Settings, load_settings
from workers import runtime
from workers.delivery import HandlerFailedError

logger = logging.getLogger(__name__)

# A worker that dies sooner than this after starting is restarted only after a
# pause, so a crash loop (Redis down, a broken handler import) does not spin.
MIN_HEALTHY_UPTIME_SECONDS = 10
RESTART_PAUSE_SECONDS = 5
# Platforms send SIGKILL about 30 s after SIGTERM; stop waiting a little before.
SHUTDOWN_GRACE_SECONDS = 25
SUPERVISOR_POLL_SECONDS = 0.5


class PlaneWorker(SimpleWorker):
    """RQ worker that runs jobs in its own process and reads JSON jobs.

    It does not fork per job (RQ's default), so the Plane clients a worker
    builds are reused across jobs, and it skips RQ's retries for errors marked
    ``retryable = False``, which no later attempt can cure.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("serializer", queues.SERIALIZER)
        super().__init__(*args, **kwargs)

    def handle_exception(self, job, *exc_info):
        """Log a job's failure without its arguments, then run the custom handlers.

        RQ's own version logs the job's arguments, which hold webhook bodies.
        An error a retry is expected to cure (a delivery that arrived before its
        install finished) gets one WARNING line; anything else a traceback.
        """
        error = exc_info[1]
        if isinstance(error, PlaneAppError) and not error.retryable:
            job.retries_left = 0
        fields = {
            "job_id": job.id,
            "queue": job.origin,
            "retries_left": job.retries_left,
        }
        expected = isinstance(error, PlaneAppError) and error.retryable

        if expected and job.retries_left:
            logger.warning("job failed, will retry: %s", error, extra=fields)
        else:
            logger.error("job failed: %s", error, exc_info=exc_info, extra=fields)
        metrics.increment(
            "job_failures", queue=job.origin, final=str(not job.retries_left).lower()
        )
        # Handlers' failures were sent as they happened; an expected error is
        # sent only once no retry is left.
        if not isinstance(error, HandlerFailedError) and not (
            expected and job.retries_left
        ):
            capture_job_failure(
                exc_info, attempt=queues.attempt_number(job), fields=fields
            )
        call_exception_handlers(self._exc_handlers, job, *exc_info)


def worker_plan(settings: Settings) -> list[tuple[str, list[str]]]:
    """Return (name, queues) for each worker the pool runs."""
    plan = [("install", [queues.INSTALL_QUEUE])]
    for number in range(1, settings.worker_concurrency + 1):
        plan.append(
            (f"general-{number}", [queues.INSTALL_QUEUE, queues.DELIVERY_QUEUE])
        )
    return plan


def run_worker(role: str, queue_names: list[str]) -> None:
    """Run one RQ worker until a signal stops it (the child process's main)."""
    # Drop the supervisor's handlers inherited through fork; RQ installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    init_sentry(settings, process="worker")
    context = runtime.init(settings)
    worker = PlaneWorker(
        [queues.get_queue(name, context.redis) for name in queue_names],
        connection=context.redis,
        name=f"{os.uname().nodename}.{os.getpid()}.{role}",
    )
    worker.work(with_scheduler=True, logging_level=settings.log_level)


class Supervisor:
    """Start the planned workers, restart any that die, stop all on a signal."""

    def __init__(self, plan: list[tuple[str, list[str]]]) -> None:
        self.plan = plan
        self.processes: dict[str, multiprocessing.Process] = {}
        self.started_at: dict[str, float] = {}
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        for role, queue_names in self.plan:
            self._start(role, queue_names)

        while not self.stopping:
            time.sleep(SUPERVISOR_POLL_SECONDS)
            self._restart_dead_workers()
        return self._stop_all()

    def _start(self, role: str, queue_names: list[str]) -> None:
        process = multiprocessing.Process(
            target=run_worker, args=(role, queue_names), name=f"rq-{role}"
        )
        process.start()
        self.processes[role] = process
        self.started_at[role] = time.monotonic()
        logger.info(
            "worker started",
            extra={"role": role, "pid": process.pid, "queues": ",".join(queue_names)},
        )

    def _restart_dead_workers(self) -> None:
        for role, queue_names in self.plan:
            process = self.processes[role]
            if process.is_alive() or self.stopping:
                continue
            uptime = time.monotonic() - self.started_at[role]
            logger.error(
                "worker exited unexpectedly, restarting it",
                extra={"role": role, "pid": process.pid, "exit_code": process.exitcode},
            )
            if uptime < MIN_HEALTHY_UPTIME_SECONDS:
                time.sleep(RESTART_PAUSE_SECONDS)
            self._start(role, queue_names)

    def _request_stop(self, signum, frame) -> None:
        if self.stopping:
            return
        self.stopping = True
        logger.info(
            "worker pool stopping", extra={"signal": signal.Signals(signum).name}
        )
        for process in self.processes.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def _stop_all(self) -> int:
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for process in self.processes.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for role, process in self.processes.items():
            if process.is_alive():
                logger.error(
                    "worker did not stop in time, killing it",
                    extra={"role": role, "pid": process.pid},
                )
                process.kill()
        logger.info("worker pool stopped")
        return 0


def main() -> int:
    """Check settings and Redis, then run the pool until a signal stops it."""
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"The worker cannot start. {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        connect(settings.redis_url).ping()
    except (redis.RedisError, OSError) as error:
        print(
            f"The worker cannot reach Redis at REDIS_URL ({error}). "
            "Check that Redis is running and the URL is right.",
            file=sys.stderr,
        )
        return 2
    return Supervisor(worker_plan(settings)).run()
