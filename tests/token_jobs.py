"""Job functions the token race tests enqueue for real worker processes."""

import requests

from plane_standin import defaults
from workers import runtime


def call_plane_as_user(installation_id: str) -> int:
    """List comments with the installation's user token; return the HTTP status."""
    context = runtime.current()
    token = context.credentials(installation_id).user_token()
    response = requests.get(
        f"{context.settings.plane_base_url}/api/v1/workspaces/{defaults.WORKSPACE_SLUG}"
        f"/projects/{defaults.PROJECT_ID}/work-items/{defaults.WORK_ITEM_ID}/comments/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.status_code


def call_plane_as_bot(installation_id: str) -> int:
    """List comments through the installation's bot client; return the count."""
    plane = runtime.current().bot_client(installation_id)
    listed = plane.work_items.comments.list(
        defaults.WORKSPACE_SLUG, defaults.PROJECT_ID, defaults.WORK_ITEM_ID
    )
    return len(listed.results)
