"""The inbox mover: turn accepted deliveries into RQ jobs, each exactly once.

The web process appends each accepted delivery to the inbox list
(``shared.deliveries``). A mover thread in every worker pool's supervisor takes
entries in batches and writes their RQ jobs. Several pools may run movers
against one Redis, so an entry is first moved into the mover's own claim list,
and a second Lua script writes the jobs, pushes them onto the delivery queue
and empties the claim list in one atomic step.

A mover that dies leaves its claim list behind. Its liveness key then expires,
and the housekeeper (``workers.housekeeping``) moves the claimed entries back
to the head of the inbox. A mover that was only paused past its lease finds its
claim list gone and writes nothing, because the commit script checks the list
first; so no entry becomes two jobs and none is dropped.
"""

import logging
import threading
import time
import uuid
from datetime import UTC, datetime

import redis
from rq import Queue

from shared import queues
from shared.deliveries import (
    DELIVERY_LOG_TTL_SECONDS,
    INBOX_KEY,
    MOVERS_KEY,
    REJECTED_KEY,
    InboxEntry,
    InboxEntryError,
    claim_key,
    decode_entry,
)
from shared.redis_client import key

logger = logging.getLogger(__name__)

# Entries taken per round trip when the inbox has a backlog.
BATCH_SIZE = 100
# How long one wait for a new entry blocks; the stop flag is checked between.
WAIT_SECONDS = 1
# A mover renews its liveness key at least this often, and the housekeeper
# returns the claims of a mover whose key has been gone for MOVER_LEASE_SECONDS.
MOVER_LEASE_SECONDS = 10
LIVENESS_RENEW_SECONDS = 2
# After a Redis error the mover waits this long, doubling up to the maximum.
ERROR_BACKOFF_SECONDS = 0.5
MAX_ERROR_BACKOFF_SECONDS = 5


_CLAIM = """
redis.call('SADD', KEYS[3], ARGV[2])
local entries = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #entries > 0 then
  redis.call('LTRIM', KEYS[1], #entries, -1)
  redis.call('RPUSH', KEYS[2], unpack(entries))
end
return entries
"""

# KEYS: claim list, liveness key, queue, RQ's set of queues, rejected list,
#       set of movers, then one job hash key per job.
# ARGV: entries claimed, mover id, lease ms, rejected count, the rejected
#       entries, then per job its packed fields (see ``pack_fields``) and its id.
# Returns -1 when the claim was lost, else the job ids that already existed,
# whose jobs are left as they are: a job is never overwritten.
_COMMIT = """
local function unpack_fields(packed)
  local fields = {}
  local position = 1
  while position <= #packed do
    local colon = string.find(packed, ':', position, true)
    local size = tonumber(string.sub(packed, position, colon - 1))
    fields[#fields + 1] = string.sub(packed, colon + 1, colon + size)
    position = colon + size + 1
  end
  return fields
end

if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[6], ARGV[2])
local position = 5
for index = 1, tonumber(ARGV[4]) do
  redis.call('RPUSH', KEYS[5], ARGV[position])
  position = position + 1
end
local existing = {}
for index = 7, #KEYS do
  if redis.call('EXISTS', KEYS[index]) == 1 then
    existing[#existing + 1] = ARGV[position + 1]
  else
    redis.call('HSET', KEYS[index], unpack(unpack_fields(ARGV[position])))
    redis.call('RPUSH', KEYS[3], ARGV[position + 1])
  end
  position = position + 2
end
if #KEYS > 6 then
  redis.call('SADD', KEYS[4], KEYS[3])
end
redis.call('DEL', KEYS[1])
return existing
"""

# KEYS: claim list, liveness key, inbox, set of movers. ARGV: mover id.
_RETURN_CLAIMS = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[3], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""


def pack_fields(mapping: dict) -> bytes:
    """Pack a job hash's fields and values into one string, each as ``len:bytes``.

    One argument per job instead of two per field keeps redis-py's encoding of
    the script call, which otherwise costs more than building the job, short.
    """
    parts = []
    for name, value in mapping.items():
        name_data = name.encode()
        value_data = value if type(value) is bytes else _as_redis_bytes(value)
        parts.append(
            b"%d:%s%d:%s" % (len(name_data), name_data, len(value_data), value_data)
        )
    return b"".join(parts)


def _as_redis_bytes(value) -> bytes:
    """Encode ``value`` as redis-py would send it as a command argument."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("a job field is a bool, which Redis cannot store as is")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"a job field is a {type(value).__name__}, not bytes or text")


class DeliveryJobTemplate:
    """Build delivery jobs' hash fields by varying one prepared RQ job.

    ``Queue.create_job`` resolves the serializer and every option again for
    each job, which costs more than the fields themselves. Only the id, the
    arguments, the description and the timestamps differ between deliveries.
    """

    def __init__(self, queue: Queue) -> None:
        self._job = queue.create_job(
            queues.DELIVERY_JOB,
            args=(),
            description="",
            timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
            result_ttl=DELIVERY_LOG_TTL_SECONDS,
            failure_ttl=queues.FAILED_JOB_TTL_SECONDS,
            retry=queues.delivery_retry(),
        )

    def fields_for(self, entry: InboxEntry) -> tuple[str, dict]:
        """Return the job key and the hash fields of ``entry``'s delivery job."""
        job = self._job
        job.id = entry.job_id
        job.args = (
            queues.encode_body(entry.body),
            entry.delivery_id,
            entry.received_at,
        )
        job.description = f"delivery {entry.delivery_id} {entry.event}.{entry.action}"
        job.created_at = datetime.now(UTC)
        job.enqueued_at = datetime.fromtimestamp(entry.received_at, UTC)
        return job.key, job.to_dict()


def liveness_key(mover_id: str) -> str:
    """Return the key whose expiry marks mover ``mover_id`` as dead."""
    return key("inbox", "mover", mover_id)


class InboxMover:
    """Move inbox entries onto the delivery queue as RQ jobs."""

    def __init__(self, connection: redis.Redis, *, batch_size: int = BATCH_SIZE):
        self.redis = connection
        self.batch_size = batch_size
        self.mover_id = uuid.uuid4().hex
        self.queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
        self._claim_key = claim_key(self.mover_id)
        self._liveness_key = liveness_key(self.mover_id)
        self._claim = connection.register_script(_CLAIM)
        self._commit = connection.register_script(_COMMIT)
        self._renewed_at = float("-inf")

    def move_batch(self, wait_seconds: float = 0) -> int:
        """Move up to one batch of entries; return how many left the inbox.

        Each entry becomes a job, or goes to the rejected list when it cannot
        be read.

        With ``wait_seconds`` it blocks that long for an entry when the inbox
        is empty. Entries left claimed by an earlier failed call go first.
        """
        self._renew_liveness()
        entries = self.redis.lrange(self._claim_key, 0, -1)
        if not entries:
            entries = self._claim(
                keys=[INBOX_KEY, self._claim_key, MOVERS_KEY],
                args=[self.batch_size, self.mover_id],
            )
        if not entries and wait_seconds:
            entry = self.redis.blmove(
                INBOX_KEY, self._claim_key, wait_seconds, "LEFT", "RIGHT"
            )
            entries = [entry] if entry is not None else []
        if not entries:
            return 0
        return self._write_jobs(entries)

    def run(self, stop: threading.Event) -> None:
        """Move entries until ``stop`` is set, riding out any failure.

        The thread must not die: with no mover, accepted deliveries would wait
        in the inbox while the pool looks healthy.
        """
        backoff = ERROR_BACKOFF_SECONDS
        logger.info("inbox mover started", extra={"mover": self.mover_id})
        while not stop.is_set():
            try:
                self.move_batch(wait_seconds=WAIT_SECONDS)
                backoff = ERROR_BACKOFF_SECONDS
                continue
            except redis.RedisError as error:
                logger.error(
                    "inbox mover paused: Redis failed (%s); accepted deliveries "
                    "wait in the inbox, retrying in %.1f s",
                    error,
                    backoff,
                    extra={"mover": self.mover_id},
                )
            except Exception:
                logger.exception(
                    "inbox mover failed unexpectedly; retrying in %.1f s",
                    backoff,
                    extra={"mover": self.mover_id},
                )
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_ERROR_BACKOFF_SECONDS)
        self._release_liveness()
        logger.info("inbox mover stopped", extra={"mover": self.mover_id})

    def _write_jobs(self, entries: list[bytes]) -> int:
        job_keys: list[str] = []
        job_args: list = []
        rejected: list[bytes] = []
        template = DeliveryJobTemplate(self.queue)
        for raw in entries:
            try:
                entry = decode_entry(raw)
                job_key, fields = template.fields_for(entry)
                packed = pack_fields(fields)
            except (
                InboxEntryError,
                ArithmeticError,
                OSError,
                TypeError,
                ValueError,
            ) as error:
                # One unreadable entry must not stop the entries behind it.
                logger.error(
                    "inbox entry rejected: %s; it is kept in %s for inspection",
                    error,
                    REJECTED_KEY,
                )
                rejected.append(raw)
                continue
            job_keys.append(job_key)
            job_args.extend([packed, entry.job_id])

        existing = self._commit(
            keys=[
                self._claim_key,
                self._liveness_key,
                self.queue.key,
                self.queue.redis_queues_keys,
                REJECTED_KEY,
                MOVERS_KEY,
                *job_keys,
            ],
            args=[
                len(entries),
                self.mover_id,
                MOVER_LEASE_SECONDS * 1000,
                len(rejected),
                *rejected,
                *job_args,
            ],
        )
        if existing == -1:
            logger.warning(
                "inbox mover lost its claim after a pause; the housekeeper had "
                "already returned %d entries to the inbox",
                len(entries),
                extra={"mover": self.mover_id},
            )
            return 0
        for job_id in existing:
            logger.error(
                "inbox entry dropped: a job with its id already exists and was "
                "left unchanged",
                extra={"mover": self.mover_id, "job_id": job_id.decode()},
            )
        return len(entries)

    def _renew_liveness(self) -> None:
        if time.monotonic() - self._renewed_at < LIVENESS_RENEW_SECONDS:
            return
        with self.redis.pipeline() as pipe:
            pipe.set(self._liveness_key, self.mover_id, px=MOVER_LEASE_SECONDS * 1000)
            pipe.sadd(MOVERS_KEY, self.mover_id)
            pipe.execute()
        self._renewed_at = time.monotonic()

    def _release_liveness(self) -> None:
        """Let the housekeeper return anything still claimed without waiting."""
        try:
            self.redis.delete(self._liveness_key)
        except redis.RedisError:
            pass  # the key expires by itself within MOVER_LEASE_SECONDS


def return_abandoned_claims(connection: redis.Redis) -> int:
    """Put the claims of dead movers back at the head of the inbox.

    Returns how many entries went back. The housekeeper calls this under its
    lease, but the script is atomic, so concurrent calls are safe too.
    """
    return_claims = connection.register_script(_RETURN_CLAIMS)
    returned = 0
    for raw_id in connection.smembers(MOVERS_KEY):
        mover_id = raw_id.decode()
        moved = return_claims(
            keys=[
                claim_key(mover_id),
                liveness_key(mover_id),
                INBOX_KEY,
                MOVERS_KEY,
            ],
            args=[mover_id],
        )
        if moved > 0:
            logger.error(
                "inbox entries claimed by a dead mover returned to the inbox",
                extra={"mover": mover_id, "entries": moved},
            )
            returned += moved
    return returned
