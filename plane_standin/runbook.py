"""The agent runs of a world: started by mentions, moved on by agent activities."""

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import agent_runs

if TYPE_CHECKING:
    from .world import World


@dataclass
class AgentRunEvents:
    """Snapshots taken while a comment starts or continues an agent run."""

    prompt: dict
    run_after_prompt: dict
    created_run: dict | None = None


class AgentRunBook:
    """Runs and activities by id. Every method holds the world's lock."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self.runs: dict[str, dict] = {}
        self.activities: dict[str, dict] = {}
        self._touched_at: dict[str, float] = {}

    def run_for_thread(self, root_comment_id: str) -> dict | None:
        with self.world.lock:
            for run in self.runs.values():
                if run["comment"] == root_comment_id:
                    return run
            return None

    def read_run(self, run_id: str) -> dict | None:
        """Return a copy of a run, marking it stale first if it sat idle too long."""
        with self.world.lock:
            run = self.runs.get(run_id)
            if run is None:
                return None
            idle = self.world.clock() - self._touched_at[run_id]
            if (
                run["status"] in agent_runs.STALE_FROM_STATUSES
                and idle >= agent_runs.STALE_AFTER_SECONDS
            ):
                run["status"] = "stale"
            return copy.deepcopy(run)

    def activities_of(self, run_id: str) -> list[dict]:
        with self.world.lock:
            found = [a for a in self.activities.values() if a["agent_run"] == run_id]
            return copy.deepcopy(found)

    def prompt_agent(self, comment: dict) -> AgentRunEvents | None:
        """Start or continue an agent run for a member's comment, as Plane does.

        A comment that mentions the bot starts a run. A reply in a thread that has
        a run adds a prompt to it, and restarts a finished run. Bot comments, and
        every comment when the app has mentions turned off, start nothing.
        """
        world = self.world
        with world.lock:
            if not world.config.app_mentions or comment["actor"] == world.bot["id"]:
                return None
            root_id = comment["parent"] or comment["id"]
            run = self.run_for_thread(root_id)
            created = None
            if run is None:
                mentioned = agent_runs.mentioned_user_ids(comment["comment_html"])
                if world.bot["id"] not in mentioned:
                    return None
                run = agent_runs.new_run(
                    comment=comment,
                    root_comment_id=root_id,
                    agent_user=world.bot["id"],
                    timestamp=world.now_text(),
                )
                self.runs[run["id"]] = run
                created = copy.deepcopy(run)
            prompt = self._add_prompt(run, comment)
            return AgentRunEvents(prompt, copy.deepcopy(run), created)

    def stop_run(self, run_id: str, actor_id: str) -> AgentRunEvents:
        """Ask a run to stop, as the stop button does: a prompt with signal `stop`.

        The run goes to `stopping` until the agent posts a response.
        Raises KeyError for an unknown run.
        """
        world = self.world
        with world.lock:
            run = self.runs[run_id]
            timestamp = world.now_text()
            prompt = agent_runs.new_activity(
                run,
                activity_type="prompt",
                content={"type": "prompt", "body": "Stop"},
                actor=actor_id,
                timestamp=timestamp,
                comment_id=None,
                signal="stop",
            )
            self.activities[prompt["id"]] = prompt
            run.update(status="stopping", updated_at=timestamp)
            self._touched_at[run_id] = world.clock()
            return AgentRunEvents(copy.deepcopy(prompt), copy.deepcopy(run))

    def _add_prompt(self, run: dict, comment: dict) -> dict:
        timestamp = self.world.now_text()
        prompt = agent_runs.new_activity(
            run,
            activity_type="prompt",
            content={"type": "prompt", "body": comment["comment_html"]},
            actor=comment["actor"],
            timestamp=timestamp,
            comment_id=comment["id"],
        )
        self.activities[prompt["id"]] = prompt
        run.update(status="in_progress", updated_at=timestamp, ended_at=None)
        self._touched_at[run["id"]] = self.world.clock()
        return copy.deepcopy(prompt)

    def add_agent_activity(self, run_id: str, body: dict, actor_id: str) -> dict:
        """Record an activity the agent posted (already validated) and apply it.

        A non-ephemeral activity also becomes a reply comment by the agent, in the
        run's thread.
        """
        world = self.world
        with world.lock:
            run = self.runs[run_id]
            timestamp = world.now_text()
            comment_id = None
            if body["type"] not in agent_runs.EPHEMERAL_TYPES:
                html = agent_runs.reply_html(body["content"]["body"])
                work_item = world.work_items[run["issue"]]
                reply = world.add_comment(
                    work_item, html, actor_id, parent=run["comment"]
                )
                comment_id = reply["id"]
            activity = agent_runs.new_activity(
                run,
                activity_type=body["type"],
                content=body["content"],
                actor=actor_id,
                timestamp=timestamp,
                comment_id=comment_id,
                content_metadata=body.get("content_metadata"),
                signal=body.get("signal", "continue"),
                signal_metadata=body.get("signal_metadata"),
            )
            self.activities[activity["id"]] = activity
            agent_runs.apply_activity_effect(run, activity, timestamp)
            self._touched_at[run_id] = world.clock()
            return copy.deepcopy(activity)
