"""Post a comment once, however often a handler runs.

NOTE: Plane checks ``external_source``/``external_id`` with a lookup before
the insert, not a database constraint, so two requests at the same instant
could both create a comment; retries, which come seconds apart, cannot.
"""

import logging

from plane.errors import HttpError
from plane.models.work_items import CreateWorkItemComment

from shared.events import Event

logger = logging.getLogger(__name__)

# Plane refuses a second comment with the same external_source and external_id
# (HTTP 409), which makes a retried write safe.
EXTERNAL_SOURCE = "plane-app-backend"


def comment_once(
    event: Event,
    plane,
    *,
    project_id: str,
    work_item_id: str,
    html: str,
    external_id: str,
) -> None:
    """Comment as the bot unless a comment with ``external_id`` already exists."""
    comment = CreateWorkItemComment(
        comment_html=html,
        access="INTERNAL",
        external_source=EXTERNAL_SOURCE,
        external_id=external_id,
    )
    try:
        plane.work_items.comments.create(
            event.workspace_slug, project_id, work_item_id, comment
        )
    except HttpError as error:
        if error.status_code != 409:
            raise
        logger.info(
            "comment already posted",
            extra={"delivery_id": event.delivery_id, "external_id": external_id},
        )
