"""Run handlers once per real change, however many copies of it Plane sends.

Every worker shares the record in Redis: each signature of a delivery's changes
(``shared.events.signatures``) is claimed with ``SET NX`` by the job that saw it
first. A delivery whose signatures all belong to other jobs is a copy. A retry
of the same job finds its own claims and runs again. The claim runs inside the
script that starts a delivery (``workers.delivery_state``), with the keys and
the window given here.

NOTE: the same transition made again inside the window (state A to B, back to
A, and to B again within five minutes) shares the first one's signature, so its
handlers do not run. Plane sends no edit id in v1 that would tell the two apart.
"""

from shared.events import Event
from shared.events.signatures import change_signatures
from shared.redis_client import key

# Plane queues the copies of one edit as separate Celery tasks at the same
# moment, so they normally arrive seconds apart. Five minutes covers a queue
# backlog on either side.
COALESCE_WINDOW_SECONDS = 300


def change_keys(event: Event) -> list[str]:
    """Return the Redis key that claims each of the event's changes."""
    return [key("change", signature) for signature in change_signatures(event)]
