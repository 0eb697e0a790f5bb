"""The Flask app of one stand-in: blueprints, fault scripts, recording and logging."""

import json
import logging
import socket
import time

from flask import Flask, Response, g, request

from . import agents_api, comments_api, control, oauth
from .api_auth import bearer_token
from .recorder import RecordedRequest, ScriptedResponse
from .runtime import EXTENSION_KEY, Runtime, current_runtime

logger = logging.getLogger(__name__)

# Endpoint keys by Flask endpoint; see `recorder` for the list of keys.
ENDPOINT_KEYS = {
    "oauth.authorize": "authorize",
    "oauth.token": "token",
    "oauth.revoke_token": "revoke",
    "oauth.app_installation": "app-installation",
    "agents.retrieve_run": "api:runs",
}


def create_app(runtime: Runtime) -> Flask:
    """Build the app that serves Plane's endpoints and the control API."""
    app = Flask(__name__)
    # Plane returns keys in serializer order, so keep insertion order.
    app.json.sort_keys = False
    app.extensions[EXTENSION_KEY] = runtime
    for blueprint in (
        oauth.blueprint,
        comments_api.blueprint,
        agents_api.blueprint,
        control.blueprint,
    ):
        app.register_blueprint(blueprint)
    app.before_request(_apply_script)
    app.after_request(_finish_request)
    return app


def endpoint_key() -> str:
    """Name what the current request hits, for recording and fault scripts."""
    if request.path.startswith("/_standin/"):
        return "control"
    key = ENDPOINT_KEYS.get(request.endpoint or "")
    if key == "token":
        return f"token:{request.form.get('grant_type', '')}"
    if key is not None:
        return key
    if request.blueprint == "comments":
        return "api:comments"
    if request.blueprint == "agents":
        return "api:activities"
    return "api:other" if request.path.startswith("/api/") else "other"


def _apply_script() -> Response | None:
    g.endpoint_key = endpoint_key()
    scripted = current_runtime().recorder.take_scripted(g.endpoint_key)
    g.scripted = scripted
    if scripted is None or scripted.passes_through:
        return None

    if scripted.delay:
        time.sleep(scripted.delay)
    if scripted.reset:
        # Record before the reset, because the client sees it at once and may
        # query the record straight away.
        placeholder = Response(status=500)
        _record(placeholder, "connection_reset")
        _log(placeholder, "connection_reset")
        g.recorded = True
        _drop_connection()
        return placeholder
    return _scripted_response(scripted)


def _scripted_response(scripted: ScriptedResponse) -> Response:
    if scripted.body is not None:
        response = Response(scripted.body, scripted.status)
    elif scripted.json is not None:
        response = Response(
            json.dumps(scripted.json), scripted.status, mimetype="application/json"
        )
    else:
        response = Response(b"", scripted.status)
    response.headers.update(dict(scripted.headers))
    return response


def _drop_connection() -> None:
    # Shut the socket down so the client sees the connection end with no response.
    # Werkzeug's write of the placeholder response then fails with a broken pipe,
    # which its server treats as a dropped connection.
    connection = request.environ.get("werkzeug.socket")
    if connection is None:
        return
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        logger.debug("socket already closed before the scripted reset")


def _finish_request(response: Response) -> Response:
    limit = g.get("rate_limit")
    if limit is not None:
        response.headers.update(limit.headers())

    scripted: ScriptedResponse | None = g.get("scripted")
    outcome = "normal"
    if scripted is not None and not scripted.passes_through:
        outcome = "connection_reset" if scripted.reset else "scripted"
    if not g.get("recorded"):
        _record(response, outcome)
        _log(response, outcome)
    if scripted is not None and scripted.passes_through and scripted.delay:
        time.sleep(scripted.delay)
    return response


def _record(response: Response, outcome: str) -> None:
    access = g.get("access_token")
    runtime = current_runtime()
    runtime.recorder.add(
        RecordedRequest(
            seq=0,
            at=runtime.config.clock(),
            method=request.method,
            path=request.path,
            endpoint=g.get("endpoint_key") or endpoint_key(),
            query=request.args.to_dict(),
            form=request.form.to_dict(),
            json=request.get_json(silent=True) if request.is_json else None,
            headers=dict(request.headers),
            bearer_token=bearer_token(),
            user_id=access.user_id if access else None,
            status=None if outcome == "connection_reset" else response.status_code,
            outcome=outcome,
            response_json=response.get_json(silent=True) if response.is_json else None,
            response_headers=dict(response.headers),
        )
    )


def _log(response: Response, outcome: str) -> None:
    token = bearer_token()
    # Only the last 4 characters of a token, enough to tell tokens apart.
    credential = f" token=...{token[-4:]}" if token else ""
    status = "reset" if outcome == "connection_reset" else str(response.status_code)
    scripted = " (scripted)" if outcome != "normal" else ""
    logger.info(
        "%s %s -> %s%s%s", request.method, request.path, status, scripted, credential
    )
