"""Agent handlers end to end through the stand-in: a mention, a run, activities."""

import threading
import time

import pytest

from handlers.agent import answer_mention
from handlers.mentions import reply_to_mention
from shared.agents.session import HEARTBEAT_THOUGHT, STOPPED_RESPONSE
from tests.agent_harness import start_harness, stop_harness


@pytest.fixture
def harness(redis_url, redis_conn):
    running = start_harness(redis_url, redis_conn, PLANE_APP_MENTIONS="true")
    yield running
    stop_harness(running)


def types_of(activities: list[dict]) -> list[str]:
    return [activity["type"] for activity in activities]


def test_agent_sends_thought_then_response(harness):
    @harness.registry.on_agent_prompt
    def answer(event, plane):
        event.agent.response("<p>Done.</p>")

    run = harness.mention_bot()
    harness.perform_received()

    activities = harness.agent_activities(run["id"])
    assert types_of(activities) == ["thought", "response"]
    assert activities[1]["content"]["body"] == "<p>Done.</p>"


def test_failing_agent_posts_error_activity(harness):
    @harness.registry.on_agent_prompt
    def broken(event, plane):
        raise RuntimeError("model unavailable")

    run = harness.mention_bot()
    harness.perform_received()

    activities = harness.agent_activities(run["id"])
    assert types_of(activities) == ["thought", "error"]
    assert activities[1]["signal_metadata"] == {"error_type": "RuntimeError"}
    assert harness.standin.agent_runs()[-1]["status"] == "failed"


def test_failing_agent_is_not_retried(harness):
    calls = []

    @harness.registry.on_agent_prompt
    def broken(event, plane):
        calls.append(event.prompt.run_id)
        raise RuntimeError("model unavailable")

    harness.mention_bot()
    jobs = harness.enqueue_received()
    for job in jobs:
        job.perform()

    assert len(calls) == 1


def test_example_agent_answers_mention_once(harness):
    harness.registry.on_agent_prompt(first_thought="Reading your request.")(
        answer_mention
    )
    harness.registry.on("issue_comment", "created", replaced_by_agent=True)(
        reply_to_mention
    )

    run = harness.mention_bot("is this a duplicate?")
    harness.perform_received()

    activities = harness.agent_activities(run["id"])
    assert types_of(activities) == ["thought", "thought", "response"]
    assert "is this a duplicate?" in activities[-1]["content"]["body"]
    assert harness.standin.comments_created() == []


def test_plain_reply_answers_when_mentions_off(redis_url, redis_conn):
    harness = start_harness(redis_url, redis_conn, PLANE_APP_MENTIONS="false")
    try:
        harness.registry.on_agent_prompt(answer_mention)
        harness.registry.on("issue_comment", "created", replaced_by_agent=True)(
            reply_to_mention
        )
        harness.mention_bot()
        harness.perform_received()
        replies = harness.standin.comments_created()
    finally:
        stop_harness(harness)

    assert len(replies) == 1


def test_heartbeat_keeps_long_run_alive(harness):
    harness.context.agent_heartbeat_seconds = 0.1

    @harness.registry.on_agent_prompt
    def slow(event, plane):
        time.sleep(0.45)
        event.agent.response("<p>Finally.</p>")

    run = harness.mention_bot()
    harness.perform_received()

    bodies = [a["content"]["body"] for a in harness.agent_activities(run["id"])]
    assert bodies.count(HEARTBEAT_THOUGHT) >= 2
    assert bodies[-1] == "<p>Finally.</p>"


def test_no_heartbeat_after_response(harness):
    harness.context.agent_heartbeat_seconds = 0.05

    @harness.registry.on_agent_prompt
    def answer_then_linger(event, plane):
        event.agent.response("<p>Answered.</p>")
        time.sleep(0.3)

    run = harness.mention_bot()
    harness.perform_received()

    bodies = [a["content"]["body"] for a in harness.agent_activities(run["id"])]
    assert bodies[-1] == "<p>Answered.</p>"
    assert bodies.count("<p>Answered.</p>") == 1


def test_stop_request_ends_running_agent(harness):
    started = threading.Event()
    steps = []

    @harness.registry.on_agent_prompt
    def long_task(event, plane):
        started.set()
        for step in range(200):
            event.agent.thought(f"Step {step}.")
            steps.append(step)
            time.sleep(0.02)
        event.agent.response("<p>All steps done.</p>")

    run = harness.mention_bot()
    jobs = harness.enqueue_received()
    worker = threading.Thread(target=lambda: [job.perform() for job in jobs])
    worker.start()
    assert started.wait(10)

    harness.standin.stop_agent_run(run["id"])
    harness.perform_received()
    worker.join(10)

    activities = harness.agent_activities(run["id"])
    assert not worker.is_alive()
    assert len(steps) < 200
    assert activities[-1]["content"]["body"] == STOPPED_RESPONSE


def test_stop_before_prompt_does_not_stop_later_prompt(harness):
    answered = []

    @harness.registry.on_agent_prompt
    def answer(event, plane):
        event.agent.thought("Checking.")
        answered.append(event.prompt.activity_id)
        event.agent.response("<p>Done.</p>")

    run = harness.mention_bot()
    harness.perform_received()
    harness.standin.stop_agent_run(run["id"])
    harness.perform_received()
    harness.standin.create_comment(
        run["issue"], "one more thing", parent_id=run["comment"]
    )
    harness.perform_received()

    assert len(answered) == 2
