"""Work-item comments in Plane's REST API (`/api/v1/`), called with an app's token.

Both the current `work-items` paths and the older `issues` alias are served.
"""

import math
from typing import Any

from flask import Blueprint, Response, request

from . import events
from .api_auth import COMMENT_SCOPES, authorize_api
from .responses import abort_drf, drf_json
from .runtime import Runtime, current_runtime

blueprint = Blueprint("comments", __name__)

_PREFIX = "/api/v1/workspaces/<slug>/projects/<project_id>"
COMMENTS = [
    f"{_PREFIX}/work-items/<issue_id>/comments/",
    f"{_PREFIX}/issues/<issue_id>/comments/",
]
COMMENT = [f"{path}<comment_id>/" for path in COMMENTS]

ACCESS_CHOICES = ("INTERNAL", "EXTERNAL")
# Plane's default and largest page size.
PER_PAGE = 100
NOT_FOUND = {"error": "The required object does not exist."}
# Plane checks the external pair with a lookup before the insert, not a constraint.
DUPLICATE_MESSAGE = (
    "Issue Comment with the same external id and external source already exists"
)


def _route(paths: list[str], method: str):
    def register(view):
        for path in paths:
            blueprint.add_url_rule(path, view_func=view, methods=[method])
        return view

    return register


@_route(COMMENTS, "POST")
def create_comment(slug: str, project_id: str, issue_id: str) -> Response:
    """Create a comment by the token's user, unless the external pair exists."""
    runtime = current_runtime()
    access = authorize_api(runtime, slug, COMMENT_SCOPES)
    work_item = _work_item(runtime, project_id, issue_id)
    data = request_data()

    with runtime.world.lock:
        duplicate = _duplicate_of(runtime, project_id, data)
        if duplicate is not None:
            return drf_json({"error": DUPLICATE_MESSAGE, "id": duplicate}, 409)
        errors = _validate(runtime, data, issue_id, creating=True)
        if errors:
            return drf_json(errors, 400)
        comment = runtime.world.add_comment(
            work_item,
            data["comment_html"],
            access.user_id,
            access=data.get("access") or "INTERNAL",
            external_source=data.get("external_source"),
            external_id=data.get("external_id"),
            parent=data.get("parent"),
        )
        runtime.world.created_comments.append(
            {**comment, "token": access.token, "user_id": access.user_id}
        )

    if runtime.config.webhooks_for_api_changes:
        events.announce_comment(runtime, comment, wait=False)
    return drf_json(comment, 201)


@_route(COMMENTS, "GET")
def list_comments(slug: str, project_id: str, issue_id: str) -> Response:
    """List a work item's comments, newest first, in Plane's paginated shape."""
    runtime = current_runtime()
    authorize_api(runtime, slug, COMMENT_SCOPES)
    _work_item(runtime, project_id, issue_id)
    return drf_json(paginate(runtime.world.comments_of(issue_id)))


@_route(COMMENT, "GET")
def retrieve_comment(
    slug: str, project_id: str, issue_id: str, comment_id: str
) -> Response:
    runtime = current_runtime()
    authorize_api(runtime, slug, COMMENT_SCOPES)
    return drf_json(_comment(runtime, project_id, issue_id, comment_id))


@_route(COMMENT, "PATCH")
def update_comment(
    slug: str, project_id: str, issue_id: str, comment_id: str
) -> Response:
    """Edit a comment, and send one `updated` webhook per changed field."""
    runtime = current_runtime()
    access = authorize_api(runtime, slug, COMMENT_SCOPES)
    data = request_data()

    with runtime.world.lock:
        _comment(runtime, project_id, issue_id, comment_id)
        duplicate = _duplicate_of(runtime, project_id, data)
        if duplicate is not None and duplicate != comment_id:
            return drf_json({"error": DUPLICATE_MESSAGE, "id": duplicate}, 409)
        errors = _validate(runtime, data, issue_id, creating=False)
        if errors:
            return drf_json(errors, 400)
        editable = ("comment_html", "access", "external_source", "external_id")
        fields = {key: data[key] for key in editable if key in data}
        comment, changes = runtime.world.update_comment(
            comment_id, fields, access.user_id
        )

    if runtime.config.webhooks_for_api_changes and changes:
        events.announce_comment_update(
            runtime, comment, changes, access.user_id, wait=False
        )
    return drf_json(comment)


@_route(COMMENT, "DELETE")
def delete_comment(
    slug: str, project_id: str, issue_id: str, comment_id: str
) -> Response:
    runtime = current_runtime()
    authorize_api(runtime, slug, COMMENT_SCOPES)
    with runtime.world.lock:
        _comment(runtime, project_id, issue_id, comment_id)
        runtime.world.delete_comment(comment_id)
    return Response(status=204)


def request_data() -> dict:
    """Parse a JSON or form body as DRF would, or stop with DRF's 400."""
    if request.is_json:
        data = request.get_json(silent=True)
        if data is None and request.get_data():
            abort_drf({"detail": "JSON parse error - invalid JSON body."}, 400)
    else:
        data = request.form.to_dict()
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        abort_drf(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, got {kind}."]},
            400,
        )
    return data


def paginate(items: list[Any]) -> dict:
    """Return one page in Plane's cursor format `<per_page>:<page>:<is_prev>`."""
    per_page, page = _cursor()
    total = len(items)
    results = items[page * per_page : (page + 1) * per_page]
    return {
        "grouped_by": None,
        "sub_grouped_by": None,
        "total_count": total,
        "next_cursor": f"{per_page}:{page + 1}:0",
        "prev_cursor": f"{per_page}:{page - 1}:1",
        "next_page_results": (page + 1) * per_page < total,
        "prev_page_results": page > 0,
        "count": len(results),
        "total_pages": math.ceil(total / per_page),
        "total_results": total,
        "extra_stats": None,
        "results": results,
    }


def _cursor() -> tuple[int, int]:
    try:
        per_page = min(PER_PAGE, max(1, int(request.args.get("per_page", PER_PAGE))))
        cursor = request.args.get("cursor")
        page = int(cursor.split(":")[1]) if cursor else 0
    except (ValueError, IndexError):
        abort_drf({"error": "Invalid cursor parameter."}, 400)
    if page < 0:
        abort_drf({"error": "Invalid cursor parameter."}, 400)
    return per_page, page


def _work_item(runtime: Runtime, project_id: str, issue_id: str) -> dict:
    with runtime.world.lock:
        item = runtime.world.work_items.get(issue_id)
        if item is None or item["project"] != project_id:
            abort_drf(NOT_FOUND, 404)
        return item


def _comment(runtime: Runtime, project_id: str, issue_id: str, comment_id: str):
    with runtime.world.lock:
        _work_item(runtime, project_id, issue_id)
        comment = runtime.world.comments.get(comment_id)
        if comment is None or comment["issue"] != issue_id:
            abort_drf(NOT_FOUND, 404)
        return dict(comment)


def _duplicate_of(runtime: Runtime, project_id: str, data: dict) -> str | None:
    source, external_id = data.get("external_source"), data.get("external_id")
    if not source or not external_id:
        return None
    found = runtime.world.find_external_comment(project_id, source, external_id)
    return found["id"] if found else None


def _validate(
    runtime: Runtime, data: dict, issue_id: str, *, creating: bool
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    html = data.get("comment_html")
    if creating and html is None:
        errors["comment_html"] = ["This field is required."]
    elif html is not None and not isinstance(html, str):
        errors["comment_html"] = ["Not a valid string."]
    access = data.get("access")
    if access is not None and access not in ACCESS_CHOICES:
        errors["access"] = [f'"{access}" is not a valid choice.']
    for key in ("external_source", "external_id"):
        if data.get(key) is not None and not isinstance(data[key], str):
            errors[key] = ["Not a valid string."]
    parent = data.get("parent")
    if parent is not None:
        found = runtime.world.comments.get(parent)
        if found is None or found["issue"] != issue_id:
            errors["parent"] = [f'Invalid pk "{parent}" - object does not exist.']
    return errors
