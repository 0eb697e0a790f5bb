"""A stand-in whose webhooks are recorded, and a worker context that runs them.

Tests drive Plane's side through the stand-in (a mention, a stop button), then
run each recorded delivery through the real delivery job in this process.
"""

import time
from dataclasses import dataclass, field

import redis

from plane_standin import defaults
from plane_standin.receiver import WebhookReceiver
from plane_standin.server import StandIn
from shared import queues
from shared.installations import STATUS_INSTALLED
from shared.registry import HandlerRegistry
from shared.settings import load_settings
from tests.conftest import CASE_SECRET, make_environ, make_installation
from workers import runtime


@dataclass
class AgentHarness:
    """The stand-in, its recorded webhooks and the worker context."""

    standin: StandIn
    receiver: WebhookReceiver
    context: runtime.WorkerContext
    connection: redis.Redis
    performed: int = 0
    jobs: list = field(default_factory=list)

    @property
    def registry(self) -> HandlerRegistry:
        return self.context.registry

    def enqueue_received(self) -> list:
        """Enqueue every webhook received since the last call, in arrival order."""
        fresh = self.receiver.received[self.performed :]
        self.performed += len(fresh)
        jobs = []
        for request in fresh:
            jobs.append(
                queues.enqueue(
                    queues.get_queue(queues.DELIVERY_QUEUE, self.connection),
                    queues.DELIVERY_JOB,
                    args=(
                        queues.encode_body(request.body),
                        request.headers["X-Plane-Delivery"],
                        time.time(),
                    ),
                    description="test delivery",
                    job_timeout=30,
                )
            )
        return jobs

    def perform_received(self) -> None:
        """Run every webhook received since the last call through the delivery job."""
        for job in self.enqueue_received():
            job.perform()

    def mention_bot(self, text: str = "can you look?") -> dict:
        """Comment as Bo with a mention of the bot; return the agent run it started."""
        self.standin.create_comment(defaults.WORK_ITEM_ID, text, mention_bot=True)
        return self.standin.agent_runs()[-1]

    def agent_activities(self, run_id: str) -> list[dict]:
        """The run's activities posted by the agent, oldest first."""
        return [
            activity
            for activity in self.standin.agent_activities(run_id)
            if activity["type"] != "prompt"
        ]


def start_harness(redis_url: str, connection: redis.Redis, **environ) -> AgentHarness:
    """Start a receiver and a stand-in that posts to it; build a worker context."""
    receiver = WebhookReceiver(default_status=202).__enter__()
    standin = StandIn(
        webhook_url=f"{receiver.url}/webhooks/plane",
        webhook_secret=CASE_SECRET,
        webhooks_for_api_changes=False,
    ).start()
    settings = load_settings(
        make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=defaults.CLIENT_SECRET,
            **environ,
        )
    )
    context = runtime.init(settings, connection=connection)
    context.registry = HandlerRegistry()
    context.store.save(make_installation(STATUS_INSTALLED))
    context.store.save_bot_token(
        defaults.INSTALLATION_ID, standin.issue_bot_token(), time.time() + 3600
    )
    return AgentHarness(standin, receiver, context, connection)


def stop_harness(harness: AgentHarness) -> None:
    harness.standin.stop()
    harness.receiver.__exit__(None, None, None)
