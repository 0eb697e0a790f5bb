"""Plane's traps as sequences of deliveries, in every order, through the job."""

import itertools
import json
import logging
from pathlib import Path

import pytest

from handlers.mentions import reply_to_mention
from plane_standin import defaults, payloads
from shared.events import EventParseError
from tests.agent_harness import start_harness, stop_harness

FIXTURES = Path(__file__).parent / "fixtures" / "plane"
STATE_TODO = "e5f6a7b8-c9d0-4e1f-9a2b-3c4d5e6f7a8b"
STATE_DOING = "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f7a"
CYCLE_ID = "6e7f8091-a2b3-4c4d-9e5f-60718293a4b5"
ADA = defaults.INSTALLER_USER_ID
BO = defaults.MEMBER_USER_ID


@pytest.fixture
def harness(redis_url, redis_conn):
    running = start_harness(redis_url, redis_conn)
    yield running
    stop_harness(running)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def update(field: str, old, new, *, old_id=None, new_id=None, action="updated"):
    payload = fixture("issue.updated")
    payload["action"] = action
    payload["activity"].update(
        field=field,
        old_value=old,
        new_value=new,
        old_identifier=old_id,
        new_identifier=new_id,
    )
    return payload


def deliver(harness, *bodies: dict) -> None:
    for body in bodies:
        harness.receiver.received.append(_request(body))
    harness.perform_received()


def _request(body: dict):
    from plane_standin.receiver import ReceivedRequest

    delivery_id = f"d-{len(json.dumps(body))}-{id(body)}"
    return ReceivedRequest(
        "POST", "/", {"X-Plane-Delivery": delivery_id}, json.dumps(body).encode()
    )


def record(harness, calls: list, *args, **kwargs):
    def recorder(event, plane):
        calls.append((event.event, event.action, event.field))

    recorder.__qualname__ = f"recorder_{len(harness.registry)}"
    harness.registry.on(*args, **kwargs)(recorder)


def state_edit_copies() -> list[dict]:
    """One state change as the web app, the REST API and the activity path send it."""
    return [
        update("state_id", STATE_TODO, STATE_DOING),
        update("state", STATE_TODO, STATE_DOING),
        update("state", "Todo", "In Progress", old_id=STATE_TODO, new_id=STATE_DOING),
    ]


def cycle_sequence() -> list[dict]:
    created = fixture("issue.created")
    added = fixture("issue.created")
    added["activity"].update(field="cycles", new_value="Sprint 7")
    added["activity"]["new_identifier"] = CYCLE_ID
    removed = fixture("issue.deleted.removed-from-cycle")
    return [created, added, removed]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_cycle_traps_become_their_own_actions(harness, order):
    calls: list = []
    record(harness, calls, "issue", "created")
    record(harness, calls, "issue", "deleted")
    record(harness, calls, "issue", "added_to_cycle")
    record(harness, calls, "issue", "removed_from_cycle")
    sequence = cycle_sequence()

    deliver(harness, *(sequence[i] for i in order))

    assert sorted(calls) == [
        ("issue", "added_to_cycle", "cycles"),
        ("issue", "created", None),
        ("issue", "removed_from_cycle", "cycles"),
    ]


def test_real_deletion_is_still_a_deletion(harness):
    calls: list = []
    record(harness, calls, "issue", "deleted")

    deliver(harness, fixture("issue.deleted"))

    assert calls == [("issue", "deleted", None)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_state_edit_copies_run_field_handler_once(harness, order):
    calls: list = []
    record(harness, calls, "issue", "updated", field="state_id")
    copies = state_edit_copies()

    deliver(harness, *(copies[i] for i in order))

    assert calls == [("issue", "updated", "state")]


@pytest.mark.parametrize("activity_first", [True, False])
def test_assignee_added_runs_once(harness, activity_first):
    calls: list = []
    record(harness, calls, "work_item", "updated", field="assignees")
    raw = update("assignee_ids", [ADA], [ADA, BO])
    display = update("assignees", None, "Bo", new_id=BO)
    bodies = [display, raw] if activity_first else [raw, display]

    deliver(harness, *bodies)

    assert calls == [("issue", "updated", "assignees")]


def test_two_key_edit_runs_fields_once(harness):
    state_calls: list = []
    priority_calls: list = []
    any_update: list = []
    record(harness, state_calls, "issue", "updated", field="state")
    record(harness, priority_calls, "issue", "updated", field="priority")
    record(harness, any_update, "issue", "updated")
    priority = [
        update("priority", "medium", "high"),
        update("priority", "medium", "high"),
    ]

    deliver(harness, *state_edit_copies(), *priority)

    assert len(state_calls) == 1
    assert len(priority_calls) == 1
    assert len(any_update) == 2


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_state_changed_back_runs_twice(harness, order):
    calls: list = []
    record(harness, calls, "issue", "updated", field="state")
    bodies = [
        update("state_id", STATE_TODO, STATE_DOING),
        update("state", "Todo", "In Progress", old_id=STATE_TODO, new_id=STATE_DOING),
        update("state_id", STATE_DOING, STATE_TODO),
        update("state", "In Progress", "Todo", old_id=STATE_DOING, new_id=STATE_TODO),
    ]

    deliver(harness, *(bodies[i] for i in order))

    assert len(calls) == 2


def test_quick_edits_both_carry_final_data(harness):
    seen = []

    @harness.registry.on("issue", "updated", field="priority")
    def priority_changed(event, plane):
        seen.append((event.change.new, event.data["priority"]))

    first = update("priority", "medium", "high")
    second = update("priority", "high", "urgent")
    for body in (first, second):
        body["data"]["priority"] = "urgent"

    deliver(harness, second, first)

    assert sorted(seen) == [("high", "urgent"), ("urgent", "urgent")]


def test_comment_copies_reply_once(harness):
    calls: list = []
    record(harness, calls, "issue_comment", "created")
    activity_copy = fixture("issue_comment.created")
    activity_copy["activity"].update(field="description", new_value="<p>x</p>")

    deliver(harness, fixture("issue_comment.created"), activity_copy)

    assert calls == [("issue_comment", "created", None)]


def comment_with_mention(actor: dict) -> dict:
    payload = fixture("issue_comment.created")
    payload["data"]["comment_html"] = (
        f"<p>{payloads.mention_markup(defaults.BOT_USER_ID)} please check</p>"
    )
    payload["data"]["actor"] = actor["id"]
    payload["activity"]["actor"] = actor
    return payload


def test_person_mention_gets_reply(harness):
    harness.registry.on("issue_comment", "created", replaced_by_agent=True)(
        reply_to_mention
    )

    deliver(harness, comment_with_mention(defaults.MEMBER))

    assert len(harness.standin.comments_created()) == 1


def test_bot_own_comment_gets_no_reply(harness):
    harness.registry.on("issue_comment", "created", replaced_by_agent=True)(
        reply_to_mention
    )

    deliver(harness, comment_with_mention(harness.standin.world.bot))

    assert harness.standin.comments_created() == []


def test_unknown_action_reaches_event_and_catch_all(harness, caplog):
    exact: list = []
    whole_event: list = []
    everything: list = []
    record(harness, exact, "issue", "updated")
    record(harness, whole_event, "issue")
    record(harness, everything, "*")
    payload = fixture("issue.updated")
    payload["action"] = "archived"

    with caplog.at_level(logging.WARNING, logger="workers.delivery"):
        deliver(harness, payload)

    assert exact == []
    assert len(whole_event) == 1
    assert len(everything) == 1
    assert "not known to send" in caplog.text


def test_unfit_payload_is_logged_and_not_retried(harness, caplog):
    payload = fixture("issue.created")
    payload["data"]["project"] = "not-a-uuid"
    harness.receiver.received.append(_request(payload))
    (job,) = harness.enqueue_received()

    with caplog.at_level(logging.ERROR, logger="workers.delivery"):
        with pytest.raises(EventParseError) as raised:
            job.perform()

    assert raised.value.retryable is False
    assert "does not fit" in caplog.text
    assert "not-a-uuid" not in caplog.text


def test_v2_update_reaches_v1_field_handler(harness):
    calls: list = []
    record(harness, calls, "issue", "updated", field="state")
    payload = {
        "version": "v2",
        "delivery_id": "2a0d0510-9052-446e-a1c7-a704bbd68cba",
        "event_id": "9d508cd9-36c2-44a5-928d-7ee2f2a3b8a8",
        "entity_id": defaults.WORK_ITEM_ID,
        "entity_type": "issue",
        "event": "workitem.updated",
        "webhook_id": defaults.WEBHOOK_ID,
        "workspace_id": defaults.WORKSPACE_ID,
        "data": {"id": defaults.WORK_ITEM_ID, "state_id": STATE_DOING},
        "previous_attributes": {"state_id": STATE_TODO},
    }

    deliver(harness, payload)

    assert calls == [("issue", "updated", "state")]
