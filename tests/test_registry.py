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
