"""Comment once on every new work item."""

from handlers._comments import comment_once
from shared.events import Event
from shared.registry import on


@on("issue", "created")
def welcome_new_work_item(event: Event, plane) -> None:
    # The same event with activity.field set ("cycles", "modules", ...) means the
    # work item was added to something, not created.
    if event.field is not None:
        return

    comment_once(
        event,
        plane,
        project_id=event.data["project"],
        work_item_id=event.data["id"],
        html="<p>Thanks! This work item has been picked up by the app.</p>",
        external_id=f"welcome:{event.data['id']}",
    )
