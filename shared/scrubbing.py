"""Remove secrets and webhook bodies from Sentry events and breadcrumbs.

sentry-sdk calls ``scrub_event`` and ``scrub_breadcrumb`` last, just before an
event leaves the process. They drop request bodies, cookies and job arguments
outright, replace every value whose name marks a secret (headers, stack-frame
locals, extra data, breadcrumb data), and cut registered secrets, bearer
credentials and OAuth ``code``/``state`` values out of all remaining text.
"""

from typing import Any

from shared.redaction import REDACTED, is_secret_name, redact_text

# Stack-frame locals that hold a webhook body or its parsed content under a
# name that says nothing secret: the delivery job's and handlers' arguments.
BODY_LOCAL_NAMES = frozenset(
    {"activity", "args", "data", "event", "kwargs", "notice", "environ", "form"}
)
# Parts of an RQ job that can hold an OAuth code or a webhook body.
JOB_ARGUMENT_KEYS = frozenset({"args", "kwargs"})


def scrub_event(event: dict[str, Any], hint: dict | None = None) -> dict[str, Any]:
    """Return ``event`` with secrets and bodies removed (sentry's before_send)."""
    request = event.get("request")
    if isinstance(request, dict):
        _scrub_request(request)
    for exception in (event.get("exception") or {}).get("values") or []:
        _scrub_frames((exception.get("stacktrace") or {}).get("frames") or [])
    for thread in (event.get("threads") or {}).get("values") or []:
        _scrub_frames((thread.get("stacktrace") or {}).get("frames") or [])
    rq_job = (event.get("extra") or {}).get("rq-job")
    if isinstance(rq_job, dict):
        for name in JOB_ARGUMENT_KEYS & rq_job.keys():
            rq_job[name] = REDACTED
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict):
        breadcrumbs["values"] = [
            scrub_breadcrumb(crumb) for crumb in breadcrumbs.get("values") or []
        ]
    return scrub_value(event)


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict | None = None) -> dict:
    """Return a breadcrumb with secret-named data and secret text removed."""
    return scrub_value(crumb)


def scrub_value(value: Any) -> Any:
    """Walk dicts and lists: replace secret-named entries, redact every string."""
    if isinstance(value, dict):
        return {
            name: REDACTED
            if isinstance(name, str) and is_secret_name(name)
            else scrub_value(item)
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _scrub_request(request: dict[str, Any]) -> None:
    for name in ("data", "cookies"):
        if name in request:
            request[name] = REDACTED
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {
            name: REDACTED if is_secret_name(name) else value
            for name, value in headers.items()
        }


def _scrub_frames(frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        local_vars = frame.get("vars")
        if not isinstance(local_vars, dict):
            continue
        frame["vars"] = {
            name: REDACTED
            if is_secret_name(name) or name in BODY_LOCAL_NAMES
            else value
            for name, value in local_vars.items()
        }
