"""Signatures of the changes a delivery reports, to spot copies of one edit.

Plane sends one edit several times: once per changed key from
``model_activity`` (raw ids, web or API field names), and on the commercial
edition once more from the activity path (display values, ids in
``*_identifier``, one delivery per added or removed assignee or label). Two
deliveries describe the same change when they share a signature here. The
functions are pure, and the caller decides where signatures are remembered.
"""

import hashlib
import json
from typing import Any

from shared.events.model import Change, Event

# Fields whose value is a set of ids. A change to one is compared element by
# element, because the activity path reports each added or removed id alone.
SET_FIELDS = frozenset({"assignees", "labels", "modules", "cycles"})


def change_signatures(event: Event) -> list[str]:
    """Return one signature per elementary change the event reports."""
    base = f"{event.workspace_id}:{event.event}:{event.entity_id or '-'}"
    if event.version == "v2" and event.event_id:
        return [f"{base}:event:{event.event_id}"]
    if event.prompt is not None:
        return [f"{base}:prompt"]
    change = event.change
    if change is None:
        return [f"{base}:{event.action}"]
    if change.field in SET_FIELDS:
        added, removed = _set_difference(change)
        if added or removed:
            return [f"{base}:{change.field}:+{item}" for item in sorted(added)] + [
                f"{base}:{change.field}:-{item}" for item in sorted(removed)
            ]
    old, new = _digest(change.old), _digest(change.new)
    return [f"{base}:{change.field}:{old}>{new}"]


def _set_difference(change: Change) -> tuple[set[str], set[str]]:
    old, new = _ids(change.old), _ids(change.new)
    return new - old, old - new


def _ids(value: Any) -> set[str]:
    if value in (None, ""):
        return set()
    if isinstance(value, list | tuple | set):
        return {_id_of(item) for item in value}
    return {_id_of(value)}


def _id_of(item: Any) -> str:
    return str(item.get("id")) if isinstance(item, dict) else str(item)


def _digest(value: Any) -> str:
    # The activity path turns an empty value into null.
    if value == "":
        value = None
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
