"""Parsing Plane's webhook bodies into typed events, odd variants included."""

import json
from pathlib import Path

import pytest

from shared.events import EventParseError, parse_event

FIXTURES = Path(__file__).parent / "fixtures" / "plane"
WORK_ITEM_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
CYCLE_ID = "6e7f8091-a2b3-4c4d-9e5f-60718293a4b5"

# fixture: (event, action, field)
EXPECTED = {
    "agent_run_create": ("agent_run_create", "created", None),
    "agent_run_user_prompt": ("agent_run_user_prompt", "created", None),
    "cycle.created": ("cycle", "created", None),
    "cycle.updated": ("cycle", "updated", "name"),
    "issue.created": ("issue", "created", None),
    "issue.deleted": ("issue", "deleted", None),
    "issue.deleted.removed-from-cycle": ("issue", "removed_from_cycle", "cycles"),
    "issue.updated": ("issue", "updated", "priority"),
    "issue.updated.state-activity-path": ("issue", "updated", "state"),
    "issue_comment.created": ("issue_comment", "created", None),
    "issue_comment.deleted": ("issue_comment", "deleted", None),
    "issue_comment.updated": ("issue_comment", "updated", "comment_html"),
    "module.created": ("module", "created", None),
    "module.updated": ("module", "updated", "status"),
    "project.created": ("project", "created", None),
    "project.deleted": ("project", "deleted", None),
    "project.updated": ("project", "updated", "name"),
}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def parse(payload: dict):
    return parse_event(json.dumps(payload).encode(), delivery_id="d-1")


def test_every_webhook_fixture_is_listed():
    names = {
        path.stem
        for path in FIXTURES.glob("*.json")
        if not path.stem.startswith(("oauth.", "webhook-signature", "app."))
    }

    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_typed_event(name):
    event = parse(fixture(name))

    assert (event.event, event.action, event.field) == EXPECTED[name]
    assert event.workspace_id == fixture(name)["workspace_id"]
    assert event.known_action


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_entity_id_is_set(name):
    assert parse(fixture(name)).entity_id is not None


def test_state_change_prefers_identifiers():
    change = parse(fixture("issue.updated.state-activity-path")).change

    assert change.old == "e5f6a7b8-c9d0-4e1f-9a2b-3c4d5e6f7a8b"
    assert change.new == "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f7a"
    assert change.new_value == "In Progress"


def test_removed_from_cycle_names_the_cycle():
    event = parse(fixture("issue.deleted.removed-from-cycle"))

    assert event.change.old == CYCLE_ID
    assert event.data == {"id": WORK_ITEM_ID}


def test_added_to_cycle_is_not_a_creation():
    payload = fixture("issue.created")
    payload["activity"].update(field="cycles", new_identifier=CYCLE_ID)

    event = parse(payload)

    assert event.action == "added_to_cycle"
    assert event.change.new == CYCLE_ID


def test_added_to_module_is_not_a_creation():
    payload = fixture("issue.created")
    payload["activity"]["field"] = "modules"

    assert parse(payload).action == "added_to_module"


def test_removed_from_module_is_not_a_deletion():
    payload = fixture("issue.deleted")
    payload["activity"]["field"] = "modules"

    assert parse(payload).action == "removed_from_module"


def test_link_added_is_an_update():
    payload = fixture("issue.created")
    payload["activity"].update(field="link", new_value="https://example.com")

    event = parse(payload)

    assert (event.action, event.field) == ("updated", "link")


def test_cleared_estimate_is_an_update():
    payload = fixture("issue.updated")
    payload["action"] = "removed"
    payload["activity"].update(field="estimate_points", new_value=None)

    event = parse(payload)

    assert (event.action, event.field) == ("updated", "estimate_point")


@pytest.mark.parametrize(
    ("raw", "named"),
    [(-2, "pending"), ("-1", "rejected"), (0, "snoozed"), (1, "accepted")],
)
def test_intake_status_action_is_named(raw, named):
    payload = fixture("issue.updated")
    payload.update(event="intake_issue", action=raw, data={"id": WORK_ITEM_ID})

    assert parse(payload).action == named


def test_web_field_name_is_canonical():
    payload = fixture("issue.updated")
    payload["activity"]["field"] = "state_id"

    event = parse(payload)

    assert event.field == "state"
    assert event.change.raw_field == "state_id"


def test_unknown_action_is_kept_and_flagged():
    payload = fixture("issue.updated")
    payload["action"] = "archived"

    event = parse(payload)

    assert event.action == "archived"
    assert not event.known_action


def test_unknown_keys_are_kept():
    payload = fixture("issue.created")
    payload["data"]["brand_new_key"] = {"nested": True}
    payload["future_envelope_key"] = 1

    event = parse(payload)

    assert event.data["brand_new_key"] == {"nested": True}
    assert event.payload["future_envelope_key"] == 1


def test_missing_optional_keys_are_tolerated():
    payload = fixture("issue.created")
    del payload["webhook_id"]
    del payload["activity"]
    payload["data"] = {"id": WORK_ITEM_ID, "name": "Bare"}

    event = parse(payload)

    assert event.webhook_id is None
    assert event.actor_id is None
    assert "labels" not in event.data


def test_nulls_are_tolerated():
    payload = fixture("issue.created")
    payload["data"].update(state=None, labels=None, assignees=None, project=None)
    payload["activity"] = None

    event = parse(payload)

    assert event.data["state"] is None
    assert event.change is None


def test_label_ids_are_accepted_like_objects():
    payload = fixture("issue.created")
    payload["data"]["labels"] = ["f6a7b8c9-d0e1-4f2a-8b3c-4d5e6f7a8b9c"]

    assert parse(payload).data["labels"] == ["f6a7b8c9-d0e1-4f2a-8b3c-4d5e6f7a8b9c"]


def test_non_ascii_name_survives():
    payload = fixture("issue.created")
    payload["data"]["name"] = "Überprüfung 検証 ✓"

    assert parse(payload).data["name"] == "Überprüfung 検証 ✓"


def test_large_description_parses():
    payload = fixture("issue.created")
    payload["data"]["description_html"] = "<p>" + "x" * 400_000 + "</p>"

    assert len(parse(payload).data["description_html"]) == 400_007


@pytest.mark.parametrize(
    "estimate", [2.5, 3, "4d3c2b1a-0000-4000-8000-0000000000e5", None]
)
def test_estimate_point_number_or_uuid(estimate):
    payload = fixture("issue.updated")
    payload["data"]["estimate_point"] = estimate

    assert parse(payload).data["estimate_point"] == estimate


@pytest.mark.parametrize("estimate", ["high", True, {"id": 1}])
def test_estimate_point_other_rejected(estimate):
    payload = fixture("issue.updated")
    payload["data"]["estimate_point"] = estimate

    with pytest.raises(EventParseError, match="estimate_point"):
        parse(payload)


def test_entity_id_must_be_uuid():
    payload = fixture("issue.created")
    payload["data"]["id"] = "42"

    with pytest.raises(EventParseError, match="data"):
        parse(payload)


def test_related_id_must_be_uuid():
    payload = fixture("issue_comment.created")
    payload["data"]["issue"] = "PROJ-42"

    with pytest.raises(EventParseError, match="issue"):
        parse(payload)


def test_actor_id_must_be_uuid():
    payload = fixture("issue.updated")
    payload["activity"]["actor"]["id"] = "ada"

    with pytest.raises(EventParseError, match="actor"):
        parse(payload)


@pytest.mark.parametrize(
    ("entity_id", "accepted"),
    [
        ("1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D", True),
        ("{1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}", True),
        ("urn:uuid:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", True),
        ("1a2b3c4d5e6f4a7b8c9d0e1f2a3b4c5d", True),
        ("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\n", False),
        ("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5", False),
        ("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5g", False),
    ],
)
def test_entity_id_accepted_as_uuid_module_does(entity_id, accepted):
    payload = fixture("issue.created")
    payload["data"]["id"] = entity_id

    if accepted:
        assert parse(payload).entity_id == entity_id
    else:
        with pytest.raises(EventParseError, match="data"):
            parse(payload)


def test_delete_with_only_id_parses():
    assert parse(fixture("project.deleted")).data == {
        "id": "2c3d4e5f-6a7b-4c8d-9e0f-a1b2c3d4e5f6"
    }


def test_json_array_body_is_rejected():
    with pytest.raises(EventParseError, match="object"):
        parse_event(b"[]", delivery_id="d-1")


def test_agent_prompt_is_typed():
    prompt = parse(fixture("agent_run_user_prompt")).prompt

    assert prompt.run_id == "12345678-9abc-4def-8123-456789abcdef"
    assert prompt.actor_id == "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"
    assert prompt.work_item_id == WORK_ITEM_ID
    assert not prompt.is_stop


def test_agent_stop_prompt_is_flagged():
    payload = fixture("agent_run_user_prompt")
    payload["data"]["agent_run_activity"]["signal"] = "stop"

    assert parse(payload).prompt.is_stop


def v2_payload(event: str, data: dict, previous: dict | None = None) -> dict:
    return {
        "version": "v2",
        "delivery_id": "2a0d0510-9052-446e-a1c7-a704bbd68cba",
        "event_id": "9d508cd9-36c2-44a5-928d-7ee2f2a3b8a8",
        "entity_id": WORK_ITEM_ID,
        "entity_type": "issue",
        "event": event,
        "webhook_id": "8944ed18-1331-4eae-b9bb-7c40864b8abd",
        "workspace_id": "4f6b1d2e-8a3c-4e5f-9b7a-1c2d3e4f5a6b",
        "data": data,
        "previous_attributes": previous or {},
    }


def test_v2_update_reaches_v1_names():
    payload = v2_payload(
        "workitem.updated",
        {"id": WORK_ITEM_ID, "state_id": CYCLE_ID, "parent_id": "None"},
        {"state_id": "d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f7a"},
    )

    event = parse(payload)

    assert (event.event, event.action, event.field) == ("issue", "updated", "state")
    assert event.version == "v2"
    assert event.data["parent_id"] is None


def test_v2_scope_choice_name_is_understood():
    payload = v2_payload(
        "WebhookScope.ScopeChoices.WORK_ITEM_UPDATED", {"id": WORK_ITEM_ID}
    )

    assert (parse(payload).event, parse(payload).action) == ("issue", "updated")


def test_v2_delete_uses_previous_attributes():
    payload = v2_payload("workitem.deleted", {}, {"id": WORK_ITEM_ID, "name": "Old"})

    assert parse(payload).data["name"] == "Old"


def test_v2_link_is_work_item_update():
    payload = v2_payload("workitem.link.created", {"id": CYCLE_ID, "url": "x"})

    event = parse(payload)

    assert (event.event, event.action, event.field) == ("issue", "updated", "link")


def test_v2_comment_is_issue_comment():
    comment_id = "4797f841-c731-4e55-971f-d9cfe1938dfb"
    payload = v2_payload(
        "workitem.comment.created",
        {"id": WORK_ITEM_ID, "comment": {"id": comment_id, "issue_id": WORK_ITEM_ID}},
    )

    event = parse(payload)

    assert (event.event, event.action) == ("issue_comment", "created")
    assert event.data["issue"] == WORK_ITEM_ID
