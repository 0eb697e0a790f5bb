"""Workspace actions of members and admins in Plane's UI, played against the world.

Each operation changes the world, then sends the webhooks Plane would send for it.
The control API and the `StandIn` methods both call these.
"""

import html
import logging

from . import defaults, events, payloads
from .runtime import Runtime

logger = logging.getLogger(__name__)


def create_work_item(runtime: Runtime, name: str, *, wait: bool = True) -> dict:
    """Create a work item as Ada in the seeded project, and send `issue`/`created`."""
    if not name.strip():
        raise ValueError("A work item needs a non-empty name.")
    item = runtime.world.add_work_item(name, defaults.INSTALLER_USER_ID)
    logger.info("work item created", extra={"work_item_id": item["id"]})
    deliveries = events.announce_work_item(runtime, item, wait=wait)
    return {"work_item": item, "deliveries": deliveries}


def create_member_comment(
    runtime: Runtime,
    work_item_id: str,
    text: str,
    *,
    mention_bot: bool = False,
    parent_id: str | None = None,
    wait: bool = True,
) -> dict:
    """Comment as Bo, and send `issue_comment`/`created` plus any agent events.

    The text is escaped and wrapped in a paragraph. With `mention_bot`, the
    paragraph starts with Plane's mention markup for the app's bot.
    """
    world = runtime.world
    with world.lock:
        work_item = world.work_items.get(work_item_id)
        if work_item is None:
            raise KeyError(f"No work item {work_item_id!r} in the stand-in's world.")
        parent = world.comments.get(parent_id) if parent_id else None
        if parent_id and (parent is None or parent["issue"] != work_item_id):
            raise KeyError(f"No comment {parent_id!r} on work item {work_item_id!r}.")
        mention = payloads.mention_markup(world.bot["id"]) + " " if mention_bot else ""
        comment_html = f"<p>{mention}{html.escape(text, quote=False)}</p>"
        comment = world.add_comment(
            work_item, comment_html, defaults.MEMBER_USER_ID, parent=parent_id
        )
    logger.info("comment created", extra={"comment_id": comment["id"]})
    deliveries = events.announce_comment(runtime, comment, wait=wait)
    return {"comment": comment, "deliveries": deliveries}


def stop_agent_run(runtime: Runtime, run_id: str, *, wait: bool = True) -> dict:
    """Press stop on an agent run as Bo, and send the stop prompt's webhook.

    Raises KeyError for an unknown run.
    """
    deliveries = events.announce_stop(
        runtime, run_id, defaults.MEMBER_USER_ID, wait=wait
    )
    logger.info("agent run stop requested", extra={"agent_run_id": run_id})
    return {"deliveries": deliveries}


def send_fixture(runtime: Runtime, name: str, *, wait: bool = True) -> dict:
    """Send a fixture by name, signed unless it is the uninstall notice."""
    return {"deliveries": [runtime.deliverer.send_fixture(name, wait=wait)]}


def uninstall(runtime: Runtime, installation_id: str | None = None) -> dict:
    """Uninstall as a workspace admin does, then post Plane's unsigned notice once.

    Raises KeyError when the installation is unknown or not installed.
    """
    world = runtime.world
    if installation_id is None:
        current = world.current_installation()
        installation_id = current.id if current else ""
    notice = world.uninstall(installation_id)
    logger.info("app uninstalled", extra={"installation_id": installation_id})
    response = runtime.deliverer.post_uninstall_notice(notice)
    return {"notice": notice, "response": response}
