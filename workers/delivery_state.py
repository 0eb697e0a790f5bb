"""A delivery's state in Redis, read and written in as few round trips as possible.

``DeliveryState.running`` starts with one script that finds the workspace's
installation, claims the event's changes (``workers.coalesce``), takes the
entity lock when it is free (``workers.entity_locks``) and reads which handlers
are done already. Each handler's completion mark is written as soon as it
succeeds, except the last handler's, which goes in the script that releases
the entity lock. A delivery with one handler therefore takes two round trips.
"""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from rq.job import Job

from shared import queues
from shared.events import Event
from shared.installations import (
    STATUS_UNINSTALLED,
    Installation,
    installation_from_fields,
)
from shared.redis_client import key
from workers.coalesce import COALESCE_WINDOW_SECONDS, change_keys
from workers.entity_locks import EntityLock, EntityLocks

logger = logging.getLogger(__name__)

# Completion marks outlive every retry of a job (about 15 minutes in all).
COMPLETION_MARK_TTL_SECONDS = 24 * 3600
# A dead letter's marks live as long as the dead letter, and a day more, so a
# replay a week later still skips the handlers that succeeded.
DEAD_LETTER_MARK_TTL_SECONDS = queues.FAILED_JOB_TTL_SECONDS + 24 * 3600

# KEYS: the workspace's installation id, the completion set, ARGV[4] change
# claims, and then the entity lock when one is to be taken.
# ARGV: installation key prefix, owner, claim window (s), number of claims,
# the uninstalled status, lock token, lock lease (ms).
# Returns a JSON object: {} when no installation is stored, else the
# installation's fields and, unless it is uninstalled, whether the change was
# claimed and the lock taken, and the handlers done. Nothing is claimed for a
# missing or uninstalled installation, and the lock is taken only for a claimed
# change. With no claims (an operator's replay) the change counts as claimed.
# One JSON string parses faster in redis-py than nested replies.
# NOTE: the script reads the installation hash under a key built from the id it
# reads first, which Redis Cluster would reject. The app runs on one Redis, as
# RQ requires.
_BEGIN_DELIVERY = """
local installation_id = redis.call('GET', KEYS[1])
if not installation_id then
  return '{}'
end
local flat = redis.call('HGETALL', ARGV[1] .. installation_id)
if #flat == 0 then
  return '{}'
end
local installation = {}
for i = 1, #flat, 2 do
  installation[flat[i]] = flat[i + 1]
end
if installation['status'] == ARGV[5] then
  return cjson.encode({installation = installation})
end

local last_claim = 2 + tonumber(ARGV[4])
for i = 3, last_claim do
  redis.call('SET', KEYS[i], ARGV[2], 'NX', 'EX', ARGV[3])
end
local claimed = last_claim == 2
for i = 3, last_claim do
  if redis.call('GET', KEYS[i]) == ARGV[2] then
    claimed = true
  end
end
local reply = {installation = installation, claimed = claimed, locked = false}
if not claimed then
  return cjson.encode(reply)
end

local lock_key = KEYS[last_claim + 1]
if lock_key then
  if not redis.call('SET', lock_key, ARGV[6], 'NX', 'PX', ARGV[7]) then
    return cjson.encode(reply)
  end
  reply['locked'] = true
end
reply['done'] = redis.call('SMEMBERS', KEYS[2])
return cjson.encode(reply)
"""

# KEYS: the completion set, then the entity lock if one is held.
# ARGV: the handler to mark done ("" for none), mark TTL (s), lock token.
# Returns 0 when the lock no longer held the token (its lease ran out), else 1.
_FINISH_DELIVERY = """
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if KEYS[2] then
  if redis.call('GET', KEYS[2]) ~= ARGV[3] then
    return 0
  end
  redis.call('DEL', KEYS[2])
end
return 1
"""


@dataclass(frozen=True)
class DeliveryStart:
    """The begin script's result: installation, claim, lock and done handlers."""

    installation: Installation | None
    claimed: bool = False
    # True when the script took the entity lock. False with a lock requested
    # and the change claimed means another delivery holds it.
    locked: bool = False
    done: frozenset[str] = frozenset()


class DeliveryState:
    """The delivery job's scripts and entity locks, built once per worker process."""

    def __init__(self, connection: redis.Redis, entity_locks: EntityLocks) -> None:
        self.connection = connection
        self.entity_locks = entity_locks
        self._begin = connection.register_script(_BEGIN_DELIVERY)
        self._finish = connection.register_script(_FINISH_DELIVERY)

    @contextmanager
    def running(
        self,
        event: Event,
        *,
        owner: str,
        lock_entity: bool,
        fields: dict,
        claim_changes: bool = True,
    ) -> Iterator["DeliveryProgress"]:
        """Start a delivery, and finish it however the block ends.

        ``owner`` is the completion key, which claims the changes and names the
        set of handlers done. With ``lock_entity`` the event's entity is locked when
        it is free. Without ``claim_changes`` the delivery counts as claimed even
        when another delivery ran the same change before. ``fields`` go on the
        lock's log lines.
        """
        lock = self.entity_locks.lock_for(event) if lock_entity else None
        claims = change_keys(event) if claim_changes else []
        start = self._start(event, owner, claims, lock)
        progress = DeliveryProgress(self, owner, start, lock)
        try:
            if progress.locked:
                self.entity_locks.renew(lock, fields)
            yield progress
        finally:
            progress.finish(fields)

    def _start(
        self, event: Event, owner: str, claims: list[str], lock: EntityLock | None
    ) -> DeliveryStart:
        keys = [key("workspace", event.workspace_id), _done_key(owner), *claims]
        if lock is not None:
            keys.append(lock.name)
        reply = self._begin(
            keys=keys,
            args=[
                key("installation", ""),
                owner,
                COALESCE_WINDOW_SECONDS,
                len(claims),
                STATUS_UNINSTALLED,
                lock.token if lock is not None else "",
                self.entity_locks.lease_milliseconds,
            ],
        )
        return _delivery_start(reply)

    def read_done(self, owner: str) -> frozenset[str]:
        """Return the handlers marked done for ``owner``."""
        return frozenset(
            name.decode() for name in self.connection.smembers(_done_key(owner))
        )

    def finish(
        self, owner: str, *, handler: str | None, lock: EntityLock | None
    ) -> bool:
        """Mark ``handler`` done, if given, then release ``lock``, if given.

        Returns False when the lock's lease had run out, so it was not released.
        """
        keys = [_done_key(owner)]
        if lock is not None:
            keys.append(lock.name)
        released = self._finish(
            keys=keys,
            args=[
                handler or "",
                COMPLETION_MARK_TTL_SECONDS,
                lock.token if lock is not None else "",
            ],
        )
        return bool(released)


class DeliveryProgress:
    """One running delivery: its installation, claim, entity lock and done handlers."""

    def __init__(
        self,
        state: DeliveryState,
        owner: str,
        start: DeliveryStart,
        lock: EntityLock | None,
    ) -> None:
        self.installation = start.installation
        self.claimed = start.claimed
        self.locked = start.locked
        self._state = state
        self._owner = owner
        self._lock = lock
        self._done = set(start.done)
        self._unwritten_mark: str | None = None

    def take_busy_lock(self, fields: dict) -> bool:
        """Wait for an entity lock another delivery holds; False if it stays busy.

        Returns True at once when the lock is held already or none is needed.
        """
        if self._lock is None or self.locked:
            return True
        if not self._state.entity_locks.wait_for(self._lock):
            return False
        self.locked = True
        self._state.entity_locks.renew(self._lock, fields)
        self._done |= self._state.read_done(self._owner)
        return True

    def is_done(self, handler: str) -> bool:
        """Tell whether ``handler`` finished in this or an earlier attempt."""
        return handler in self._done

    def handler_done(self, handler: str, *, last: bool) -> None:
        """Mark ``handler`` done, at once unless it is the last handler to run.

        The last one's mark is written by ``finish``, in the same round trip
        as the release of the entity lock.
        """
        self._done.add(handler)
        if last:
            self._unwritten_mark = handler
        else:
            self._state.finish(self._owner, handler=handler, lock=None)

    def finish(self, fields: dict) -> None:
        """Write the last completion mark and release the entity lock."""
        lock = self._lock if self.locked else None
        if lock is not None:
            self._state.entity_locks.stop_renewing(lock)
        if lock is None and self._unwritten_mark is None:
            return
        released = self._state.finish(
            self._owner, handler=self._unwritten_mark, lock=lock
        )
        self._unwritten_mark = None
        self.locked = False
        if not released:
            logger.warning(
                "entity lock lease ran out before the handlers ended", extra=fields
            )


def keep_marks_of_dead_letter(job: Job) -> None:
    """Keep a delivery job's completion marks as long as its dead letter.

    Call it when RQ gives up on the job; the marks' usual lifetime is a day.
    """
    if job.func_name != queues.DELIVERY_JOB:
        return
    owner = (job.kwargs or {}).get("completion_key") or job.id
    try:
        job.connection.expire(_done_key(owner), DEAD_LETTER_MARK_TTL_SECONDS)
    except redis.RedisError as error:
        logger.warning(
            "could not extend the completion marks of a dead letter; a replay "
            "after a day runs every handler again: %s",
            error,
            extra={"job_id": job.id},
        )


def _done_key(owner: str) -> str:
    return key("delivery-done", owner)


def _delivery_start(reply: bytes) -> DeliveryStart:
    found = json.loads(reply)
    if "installation" not in found:
        return DeliveryStart(installation=None)
    return DeliveryStart(
        installation=installation_from_fields(found["installation"]),
        claimed=found.get("claimed", False),
        locked=found.get("locked", False),
        # cjson writes an empty Lua table, an empty SMEMBERS too, as {}.
        done=frozenset(found.get("done") or ()),
    )
