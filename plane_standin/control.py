"""The stand-in's own JSON API under `/_standin/`, to drive and inspect it.

A demo script or a terminal in another process uses it through `python -m
plane_standin` or plain HTTP. Webhooks that an action triggers are sent inline and
their attempts returned, unless the request body contains `"wait": false`.
"""

from flask import Blueprint, Response, jsonify, request

from . import operations
from .runtime import current_runtime

blueprint = Blueprint("control", __name__, url_prefix="/_standin")


@blueprint.get("/requests")
def list_requests() -> Response:
    """List recorded requests, filtered by `endpoint` key prefix and `method`.

    Requests to the control API itself are left out unless `include_control=1`.
    """
    recorder = current_runtime().recorder
    records = recorder.find(
        endpoint=request.args.get("endpoint"), method=request.args.get("method")
    )
    if request.args.get("include_control") != "1":
        records = [record for record in records if record.endpoint != "control"]
    return jsonify([record.to_dict() for record in records])


@blueprint.get("/token-requests")
def list_token_requests() -> Response:
    """List token requests, all of them or those of one `grant_type`."""
    grant_type = request.args.get("grant_type")
    endpoint = f"token:{grant_type}" if grant_type else "token"
    records = current_runtime().recorder.find(endpoint=endpoint)
    return jsonify([record.to_dict() for record in records])


@blueprint.get("/comments")
def list_created_comments() -> Response:
    """List comments created through the REST API, with `token` and `user_id`."""
    world = current_runtime().world
    with world.lock:
        return jsonify(list(world.created_comments))


@blueprint.get("/consents")
def list_consents() -> Response:
    world = current_runtime().world
    with world.lock:
        return jsonify(list(world.consents))


@blueprint.get("/deliveries")
def list_deliveries() -> Response:
    """List finished webhook sends with their attempts."""
    world = current_runtime().world
    with world.lock:
        return jsonify(list(world.deliveries))


@blueprint.get("/world")
def describe_world() -> Response:
    """Summarize installations, work items and agent runs."""
    world = current_runtime().world
    with world.lock:
        return jsonify(
            {
                "workspace": world.workspace,
                "installations": [
                    {**i.record, "webhook_active": i.webhook_active}
                    for i in world.installations.values()
                ],
                "work_items": [
                    {"id": item["id"], "name": item["name"]}
                    for item in world.work_items.values()
                ],
                "agent_runs": list(world.agent_runs.runs.values()),
            }
        )


@blueprint.post("/work-items")
def create_work_item() -> Response:
    body = _body()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return _bad_request('"name" is required: the title of the new work item.')
    result = operations.create_work_item(current_runtime(), name, wait=_wait(body))
    return jsonify(result), 201


@blueprint.post("/comments")
def create_comment() -> Response:
    body = _body()
    work_item_id, text = body.get("work_item_id"), body.get("text")
    if not isinstance(work_item_id, str) or not isinstance(text, str):
        return _bad_request('"work_item_id" and "text" are required strings.')
    try:
        result = operations.create_member_comment(
            current_runtime(),
            work_item_id,
            text,
            mention_bot=bool(body.get("mention_bot")),
            parent_id=body.get("parent_id"),
            wait=_wait(body),
        )
    except KeyError as exc:
        return jsonify({"error": exc.args[0]}), 404
    return jsonify(result), 201


@blueprint.post("/send")
def send_fixture() -> Response:
    body = _body()
    name = body.get("fixture")
    if not isinstance(name, str):
        return _bad_request('"fixture" is required, for example "issue.updated".')
    try:
        result = operations.send_fixture(current_runtime(), name, wait=_wait(body))
    except KeyError as exc:
        return jsonify({"error": exc.args[0]}), 404
    return jsonify(result)


@blueprint.post("/uninstall")
def uninstall() -> Response:
    """Uninstall the named installation, or the current one."""
    body = _body()
    try:
        result = operations.uninstall(current_runtime(), body.get("installation_id"))
    except KeyError as exc:
        return jsonify({"error": exc.args[0]}), 404
    return jsonify(result)


@blueprint.post("/webhook/reactivate")
def reactivate_webhook() -> Response:
    """Turn the current installation's webhook back on after it was deactivated."""
    world = current_runtime().world
    with world.lock:
        installation = world.current_installation()
        if installation is None or not installation.is_installed:
            return jsonify({"error": "No installed app, so no webhook."}), 404
        installation.webhook_active = True
    return jsonify({"webhook_active": True})


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _wait(body: dict) -> bool:
    return body.get("wait", True) is not False


def _bad_request(message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), 400
