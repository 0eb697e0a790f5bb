"""Helpers for agent handlers: activities checked by Plane's rules, and sessions."""

from shared.agents.activities import AgentActivityError, build_activity
from shared.agents.session import (
    AgentRunStoppedError,
    AgentSession,
    request_stop,
    run_agent_handler,
)

__all__ = [
    "AgentActivityError",
    "AgentRunStoppedError",
    "AgentSession",
    "build_activity",
    "request_stop",
    "run_agent_handler",
]
