"""Webhook bodies in Plane's v1 envelope, built from the recorded sample payloads.

The samples live in `tests/fixtures/plane/` at the repository root. Builders take the
stand-in's own records (work items, comments, agent runs) and wrap them the way
Plane's `webhook_activity` does: `event`, `action`, `webhook_id`, `workspace_id`,
`data`, `activity`, in that key order.
"""

import html
import json
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from . import defaults

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "plane"

# The fixture Plane sends without a signature or X-Plane-* headers.
UNINSTALL_FIXTURE = "app.uninstalled"

_TAG = re.compile(r"<[^>]+>")


@cache
def _fixture_text(name: str) -> str:
    path = FIXTURE_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(
            f"No fixture named {name!r} in {FIXTURE_DIR}. "
            f"Known fixtures: {', '.join(fixture_names())}."
        )
    return path.read_text(encoding="utf-8")


def fixture(name: str) -> Any:
    """Load a fixture by name (`"issue.updated"`), as a fresh copy on every call."""
    return json.loads(_fixture_text(name.removesuffix(".json")))


def fixture_names() -> list[str]:
    """List the names of the fixture files, without the `.json` suffix."""
    return sorted(path.stem for path in FIXTURE_DIR.glob("*.json"))


def rebind_ids(payload: Any, replacements: dict[str, str]) -> Any:
    """Replace default ids (workspace, installation, ...) by this world's ids."""
    text = json.dumps(payload)
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


def format_timestamp(seconds: float) -> str:
    """Format a Unix time as Plane renders datetimes: ISO 8601, microseconds, `Z`."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def strip_html(markup: str) -> str:
    """Return the text of an HTML fragment, as Plane stores it in `comment_stripped`."""
    return html.unescape(_TAG.sub("", markup)).strip()


def mention_markup(user_id: str) -> str:
    """Return the editor markup of a user mention, as Plane stores it in HTML."""
    return (
        '<mention-component entity_name="user_mention" '
        f'entity_identifier="{user_id}"></mention-component>'
    )


def envelope(
    event: str,
    action: str,
    data: dict,
    activity: dict,
    *,
    workspace_id: str,
    webhook_id: str = defaults.WEBHOOK_ID,
) -> dict:
    """Wrap `data` and `activity` in the v1 webhook envelope."""
    return {
        "event": event,
        "action": action,
        "webhook_id": webhook_id,
        "workspace_id": workspace_id,
        "data": data,
        "activity": activity,
    }


def resource_activity(
    actor: dict,
    *,
    field: str | None = None,
    old_value: Any = None,
    new_value: Any = None,
) -> dict:
    """Build the `activity` of a resource event as `model_activity` sends it."""
    return {
        "field": field,
        "new_value": new_value,
        "old_value": old_value,
        "actor": actor,
        "old_identifier": None,
        "new_identifier": None,
    }


def work_item_created(
    work_item: dict,
    actor: dict = defaults.INSTALLER,
    *,
    webhook_id: str = defaults.WEBHOOK_ID,
) -> dict:
    """Build the `issue`/`created` webhook body for a work item."""
    return envelope(
        "issue",
        "created",
        work_item,
        resource_activity(actor),
        workspace_id=work_item["workspace"],
        webhook_id=webhook_id,
    )


def comment_created(
    comment: dict, actor: dict, *, webhook_id: str = defaults.WEBHOOK_ID
) -> dict:
    """Build the `issue_comment`/`created` webhook body for a comment."""
    return envelope(
        "issue_comment",
        "created",
        comment,
        resource_activity(actor),
        workspace_id=comment["workspace"],
        webhook_id=webhook_id,
    )


def comment_updated(
    comment: dict,
    actor: dict,
    *,
    field: str,
    old_value: Any,
    new_value: Any,
    webhook_id: str = defaults.WEBHOOK_ID,
) -> dict:
    """Build the `issue_comment`/`updated` webhook body for one changed field."""
    activity = resource_activity(
        actor, field=field, old_value=old_value, new_value=new_value
    )
    return envelope(
        "issue_comment",
        "updated",
        comment,
        activity,
        workspace_id=comment["workspace"],
        webhook_id=webhook_id,
    )


def agent_run_created(
    run: dict, *, client_id: str, webhook_id: str = defaults.WEBHOOK_ID
) -> dict:
    """Build the `agent_run_create` body. `data` and `activity` hold the same dict."""
    detail = {
        "action": "created",
        "agent_run": run,
        "agent_user_id": run["agent_user"],
        "app_client_id": client_id,
        "issue_id": run["issue"],
        "project_id": run["project"],
        "workspace_id": run["workspace"],
        "comment_id": run["comment"],
        "type": "agent_run",
    }
    return envelope(
        "agent_run_create",
        "created",
        detail,
        detail,
        workspace_id=run["workspace"],
        webhook_id=webhook_id,
    )


def agent_run_prompted(
    activity: dict,
    run: dict,
    *,
    client_id: str,
    webhook_id: str = defaults.WEBHOOK_ID,
) -> dict:
    """Build the `agent_run_user_prompt` body for a prompt activity of a run."""
    detail = {
        "action": "prompted",
        "agent_run_activity": activity,
        "agent_run": run,
        "agent_user_id": run["agent_user"],
        "app_client_id": client_id,
        "comment_id": activity["comment"],
        "issue_id": run["issue"],
        "project_id": run["project"],
        "workspace_id": run["workspace"],
        "type": "agent_run_activity",
    }
    return envelope(
        "agent_run_user_prompt",
        "created",
        detail,
        detail,
        workspace_id=run["workspace"],
        webhook_id=webhook_id,
    )


def uninstall_notice(
    *, workspace_id: str, application_id: str, installation_id: str
) -> dict:
    """Build the unsigned notice Plane posts after an uninstall."""
    return {
        "workspace_id": workspace_id,
        "application_id": application_id,
        "app_installation_id": installation_id,
        "status": "uninstalled",
    }
