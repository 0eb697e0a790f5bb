"""Reply when a comment mentions the app's bot user."""

import re

from handlers._comments import comment_once
from shared.events import Event
from shared.registry import on

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


# With PLANE_APP_MENTIONS on, Plane also starts an agent run for the mention and
# the agent handler (handlers.agent) replies to it, so this reply stays silent.
@on("issue_comment", "created", replaced_by_agent=True)
def reply_to_mention(event: Event, plane) -> None:
    bot_user_id = event.installation.bot_user_id
    if bot_user_id not in mentioned_user_ids(event.data.get("comment_html", "")):
        return

    comment_once(
        event,
        plane,
        project_id=event.data["project"],
        work_item_id=event.data["issue"],
        html="<p>Hi! I saw the mention and I am on it.</p>",
        external_id=f"mention-reply:{event.data['id']}",
    )
