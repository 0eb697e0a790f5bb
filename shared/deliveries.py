"""Accept each webhook event once, in one atomic Redis step, and log it.

Plane resends a v1 delivery with the same bytes and a new ``X-Plane-Delivery``
id, and a v2 event with the same ``event_id``. One Lua script therefore checks
and sets the dedupe key, appends the delivery to the inbox list and records the
delivery id, all or nothing: a crash between "seen" and "stored" cannot drop an
event, and two copies arriving together cannot both get through.

The web process stores only the raw body and a short header, in one round
trip like a single ``LPUSH``. The worker pool's inbox mover (``workers.inbox``)
turns inbox entries into RQ jobs, with the job id chosen here, so the delivery
log and the duplicate responses can name the job before it exists.
"""

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass

import redis
from rq.job import Job

from shared import queues
from shared.logs import INVALID_DELIVERY_ID, MISSING_DELIVERY_ID
from shared.redis_client import key

logger = logging.getLogger(__name__)

# Plane retries a failed v1 delivery up to 5 times, each after a random wait of
# up to 600 s, so a copy can arrive about 50 minutes after the first attempt.
# Two hours covers that with room for Plane's own queue delays.
DEDUPE_TTL_SECONDS = 2 * 3600

# Finished delivery jobs, and the index from delivery id to job id, are kept
# this long so an operator can replay a delivery by its id.
DELIVERY_LOG_TTL_SECONDS = 3 * 24 * 3600

# Accepted deliveries wait in this list until the inbox mover makes them jobs.
INBOX_KEY = key("inbox")
# Entries start with a JSON header line; the raw body follows the newline.
ENTRY_FORMAT_VERSION = 1
# The ids of the inbox movers that may hold claimed entries.
MOVERS_KEY = key("inbox", "movers")
# Entries the mover cannot read go here, with an ERROR log line, for a person.
REJECTED_KEY = key("inbox", "rejected")

# KEYS: dedupe key, inbox, delivery log key. ARGV: job id, dedupe TTL (s),
# delivery log TTL (s), inbox entry, "1" to record the delivery id.
# A repeat's delivery id is recorded against the first copy's job, so a
# replay by the id of any copy finds it.
_ACCEPT_ONCE = """
local job_id = ARGV[1]
local accepted = redis.call('SET', KEYS[1], job_id, 'NX', 'EX', ARGV[2])
if accepted then
  redis.call('RPUSH', KEYS[2], ARGV[4])
else
  job_id = redis.call('GET', KEYS[1])
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[3], job_id, 'EX', ARGV[3])
end
if accepted then
  return {1, job_id}
end
return {0, job_id}
"""


def claim_key(mover_id: str) -> str:
    """Return the list that contains the entries mover ``mover_id`` is moving."""
    return key("inbox", "claimed", mover_id)


class InboxEntryError(ValueError):
    """An inbox entry is not in the format ``encode_entry`` writes."""


@dataclass(frozen=True)
class InboxEntry:
    """One accepted delivery as the inbox stores it."""

    job_id: str
    delivery_id: str
    received_at: float
    event: str
    action: str
    body: bytes


def encode_entry(entry: InboxEntry) -> bytes:
    """Return the inbox's form of ``entry``: a JSON header line, then the body."""
    header = {
        "v": ENTRY_FORMAT_VERSION,
        "job_id": entry.job_id,
        "delivery_id": entry.delivery_id,
        "received_at": entry.received_at,
        "event": entry.event,
        "action": entry.action,
    }
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + entry.body


def decode_entry(raw: bytes) -> InboxEntry:
    """Parse an inbox entry; raise InboxEntryError when it is not one."""
    header_line, newline, body = raw.partition(b"\n")
    try:
        header = json.loads(header_line) if newline else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("v") != ENTRY_FORMAT_VERSION:
        raise InboxEntryError(
            f"inbox entry has no version {ENTRY_FORMAT_VERSION} header: "
            f"{header_line[:80]!r}"
        )
    try:
        return InboxEntry(
            job_id=str(header["job_id"]),
            delivery_id=str(header["delivery_id"]),
            received_at=float(header["received_at"]),
            event=str(header["event"]),
            action=str(header["action"]),
            body=body,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InboxEntryError(f"inbox entry header is incomplete: {error}") from error


@dataclass(frozen=True)
class EnqueueResult:
    """Outcome of an enqueue: the job id, and whether it was a duplicate."""

    job_id: str
    duplicate: bool
    dedupe_key: str


def _has_own_id(delivery_id: str) -> bool:
    """Tell whether a delivery id names one delivery, not a stand-in for none."""
    return delivery_id not in (MISSING_DELIVERY_ID, INVALID_DELIVERY_ID)


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
    """Accept deliveries into the inbox once per event, and find them again."""

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self.queue = queues.get_queue(queues.DELIVERY_QUEUE, connection)
        self._accept_once = connection.register_script(_ACCEPT_ONCE)

    def enqueue(
        self, body: bytes, payload: dict, *, delivery_id: str, received_at: float
    ) -> EnqueueResult:
        """Store the delivery unless the same event was accepted before.

        When this returns, Redis has the delivery: the 2xx may go out.
        """
        dedupe_key = dedupe_key_for(body, payload)
        entry = InboxEntry(
            job_id=str(uuid.uuid4()),
            delivery_id=delivery_id,
            received_at=received_at,
            event=str(payload.get("event") or "-"),
            action=str(payload.get("action") or "-"),
            body=body,
        )
        status, job_id = self._accept_once(
            keys=[key("dedupe", dedupe_key), INBOX_KEY, key("delivery", delivery_id)],
            args=[
                entry.job_id,
                DEDUPE_TTL_SECONDS,
                DELIVERY_LOG_TTL_SECONDS,
                encode_entry(entry),
                "1" if _has_own_id(delivery_id) else "0",
            ],
        )
        return EnqueueResult(
            job_id=job_id.decode(), duplicate=status == 0, dedupe_key=dedupe_key
        )

    def replay(self, job: Job, *, reason: str) -> Job:
        """Enqueue a new job with the same arguments, bypassing every dedupe.

        The new job has its own completion set, so every handler runs again,
        and it skips the worker's claim on the change, which would otherwise
        drop it within five minutes of the first run.
        """
        return queues.enqueue(
            self.queue,
            queues.DELIVERY_JOB,
            args=tuple(job.args)[:3],
            kwargs={"replay": True},
            description=f"{job.description} (replay: {reason})",
            job_timeout=queues.DELIVERY_JOB_TIMEOUT_SECONDS,
            retry_intervals=queues.DELIVERY_RETRY_INTERVALS_SECONDS,
        )

    def job_id_for_delivery(self, delivery_id: str) -> str | None:
        """Return the job id given to a delivery id, while the log keeps it."""
        job_id = self.redis.get(key("delivery", delivery_id))
        return job_id.decode() if job_id is not None else None

    def job_for_delivery(self, delivery_id: str) -> Job | None:
        """Return the job that carried a delivery id, while the log keeps it.

        Returns None also while the delivery still waits in the inbox.
        """
        job_id = self.job_id_for_delivery(delivery_id)
        return queues.fetch_job(job_id, self.redis) if job_id else None

    def waits_in_inbox(self, job_id: str) -> bool:
        """Return whether the inbox still contains the entry of ``job_id``.

        It reads the whole inbox, so it is meant for commands, not requests.
        """
        marker = f'"job_id":"{job_id}"'.encode()
        return any(marker in entry for entry in self.redis.lrange(INBOX_KEY, 0, -1))

    def inbox_length(self) -> int:
        """Return how many accepted deliveries wait for the inbox mover."""
        return self.redis.llen(INBOX_KEY)

    def inbox_counts(self) -> dict[str, int]:
        """Count inbox entries waiting, claimed by a mover, and rejected."""
        movers = [raw.decode() for raw in self.redis.smembers(MOVERS_KEY)]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(INBOX_KEY)
            pipe.llen(REJECTED_KEY)
            for mover_id in movers:
                pipe.llen(claim_key(mover_id))
            waiting, rejected, *claimed = pipe.execute()
        return {"waiting": waiting, "claimed": sum(claimed), "rejected": rejected}
