"""Schedule the job that checks whether Plane really uninstalled an installation.

Two things suggest an uninstall: Plane's unsigned notice, and a 5xx when the
bot token is re-minted (what Plane most likely returns for an uninstalled
installation).
Neither is proof, so both only schedule ``workers.install.confirm_uninstall``.
"""

import logging

import redis

from shared import queues
from shared.redis_client import key

logger = logging.getLogger(__name__)

# At most one check per installation starts in this window, however many
# signals arrive, because each check calls Plane's token endpoint. A signal
# inside the window schedules one more check at its end, so a forged notice
# cannot hide a real uninstall that follows it.
UNINSTALL_CHECK_INTERVAL_SECONDS = 300
# Network failures while checking are retried after these waits.
UNINSTALL_CHECK_RETRY_INTERVALS_SECONDS = [30, 120, 600]


def schedule_uninstall_check(
    connection: redis.Redis, installation_id: str, *, reason: str
) -> str | None:
    """Enqueue a check now, or once at the end of the current window.

    Returns the job id, or None when a check is already scheduled.
    """
    fields = {"installation_id": installation_id, "reason": reason}
    window_key = key("uninstall-check", installation_id)
    follow_up_key = key("uninstall-check-follow-up", installation_id)
    window = UNINSTALL_CHECK_INTERVAL_SECONDS

    if connection.set(window_key, "1", nx=True, ex=window):
        delay = None
    elif connection.set(follow_up_key, "1", nx=True, ex=window):
        delay = max(1, connection.ttl(window_key))
    else:
        logger.info("uninstall check already scheduled", extra=fields)
        return None

    job = queues.enqueue(
        queues.get_queue(queues.INSTALL_QUEUE, connection),
        queues.UNINSTALL_CHECK_JOB,
        args=(installation_id,),
        description=f"confirm uninstall of {installation_id}",
        job_timeout=queues.INSTALL_JOB_TIMEOUT_SECONDS,
        retry_intervals=UNINSTALL_CHECK_RETRY_INTERVALS_SECONDS,
        delay_seconds=delay,
    )
    logger.info(
        "uninstall check enqueued",
        extra={**fields, "job_id": job.id, "delay_seconds": delay or 0},
    )
    return job.id
