"""Agent runs and their activities in Plane's REST API.

Runs come into being when a member mentions the bot in a comment. The agent reads
them and posts activities (thought, action, response, elicitation, error).
"""

from flask import Blueprint, Response

from . import agent_runs
from .api_auth import AGENT_RUN_SCOPES, authorize_api
from .comments_api import paginate, request_data
from .responses import abort_drf, drf_json
from .runtime import Runtime, current_runtime

blueprint = Blueprint("agents", __name__)

RUN = "/api/v1/workspaces/<slug>/runs/<run_id>/"
ACTIVITIES = f"{RUN}activities/"
ACTIVITY = f"{ACTIVITIES}<activity_id>/"
RUN_NOT_FOUND = {"error": "Agent run not found."}


@blueprint.get(RUN)
def retrieve_run(slug: str, run_id: str) -> Response:
    """Return a run. Reading it marks it stale if it sat idle too long."""
    runtime = current_runtime()
    authorize_api(runtime, slug, AGENT_RUN_SCOPES)
    return drf_json(_run(runtime, run_id))


@blueprint.post(ACTIVITIES)
def create_activity(slug: str, run_id: str) -> Response:
    """Validate and record an activity of the agent, and move the run's status."""
    runtime = current_runtime()
    access = authorize_api(runtime, slug, AGENT_RUN_SCOPES)
    _run(runtime, run_id)
    data = request_data()
    errors = agent_runs.validate_activity_request(data)
    if errors:
        return drf_json(errors, 400)
    activity = runtime.world.agent_runs.add_agent_activity(run_id, data, access.user_id)
    return drf_json(activity, 201)


@blueprint.get(ACTIVITIES)
def list_activities(slug: str, run_id: str) -> Response:
    runtime = current_runtime()
    authorize_api(runtime, slug, AGENT_RUN_SCOPES)
    _run(runtime, run_id)
    return drf_json(paginate(runtime.world.agent_runs.activities_of(run_id)))


@blueprint.get(ACTIVITY)
def retrieve_activity(slug: str, run_id: str, activity_id: str) -> Response:
    runtime = current_runtime()
    authorize_api(runtime, slug, AGENT_RUN_SCOPES)
    _run(runtime, run_id)
    for activity in runtime.world.agent_runs.activities_of(run_id):
        if activity["id"] == activity_id:
            return drf_json(activity)
    abort_drf({"error": "Agent run activity not found."}, 404)


def _run(runtime: Runtime, run_id: str) -> dict:
    run = runtime.world.agent_runs.read_run(run_id)
    if run is None or run["workspace"] != runtime.config.workspace_id:
        abort_drf(RUN_NOT_FOUND, 404)
    return run
