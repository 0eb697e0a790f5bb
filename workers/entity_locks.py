"""Entity locks, so handlers for one entity run one delivery at a time.

A lock is the Redis key ``planeapp:lock:entity:<workspace>:<event>:<entity id>``
holding its holder's random token, with a short lease. The delivery job takes a
free lock in the script that claims its changes (``workers.delivery_state``)
and waits here only when another delivery holds it. One thread per worker
process renews the lease of every lock the process holds, so a killed worker
blocks an entity for at most ENTITY_LOCK_LEASE_SECONDS.
"""

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass

import redis

from shared.events import Event
from shared.events.names import AGENT_EVENTS
from shared.redis_client import key

logger = logging.getLogger(__name__)

# The lease is renewed every ENTITY_LOCK_RENEW_SECONDS while the handlers run.
# A delivery that waits longer than ENTITY_LOCK_WAIT_SECONDS for a busy entity
# goes back to RQ's retry schedule.
ENTITY_LOCK_LEASE_SECONDS = 20
ENTITY_LOCK_RENEW_SECONDS = 5
ENTITY_LOCK_WAIT_SECONDS = 10
# Pause between attempts while waiting for a busy entity (redis-py's default).
ENTITY_LOCK_POLL_SECONDS = 0.1
TOKEN_BYTES = 16

# Extends the lease only while the key still holds this holder's token, so a
# lock that ran out and was taken by another delivery is left alone.
_RENEW_IF_HELD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class EntityLock:
    """One delivery's lock on one entity: the Redis key and the holder's token."""

    name: str
    token: str


class EntityLocks:
    """This process's entity locks: the wait for a busy one, and lease renewal."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        lease_seconds: float = ENTITY_LOCK_LEASE_SECONDS,
        renew_seconds: float = ENTITY_LOCK_RENEW_SECONDS,
        wait_seconds: float = ENTITY_LOCK_WAIT_SECONDS,
    ) -> None:
        self.connection = connection
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.wait_seconds = wait_seconds
        self._renew = connection.register_script(_RENEW_IF_HELD)
        # Locks whose lease this process renews, with their deliveries' log fields.
        self._renewing: dict[EntityLock, dict] = {}
        self._changed = threading.Condition()
        self._renewer_pid: int | None = None

    @property
    def lease_milliseconds(self) -> int:
        """The lease in milliseconds, as SET PX and PEXPIRE take it."""
        return round(self.lease_seconds * 1000)

    def lock_for(self, event: Event) -> EntityLock | None:
        """Return a new lock on the event's entity, or None when it needs none.

        Agent events are exempt, so a stop request reaches the run it stops.
        """
        if event.entity_id is None or event.event in AGENT_EVENTS:
            return None
        return EntityLock(
            key("lock", "entity", event.workspace_id, event.event, event.entity_id),
            secrets.token_hex(TOKEN_BYTES),
        )

    def wait_for(self, lock: EntityLock) -> bool:
        """Wait up to ``wait_seconds`` for a busy lock; return whether it was taken."""
        busy = self.connection.lock(
            lock.name,
            timeout=self.lease_seconds,
            sleep=ENTITY_LOCK_POLL_SECONDS,
            blocking_timeout=self.wait_seconds,
            thread_local=False,
        )
        return busy.acquire(token=lock.token)

    def renew(self, lock: EntityLock, fields: dict) -> None:
        """Renew the lease of a lock just taken until ``stop_renewing`` is called."""
        with self._changed:
            self._renewing[lock] = fields
            self._start_renewer_once()
            self._changed.notify()

    def stop_renewing(self, lock: EntityLock) -> None:
        """Leave the lease of ``lock`` to run out, or to the release that follows."""
        with self._changed:
            self._renewing.pop(lock, None)

    def _start_renewer_once(self) -> None:
        """Start this process's renewer thread (again after a fork, which drops it)."""
        if self._renewer_pid == os.getpid():
            return
        self._renewer_pid = os.getpid()
        threading.Thread(
            target=self._renew_forever, name="entity-lock-renewer", daemon=True
        ).start()

    def _renew_forever(self) -> None:
        while True:
            with self._changed:
                while not self._renewing:
                    self._changed.wait()
            time.sleep(self.renew_seconds)
            self._renew_held()

    def _renew_held(self) -> None:
        with self._changed:
            held = list(self._renewing.items())
        for lock, fields in held:
            try:
                renewed = self._renew(
                    keys=[lock.name], args=[lock.token, self.lease_milliseconds]
                )
            except redis.RedisError as error:
                # The lease outlasts a few failed renewals, so try again next round.
                logger.warning("entity lock renewal failed: %s", error, extra=fields)
                continue
            if not renewed and self._forget(lock):
                logger.warning(
                    "entity lock renewal failed: the lease ran out", extra=fields
                )

    def _forget(self, lock: EntityLock) -> bool:
        """Stop renewing ``lock``; return False if its delivery released it first."""
        with self._changed:
            return self._renewing.pop(lock, None) is not None
