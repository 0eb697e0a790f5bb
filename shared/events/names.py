"""One vocabulary for Plane's event, action and field names.

Plane names the same thing differently depending on where a change came from:
the web app sends ``state_id`` where the REST API sends ``state``, the v2 format
uses ``workitem`` where v1 uses ``issue``. Everything here maps those spellings
to one canonical name, so handlers and the handler registry compare like with
like. The functions are pure lookups.
"""

# Canonical event names are Plane's v1 names.
EVENT_ALIASES = {
    "work_item": "issue",
    "workitem": "issue",
    "work_item_comment": "issue_comment",
    "workitem.comment": "issue_comment",
    "comment": "issue_comment",
    "intake": "intake_issue",
    "intake_work_item": "intake_issue",
}

# Plane's v1 actions. Intake items also use the raw intake status as the action.
PLANE_ACTIONS = ("created", "updated", "deleted", "removed")

# The actions handlers see after the traps are turned into what they mean.
ADDED_TO_CYCLE = "added_to_cycle"
REMOVED_FROM_CYCLE = "removed_from_cycle"
ADDED_TO_MODULE = "added_to_module"
REMOVED_FROM_MODULE = "removed_from_module"

# Plane's intake statuses (IntakeIssue.status), sent as the action of an
# intake_issue delivery, sometimes as a number.
INTAKE_STATUSES = {
    "-2": "pending",
    "-1": "rejected",
    "0": "snoozed",
    "1": "accepted",
    "2": "duplicate",
}

KNOWN_ACTIONS = frozenset(
    [
        *PLANE_ACTIONS,
        ADDED_TO_CYCLE,
        REMOVED_FROM_CYCLE,
        ADDED_TO_MODULE,
        REMOVED_FROM_MODULE,
        *INTAKE_STATUSES.values(),
    ]
)

AGENT_RUN_CREATE = "agent_run_create"
AGENT_RUN_USER_PROMPT = "agent_run_user_prompt"
AGENT_EVENTS = (AGENT_RUN_CREATE, AGENT_RUN_USER_PROMPT)

# Raw field name -> canonical name, per event. Web-app (IssueDetailSerializer)
# keys, v2 keys and the activity path's names all map to the REST API's names.
_WORK_ITEM_FIELDS = {
    "state_id": "state",
    "assignee_ids": "assignees",
    "label_ids": "labels",
    "parent_id": "parent",
    "estimate_point_id": "estimate_point",
    "type_id": "type",
    "project_id": "project",
    "cycle_id": "cycles",
    "cycle": "cycles",
    "module_ids": "modules",
    "module": "modules",
    "description_html": "description",
    "description_json": "description",
    "description_binary": "description",
    "assignee": "assignees",
    "label": "labels",
}
FIELD_ALIASES = {
    "issue": _WORK_ITEM_FIELDS,
    "intake_issue": _WORK_ITEM_FIELDS,
    "issue_comment": {
        "description": "comment_html",
        "comment": "comment_html",
        "comment_json": "comment_html",
        "comment_stripped": "comment_html",
    },
    "module": {"lead_id": "lead", "member_ids": "members"},
    "cycle": {"owned_by_id": "owned_by"},
    "project": {
        "project_lead_id": "project_lead",
        "default_assignee_id": "default_assignee",
    },
}

# The activity path names an estimate change "estimate_<estimate type>", such
# as estimate_points or estimate_categories.
_ESTIMATE_PREFIX = "estimate_"


def canonical_event(name: str) -> str:
    """Return Plane's v1 name for an event name or one of its aliases."""
    return EVENT_ALIASES.get(name, name)


def canonical_field(event: str, field: str | None) -> str | None:
    """Return the one name handlers use for a field Plane spells several ways."""
    if field is None:
        return None
    event = canonical_event(event)
    aliases = FIELD_ALIASES.get(event, {})
    if field in aliases:
        return aliases[field]
    if event in ("issue", "intake_issue") and field.startswith(_ESTIMATE_PREFIX):
        return "estimate_point"
    return field


def split_dotted_name(name: str) -> tuple[str, str | None]:
    """Split ``workitem.comment.updated`` into (``issue_comment``, ``updated``).

    A name without a dot is an event name alone, with no action.
    """
    if "." not in name or name in EVENT_ALIASES:
        return canonical_event(name), None
    event, action = name.rsplit(".", 1)
    return canonical_event(event), action


def is_known_action(action: str) -> bool:
    """Tell whether ``action`` is one handlers are routed on by name."""
    return action in KNOWN_ACTIONS
