"""A request budget for calls to Plane, shared by every worker through Redis.

Plane allows 5,000 API requests a minute per access token and 300 token-endpoint
requests a minute per client IP (when the client authenticates with HTTP
Basic, as this app does). Counting in Redis lets many workers slow down
together instead of all running into 429. A call over budget raises
``PlaneRateLimitedError`` before it is sent, with the wait until the window
ends, and the delivery job defers itself for that long instead of sleeping.
Plane's own ``X-RateLimit-Remaining: 0`` (or a 429) blocks the budget until
its ``X-RateLimit-Reset``, whatever the local count is.
"""

import hashlib
import time

import redis
import requests

from shared.errors import PlaneRateLimitedError
from shared.redis_client import key

WINDOW_SECONDS = 60

_TAKE = """
local blocked_until = tonumber(redis.call('GET', KEYS[2]) or '0')
local now = tonumber(ARGV[3])
if blocked_until > now then
  return {0, tostring(blocked_until - now)}
end
local used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if used > tonumber(ARGV[1]) then
  return {0, tostring(redis.call('TTL', KEYS[1]))}
end
return {1, '0'}
"""


def fingerprint(token: str) -> str:
    """Return a short, non-reversible name for a token, for Redis keys."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


class RateBudget:
    """Requests per minute for one kind of call ("api" or "token")."""

    def __init__(self, connection: redis.Redis, *, kind: str, per_minute: int) -> None:
        self.redis = connection
        self.kind = kind
        self.per_minute = per_minute
        self._take = connection.register_script(_TAKE)

    def take(self, subject: str) -> None:
        """Count one request for ``subject``; raise when the budget is spent."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        allowed, wait = self._take(
            keys=[self._count_key(subject, window), self._blocked_key(subject)],
            args=[self.per_minute, WINDOW_SECONDS, now],
        )
        if not allowed:
            retry_after = max(1.0, float(wait))
            raise PlaneRateLimitedError(
                f"The {self.kind} request budget ({self.per_minute} a minute, shared "
                f"by all workers) is spent; retry in {retry_after:.0f} s.",
                retry_after=retry_after,
            )

    def learn_from(self, subject: str, response: requests.Response) -> None:
        """Block the budget until Plane's reset once Plane reports it spent."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        if response.status_code != 429 and remaining != "0":
            return
        reset_at = _reset_time(response)
        if reset_at is None:
            reset_at = time.time() + WINDOW_SECONDS
        seconds = max(1, int(reset_at - time.time()) + 1)
        self.redis.set(self._blocked_key(subject), repr(reset_at), ex=seconds)

    def _count_key(self, subject: str, window: int) -> str:
        return key("rate", self.kind, subject, str(window))

    def _blocked_key(self, subject: str) -> str:
        return key("rate", self.kind, subject, "blocked-until")


def _reset_time(response: requests.Response) -> float | None:
    """Return the Unix time Plane's budget resets, from its headers."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return time.time() + float(retry_after)
        except ValueError:
            pass
    reset = response.headers.get("X-RateLimit-Reset")
    if not reset:
        return None
    try:
        value = float(reset)
    except ValueError:
        return None
    # Plane sends the reset as a Unix time; small values are taken as seconds.
    return value if value > 1_000_000_000 else time.time() + value
