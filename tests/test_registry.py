import pytest

from shared.registry import HandlerRegistry


def names(registrations):
    return [r.handler.__name__ for r in registrations]


def test_specific_then_event_then_catch_all():
    registry = HandlerRegistry()

    @registry.on_any
    def everything(event, plane): ...

    @registry.on("issue")
    def any_issue(event, plane): ...

    @registry.on("issue", "created")
    def new_issue(event, plane): ...

    assert names(registry.match("issue", "created")) == [
        "new_issue",
        "any_issue",
        "everything",
    ]
    assert names(registry.match("issue", "updated")) == ["any_issue", "everything"]
    assert names(registry.match("cycle", "created")) == ["everything"]


def test_decorator_returns_function_unchanged():
    registry = HandlerRegistry()

    def handler(event, plane):
        return "ran"

    assert registry.on("issue", "created")(handler) is handler


def test_handler_registered_twice_runs_once():
    registry = HandlerRegistry()

    def handler(event, plane): ...

    registry.on("issue", "created")(handler)
    registry.on("issue")(handler)

    assert names(registry.match("issue", "created")) == ["handler"]


def test_no_match_is_empty():
    registry = HandlerRegistry()

    @registry.on("issue", "created")
    def new_issue(event, plane): ...

    assert registry.match("project", "created") == []


def test_registration_name_is_module_qualified():
    registry = HandlerRegistry()

    @registry.on("issue")
    def any_issue(event, plane): ...

    assert (
        registry.match("issue", "x")[0].name
        == f"{__name__}.test_registration_name_is_module_qualified.<locals>.any_issue"
    )


def test_work_item_alias_is_issue():
    registry = HandlerRegistry()

    @registry.on("work_item", "created")
    def new_work_item(event, plane): ...

    assert names(registry.match("issue", "created")) == ["new_work_item"]


def test_dotted_v2_name_sets_event_and_action():
    registry = HandlerRegistry()

    @registry.on("workitem.comment.updated")
    def comment_edited(event, plane): ...

    assert names(registry.match("issue_comment", "updated")) == ["comment_edited"]


def test_field_filter_uses_canonical_name():
    registry = HandlerRegistry()

    @registry.on("issue", "updated", field="state_id")
    def moved(event, plane): ...

    assert names(registry.match("issue", "updated", frozenset({"state"}))) == ["moved"]


def test_field_filter_skips_other_fields():
    registry = HandlerRegistry()

    @registry.on("issue", "updated", field="state")
    def moved(event, plane): ...

    assert registry.match("issue", "updated", frozenset({"priority"})) == []


def test_misspelt_action_is_rejected():
    registry = HandlerRegistry()

    with pytest.raises(ValueError, match="update"):
        registry.on("issue", "update")


def test_agent_prompt_registration_is_an_agent():
    registry = HandlerRegistry()

    @registry.on_agent_prompt
    def answer(event, plane): ...

    assert registry.has_agent_handlers()
    assert registry.match("agent_run_user_prompt", "created")[0].agent
