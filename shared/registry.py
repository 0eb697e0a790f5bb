"""The handler registry: which handlers run for which event, action and field.

Handlers register with a decorator that returns the function unchanged::

    from shared.registry import on

    @on("issue", "updated", field="state")
    def moved(event, plane): ...

``@on("issue")`` takes every action of an event and ``@on_any`` every event.
Names go through ``shared.events.names``: ``work_item`` is ``issue``,
``workitem.updated`` is ``on("issue", "updated")``, and ``field="state_id"`` is
``field="state"``. For one delivery the handlers for the event and action run
first, then those for the event, then the catch-all ones, each once, in
registration order. A delivery whose action is not one Plane is known to send
reaches only the handlers of its event and the catch-all ones.
"""

from collections.abc import Callable
from dataclasses import dataclass

from shared.events import Event
from shared.events.names import (
    AGENT_RUN_USER_PROMPT,
    KNOWN_ACTIONS,
    canonical_event,
    canonical_field,
    split_dotted_name,
)

ANY = "*"

Handler = Callable[..., None]

# Shown as the agent's first thought when a handler names none.
DEFAULT_FIRST_THOUGHT = "Reading your request."


@dataclass(frozen=True)
class Registration:
    """One handler and the events it takes."""

    handler: Handler
    event: str
    action: str
    include_bot_events: bool
    field: str | None = None
    # Agent handlers run inside an agent-run session (see shared.agents).
    agent: bool = False
    first_thought: str = DEFAULT_FIRST_THOUGHT
    # Skipped when an agent handler replies to mentions instead.
    replaced_by_agent: bool = False

    @property
    def name(self) -> str:
        """Stable name used in logs and completion marks: ``module.function``."""
        return f"{self.handler.__module__}.{self.handler.__qualname__}"

    def takes_fields(self, changed_fields: frozenset[str]) -> bool:
        """Tell whether the field filter, if any, names one of the changed fields."""
        return self.field is None or self.field in changed_fields


class HandlerRegistry:
    """Handlers keyed by (event, action), with ``*`` as the wildcard."""

    def __init__(self) -> None:
        self._registrations: list[Registration] = []

    def on(
        self,
        event: str,
        action: str = ANY,
        *,
        field: str | None = None,
        include_bot_events: bool = False,
        replaced_by_agent: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler for ``event``, ``action`` and ``field``.

        ``field`` limits the handler to changes of that attribute, under any of
        Plane's names for it. Events caused by the installation's own bot user
        are skipped unless ``include_bot_events`` is set, so a handler that writes
        to Plane does not react to its own writes. ``replaced_by_agent`` skips the
        handler when agent handlers reply to mentions (PLANE_APP_MENTIONS is on
        and an agent handler is registered).
        """
        event, action = _resolve(event, action)

        def register(handler: Handler) -> Handler:
            self._add(
                Registration(
                    handler,
                    event,
                    action,
                    include_bot_events,
                    field=canonical_field(event, field),
                    replaced_by_agent=replaced_by_agent,
                )
            )
            return handler

        return register

    def on_any(self, handler: Handler) -> Handler:
        """Register ``handler`` for every event and action."""
        return self.on(ANY)(handler)

    def on_agent_prompt(
        self, handler: Handler | None = None, *, first_thought: str | None = None
    ):
        """Register an agent handler: it runs for each member's prompt to the agent.

        The handler gets ``event.agent``, an ``AgentSession``: its first thought
        is already posted, a heartbeat keeps the run from going stale, a failure
        becomes an ``error`` activity, and a stop request ends it. Usable bare
        (``@on_agent_prompt``) or with arguments.
        """

        def register(function: Handler) -> Handler:
            self._add(
                Registration(
                    function,
                    AGENT_RUN_USER_PROMPT,
                    "created",
                    include_bot_events=False,
                    agent=True,
                    first_thought=first_thought or DEFAULT_FIRST_THOUGHT,
                )
            )
            return function

        return register(handler) if handler is not None else register

    def has_agent_handlers(self) -> bool:
        """Tell whether any agent handler is registered."""
        return any(r.agent for r in self._registrations)

    def match(
        self, event: str, action: str, fields: frozenset[str] = frozenset()
    ) -> list[Registration]:
        """Return the registrations for one delivery, most specific first."""
        event = canonical_event(event)
        exact = [
            r for r in self._registrations if (r.event, r.action) == (event, action)
        ]
        by_event = [
            r for r in self._registrations if (r.event, r.action) == (event, ANY)
        ]
        catch_all = [r for r in self._registrations if r.event == ANY]
        ordered: list[Registration] = []
        for registration in exact + by_event + catch_all:
            if not registration.takes_fields(fields):
                continue
            if registration.handler not in [r.handler for r in ordered]:
                ordered.append(registration)
        return ordered

    def match_event(self, event: Event) -> list[Registration]:
        """Return the registrations for a parsed event, field filters applied."""
        return self.match(event.event, event.action, event.changed_fields)

    def _add(self, registration: Registration) -> None:
        if registration not in self._registrations:
            self._registrations.append(registration)

    def __len__(self) -> int:
        return len(self._registrations)


def _resolve(event: str, action: str) -> tuple[str, str]:
    """Return the canonical (event, action); reject names no delivery can have."""
    if not event:
        raise ValueError("event must be a Plane event name such as 'issue'")
    if event == ANY:
        return ANY, ANY
    event, dotted_action = split_dotted_name(event)
    if dotted_action is not None:
        if action not in (ANY, dotted_action):
            raise ValueError(
                f"the event name already names the action {dotted_action!r}; "
                f"got action {action!r} as well"
            )
        action = dotted_action
    if action != ANY and action not in KNOWN_ACTIONS:
        raise ValueError(
            f"action must be one of {', '.join(sorted(KNOWN_ACTIONS))}, got "
            f"{action!r}; use on({event!r}) for every action"
        )
    return event, action


registry = HandlerRegistry()
on = registry.on
on_any = registry.on_any
on_agent_prompt = registry.on_agent_prompt
