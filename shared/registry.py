"""The handler registry: which handlers run for which event and action.

Handlers register with a decorator that returns the function unchanged::

    from shared.registry import on

    @on("issue", "created")
    def greet(event, plane): ...

``@on("issue")`` takes every action of an event and ``@on_any`` every event. For
one delivery the handlers for the event and action run first, then those for
the event, then the catch-all ones, each once, in registration order.
"""

from collections.abc import Callable
from dataclasses import dataclass

ANY = "*"

Handler = Callable[..., None]


@dataclass(frozen=True)
class Registration:
    """One handler and the events it takes."""

    handler: Handler
    event: str
    action: str
    include_bot_events: bool

    @property
    def name(self) -> str:
        """Stable name used in logs and completion marks: ``module.function``."""
        return f"{self.handler.__module__}.{self.handler.__qualname__}"


class HandlerRegistry:
    """Handlers keyed by (event, action), with ``*`` as the wildcard."""

    def __init__(self) -> None:
        self._registrations: list[Registration] = []

    def on(
        self, event: str, action: str = ANY, *, include_bot_events: bool = False
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler for ``event`` and ``action``.

        Events caused by the installation's own bot user are skipped unless
        ``include_bot_events`` is set, so a handler that writes to Plane does not
        react to its own writes.
        """
        if not event:
            raise ValueError("event must be a Plane event name such as 'issue'")

        def register(handler: Handler) -> Handler:
            registration = Registration(handler, event, action, include_bot_events)
            if registration not in self._registrations:
                self._registrations.append(registration)
            return handler

        return register

    def on_any(self, handler: Handler) -> Handler:
        """Register ``handler`` for every event and action."""
        return self.on(ANY)(handler)

    def match(self, event: str, action: str) -> list[Registration]:
        """Return the registrations for one delivery, most specific first."""
        exact = [
            r for r in self._registrations if (r.event, r.action) == (event, action)
        ]
        by_event = [
            r for r in self._registrations if (r.event, r.action) == (event, ANY)
        ]
        catch_all = [r for r in self._registrations if r.event == ANY]
        ordered: list[Registration] = []
        for registration in exact + by_event + catch_all:
            if registration.handler not in [r.handler for r in ordered]:
                ordered.append(registration)
        return ordered

    def __len__(self) -> int:
        return len(self._registrations)


registry = HandlerRegistry()
on = registry.on
on_any = registry.on_any
