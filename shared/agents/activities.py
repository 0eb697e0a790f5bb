"""Agent-run activities, built and checked by Plane's rules before they are sent.

The rules are those of Plane's ``AgentRunActivityAPISerializer`` (commercial
edition, April 2026): an agent may not post a ``prompt``; ``content.type``
equals the activity type; an ``action`` carries ``action`` and one level of
string-to-string ``parameters``; every other type carries a non-empty ``body``;
``auth_request`` needs an ``https://`` URL in ``signal_metadata.url``. Checking
here turns Plane's 400 into an error that names the bad value, before any call.
"""

from typing import Any

from shared.errors import PlaneAppError

ACTIVITY_TYPES = ("thought", "action", "response", "elicitation", "error")
SIGNALS = ("continue", "stop", "auth_request", "select")


class AgentActivityError(PlaneAppError, ValueError):
    """An activity would break one of Plane's rules, so it was not sent."""


def build_activity(
    activity_type: str,
    *,
    body: str | None = None,
    action: str | None = None,
    parameters: dict[str, str] | None = None,
    signal: str = "continue",
    signal_metadata: dict | None = None,
) -> dict:
    """Return the JSON body of an activity, or raise ``AgentActivityError``."""
    if activity_type not in ACTIVITY_TYPES:
        raise AgentActivityError(
            f"activity type must be one of {', '.join(ACTIVITY_TYPES)}, "
            f"got {activity_type!r}"
        )
    if activity_type == "action":
        content = {"type": "action", **_action_content(action, parameters)}
    else:
        content = {"type": activity_type, "body": _body(activity_type, body)}
    activity: dict[str, Any] = {"type": activity_type, "content": content}

    _check_signal(signal, signal_metadata)
    activity["signal"] = signal
    if signal_metadata:
        activity["signal_metadata"] = signal_metadata
    return activity


def _body(activity_type: str, body: str | None) -> str:
    if not isinstance(body, str) or not body.strip():
        raise AgentActivityError(
            f"a {activity_type} activity needs a non-empty body string, got {body!r}"
        )
    return body


def _action_content(action: str | None, parameters: dict | None) -> dict:
    if not isinstance(action, str) or not action:
        raise AgentActivityError(
            f"an action activity needs the action's name, got {action!r}"
        )
    parameters = parameters or {}
    if not isinstance(parameters, dict):
        raise AgentActivityError(
            f"action parameters must be a dict, got {type(parameters).__name__}"
        )
    for key, value in parameters.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise AgentActivityError(
                "action parameters must map strings to strings, one level deep; "
                f"got {key!r}: {type(value).__name__}"
            )
    return {"action": action, "parameters": parameters}


def _check_signal(signal: str, metadata: dict | None) -> None:
    if signal not in SIGNALS:
        raise AgentActivityError(
            f"signal must be one of {', '.join(SIGNALS)}, got {signal!r}"
        )
    if signal != "auth_request":
        return
    url = (metadata or {}).get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise AgentActivityError(
            f"an auth_request signal needs signal_metadata.url starting with "
            f"https://, got {url!r}"
        )
