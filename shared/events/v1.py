"""Turn a loaded v1 envelope into an ``Event``, undoing Plane's traps.

The traps, all from the commercial edition's activity path (and older CE):

* a work item added to a cycle or module arrives as ``issue``/``created`` with
  ``activity.field`` ``cycles`` or ``modules``, and its removal as
  ``issue``/``deleted`` with data ``{"id": ...}``. A real creation has
  ``field`` null and a real deletion has ``field`` ``issue``;
* other additions and removals on a work item (a link, an attachment, a
  relation) also arrive as ``created`` or ``deleted`` with their field set.
  Handlers see them as ``updated`` with that field;
* a cleared estimate arrives as ``removed`` with ``field`` ``estimate_<type>``;
  handlers see ``updated`` with field ``estimate_point``;
* intake status changes carry the raw status (-2 to 2) as the action; handlers
  see its name (``accepted``, ``rejected`` ...).
"""

from typing import Any

from shared.events import names
from shared.events.model import AgentPrompt, Change, Event
from shared.events.schemas import (
    ENTITY_SCHEMAS,
    RESOURCE_ACTIVITY_SCHEMA,
    V1_ENVELOPE_SCHEMA,
    load,
)

_CYCLE_OR_MODULE = {
    ("created", "cycles"): names.ADDED_TO_CYCLE,
    ("deleted", "cycles"): names.REMOVED_FROM_CYCLE,
    ("created", "modules"): names.ADDED_TO_MODULE,
    ("deleted", "modules"): names.REMOVED_FROM_MODULE,
}
# activity.field of a real work-item deletion on the activity path.
_WORK_ITEM_DELETED_FIELD = "issue"


def build_v1_event(payload: dict, *, delivery_id: str) -> Event:
    """Validate a v1 envelope and its entity; raises marshmallow's ValidationError."""
    envelope = load(V1_ENVELOPE_SCHEMA, payload, where="envelope")
    raw_event, raw_action = envelope["event"], envelope["action"]
    event_name = names.canonical_event(raw_event)
    data = envelope["data"] or {}
    activity = envelope["activity"] or {}

    schema = ENTITY_SCHEMAS.get(event_name)
    if schema is not None:
        data = load(schema, data, where="data")
    prompt = None
    if event_name in names.AGENT_EVENTS:
        prompt = _agent_prompt(data)
    else:
        activity = load(RESOURCE_ACTIVITY_SCHEMA, activity, where="activity")

    action, change = _interpret(event_name, raw_action, activity)
    return Event(
        event=event_name,
        action=action,
        workspace_id=envelope["workspace_id"],
        delivery_id=delivery_id,
        data=data,
        activity=activity,
        webhook_id=envelope["webhook_id"],
        payload=payload,
        raw_event=raw_event,
        raw_action=raw_action,
        change=change,
        changed_fields=frozenset([change.field]) if change else frozenset(),
        known_action=names.is_known_action(action),
        entity_id=_entity_id(data, prompt),
        prompt=prompt,
        actor_id=_actor_id(activity, prompt),
    )


def _interpret(
    event: str, raw_action: str, activity: dict
) -> tuple[str, Change | None]:
    """Return the action handlers see and the change, from Plane's action and field."""
    change = _change(event, activity)
    if event == "intake_issue" and raw_action in names.INTAKE_STATUSES:
        return names.INTAKE_STATUSES[raw_action], change
    if event == "issue" and change is not None:
        trap = _CYCLE_OR_MODULE.get((raw_action, change.field))
        if trap is not None:
            return trap, change
        if raw_action == "deleted" and change.raw_field == _WORK_ITEM_DELETED_FIELD:
            return "deleted", None
        if raw_action in ("created", "deleted", "removed"):
            return "updated", change
    if raw_action in ("created", "deleted"):
        # A comment's activity-path copy names a field; it is still a create.
        return raw_action, None
    return raw_action, change


def _change(event: str, activity: dict) -> Change | None:
    raw_field = activity.get("field")
    if not raw_field or event in names.AGENT_EVENTS:
        return None
    return Change(
        field=names.canonical_field(event, raw_field),
        raw_field=raw_field,
        old_value=activity.get("old_value"),
        new_value=activity.get("new_value"),
        old_identifier=activity.get("old_identifier"),
        new_identifier=activity.get("new_identifier"),
    )


def _agent_prompt(data: dict) -> AgentPrompt | None:
    activity = data.get("agent_run_activity")
    if activity is None:
        return None
    run = data["agent_run"]
    return AgentPrompt(
        run_id=run["id"],
        activity_id=activity["id"],
        body=(activity.get("content") or {}).get("body") or "",
        signal=activity.get("signal") or "continue",
        actor_id=activity.get("actor"),
        created_at=activity.get("created_at"),
        comment_id=data.get("comment_id") or activity.get("comment"),
        work_item_id=data.get("issue_id") or run.get("issue"),
        project_id=data.get("project_id") or run.get("project"),
    )


def _entity_id(data: dict, prompt: AgentPrompt | None) -> str | None:
    if prompt is not None:
        return prompt.activity_id
    run = data.get("agent_run")
    if isinstance(run, dict):
        return run.get("id")
    return data.get("id")


def _actor_id(activity: dict, prompt: AgentPrompt | None) -> str | None:
    if prompt is not None:
        return prompt.actor_id
    actor: Any = activity.get("actor")
    return actor.get("id") if isinstance(actor, dict) else None
