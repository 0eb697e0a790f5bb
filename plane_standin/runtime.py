"""The objects one stand-in's views share, reached through the Flask app."""

from dataclasses import dataclass, field

from flask import current_app

from .config import StandInConfig
from .delivery import Deliverer
from .ratelimit import SlidingWindowLimiter
from .recorder import Recorder
from .world import World

EXTENSION_KEY = "plane_standin"


@dataclass
class Runtime:
    """World, recorder, limiters and webhook deliverer of one stand-in."""

    config: StandInConfig
    world: World = field(init=False)
    recorder: Recorder = field(init=False)
    deliverer: Deliverer = field(init=False)
    token_limiter: SlidingWindowLimiter = field(init=False)
    api_limiter: SlidingWindowLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.world = World(self.config)
        self.recorder = Recorder()
        self.deliverer = Deliverer(self.world)
        self.token_limiter = SlidingWindowLimiter(
            self.config.token_rate_limit, self.config.clock
        )
        self.api_limiter = SlidingWindowLimiter(
            self.config.api_rate_limit, self.config.clock
        )


def current_runtime() -> Runtime:
    """Return the runtime of the app handling the current request."""
    return current_app.extensions[EXTENSION_KEY]
