"""Webhook events as handlers receive them: parsed, validated and named one way.

``parse_event`` takes the raw body bytes and touches no network or Redis. A v1
body is Plane's envelope ``{"event", "action", "webhook_id", "workspace_id",
"data", "activity"}``; a body with ``"version": "v2"`` goes through its own
parser. Both give an ``Event`` in the same vocabulary (see ``names``).
"""

import json

from marshmallow import ValidationError

from shared.errors import PlaneAppError
from shared.events.model import AgentPrompt, Change, Event
from shared.events.v1 import build_v1_event
from shared.events.v2 import build_v2_event

__all__ = ["AgentPrompt", "Change", "Event", "EventParseError", "parse_event"]

V2 = "v2"


class EventParseError(PlaneAppError):
    """A signed body is JSON but not a webhook Plane's handlers can be given.

    No later attempt can parse it, so the job is not retried and goes to the
    failed-job registry, where it can be inspected.
    """


def parse_event(body: bytes, *, delivery_id: str) -> Event:
    """Parse a raw webhook body into an ``Event``; raises ``EventParseError``."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise EventParseError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise EventParseError(
            f"body must be a JSON object, got {type(payload).__name__}"
        )

    try:
        if payload.get("version") == V2:
            return build_v2_event(payload, delivery_id=delivery_id)
        return build_v1_event(payload, delivery_id=delivery_id)
    except ValidationError as exc:
        raise EventParseError(
            f"not a Plane webhook we can route: {exc.messages}"
        ) from exc
