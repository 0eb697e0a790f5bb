"""Run one delivery from ingress to handlers in-process, for the operations tests.

The web app (Flask test client) and the delivery job share a real Redis, and
the handlers call the Plane stand-in over loopback.
"""

import io
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

from plane_standin import defaults
from shared.installations import STATUS_INSTALLED
from shared.logs import ContextFilter, JsonFormatter
from shared.registry import HandlerRegistry
from shared.settings import load_settings
from shared.signature import compute_signature
from tests.conftest import CASE_SECRET, make_environ, make_installation
from workers import runtime

FIXTURES = Path(__file__).parent / "fixtures" / "plane"


def issue_created_body(**changes) -> bytes:
    """Return Plane's sample ``issue``/``created`` body, with ``changes`` applied."""
    payload = json.loads((FIXTURES / "issue.created.json").read_text())
    payload.update(changes)
    return json.dumps(payload).encode()


def post_delivery(client, body: bytes, delivery_id: str, *, secret=CASE_SECRET):
    """POST ``body`` to the webhook endpoint, signed as Plane signs it."""
    return client.post(
        "/webhooks/plane",
        data=body,
        headers={
            "X-Plane-Delivery": delivery_id,
            "X-Plane-Event": "issue",
            "X-Plane-Signature": compute_signature(body, secret=secret),
        },
        content_type="application/json",
    )


def worker_context(redis_url: str, redis_conn, standin, **overrides: str):
    """Build a worker context against the stand-in with an empty handler registry."""
    settings = load_settings(
        make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=defaults.CLIENT_SECRET,
            **overrides,
        )
    )
    context = runtime.init(settings, connection=redis_conn)
    context.registry = HandlerRegistry()
    context.store.save(make_installation(STATUS_INSTALLED))
    context.store.save_bot_token(
        defaults.INSTALLATION_ID, standin.issue_bot_token(), time.time() + 3600
    )
    return context


@contextmanager
def captured_json_logs(level: int = logging.DEBUG):
    """Capture every log line, formatted as production formats it, as dicts."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    lines: list[dict] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())
