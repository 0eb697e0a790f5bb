"""Turn a v2 envelope (``version: "v2"``) into an ``Event`` with v1 names.

NOTE: no Plane code that sends v2 was available; this follows the developer
docs' description and examples, which show Python-isms such as ``"None"`` for
null and ``WebhookScope.ScopeChoices.WORK_ITEM_UPDATED`` as an event name. App
installations still receive v1 (commercial edition, April 2026).
"""

import re
from typing import Any

from shared.events import names
from shared.events.model import Change, Event
from shared.events.schemas import ENTITY_SCHEMAS, V2_ENVELOPE_SCHEMA, load

# "WebhookScope.ScopeChoices.WORK_ITEM_UPDATED" -> "workitem.updated".
_SCOPE_CHOICE = re.compile(r"^WebhookScope\.ScopeChoices\.([A-Z_]+)$")
_SCOPE_PREFIXES = {
    "WORK_ITEM_COMMENT_": "workitem.comment.",
    "WORK_ITEM_": "workitem.",
    "PROJECT_": "project.",
    "CYCLE_": "cycle.",
    "MODULE_": "module.",
}
# v2 sub-resources of a work item (workitem.link.created) reach handlers as an
# update of the work item with this field, as v1 sends them.
_WORK_ITEM_PARTS = {
    "link",
    "attachment",
    "vote",
    "relation",
    "dependency",
    "page_link",
    "reaction",
}
# v2 deletes put the whole record in previous_attributes and send data {}.
_PYTHON_NONE = "None"


def build_v2_event(payload: dict, *, delivery_id: str) -> Event:
    """Validate a v2 envelope; raises marshmallow's ValidationError."""
    envelope = load(V2_ENVELOPE_SCHEMA, payload, where="envelope")
    raw_event = envelope["event"]
    event_name, action, part = _names(raw_event)
    previous = _without_python_none(envelope["previous_attributes"] or {})
    data = _without_python_none(envelope["data"] or {})
    if action == "deleted" and not data:
        data = previous

    changed = frozenset(names.canonical_field(event_name, key) for key in previous)
    change = None
    if part is not None:
        action, change = "updated", Change(field=part, raw_field=part)
        changed = frozenset([part])
    elif action != "updated":
        changed = frozenset()
    elif len(previous) == 1:
        raw_field, old_value = next(iter(previous.items()))
        change = Change(
            field=names.canonical_field(event_name, raw_field),
            raw_field=raw_field,
            old_value=old_value,
            new_value=data.get(raw_field),
        )

    if event_name == "issue_comment" and isinstance(data.get("comment"), dict):
        # v2 sends the work item with the comment nested under "comment".
        data = data["comment"]
    schema = ENTITY_SCHEMAS.get(event_name)
    if schema is not None and part is None and data:
        data = load(schema, _v1_keys(data), where="data")
    return Event(
        event=event_name,
        action=action,
        workspace_id=envelope["workspace_id"],
        delivery_id=envelope["delivery_id"] or delivery_id,
        data=data,
        webhook_id=envelope["webhook_id"],
        payload=payload,
        raw_event=raw_event,
        raw_action=raw_event.rsplit(".", 1)[-1],
        version="v2",
        change=change,
        changed_fields=changed,
        known_action=names.is_known_action(action),
        entity_id=envelope.get("entity_id"),
        event_id=envelope["event_id"],
        previous_attributes=previous,
        actor_id=_actor_id(data),
    )


def _names(raw_event: str) -> tuple[str, str, str | None]:
    """Return (v1 event, action, work-item part or None) for a v2 event name."""
    scope = _SCOPE_CHOICE.match(raw_event)
    if scope:
        raw_event = _dotted_scope(scope.group(1))
    parts = raw_event.split(".")
    if len(parts) == 3 and parts[0] == "workitem" and parts[1] in _WORK_ITEM_PARTS:
        return "issue", parts[2], parts[1]
    event, action = names.split_dotted_name(raw_event)
    return event, action or "", None


def _dotted_scope(choice: str) -> str:
    for prefix, dotted in _SCOPE_PREFIXES.items():
        if choice.startswith(prefix):
            return dotted + choice.removeprefix(prefix).lower()
    return choice.lower()


def _without_python_none(record: dict) -> dict:
    return {k: (None if v == _PYTHON_NONE else v) for k, v in record.items()}


def _v1_keys(data: dict) -> dict:
    """Add v1 names for v2's ``<name>_id`` keys, so entity schemas see them."""
    renamed = dict(data)
    for key, value in data.items():
        if key.endswith("_id") and key != "external_id" and key[:-3] not in data:
            renamed[key[:-3]] = value
    return renamed


def _actor_id(data: dict) -> Any:
    # NOTE: v2 has no activity.actor. The docs' examples carry updated_by_id or
    # created_by_id, and a comment's actor_id; loop protection uses those.
    comment = data.get("comment")
    if isinstance(comment, dict) and comment.get("actor_id"):
        return comment["actor_id"]
    return data.get("updated_by_id") or data.get("created_by_id")
