"""marshmallow schemas for Plane's webhook envelopes and the entities they carry.

Every schema keeps keys it does not declare (``unknown = INCLUDE``), because
Plane adds keys between releases and between editions. Declared ids must be
UUIDs, because an id that is not one would send a handler's write to the wrong
place. Only ``id`` is required in an entity: a deletion carries ``{"id": ...}``
alone. Field lists follow Plane's public-API serializers (commercial edition,
April 2026).
"""

import re
import uuid
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, pre_load

# Plane sends UUIDs in this form. Matching it takes about a fifth of the time
# of building a uuid.UUID, which still decides for every other string.
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _is_uuid(value: str) -> bool:
    """Tell whether ``uuid.UUID`` accepts ``value``, quickly for the usual form."""
    if _CANONICAL_UUID.fullmatch(value):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class UUIDString(fields.Field):
    """A UUID, kept as the string Plane sent."""

    default_error_messages = {"invalid": "Not a valid UUID."}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> str:
        if not isinstance(value, str) or not _is_uuid(value):
            raise self.make_error("invalid")
        return value


class IdOrObject(fields.Field):
    """A related record: a UUID string, or an object whose ``id`` is a UUID.

    The webhook sends ``state`` and ``labels`` as objects, the intake payload and
    the v2 format as bare ids.
    """

    default_error_messages = {"invalid": "Not a UUID or an object with a UUID id."}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> Any:
        candidate = value.get("id") if isinstance(value, dict) else value
        if not isinstance(candidate, str) or not _is_uuid(candidate):
            raise self.make_error("invalid")
        return value


class EstimatePoint(fields.Field):
    """A work item's estimate: the id of an estimate point, or the value itself.

    Plane's current versions send the estimate point's UUID. Payloads from older
    versions, and the sample deliveries this project is tested with, carry a
    number such as 2.5.
    """

    default_error_messages = {"invalid": "Not a UUID or a number."}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int | float):
            return value
        if isinstance(value, str) and _is_uuid(value):
            return value
        raise self.make_error("invalid")


# Entity fields have no load default: a key Plane left out stays out, so a
# deletion's data is {"id": ...} and not a record full of nulls.
def _id() -> UUIDString:
    return UUIDString(allow_none=True)


def _text() -> fields.String:
    return fields.String(allow_none=True)


# Keys whose value may be anything (``activity.old_value``, ``project.network``,
# ``intake_issue.status``) are left undeclared. They pass through as unknown keys,
# because a declared Raw field would check nothing and still cost a field load.
class _Tolerant(Schema):
    class Meta:
        unknown = INCLUDE


class UserLiteSchema(_Tolerant):
    """A user as Plane's ``UserLiteSerializer`` renders it (``activity.actor``)."""

    id = UUIDString(required=True)
    display_name = _text()
    email = _text()
    first_name = _text()
    last_name = _text()


class ResourceActivitySchema(_Tolerant):
    """``activity`` of a project, work item, comment, cycle or module event."""

    field = _text()
    actor = fields.Nested(UserLiteSchema, allow_none=True)


class _Entity(_Tolerant):
    id = UUIDString(required=True)
    name = _text()
    created_at = _text()
    updated_at = _text()
    deleted_at = _text()
    created_by = _id()
    updated_by = _id()
    workspace = _id()


class ProjectSchema(_Entity):
    identifier = _text()
    project_lead = _id()
    default_assignee = _id()
    default_state = _id()
    estimate = _id()


class WorkItemSchema(_Entity):
    project = _id()
    state = IdOrObject(allow_none=True)
    labels = fields.List(IdOrObject(), allow_none=True)
    assignees = fields.List(IdOrObject(), allow_none=True)
    priority = _text()
    sequence_id = fields.Integer(allow_none=True)
    description_html = _text()
    description_stripped = _text()
    start_date = _text()
    target_date = _text()
    parent = _id()
    estimate_point = EstimatePoint(allow_none=True)
    type = _id()
    external_source = _text()
    external_id = _text()


class CommentSchema(_Entity):
    project = _id()
    issue = _id()
    actor = _id()
    parent = _id()
    comment_html = _text()
    comment_stripped = _text()
    access = _text()
    external_source = _text()
    external_id = _text()


class CycleSchema(_Entity):
    project = _id()
    owned_by = _id()
    start_date = _text()
    end_date = _text()


class ModuleSchema(_Entity):
    project = _id()
    lead = _id()
    members = fields.List(UUIDString(), allow_none=True)
    status = _text()
    start_date = _text()
    target_date = _text()


class IntakeIssueSchema(_Entity):
    issue = _id()
    intake = _id()
    project = _id()
    issue_detail = fields.Nested(WorkItemSchema, allow_none=True)


class AgentRunSchema(_Tolerant):
    """An agent run (``AgentRunWebhookPayloadSerializer``)."""

    id = UUIDString(required=True)
    status = _text()
    type = _text()
    agent_user = _id()
    comment = _id()
    source_comment = _id()
    creator = _id()
    issue = _id()
    project = _id()
    workspace = _id()


class AgentRunContentSchema(_Tolerant):
    type = _text()
    body = _text()


class AgentRunActivitySchema(_Tolerant):
    """One activity of an agent run, such as the user's prompt."""

    id = UUIDString(required=True)
    type = _text()
    content = fields.Nested(AgentRunContentSchema, allow_none=True)
    signal = fields.String(allow_none=True)
    signal_metadata = fields.Dict(allow_none=True)
    ephemeral = fields.Boolean(allow_none=True)
    agent_run = _id()
    comment = _id()
    actor = _id()
    created_at = _text()


class AgentRunCreatedSchema(_Tolerant):
    """``data`` of ``agent_run_create``."""

    agent_run = fields.Nested(AgentRunSchema, required=True)
    agent_user_id = _id()
    issue_id = _id()
    project_id = _id()
    comment_id = _id()


class AgentRunPromptedSchema(AgentRunCreatedSchema):
    """``data`` of ``agent_run_user_prompt``: the run and the user's prompt."""

    agent_run_activity = fields.Nested(AgentRunActivitySchema, required=True)


# Each schema is built once here and shared, because building one deep-copies
# its declared fields, which takes longer than a load. ``Schema.load`` stores
# nothing on the schema, so one instance serves every job.
ENTITY_SCHEMAS: dict[str, Schema] = {
    "project": ProjectSchema(),
    "issue": WorkItemSchema(),
    "issue_comment": CommentSchema(),
    "cycle": CycleSchema(),
    "module": ModuleSchema(),
    "intake_issue": IntakeIssueSchema(),
    "agent_run_create": AgentRunCreatedSchema(),
    "agent_run_user_prompt": AgentRunPromptedSchema(),
}
RESOURCE_ACTIVITY_SCHEMA = ResourceActivitySchema()


class V1EnvelopeSchema(_Tolerant):
    """Plane's v1 envelope; ``data`` and ``activity`` are checked separately."""

    event = fields.String(required=True)
    action = fields.String(required=True)
    webhook_id = fields.String(load_default=None, allow_none=True)
    workspace_id = UUIDString(required=True)
    data = fields.Dict(load_default=dict, allow_none=True)
    activity = fields.Dict(load_default=dict, allow_none=True)

    @pre_load
    def _action_as_text(self, payload: Any, **kwargs) -> Any:
        # Intake status changes send the raw status number as the action.
        if isinstance(payload, dict) and isinstance(payload.get("action"), int):
            payload = {**payload, "action": str(payload["action"])}
        return payload


class V2EnvelopeSchema(_Tolerant):
    """The v2 envelope that Plane's developer docs describe (``version: "v2"``)."""

    version = fields.String(required=True)
    event = fields.String(required=True)
    delivery_id = fields.String(load_default=None, allow_none=True)
    event_id = fields.String(load_default=None, allow_none=True)
    entity_id = _id()
    entity_type = _text()
    webhook_id = fields.String(load_default=None, allow_none=True)
    workspace_id = UUIDString(required=True)
    data = fields.Dict(load_default=dict, allow_none=True)
    previous_attributes = fields.Dict(load_default=dict, allow_none=True)


V1_ENVELOPE_SCHEMA = V1EnvelopeSchema()
V2_ENVELOPE_SCHEMA = V2EnvelopeSchema()


def load(schema: Schema, value: Any, *, where: str) -> dict:
    """Load ``value`` with ``schema``; name the failing part in the error."""
    try:
        return schema.load(value)
    except ValidationError as exc:
        raise ValidationError({where: exc.messages}) from exc
