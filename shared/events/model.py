"""The event a handler receives, and the change it describes."""

from dataclasses import dataclass, field
from typing import Any

from shared.installations import Installation


@dataclass(frozen=True)
class Change:
    """One changed attribute, with Plane's raw spelling and the canonical one.

    ``old_value`` and ``new_value`` are what Plane sent: raw ids from the web app
    and the API, display values ("Todo") from the commercial edition's activity
    path, which puts the ids in ``old_identifier`` and ``new_identifier``.
    ``old`` and ``new`` prefer the ids.
    """

    field: str
    raw_field: str
    old_value: Any = None
    new_value: Any = None
    old_identifier: Any = None
    new_identifier: Any = None

    @property
    def old(self) -> Any:
        """The previous value: its id when Plane sent one, else the raw value."""
        return self.old_identifier if self.old_identifier else self.old_value

    @property
    def new(self) -> Any:
        """The new value: its id when Plane sent one, else the raw value."""
        return self.new_identifier if self.new_identifier else self.new_value


@dataclass(frozen=True)
class AgentPrompt:
    """A member's prompt to an agent: the run, the prompt activity and its text."""

    run_id: str
    activity_id: str
    body: str
    signal: str
    actor_id: str | None
    created_at: str | None
    comment_id: str | None
    work_item_id: str | None
    project_id: str | None

    @property
    def is_stop(self) -> bool:
        """True when the member asked the running agent to stop."""
        return self.signal == "stop"


@dataclass(frozen=True)
class Event:
    """One webhook delivery, parsed and named in the handlers' vocabulary.

    ``event`` and ``action`` are canonical: ``issue``/``added_to_cycle`` rather
    than Plane's ``issue``/``created`` with ``activity.field`` ``cycles``.
    ``raw_event`` and ``raw_action`` keep what Plane sent. ``data`` is the entity
    as Plane read it when it sent the webhook, which may be newer than the change.
    """

    event: str
    action: str
    workspace_id: str
    delivery_id: str
    data: dict = field(default_factory=dict)
    activity: dict = field(default_factory=dict)
    webhook_id: str | None = None
    payload: dict = field(default_factory=dict, repr=False)
    installation: Installation | None = None
    raw_event: str = ""
    raw_action: str = ""
    version: str = "v1"
    change: Change | None = None
    changed_fields: frozenset[str] = frozenset()
    known_action: bool = True
    entity_id: str | None = None
    event_id: str | None = None
    previous_attributes: dict = field(default_factory=dict, repr=False)
    prompt: AgentPrompt | None = None
    actor_id: str | None = None
    # The agent-run helpers, set by the delivery job for agent handlers only.
    agent: Any = field(default=None, repr=False, compare=False)

    @property
    def workspace_slug(self) -> str:
        """Slug of the workspace the event came from, for API paths."""
        if self.installation is None:
            raise RuntimeError("the event has no installation attached yet")
        return self.installation.workspace_slug

    @property
    def field(self) -> str | None:
        """The canonical name of the changed attribute, or None (a create)."""
        return self.change.field if self.change else None
