"""Reply when a comment mentions the app's bot user."""

import logging
import re

from plane.errors import HttpError
from plane.models.work_items import CreateWorkItemComment

from handlers.work_items import EXTERNAL_SOURCE
from shared.events import Event
from shared.registry import on

logger = logging.getLogger(__name__)

# Plane's editor writes a user mention as
# <mention-component entity_name="user_mention" entity_identifier="<user id>">.
_MENTION_PATTERN = re.compile(r"<mention-component\b[^>]*>", re.IGNORECASE)
_IDENTIFIER_PATTERN = re.compile(r'entity_identifier\s*=\s*"([^"]+)"')
_KIND_PATTERN = re.compile(r'entity_name\s*=\s*"user_mention"')


def mentioned_user_ids(comment_html: str) -> set[str]:
    """Return the ids of the users a comment's HTML mentions."""
    ids = set()
    for tag in _MENTION_PATTERN.findall(comment_html or ""):
        identifier = _IDENTIFIER_PATTERN.search(tag)
        if identifier and _KIND_PATTERN.search(tag):
            ids.add(identifier.group(1))
    return ids


@on("issue_comment", "created")
def reply_to_mention(event: Event, plane) -> None:
    bot_user_id = event.installation.bot_user_id
    if bot_user_id not in mentioned_user_ids(event.data.get("comment_html", "")):
        return

    comment_id = event.data["id"]
    reply = CreateWorkItemComment(
        comment_html="<p>Hi! I saw the mention and I am on it.</p>",
        access="INTERNAL",
        external_source=EXTERNAL_SOURCE,
        external_id=f"mention-reply:{comment_id}",
    )
    try:
        plane.work_items.comments.create(
            event.workspace_slug, event.data["project"], event.data["issue"], reply
        )
    except HttpError as error:
        if error.status_code != 409:
            raise
        logger.info(
            "mention reply already posted",
            extra={"delivery_id": event.delivery_id, "comment_id": comment_id},
        )
