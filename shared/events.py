"""Webhook events as handlers receive them.

A v1 body is Plane's envelope ``{"event", "action", "webhook_id", "workspace_id",
"data", "activity"}``. Parsing is tolerant where Plane varies (unknown keys are
kept, ``activity`` may be absent) and strict where a wrong value would route an
event to the wrong place (``workspace_id`` must be a UUID).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, pre_load

from shared.errors import PlaneAppError
from shared.installations import Installation


class EventParseError(PlaneAppError):
    """A signed body is JSON but not a webhook envelope we can route."""


class _EnvelopeSchema(Schema):
    class Meta:
        unknown = INCLUDE

    event = fields.String(required=True)
    action = fields.String(required=True)
    webhook_id = fields.String(load_default=None, allow_none=True)
    workspace_id = fields.UUID(required=True)
    data = fields.Dict(load_default=dict, allow_none=True)
    activity = fields.Dict(load_default=dict, allow_none=True)

    @pre_load
    def _normalize(self, payload: Any, **kwargs) -> Any:
        if not isinstance(payload, dict):
            return payload
        payload = dict(payload)
        if payload.get("version") == "v2" and "." in str(payload.get("event", "")):
            # NOTE: v2 dotted names are split but not yet mapped to v1 names
            # ("workitem" stays "workitem", not "issue"); Plane sends v1 to apps.
            payload["event"], payload["action"] = payload["event"].rsplit(".", 1)
        if isinstance(payload.get("action"), int | float):
            # Intake status changes send the raw status number as the action.
            payload["action"] = str(payload["action"])
        return payload


@dataclass(frozen=True)
class Event:
    """One webhook delivery, parsed."""

    event: str
    action: str
    workspace_id: str
    delivery_id: str
    data: dict = field(default_factory=dict)
    activity: dict = field(default_factory=dict)
    webhook_id: str | None = None
    payload: dict = field(default_factory=dict, repr=False)
    installation: Installation | None = None

    @property
    def workspace_slug(self) -> str:
        """Slug of the workspace the event came from, for API paths."""
        if self.installation is None:
            raise RuntimeError("the event has no installation attached yet")
        return self.installation.workspace_slug

    @property
    def actor_id(self) -> str | None:
        """Id of the user whose change caused the event, when Plane names one."""
        actor = self.activity.get("actor")
        return actor.get("id") if isinstance(actor, dict) else None

    @property
    def field(self) -> str | None:
        """``activity.field``: which attribute changed, or None for a plain create."""
        return self.activity.get("field")


def parse_event(body: bytes, *, delivery_id: str) -> Event:
    """Parse a raw webhook body into an ``Event``; raises ``EventParseError``."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise EventParseError(f"body is not valid JSON: {exc}") from exc

    try:
        loaded = _EnvelopeSchema().load(payload)
    except ValidationError as exc:
        raise EventParseError(f"not a Plane webhook envelope: {exc.messages}") from exc

    return Event(
        event=loaded["event"],
        action=loaded["action"],
        workspace_id=str(loaded["workspace_id"]),
        delivery_id=delivery_id,
        data=loaded["data"] or {},
        activity=loaded["activity"] or {},
        webhook_id=loaded["webhook_id"],
        payload=payload,
    )
