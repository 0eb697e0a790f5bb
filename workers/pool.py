"""The worker pool the Procfile's ``worker`` line starts (``python -m workers``).

One supervisor process starts ``1 + WORKER_CONCURRENCY`` RQ workers:

* one listens only to the install queue, so an install starts within a second
  even while deliveries or slow handlers keep the others busy (Plane's
  authorization code dies 60 s after consent);
* the others listen only to the delivery queue.

Each worker listens to a single queue on purpose: RQ then takes a job with
BLMOVE into the queue's intermediate list, from which the housekeeper can put
it back if the worker dies before starting it. A worker on several queues
takes jobs with BLPOP, and a kill at that moment would lose the job.

The supervisor restarts a worker that dies and, on SIGTERM or SIGINT, passes
one SIGTERM to each worker so it finishes its job and stops. It also runs the
inbox mover (``workers.inbox``) in a thread, which turns the deliveries the web
process accepted into delivery jobs, and the housekeeping
(``workers.housekeeping``): moving scheduled retries back onto their queues and
recovering the jobs of workers that died.
"""

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

import redis
from rq import SimpleWorker, worker_registration
from rq.exceptions import AbandonedJobError, ShutDownImminentException
from rq.job_lifecycle import call_exception_handlers
from rq.utils import now
from rq.worker.base import WorkerStatus

from shared import metrics, queues
from shared.errors import PlaneAppError, SettingsError
from shared.logs import configure_logging
from shared.monitoring import capture_job_failure, init_sentry
from shared.redis_client import connect
from shared.settings import Settings, load_settings
from workers import runtime
from workers.delivery import HandlerFailedError
from workers.delivery_state import keep_marks_of_dead_letter
from workers.housekeeping import Housekeeper
from workers.inbox import InboxMover

logger = logging.getLogger(__name__)

# A worker that dies sooner than this after starting is restarted only after a
# pause, so a crash loop (Redis down, a broken handler import) does not spin.
MIN_HEALTHY_UPTIME_SECONDS = 10
RESTART_PAUSE_SECONDS = 5
# Platforms send SIGKILL about 30 s after SIGTERM; stop waiting a little before.
SHUTDOWN_GRACE_SECONDS = 25
SUPERVISOR_POLL_SECONDS = 0.5
# The inbox mover gets this long to finish its batch when the pool stops.
MOVER_STOP_SECONDS = 3

# A running job's execution is renewed every HEARTBEAT_INTERVAL_SECONDS with a
# lifetime of EXECUTION_TTL_SECONDS. When a worker dies (SIGKILL, a lost
# machine), its execution expires within that lifetime, and the supervisor's
# housekeeper, which looks every 5 s, hands the job to RQ's retry. Recovery
# therefore takes about 20 + 5 s plus the retry wait (1 s for a first retry).
# It takes up to 10 s more when the whole pool died, because a new supervisor
# must wait for the old one's housekeeping lease to run out. RQ's defaults (job
# timeout + 60 s, and cleanup every 10 minutes) would leave a killed delivery
# waiting far longer.
HEARTBEAT_INTERVAL_SECONDS = 5
EXECUTION_TTL_SECONDS = 20
# How often a worker prunes dead workers from RQ's worker registry.
MAINTENANCE_INTERVAL_SECONDS = 5
WORKER_TTL_SECONDS = 20
# On SIGTERM a running job gets this long to finish, then ShutDownImminentException
# is raised inside it and RQ's retry requeues it, well before the platform's
# SIGKILL (about 30 s after SIGTERM).
IMMINENT_SHUTDOWN_SECONDS = 15


class PlaneWorker(SimpleWorker):
    """RQ worker that runs jobs in its own process and reads JSON jobs.

    It does not fork per job (RQ's default), so the Plane clients a worker
    builds are reused across jobs, and it skips RQ's retries for errors marked
    ``retryable = False``, which no later attempt can cure.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("serializer", queues.SERIALIZER)
        kwargs.setdefault("worker_ttl", WORKER_TTL_SECONDS)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL_SECONDS)
        kwargs.setdefault("job_monitoring_interval", HEARTBEAT_INTERVAL_SECONDS)
        super().__init__(*args, **kwargs)
        self._shutdown_timer: threading.Timer | None = None
        self.push_exc_handler(_log_abandoned_job)

    def clean_registries(self) -> None:
        """Leave registry cleanup to the supervisor's housekeeper, except workers.

        Two cleaners racing over the same abandoned job would retry it twice.
        """
        for queue in self.queues:
            worker_registration.clean_worker_registry(queue)
        self.last_cleaned_at = now()

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        """Keep executions short-lived; the heartbeat thread renews them."""
        return EXECUTION_TTL_SECONDS

    def execute_job(self, job, queue) -> None:
        """Run the job in this process, renewing its execution while it runs."""
        execution = self.prepare_execution(job)
        finished = threading.Event()
        beat = threading.Thread(
            target=self._renew_heartbeats,
            args=(job, execution, finished),
            name=f"heartbeat-{job.id}",
            daemon=True,
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            finished.set()
            self._cancel_shutdown_timer()
            beat.join(timeout=HEARTBEAT_INTERVAL_SECONDS)
        self.set_state(WorkerStatus.IDLE)

    def _renew_heartbeats(self, job, execution, finished: threading.Event) -> None:
        while not finished.wait(HEARTBEAT_INTERVAL_SECONDS):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError as error:
                logger.warning(
                    "job heartbeat failed: %s", error, extra={"job_id": job.id}
                )

    def handle_warm_shutdown_request(self) -> None:
        """Give a running job IMMINENT_SHUTDOWN_SECONDS, then interrupt it."""
        super().handle_warm_shutdown_request()
        if self.get_state() != WorkerStatus.BUSY:
            return
        signal.signal(signal.SIGRTMIN, self._interrupt_job)
        self._shutdown_timer = threading.Timer(
            IMMINENT_SHUTDOWN_SECONDS, os.kill, (os.getpid(), signal.SIGRTMIN)
        )
        self._shutdown_timer.daemon = True
        self._shutdown_timer.start()
        logger.warning(
            "shutdown requested: the running job is interrupted in %s s unless it "
            "finishes",
            IMMINENT_SHUTDOWN_SECONDS,
            extra={"worker": self.name},
        )

    def _interrupt_job(self, signum, frame) -> None:
        if self.get_state() == WorkerStatus.BUSY:
            raise ShutDownImminentException("worker shutting down", {})

    def _cancel_shutdown_timer(self) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None

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
        expected = isinstance(error, ShutDownImminentException) or (
            isinstance(error, PlaneAppError) and error.retryable
        )

        if isinstance(error, ShutDownImminentException):
            logger.warning(
                "job interrupted by shutdown; RQ will run it again", extra=fields
            )
        elif expected and job.retries_left:
            logger.warning("job failed, will retry: %s", error, extra=fields)
        else:
            logger.error("job failed: %s", error, exc_info=exc_info, extra=fields)
        metrics.increment(
            "job_failures", queue=job.origin, final=str(not job.retries_left).lower()
        )
        if not job.retries_left:
            keep_marks_of_dead_letter(job)
        # Handlers' failures were sent as they happened; an expected error is
        # sent only once no retry is left.
        if not isinstance(error, HandlerFailedError) and not (
            expected and job.retries_left
        ):
            capture_job_failure(
                exc_info, attempt=queues.attempt_number(job), fields=fields
            )
        call_exception_handlers(self._exc_handlers, job, *exc_info)


def _log_abandoned_job(job, exc_type, exc_value, traceback) -> bool:
    """Log a job whose worker died (RQ's registry cleanup found it expired)."""
    if exc_type is AbandonedJobError:
        delivery_id = job.args[1] if job.func_name == queues.DELIVERY_JOB else "-"
        logger.error(
            "job abandoned by a dead worker; RQ retries it if it has retries left",
            extra={
                "job_id": job.id,
                "delivery_id": delivery_id,
                "worker": job.worker_name or "-",
                "retries_left": job.retries_left,
            },
        )
        if not job.retries_left:
            keep_marks_of_dead_letter(job)
    return True  # let the next handler run too


class _HidePeriodicMaintenance(logging.Filter):
    """Drop RQ's INFO line for each registry cleanup, which now runs every 5 s."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "cleaning registries" not in record.msg and (
            "cleaning group registries" not in record.msg
        )


def worker_plan(settings: Settings) -> list[tuple[str, list[str]]]:
    """Return (name, queues) for each worker the pool runs."""
    plan = [("install", [queues.INSTALL_QUEUE])]
    for number in range(1, settings.worker_concurrency + 1):
        plan.append((f"general-{number}", [queues.DELIVERY_QUEUE]))
    return plan


def run_worker(role: str, queue_names: list[str]) -> None:
    """Run one RQ worker until a signal stops it (the child process's main)."""
    # Drop the supervisor's handlers inherited through fork; RQ installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("rq.worker").addFilter(_HidePeriodicMaintenance())
    init_sentry(settings, process="worker")
    context = runtime.init(settings)
    worker = PlaneWorker(
        [queues.get_queue(name, context.redis) for name in queue_names],
        connection=context.redis,
        name=f"{os.uname().nodename}.{os.getpid()}.{role}",
    )
    worker.work(with_scheduler=False, logging_level=settings.log_level)


class Supervisor:
    """Start the planned workers, restart any that die, stop all on a signal."""

    def __init__(
        self,
        plan: list[tuple[str, list[str]]],
        housekeeper: Housekeeper,
        mover: InboxMover,
    ) -> None:
        self.plan = plan
        self.housekeeper = housekeeper
        self.mover = mover
        self.mover_stop = threading.Event()
        self.mover_thread = threading.Thread(
            target=mover.run, args=(self.mover_stop,), name="inbox-mover", daemon=True
        )
        self.processes: dict[str, multiprocessing.Process] = {}
        self.started_at: dict[str, float] = {}
        self.stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        for role, queue_names in self.plan:
            self._start(role, queue_names)
        self.mover_thread.start()

        while not self.stopping:
            time.sleep(SUPERVISOR_POLL_SECONDS)
            self._restart_dead_workers()
            self.housekeeper.tick()
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
        # The mover finishes the batch in hand first; it blocks at most
        # WAIT_SECONDS between batches.
        self.mover_stop.set()
        self.mover_thread.join(timeout=MOVER_STOP_SECONDS)
        for process in self.processes.values():
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for role, process in self.processes.items():
            if process.is_alive():
                logger.error(
                    "worker did not stop in time, killing it",
                    extra={"role": role, "pid": process.pid},
                )
                process.kill()
        if self.mover_thread.is_alive():
            logger.error(
                "inbox mover did not stop in time; a new mover takes its claimed "
                "deliveries back within about 15 s"
            )
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
    connection = connect(settings.redis_url)
    try:
        connection.ping()
    except (redis.RedisError, OSError) as error:
        print(
            f"The worker cannot reach Redis at REDIS_URL ({error}). "
            "Check that Redis is running and the URL is right.",
            file=sys.stderr,
        )
        return 2
    housekeeper = Housekeeper(
        connection, [queues.INSTALL_QUEUE, queues.DELIVERY_QUEUE], _log_abandoned_job
    )
    mover = InboxMover(connection)
    return Supervisor(worker_plan(settings), housekeeper, mover).run()
