"""Enqueue each webhook event once, in one atomic Redis step.

Plane resends a v1 delivery with the same bytes and a new ``X-Plane-Delivery``
id, and a v2 event with the same ``event_id``. One Lua script therefore checks
and sets the dedupe key, writes the RQ job, pushes it onto the queue and records
the delivery id, all or nothing: a crash between "seen" and "enqueued" cannot
drop an event, and two copies arriving together cannot both get through.
"""

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq.job import Job

from shared import queues
from shared.redis_client import key

logger = logging.getLogger(__name__)

# Plane retries a failed v1 delivery up to 5 times, each after a random wait of
# up to 600 s, so a copy can arrive about 50 minutes after the first attempt.
# Two hours covers that with room for Plane's own queue delays.
DEDUPE_TTL_SECONDS = 2 * 3600

# Finished delivery jobs, and the index from delivery id to job id, are kept
# this long so an operator can replay a delivery by its id.
DELIVERY_LOG_TTL_SECONDS = 3 * 24 * 3600

_ENQUEUE_ONCE = """
local first = redis.call('GET', KEYS[1])
if first then
  return {0, first}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {-1, ARGV[1]}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], KEYS[3])
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[3])
return {1, ARGV[1]}
"""


@dataclass(frozen=True)
class EnqueueResult:
    """Outcome of an enqueue: the job id, and whether it was a duplicate."""

    job_id: str
    duplicate: bool
    dedupe_key: str


def dedupe_key_for(body: bytes, payload: dict) -> str:
    """Return the key that identifies one event across Plane's retries.

    v2 bodies carry an ``event_id`` that stays the same across retries. v1
    bodies carry no id, but Plane resends the same bytes, so their sha256 is
    the key.
    """
    event_id = payload.get("event_id")
    if payload.get("version") == "v2" and isinstance(event_id, str) and event_id:
        return f"event:{event_id}"
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


class DeliveryQueue:
    """Put deliveries on the delivery queue, once per event."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self.queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
        self._enqueue_once = connection.register_script(_ENQUEUE_ONCE)

    def enqueue(
        self, body: bytes, payload: dict, *, delivery_id: str, received_at: float
    ) -> EnqueueResult:
        """Enqueue the delivery unless the same event was accepted before."""
        dedupe_key = dedupe_key_for(body, payload)
        job = self._build_job(body, payload, delivery_id, received_at)
        fields = [part for pair in job.to_dict().items() for part in pair]

        status, job_id = self._enqueue_once(
            keys=[
                key("dedupe", dedupe_key),
                job.key,
                self.queue.key,
                self.queue.redis_queues_keys,
                key("delivery", delivery_id),
            ],
            args=[job.id, DEDUPE_TTL_SECONDS, DELIVERY_LOG_TTL_SECONDS, *fields],
        )
        if status == -1:
            raise RuntimeError(f"job id {job.id} already exists; refusing to overwrite")
        return EnqueueResult(
            job_id=job_id.decode() if isinstance(job_id, bytes) else job_id,
            duplicate=status == 0,
            dedupe_key=dedupe_key,
        )

    def replay(self, job: Job, *, reason: str) -> Job:
        """Enqueue a new job with the same arguments, bypassing the dedupe key."""
        return queues.enqueue(
            self.queue,
            queues.DELIVERY_JOB,
            args=tuple(job.args),
            description=f"{job.description} (replay: {reason})",
            job_timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
            retry_intervals=queues.DELIVERY_RETRY_INTERVALS_SECONDS,
        )

    def job_for_delivery(self, delivery_id: str) -> Job | None:
        """Return the job that carried a delivery id, while the log keeps it."""
        job_id = self.redis.get(key("delivery", delivery_id))
        if job_id is None:
            return None
        return queues.fetch_job(job_id.decode(), self.redis)

    def _build_job(
        self, body: bytes, payload: dict, delivery_id: str, received_at: float
    ) -> Job:
        event = str(payload.get("event") or "-")
        action = str(payload.get("action") or "-")
        job = self.queue.create_job(
            queues.DELIVERY_JOB,
            args=(queues.encode_body(body), delivery_id, received_at),
            description=f"delivery {delivery_id} {event}.{action}",
            timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
            result_ttl=DELIVERY_LOG_TTL_SECONDS,
            failure_ttl=queues.FAILED_JOB_TTL_SECONDS,
            job_id=str(uuid.uuid4()),
            retry=queues.delivery_retry(),
        )
        job.enqueued_at = datetime.now(UTC)
        return job
