"""The webhooks Plane sends after a change in the workspace.

NOTE: Plane's commercial edition sends most changes twice (once from
`model_activity`, once from the activity path with display values). The stand-in
sends only the `model_activity` delivery, so it never produces those duplicates.
"""

from . import payloads
from .runtime import Runtime


def announce_work_item(runtime: Runtime, work_item: dict, *, wait: bool) -> list[dict]:
    """Send `issue`/`created` for a new work item."""
    actor = runtime.world.users[work_item["created_by"]]
    payload = payloads.work_item_created(
        work_item, actor, webhook_id=_webhook_id(runtime)
    )
    return [runtime.deliverer.deliver(payload, wait=wait)]


def announce_comment(runtime: Runtime, comment: dict, *, wait: bool) -> list[dict]:
    """Send `issue_comment`/`created`, and the agent events the comment triggers."""
    world, deliverer = runtime.world, runtime.deliverer
    webhook_id = _webhook_id(runtime)
    actor = world.users[comment["actor"]]
    payload = payloads.comment_created(comment, actor, webhook_id=webhook_id)
    results = [deliverer.deliver(payload, wait=wait)]

    events = world.agent_runs.prompt_agent(comment)
    if events is None:
        return results
    client_id = runtime.config.client_id
    if events.created_run is not None:
        created = payloads.agent_run_created(
            events.created_run, client_id=client_id, webhook_id=webhook_id
        )
        results.append(deliverer.deliver(created, wait=wait, agent_event=True))
    prompted = payloads.agent_run_prompted(
        events.prompt,
        events.run_after_prompt,
        client_id=client_id,
        webhook_id=webhook_id,
    )
    results.append(deliverer.deliver(prompted, wait=wait, agent_event=True))
    return results


def announce_stop(runtime: Runtime, run_id: str, actor_id: str, *, wait: bool):
    """Send the `agent_run_user_prompt` of a member's stop request."""
    events = runtime.world.agent_runs.stop_run(run_id, actor_id)
    prompted = payloads.agent_run_prompted(
        events.prompt,
        events.run_after_prompt,
        client_id=runtime.config.client_id,
        webhook_id=_webhook_id(runtime),
    )
    return [runtime.deliverer.deliver(prompted, wait=wait, agent_event=True)]


def announce_comment_update(
    runtime: Runtime, comment: dict, changes: dict, actor_id: str, *, wait: bool
) -> list[dict]:
    """Send one `issue_comment`/`updated` per changed field, as Plane does."""
    actor = runtime.world.users[actor_id]
    results = []
    for field, (old_value, new_value) in changes.items():
        payload = payloads.comment_updated(
            comment,
            actor,
            field=field,
            old_value=old_value,
            new_value=new_value,
            webhook_id=_webhook_id(runtime),
        )
        results.append(runtime.deliverer.deliver(payload, wait=wait))
    return results


def _webhook_id(runtime: Runtime) -> str:
    installation = runtime.world.current_installation()
    return installation.record["webhook"] if installation else ""
