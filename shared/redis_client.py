"""Open the Redis connection every process shares for queues, locks and tokens."""

import redis

# A Redis that stops responding must fail a request quickly rather than hold a
# gunicorn worker past Plane's 30-second delivery timeout.
REDIS_SOCKET_TIMEOUT_SECONDS = 5
REDIS_HEALTH_CHECK_INTERVAL_SECONDS = 30

# Every key this project writes (besides RQ's own "rq:" keys) starts with this.
KEY_PREFIX = "planeapp:"


def connect(redis_url: str) -> redis.Redis:
    """Return a client for ``redis_url`` that returns bytes, as RQ expects."""
    return redis.Redis.from_url(
        redis_url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        health_check_interval=REDIS_HEALTH_CHECK_INTERVAL_SECONDS,
    )


def key(*parts: str) -> str:
    """Join ``parts`` into one of this project's Redis keys."""
    return KEY_PREFIX + ":".join(parts)
