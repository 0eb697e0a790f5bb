"""A sliding-window request limiter, keyed like Plane's throttles."""

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateLimitState:
    """The outcome of one request against a limit, and its `X-RateLimit-*` values."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int

    def headers(self) -> dict[str, str]:
        """Return the headers Plane sends with its response."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


class SlidingWindowLimiter:
    """Allow `limit` requests per key in any 60 s window, as DRF's throttles do."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self._history: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str) -> RateLimitState:
        """Count one request for `key`, unless the key is over its limit."""
        now = self.clock()
        with self._lock:
            history = self._history[key]
            while history and history[0] <= now - WINDOW_SECONDS:
                history.popleft()

            allowed = len(history) < self.limit
            if allowed:
                history.append(now)
            # Plane's reset value is not documented. This one is the Unix time at
            # which the oldest counted request leaves the window.
            reset_at = int((history[0] if history else now) + WINDOW_SECONDS)
            return RateLimitState(
                allowed=allowed,
                limit=self.limit,
                remaining=max(0, self.limit - len(history)),
                reset_at=reset_at,
            )
