"""A local stand-in for Plane: OAuth provider, REST API and webhook sender.

Tests and demos start a `StandIn` on 127.0.0.1 and point the app backend at it.
No product code imports this package.
"""

from .sender import Attempt, build_body, send_webhook
from .server import StandIn

__all__ = ["Attempt", "StandIn", "build_body", "send_webhook"]
