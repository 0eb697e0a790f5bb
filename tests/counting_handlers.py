"""A handler that leaves one countable comment per delivery, for the chaos tests.

Load it with ``HANDLER_MODULES=tests.counting_handlers``. For each ``issue``
``created`` delivery it comments on the work item with ``external_source``
``COUNTING_SOURCE`` and ``external_id`` ``work-item:<id>``, so a second write
for the same work item gets Plane's 409 and no second row. Each run that
reaches Plane also appends the external id to ``RUNS_KEY`` in Redis, so a test
can tell a repeated run (a worker killed after the write) from a missing one.
"""

from plane.errors import HttpError
from plane.models.work_items import CreateWorkItemComment

from shared.events import Event
from shared.registry import on
from workers import runtime

COUNTING_SOURCE = "chaos-tests"
RUNS_KEY = "test:counting-handler:runs"
CONFLICT_STATUS = 409


def external_id_for(work_item_id: str) -> str:
    """Return the comment's external id for a work item's delivery."""
    return f"work-item:{work_item_id}"


@on("issue", "created")
def count_delivery(event: Event, plane) -> None:
    external_id = external_id_for(event.data["id"])
    comment = CreateWorkItemComment(
        comment_html=f"<p>Counted delivery {event.delivery_id}.</p>",
        access="INTERNAL",
        external_source=COUNTING_SOURCE,
        external_id=external_id,
    )
    try:
        plane.work_items.comments.create(
            event.workspace_slug, event.data["project"], event.data["id"], comment
        )
    except HttpError as error:
        if error.status_code != CONFLICT_STATUS:
            raise
    runtime.current().redis.rpush(RUNS_KEY, external_id)
