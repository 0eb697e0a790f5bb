"""Agent runs and their activities: records, request validation and status effects.

The rules follow Plane's `AgentRunActivityAPISerializer` and
`AgentRunActivity.update_run_status` (commercial edition, April 2026).
"""

import re
import uuid
from typing import Any

ACTIVITY_TYPES = ("action", "elicitation", "error", "prompt", "response", "thought")
SIGNALS = ("continue", "stop", "auth_request", "select")
# Activities that Plane keeps out of the comment thread.
EPHEMERAL_TYPES = ("thought", "action", "error")
# Statuses a run can go stale from. Plane's exact list is not known, so these are
# the two in which the agent is expected to be working.
STALE_FROM_STATUSES = ("created", "in_progress")
# Plane's AGENT_RUN_STALE_TIMEOUT_IN_MINS default.
STALE_AFTER_SECONDS = 5 * 60

_MENTION = re.compile(r"<mention-component\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'([\w-]+)\s*=\s*"([^"]*)"')


def mentioned_user_ids(comment_html: str) -> list[str]:
    """Return the ids of users mentioned in comment HTML, in order of appearance."""
    ids = []
    for tag in _MENTION.findall(comment_html):
        attributes = dict(_ATTRIBUTE.findall(tag))
        if attributes.get("entity_name") == "user_mention":
            ids.append(attributes.get("entity_identifier", ""))
    return ids


def new_run(
    *, comment: dict, root_comment_id: str, agent_user: str, timestamp: str
) -> dict:
    """Build a `comment_thread` run started by a comment that mentions the agent."""
    return {
        "id": str(uuid.uuid4()),
        "deleted_at": None,
        "created_at": timestamp,
        "updated_at": timestamp,
        "stopped_at": None,
        "started_at": timestamp,
        "ended_at": None,
        "external_link": None,
        "status": "created",
        "error_metadata": {},
        "type": "comment_thread",
        "created_by": None,
        "updated_by": None,
        "agent_user": agent_user,
        "comment": root_comment_id,
        "source_comment": comment["id"],
        "creator": comment["actor"],
        "stopped_by": None,
        "issue": comment["issue"],
        "workspace": comment["workspace"],
        "project": comment["project"],
    }


def new_activity(
    run: dict,
    *,
    activity_type: str,
    content: dict,
    actor: str,
    timestamp: str,
    comment_id: str | None,
    content_metadata: dict | None = None,
    signal: str = "continue",
    signal_metadata: dict | None = None,
) -> dict:
    """Build an activity of a run, in the key order of Plane's serializer."""
    return {
        "id": str(uuid.uuid4()),
        "deleted_at": None,
        "created_at": timestamp,
        "updated_at": timestamp,
        "content": content,
        "content_metadata": content_metadata or {},
        "ephemeral": activity_type in EPHEMERAL_TYPES,
        "signal": signal,
        "signal_metadata": signal_metadata or {},
        "type": activity_type,
        "created_by": None,
        "updated_by": None,
        "agent_run": run["id"],
        "comment": comment_id,
        "actor": actor,
        "project": run["project"],
        "workspace": run["workspace"],
    }


def validate_activity_request(body: Any) -> dict[str, list[str]]:
    """Return DRF-style field errors for an activity the agent posts, or {}."""
    if not isinstance(body, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary."]}

    activity_type = body.get("type")
    if activity_type not in ACTIVITY_TYPES:
        return {"type": [f'"{activity_type}" is not a valid choice.']}
    if activity_type == "prompt":
        return {"type": ["Agents cannot create prompt activities."]}

    errors = {}
    content_error = _content_error(activity_type, body.get("content"))
    if content_error:
        errors["content"] = [content_error]
    signal_error = _signal_error(body.get("signal", "continue"), body)
    if signal_error:
        errors["signal"] = [signal_error]
    return errors


def _content_error(activity_type: str, content: Any) -> str | None:
    if not isinstance(content, dict):
        return "Content must be an object."
    if content.get("type") != activity_type:
        return "content.type must match the activity type."
    if activity_type != "action":
        body = content.get("body")
        if not isinstance(body, str) or not body.strip():
            return "content.body must be a non-empty string."
        return None

    parameters = content.get("parameters")
    if not isinstance(content.get("action"), str):
        return "content.action must be a string."
    if not isinstance(parameters, dict) or not all(
        isinstance(key, str) and isinstance(value, str)
        for key, value in parameters.items()
    ):
        return "content.parameters must map strings to strings."
    return None


def _signal_error(signal: Any, body: dict) -> str | None:
    if signal not in SIGNALS:
        return f'"{signal}" is not a valid choice.'
    if signal != "auth_request":
        return None
    metadata = body.get("signal_metadata")
    url = metadata.get("url") if isinstance(metadata, dict) else None
    if not isinstance(url, str) or not url.startswith("https://"):
        return "auth_request needs signal_metadata.url starting with https://."
    return None


def apply_activity_effect(run: dict, activity: dict, timestamp: str) -> None:
    """Move the run's status as an activity of the agent does in Plane."""
    activity_type = activity["type"]
    if activity_type in ("thought", "action"):
        run["status"] = "in_progress"
    elif activity_type == "error":
        run["status"] = "failed"
        run["error_metadata"] = activity["signal_metadata"]
    elif activity_type == "elicitation":
        run["status"] = "awaiting"
    elif activity_type == "response":
        # Plane's code sets in_progress here, where its docs say "completed".
        run["status"] = "stopped" if run["status"] == "stopping" else "in_progress"
    run["updated_at"] = timestamp


def reply_html(body: str) -> str:
    """Return the HTML of the reply comment that a non-ephemeral activity creates."""
    return body if body.startswith("<") else f"<p>{body}</p>"
