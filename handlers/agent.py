"""An example agent: answers a member who mentions the app's bot in a comment.

It runs when Plane's App Mentions are on for the app (PLANE_APP_MENTIONS=true),
and then replaces the plain reply in ``handlers.mentions``.
"""

import html
import re

from shared.events import Event
from shared.registry import on_agent_prompt

_TAG = re.compile(r"<[^>]+>")


@on_agent_prompt(first_thought="Reading your request.")
def answer_mention(event: Event, plane) -> None:
    agent = event.agent
    question = prompt_text(event.prompt.body)

    agent.thought("Writing a reply.")
    if not question:
        agent.response("<p>Hi! You mentioned me. What can I do for you?</p>")
        return
    agent.response(
        f"<p>Hi! You asked: “{html.escape(question)}”. I saw the mention and "
        "I am on it.</p>"
    )


def prompt_text(body_html: str) -> str:
    """Return the text of a prompt's HTML; the mention tag itself has no text."""
    return html.unescape(_TAG.sub("", body_html or "")).strip()
