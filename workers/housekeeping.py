"""Housekeeping the worker pool's supervisor runs: scheduled jobs and dead workers.

It also returns inbox entries that a dead inbox mover had claimed
(``workers.inbox``) to the inbox, where another mover picks them up.

RQ's own scheduler and registry cleanup run inside workers, under locks that
outlive a killed worker by a minute (the scheduler lock) or fifteen (the
maintenance lock), and a busy worker skips them. The supervisor is never busy,
so it runs both here, every second, under one lock with a short lease that
another machine's supervisor takes over when this one dies.
"""

import logging
import time
import uuid

import redis
from rq.registry import StartedJobRegistry, clean_registries
from rq.scheduler import RQScheduler

from shared import queues
from shared.redis_client import key
from workers.inbox import return_abandoned_claims

logger = logging.getLogger(__name__)

TICK_SECONDS = 1
# Abandoned executions are looked for this often; they expire after
# ``workers.pool.EXECUTION_TTL_SECONDS`` without a heartbeat.
ABANDONED_CHECK_SECONDS = 5
# Finished and failed registries only need trimming now and then.
FULL_CLEANUP_SECONDS = 60
# The lock moves to another supervisor this long after its holder stops renewing.
LEASE_SECONDS = 10
# A job id left in a queue's intermediate list this long, never started, was
# dequeued by a worker that died before it could start the job.
STRANDED_AFTER_SECONDS = 10

_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Housekeeper:
    """Move due scheduled jobs to their queues and recover jobs of dead workers."""

    def __init__(self, connection: redis.Redis, queue_names: list[str], on_abandoned):
        self.redis = connection
        self.queues = [queues.get_queue(name, connection) for name in queue_names]
        self.on_abandoned = on_abandoned
        self.owner = uuid.uuid4().hex
        self._acquire_or_renew = connection.register_script(_ACQUIRE_OR_RENEW)
        self.scheduler = RQScheduler(
            queue_names, connection=connection, serializer=queues.SERIALIZER
        )
        self.scheduler.prepare_registries(queue_names)
        self._last_abandoned_check = 0.0
        self._last_full_cleanup = 0.0

    def tick(self) -> None:
        """Do whatever is due; call about once per TICK_SECONDS."""
        try:
            if not self._hold_lease():
                return
            self.scheduler.enqueue_scheduled_jobs()
            now = time.monotonic()
            if now - self._last_abandoned_check >= ABANDONED_CHECK_SECONDS:
                self._last_abandoned_check = now
                self._recover_abandoned_jobs()
                return_abandoned_claims(self.redis)
                self._requeue_stranded_jobs()
            if now - self._last_full_cleanup >= FULL_CLEANUP_SECONDS:
                self._last_full_cleanup = now
                for queue in self.queues:
                    clean_registries(queue, exception_handlers=[self.on_abandoned])
        except redis.RedisError as error:
            logger.warning("housekeeping skipped: Redis failed (%s)", error)

    def _hold_lease(self) -> bool:
        lease_held = self._acquire_or_renew(
            keys=[key("lock", "housekeeper")],
            args=[self.owner, LEASE_SECONDS * 1000],
        )
        return bool(lease_held)

    def _recover_abandoned_jobs(self) -> None:
        for queue in self.queues:
            registry = StartedJobRegistry(
                queue.name, connection=self.redis, serializer=queues.SERIALIZER
            )
            registry.cleanup(exception_handlers=[self.on_abandoned])

    def _requeue_stranded_jobs(self) -> None:
        """Put back jobs a dying worker took off a queue but never started."""
        for queue in self.queues:
            intermediate = queue.intermediate_queue
            for job_id in intermediate.get_job_ids():
                if job_id in queue.started_job_registry:
                    continue
                first_seen = self.redis.set(
                    key("stranded", job_id), time.time(), nx=True, ex=3600
                )
                if first_seen:
                    continue
                seen_at = float(self.redis.get(key("stranded", job_id)) or time.time())
                if time.time() - seen_at < STRANDED_AFTER_SECONDS:
                    continue
                self._requeue_if_never_started(queue, job_id)

    def _requeue_if_never_started(self, queue, job_id: str) -> None:
        job = queue.fetch_job(job_id)
        intermediate = queue.intermediate_queue
        if job is None or job.get_status() != "queued":
            intermediate.remove(job_id)
            return
        with self.redis.pipeline() as pipe:
            pipe.lrem(intermediate.key, 1, job_id)
            pipe.lpush(queue.key, job_id)
            pipe.delete(key("stranded", job_id))
            pipe.execute()
        logger.error(
            "job taken by a worker that died before starting it; requeued",
            extra={"job_id": job_id, "queue": queue.name},
        )
