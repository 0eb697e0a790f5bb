"""Comment once on every new work item."""

import logging

from plane.errors import HttpError
from plane.models.work_items import CreateWorkItemComment

from shared.events import Event
from shared.registry import on

logger = logging.getLogger(__name__)

# Plane refuses a second comment with the same external_source and external_id
# (HTTP 409), which makes a retried write safe.
EXTERNAL_SOURCE = "plane-app-backend"


@on("issue", "created")
def welcome_new_work_item(event: Event, plane) -> None:
    # The same event with activity.field set ("cycles", "modules", ...) means the
    # work item was added to something, not created.
    if event.field is not None:
        return

    work_item_id = event.data["id"]
    comment = CreateWorkItemComment(
        comment_html="<p>Thanks! This work item has been picked up by the app.</p>",
        access="INTERNAL",
        external_source=EXTERNAL_SOURCE,
        external_id=f"welcome:{work_item_id}",
    )
    try:
        plane.work_items.comments.create(
            event.workspace_slug, event.data["project"], work_item_id, comment
        )
    except HttpError as error:
        if error.status_code != 409:
            raise
        logger.info(
            "welcome comment already posted",
            extra={"delivery_id": event.delivery_id, "work_item_id": work_item_id},
        )
