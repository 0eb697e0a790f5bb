"""An agent run as a handler drives it: activities, heartbeat, stop and failure.

Plane marks a run ``stale`` when nothing touched it for five minutes
(``AGENT_RUN_STALE_TIMEOUT_IN_MINS``), so the session posts a ``thought`` as
soon as it starts and a heartbeat thought whenever the handler has been quiet
for ``HEARTBEAT_INTERVAL_SECONDS``. A stop request is a prompt with signal
``stop``. Its own delivery job records it in Redis (``request_stop``), and the
running handler reads it through ``stop_requested`` or when it next posts a
thought or an action.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import redis
from plane.models.agent_runs import CreateAgentRunActivity

from shared.agents.activities import build_activity
from shared.errors import PlaneAppError
from shared.events import AgentPrompt, Event
from shared.redis_client import key

logger = logging.getLogger(__name__)

# A heartbeat after a minute of silence leaves four more chances within
# Plane's five-minute staleness limit if one post fails.
HEARTBEAT_INTERVAL_SECONDS = 60.0
HEARTBEAT_THOUGHT = "Still working on it."
# A stop flag outlives the longest run: the delivery job timeout (300 s) plus
# the delivery retries that can delay a prompt's job (about 15 minutes).
STOP_FLAG_TTL_SECONDS = 3600
STOPPED_RESPONSE = "Stopped, as you asked."
FAILED_MESSAGE = "Something went wrong while working on this. The error was logged."


class AgentRunStoppedError(PlaneAppError):
    """The member asked the run to stop; raised inside the handler to end it."""


def request_stop(connection: redis.Redis, prompt: AgentPrompt) -> None:
    """Record a stop request for the prompt's run, for its running handler to see."""
    connection.set(
        key("agent-stop", prompt.run_id),
        prompt.created_at or "",
        ex=STOP_FLAG_TTL_SECONDS,
    )


class AgentSession:
    """The helpers an agent handler gets as ``event.agent``.

    Activities go to ``/api/v1/workspaces/{slug}/runs/{run_id}/activities/``
    through the bot's plane-sdk client, one at a time, from the handler's thread
    or the heartbeat thread.
    """

    def __init__(
        self,
        event: Event,
        plane,
        connection: redis.Redis,
        *,
        heartbeat_seconds: float = HEARTBEAT_INTERVAL_SECONDS,
    ) -> None:
        if event.prompt is None:
            raise ValueError(
                f"an agent session needs an agent_run_user_prompt event, "
                f"got {event.event!r}"
            )
        self.event = event
        self.prompt = event.prompt
        self.plane = plane
        self.connection = connection
        self.heartbeat_seconds = heartbeat_seconds
        self.answered = False
        self._send_lock = threading.Lock()
        self._last_sent = time.monotonic()
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def run_id(self) -> str:
        return self.prompt.run_id

    # Activities

    def thought(self, body: str) -> None:
        """Show what the agent is doing; raises ``AgentRunStoppedError`` on a stop."""
        self.raise_if_stopped()
        self._send(build_activity("thought", body=body))

    def action(self, action: str, parameters: dict[str, str] | None = None) -> None:
        """Show a step the agent takes; raises ``AgentRunStoppedError`` on a stop."""
        self.raise_if_stopped()
        self._send(build_activity("action", action=action, parameters=parameters))

    def response(self, body: str) -> None:
        """Post the reply to the member, which Plane adds as a comment in the thread."""
        self._send(build_activity("response", body=body), final=True)

    def elicitation(self, body: str, **signal) -> None:
        """Ask the member a question; the run waits for the reply."""
        self._send(build_activity("elicitation", body=body, **signal), final=True)

    def error(self, body: str, *, signal_metadata: dict | None = None) -> None:
        """Report a failure; Plane marks the run failed."""
        activity = build_activity("error", body=body, signal_metadata=signal_metadata)
        self._send(activity, final=True)

    # Stop requests

    @property
    def stop_requested(self) -> bool:
        """True when a stop for this run came after this prompt."""
        flag = self.connection.get(key("agent-stop", self.run_id))
        if flag is None:
            return False
        stopped_at = flag.decode()
        prompted_at = self.prompt.created_at or ""
        return not stopped_at or not prompted_at or stopped_at >= prompted_at

    def raise_if_stopped(self) -> None:
        """Raise ``AgentRunStoppedError`` if the member asked the run to stop."""
        if self.stop_requested:
            raise AgentRunStoppedError(f"agent run {self.run_id} was asked to stop")

    # Life cycle

    def start(self, first_thought: str) -> None:
        """Post the first thought now, then keep the run alive in the background."""
        self._send(build_activity("thought", body=first_thought))
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"agent-heartbeat-{self.run_id}", daemon=True
        )
        self._heartbeat.start()

    def close(self) -> None:
        """Stop the heartbeat and wait for it."""
        self._closed.set()
        if self._heartbeat is not None:
            self._heartbeat.join()

    def _beat(self) -> None:
        while not self._closed.wait(self._seconds_to_next_beat()):
            try:
                self._send_heartbeat()
            except Exception:  # the handler's thread must not die with the beat
                logger.exception("agent heartbeat failed", extra=self.log_fields())

    def _seconds_to_next_beat(self) -> float:
        elapsed = time.monotonic() - self._last_sent
        return max(0.05, self.heartbeat_seconds - elapsed)

    def _send_heartbeat(self) -> None:
        """Send a heartbeat thought unless the run was answered or spoke lately.

        The check runs under the send lock, so a heartbeat that waited for the
        handler's final reply is dropped instead of following it.
        """
        with self._send_lock:
            quiet_for = time.monotonic() - self._last_sent
            if self.answered or self._closed.is_set():
                return
            if quiet_for < self.heartbeat_seconds:
                return
            self._create(build_activity("thought", body=HEARTBEAT_THOUGHT))

    def _send(self, activity: dict, *, final: bool = False) -> None:
        with self._send_lock:
            self._create(activity)
            if final:
                self.answered = True
        logger.debug(
            "agent activity sent", extra={**self.log_fields(), "type": activity["type"]}
        )

    def _create(self, activity: dict) -> None:
        """Post one activity; the caller holds the send lock."""
        self.plane.agent_runs.activities.create(
            self.event.workspace_slug,
            self.run_id,
            CreateAgentRunActivity(**activity),
        )
        self._last_sent = time.monotonic()

    def log_fields(self) -> dict:
        return {"delivery_id": self.event.delivery_id, "agent_run_id": self.run_id}


def run_agent_handler(
    handler: Callable,
    event: Event,
    plane,
    connection: redis.Redis,
    *,
    first_thought: str,
    heartbeat_seconds: float = HEARTBEAT_INTERVAL_SECONDS,
) -> None:
    """Run an agent handler in a session; a failure ends as an ``error`` activity.

    Raises only when the first thought cannot be sent, which leaves nothing
    posted, so the delivery can be retried. A handler failure is reported to the
    member and logged, and not retried, because the member has seen it.
    """
    session = AgentSession(
        event, plane, connection, heartbeat_seconds=heartbeat_seconds
    )
    session.start(first_thought)
    try:
        handler(dataclasses.replace(event, agent=session), plane)
    except AgentRunStoppedError:
        logger.info("agent run stopped on request", extra=session.log_fields())
        if not session.answered:
            session.response(STOPPED_RESPONSE)
    except Exception as exc:  # reported to the member, never retried
        logger.exception("agent handler failed", extra=session.log_fields())
        _report_failure(session, exc)
    finally:
        session.close()
    if not session.answered:
        logger.warning(
            "agent handler returned without a response; Plane will mark the run "
            "stale after five minutes",
            extra=session.log_fields(),
        )


def _report_failure(session: AgentSession, exc: Exception) -> None:
    try:
        session.error(
            FAILED_MESSAGE, signal_metadata={"error_type": type(exc).__name__}
        )
    except Exception:  # Plane is unreachable; the run goes stale on its own
        logger.exception(
            "could not report the failure to the agent run",
            extra=session.log_fields(),
        )
