"""Run queued RQ jobs inside the test process, for tests that need no worker process."""

import threading

import redis
from rq import Queue

from shared import queues
from workers.inbox import InboxMover


def perform_next_job(
    connection: redis.Redis, queue_names: list[str], timeout: int = 10
):
    """Take the next job from ``queue_names`` and run it; return the job, or None.

    Deliveries the ingress accepted are first moved from the inbox to the
    delivery queue, as the worker pool's inbox mover does.
    """
    move_inbox(connection)
    found = Queue.dequeue_any(
        [queues.get_queue(name, connection) for name in queue_names],
        timeout,
        connection=connection,
        serializer=queues.SERIALIZER,
    )
    if found is None:
        return None
    job, _ = found
    job.perform()
    return job


def move_inbox(connection: redis.Redis) -> int:
    """Turn every accepted delivery in the inbox into a job; return how many."""
    mover = InboxMover(connection)
    moved = 0
    while batch := mover.move_batch():
        moved += batch
    return moved


class JobThread(threading.Thread):
    """Perform up to ``count`` jobs from ``queue_names`` in the background."""

    def __init__(self, connection: redis.Redis, queue_names: list[str], count: int = 1):
        super().__init__(daemon=True)
        self.connection = connection
        self.queue_names = queue_names
        self.count = count
        self.errors: list[BaseException] = []

    def run(self) -> None:
        for _ in range(self.count):
            try:
                if perform_next_job(self.connection, self.queue_names) is None:
                    return
            except Exception as error:  # surfaced by the test through self.errors
                self.errors.append(error)
