"""The stand-in's REST API, faults, uninstall and control API over loopback."""

import hashlib
import hmac
import json

import pytest
import requests
from plane.client import PlaneClient
from plane.errors import HttpError
from plane.models.agent_runs import CreateAgentRunActivity
from plane.models.work_items import CreateWorkItemComment

from plane_standin import StandIn
from plane_standin import defaults as ids
from plane_standin.receiver import RESET, WebhookReceiver

SECRET = "plane_wh_3f9a1c0e7b2d4a6c8e0f1a2b3c4d5e6f"
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}
PROJECT_PATH = f"/api/v1/workspaces/acme/projects/{ids.PROJECT_ID}"
COMMENTS_PATH = f"{PROJECT_PATH}/work-items/{ids.WORK_ITEM_ID}/comments/"


class FrozenClock:
    """A clock that moves only when a test advances it."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
def receiver():
    with WebhookReceiver(default_status=202) as receiver:
        yield receiver


def start_standin(clock, receiver, **options) -> StandIn:
    options.setdefault("webhooks_for_api_changes", False)
    return StandIn(
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        clock=clock,
        delay_scale=0.0,
        **options,
    ).start()


@pytest.fixture
def standin(clock, receiver):
    standin = start_standin(clock, receiver)
    yield standin
    standin.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_comment(standin: StandIn, token: str, body: dict, path: str = COMMENTS_PATH):
    return requests.post(standin.url + path, json=body, headers=bearer(token))


def verify(received) -> bool:
    expected = hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-Plane-Signature"], expected)


# Comments


def test_comment_create_returns_201(standin):
    response = post_comment(
        standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"}
    )
    assert response.status_code == 201
    assert response.json()["comment_html"] == "<p>x</p>"


def test_comment_actor_is_token_user(standin):
    comment = post_comment(
        standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"}
    ).json()
    assert comment["actor"] == ids.BOT_USER_ID
    assert comment["issue"] == ids.WORK_ITEM_ID
    assert comment["workspace"] == ids.WORKSPACE_ID


def test_comment_via_issues_alias(standin):
    path = f"{PROJECT_PATH}/issues/{ids.WORK_ITEM_ID}/comments/"
    response = post_comment(
        standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"}, path
    )
    assert response.status_code == 201


def test_comment_list_is_paginated_newest_first(standin):
    token = standin.issue_bot_token()
    created = post_comment(standin, token, {"comment_html": "<p>new</p>"}).json()
    body = requests.get(standin.url + COMMENTS_PATH, headers=bearer(token)).json()
    assert body["total_results"] == 2
    assert body["results"][0]["id"] == created["id"]
    assert body["results"][1]["id"] == ids.COMMENT_ID


def test_duplicate_external_pair_gets_409(standin):
    token = standin.issue_bot_token()
    body = {"comment_html": "<p>x</p>", "external_source": "app", "external_id": "d1"}
    first = post_comment(standin, token, body).json()
    second = post_comment(standin, token, body)
    assert second.status_code == 409
    assert second.json()["id"] == first["id"]
    assert "error" in second.json()


def test_comment_on_unknown_work_item_is_404(standin):
    path = f"{PROJECT_PATH}/work-items/{ids.COMMENT_ID}/comments/"
    response = post_comment(
        standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"}, path
    )
    assert response.status_code == 404
    assert "error" in response.json()


def test_comment_in_unknown_project_is_404(standin):
    path = (
        f"/api/v1/workspaces/acme/projects/{ids.COMMENT_ID}"
        f"/work-items/{ids.WORK_ITEM_ID}/comments/"
    )
    response = post_comment(
        standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"}, path
    )
    assert response.status_code == 404


def test_comment_without_html_is_400(standin):
    response = post_comment(standin, standin.issue_bot_token(), {"access": "INTERNAL"})
    assert response.status_code == 400
    assert "comment_html" in response.json()


def test_comment_with_invalid_access_is_400(standin):
    body = {"comment_html": "<p>x</p>", "access": "PUBLIC"}
    response = post_comment(standin, standin.issue_bot_token(), body)
    assert response.json() == {"access": ['"PUBLIC" is not a valid choice.']}


def test_expired_token_gets_403(standin):
    token = standin.issue_bot_token()
    standin.expire_token(token)
    response = post_comment(standin, token, {"comment_html": "<p>x</p>"})
    assert response.status_code == 403
    assert response.json() == NOT_AUTHENTICATED


def test_revoked_tokens_get_403(standin):
    token = standin.issue_bot_token()
    standin.revoke_all()
    response = post_comment(standin, token, {"comment_html": "<p>x</p>"})
    assert response.json() == NOT_AUTHENTICATED


def test_api_key_header_is_not_accepted(standin):
    token = standin.issue_bot_token()
    response = requests.get(standin.url + COMMENTS_PATH, headers={"X-Api-Key": token})
    assert response.status_code == 403


def test_bot_token_is_confined_to_its_workspace(standin):
    path = COMMENTS_PATH.replace("/acme/", "/other-workspace/")
    response = post_comment(
        standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"}, path
    )
    assert response.status_code == 403
    assert response.json() == NO_PERMISSION


def test_read_only_token_cannot_comment(standin):
    token = standin.issue_bot_token(scope="read")
    response = post_comment(standin, token, {"comment_html": "<p>x</p>"})
    assert response.json() == NO_PERMISSION


def test_api_responses_carry_rate_limit_headers(standin):
    token = standin.issue_bot_token()
    response = requests.get(standin.url + COMMENTS_PATH, headers=bearer(token))
    assert response.headers["X-RateLimit-Limit"] == "5000"
    assert response.headers["X-RateLimit-Remaining"] == "4999"


def test_api_rate_limit_returns_429(clock, receiver):
    standin = start_standin(clock, receiver, api_rate_limit=1)
    try:
        token = standin.issue_bot_token()
        requests.get(standin.url + COMMENTS_PATH, headers=bearer(token))
        limited = requests.get(standin.url + COMMENTS_PATH, headers=bearer(token))
        assert limited.status_code == 429
        assert limited.headers["X-RateLimit-Remaining"] == "0"
    finally:
        standin.stop()


def test_comments_created_record_token_and_user(standin):
    token = standin.issue_bot_token()
    post_comment(standin, token, {"comment_html": "<p>x</p>"})
    created = standin.comments_created()[0]
    assert created["token"] == token
    assert created["user_id"] == ids.BOT_USER_ID


def test_requests_are_recorded_with_token_and_status(standin):
    token = standin.issue_bot_token()
    post_comment(standin, token, {"comment_html": "<p>x</p>"})
    record = standin.requests("api:comments")[0]
    assert record.bearer_token == token
    assert record.status == 201
    assert record.json == {"comment_html": "<p>x</p>"}


def test_plane_sdk_creates_comment(standin):
    client = PlaneClient(base_url=standin.url, access_token=standin.issue_bot_token())
    comment = client.work_items.comments.create(
        ids.WORKSPACE_SLUG,
        ids.PROJECT_ID,
        ids.WORK_ITEM_ID,
        CreateWorkItemComment(
            comment_html="<p>Triaged.</p>", external_source="app", external_id="e1"
        ),
    )
    assert comment.comment_html == "<p>Triaged.</p>"
    assert comment.actor == ids.BOT_USER_ID


def test_plane_sdk_lists_comments(standin):
    client = PlaneClient(base_url=standin.url, access_token=standin.issue_bot_token())
    page = client.work_items.comments.list(
        ids.WORKSPACE_SLUG, ids.PROJECT_ID, ids.WORK_ITEM_ID
    )
    assert [comment.id for comment in page.results] == [ids.COMMENT_ID]


def test_plane_sdk_sees_409_as_http_error(standin):
    client = PlaneClient(base_url=standin.url, access_token=standin.issue_bot_token())
    data = CreateWorkItemComment(
        comment_html="<p>x</p>", external_source="app", external_id="e1"
    )
    args = (ids.WORKSPACE_SLUG, ids.PROJECT_ID, ids.WORK_ITEM_ID, data)
    client.work_items.comments.create(*args)
    with pytest.raises(HttpError) as raised:
        client.work_items.comments.create(*args)
    assert raised.value.status_code == 409


def test_bot_comment_comes_back_as_webhook(clock, receiver):
    standin = start_standin(clock, receiver, webhooks_for_api_changes=True)
    try:
        post_comment(standin, standin.issue_bot_token(), {"comment_html": "<p>x</p>"})
        standin.wait_for_background_sends()
        body = json.loads(receiver.received[0].body)
        assert body["event"] == "issue_comment"
        assert body["activity"]["actor"]["id"] == ids.BOT_USER_ID
    finally:
        standin.stop()


# Agent runs


@pytest.fixture
def run_id(standin):
    result = standin.create_comment(ids.WORK_ITEM_ID, "triage this", mention_bot=True)
    run_ids = list(standin.world.agent_runs.runs)
    assert len(result["deliveries"]) == 3
    return run_ids[0]


def post_activity(standin: StandIn, run_id: str, body: dict, token: str | None = None):
    path = f"/api/v1/workspaces/acme/runs/{run_id}/activities/"
    token = token or standin.issue_bot_token()
    return requests.post(standin.url + path, json=body, headers=bearer(token))


def get_run(standin: StandIn, run_id: str) -> dict:
    path = f"/api/v1/workspaces/acme/runs/{run_id}/"
    token = standin.issue_bot_token()
    return requests.get(standin.url + path, headers=bearer(token)).json()


def test_mention_sends_comment_and_agent_events(standin, receiver, run_id):
    events = [r.headers["X-Plane-Event"] for r in receiver.received]
    assert events == ["issue_comment", "agent_run_create", "agent_run_user_prompt"]
    assert all(verify(received) for received in receiver.received)


def test_prompt_event_carries_comment_html(standin, receiver, run_id):
    body = json.loads(receiver.received[2].body)
    prompt = body["data"]["agent_run_activity"]["content"]["body"]
    assert 'entity_identifier="c0ffee00-1234-4abc-9def-0123456789ab"' in prompt
    assert body["data"] == body["activity"]


def test_comment_without_mention_starts_no_run(standin, receiver):
    standin.create_comment(ids.WORK_ITEM_ID, "just a note")
    assert [r.headers["X-Plane-Event"] for r in receiver.received] == ["issue_comment"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "prompt", "content": {"type": "prompt", "body": "x"}},
        {"type": "thought", "content": {"type": "response", "body": "x"}},
        {"type": "thought", "content": {"type": "thought", "body": ""}},
        {"type": "action", "content": {"type": "action", "action": "a"}},
        {
            "type": "action",
            "content": {"type": "action", "action": "a", "parameters": {"n": 1}},
        },
        {
            "type": "elicitation",
            "content": {"type": "elicitation", "body": "Sign in?"},
            "signal": "auth_request",
            "signal_metadata": {"url": "http://insecure.example"},
        },
        {"type": "dance", "content": {"type": "dance", "body": "x"}},
    ],
    ids=[
        "prompt",
        "type-mismatch",
        "empty-body",
        "action-without-parameters",
        "non-string-parameter",
        "auth-request-http",
        "unknown-type",
    ],
)
def test_invalid_activity_is_400(standin, run_id, body):
    assert post_activity(standin, run_id, body).status_code == 400


def test_activity_on_unknown_run_is_404(standin):
    body = {"type": "thought", "content": {"type": "thought", "body": "x"}}
    assert post_activity(standin, ids.COMMENT_ID, body).status_code == 404


def test_thought_is_ephemeral_and_keeps_run_in_progress(standin, run_id):
    body = {"type": "thought", "content": {"type": "thought", "body": "Looking"}}
    activity = post_activity(standin, run_id, body).json()
    assert activity["ephemeral"] is True
    assert activity["signal"] == "continue"
    assert get_run(standin, run_id)["status"] == "in_progress"


@pytest.mark.parametrize(
    ("activity_type", "status"),
    [("elicitation", "awaiting"), ("error", "failed"), ("response", "in_progress")],
)
def test_activity_moves_run_status(standin, run_id, activity_type, status):
    body = {"type": activity_type, "content": {"type": activity_type, "body": "x"}}
    post_activity(standin, run_id, body)
    assert get_run(standin, run_id)["status"] == status


def test_error_copies_signal_metadata(standin, run_id):
    body = {
        "type": "error",
        "content": {"type": "error", "body": "Failed"},
        "signal_metadata": {"reason": "timeout"},
    }
    post_activity(standin, run_id, body)
    assert get_run(standin, run_id)["error_metadata"] == {"reason": "timeout"}


def test_response_creates_bot_reply_in_thread(standin, run_id):
    body = {"type": "response", "content": {"type": "response", "body": "Done"}}
    activity = post_activity(standin, run_id, body).json()
    reply = standin.world.comments[activity["comment"]]
    assert reply["comment_html"] == "<p>Done</p>"
    assert reply["actor"] == ids.BOT_USER_ID
    assert reply["parent"] == get_run(standin, run_id)["comment"]


def test_run_goes_stale_after_five_idle_minutes(standin, clock, run_id):
    clock.advance(5 * 60)
    assert get_run(standin, run_id)["status"] == "stale"


def test_plane_sdk_posts_activity(standin, run_id):
    client = PlaneClient(base_url=standin.url, access_token=standin.issue_bot_token())
    activity = client.agent_runs.activities.create(
        ids.WORKSPACE_SLUG,
        run_id,
        CreateAgentRunActivity(
            type="action",
            content={"type": "action", "action": "label", "parameters": {"l": "bug"}},
        ),
    )
    assert activity.type.value == "action"


# Scripted faults


def test_scripted_status_then_normal_behaviour(standin):
    standin.script("api:comments", [{"status": 503, "json": {"detail": "down"}}])
    token = standin.issue_bot_token()
    first = post_comment(standin, token, {"comment_html": "<p>x</p>"})
    second = post_comment(standin, token, {"comment_html": "<p>x</p>"})
    assert first.status_code == 503
    assert first.json() == {"detail": "down"}
    assert second.status_code == 201


def test_scripted_headers_are_sent(standin):
    standin.script("api", [{"status": 429, "headers": {"Retry-After": "2"}}])
    response = post_comment(standin, standin.issue_bot_token(), {"comment_html": "x"})
    assert response.headers["Retry-After"] == "2"


def test_scripted_connection_reset(standin):
    standin.script("token:client_credentials", ["connection_reset"])
    form = {
        "grant_type": "client_credentials",
        "app_installation_id": ids.INSTALLATION_ID,
    }
    auth = (ids.CLIENT_ID, ids.CLIENT_SECRET)
    with pytest.raises(requests.ConnectionError):
        requests.post(standin.url + "/auth/o/token/", data=form, auth=auth)
    assert standin.token_requests("client_credentials")[0].outcome == (
        "connection_reset"
    )


def test_script_matches_only_its_grant(standin):
    standin.script("token:refresh_token", [{"status": 500}])
    form = {
        "grant_type": "client_credentials",
        "app_installation_id": ids.INSTALLATION_ID,
    }
    auth = (ids.CLIENT_ID, ids.CLIENT_SECRET)
    response = requests.post(standin.url + "/auth/o/token/", data=form, auth=auth)
    assert response.status_code == 200


def test_delayed_refresh_response_rotated_already(standin):
    _, refresh_token = standin.issue_user_token()
    standin.script("token:refresh_token", [{"delay": 0.3}])
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    auth = (ids.CLIENT_ID, ids.CLIENT_SECRET)
    url = standin.url + "/auth/o/token/"
    with pytest.raises(requests.Timeout):
        requests.post(url, data=form, auth=auth, timeout=0.1)
    retried = requests.post(url, data=form, auth=auth)
    assert retried.json() == {"error": "invalid_grant"}


# Uninstall


def test_uninstall_posts_unsigned_notice_once(standin, receiver):
    standin.uninstall()
    received = receiver.received
    assert len(received) == 1
    assert json.loads(received[0].body) == {
        "workspace_id": ids.WORKSPACE_ID,
        "application_id": ids.APPLICATION_ID,
        "app_installation_id": ids.INSTALLATION_ID,
        "status": "uninstalled",
    }
    assert not any(name.startswith("X-Plane") for name in received[0].headers)


def test_uninstall_notice_is_not_retried(standin, receiver):
    receiver.plan(RESET)
    result = standin.uninstall()
    assert result["response"]["status"] is None
    assert len(receiver.received) == 1


def test_uninstall_expires_tokens(standin):
    token = standin.issue_bot_token()
    standin.uninstall()
    response = post_comment(standin, token, {"comment_html": "<p>x</p>"})
    assert response.json() == NOT_AUTHENTICATED


def test_uninstall_marks_installation(standin):
    standin.uninstall()
    assert standin.installation()["status"] == "uninstalled"


def test_no_webhooks_after_uninstall(standin, receiver):
    standin.uninstall()
    result = standin.create_work_item("After uninstall")
    assert result["deliveries"][0]["sent"] is False
    assert len(receiver.received) == 1


# Control API


def control(standin: StandIn, path: str, body: dict) -> requests.Response:
    return requests.post(standin.url + "/_standin" + path, json=body)


def test_control_work_item_sends_signed_issue_created(standin, receiver):
    result = control(standin, "/work-items", {"name": "Checkout fails"}).json()
    sent = json.loads(receiver.received[0].body)
    assert sent["event"] == "issue"
    assert sent["action"] == "created"
    assert sent["data"]["name"] == "Checkout fails"
    assert sent["data"]["sequence_id"] == 43
    assert verify(receiver.received[0])
    assert result["deliveries"][0]["attempts"][0]["status"] == 202


def test_control_comment_mentions_bot(standin, receiver):
    body = {"work_item_id": ids.WORK_ITEM_ID, "text": "Help?", "mention_bot": True}
    control(standin, "/comments", body)
    sent = json.loads(receiver.received[0].body)
    assert (
        '<mention-component entity_name="user_mention"' in sent["data"]["comment_html"]
    )
    assert sent["activity"]["actor"]["id"] == ids.MEMBER_USER_ID


def test_control_send_fixture_sends_fixture_bytes(standin, receiver):
    control(standin, "/send", {"fixture": "issue.updated"})
    sent = receiver.received[0]
    assert json.loads(sent.body)["activity"]["field"] == "priority"
    assert sent.headers["X-Plane-Event"] == "issue"
    assert verify(sent)


def test_control_send_uninstall_fixture_is_unsigned(standin, receiver):
    control(standin, "/send", {"fixture": "app.uninstalled"})
    assert "X-Plane-Signature" not in receiver.received[0].headers


def test_control_unknown_fixture_is_404(standin):
    response = control(standin, "/send", {"fixture": "issue.exploded"})
    assert response.status_code == 404


def test_control_lists_token_requests(standin):
    form = {
        "grant_type": "client_credentials",
        "app_installation_id": ids.INSTALLATION_ID,
    }
    auth = (ids.CLIENT_ID, ids.CLIENT_SECRET)
    requests.post(standin.url + "/auth/o/token/", data=form, auth=auth)
    listed = requests.get(
        standin.url + "/_standin/token-requests",
        params={"grant_type": "client_credentials"},
    ).json()
    assert [record["status"] for record in listed] == [200]


def test_webhook_deactivates_after_six_failures(standin, receiver):
    receiver.plan(*[RESET] * 6)
    first = standin.create_work_item("Lost")
    second = standin.create_work_item("Dropped")
    assert len(first["deliveries"][0]["attempts"]) == 6
    assert second["deliveries"][0]["sent"] is False
    assert "deactivated" in second["deliveries"][0]["reason"]


def test_comment_update_returns_edited_comment(standin):
    token = standin.issue_bot_token()
    created = post_comment(standin, token, {"comment_html": "<p>a</p>"}).json()
    response = requests.patch(
        standin.url + COMMENTS_PATH + created["id"] + "/",
        json={"comment_html": "<p>b</p>"},
        headers=bearer(token),
    )
    assert response.json()["comment_html"] == "<p>b</p>"
    assert response.json()["edited_at"] is not None


def test_comment_update_sends_one_webhook_per_field(clock, receiver):
    standin = start_standin(clock, receiver, webhooks_for_api_changes=True)
    try:
        token = standin.issue_bot_token()
        path = COMMENTS_PATH + ids.COMMENT_ID + "/"
        body = {"comment_html": "<p>b</p>", "access": "EXTERNAL"}
        requests.patch(standin.url + path, json=body, headers=bearer(token))
        standin.wait_for_background_sends()
        fields = sorted(
            json.loads(r.body)["activity"]["field"] for r in receiver.received
        )
        assert fields == ["access", "comment_html"]
    finally:
        standin.stop()


def test_deleted_comment_is_not_found(standin):
    token = standin.issue_bot_token()
    url = standin.url + COMMENTS_PATH + ids.COMMENT_ID + "/"
    assert requests.delete(url, headers=bearer(token)).status_code == 204
    assert requests.get(url, headers=bearer(token)).status_code == 404


def test_reply_in_run_thread_adds_prompt(standin, receiver, run_id):
    run = get_run(standin, run_id)
    standin.create_comment(ids.WORK_ITEM_ID, "more detail", parent_id=run["comment"])
    events = [r.headers["X-Plane-Event"] for r in receiver.received[3:]]
    assert events == ["issue_comment", "agent_run_user_prompt"]


def test_app_not_installed_gets_no_bot_token(clock, receiver):
    standin = start_standin(clock, receiver, preinstalled=False)
    try:
        form = {
            "grant_type": "client_credentials",
            "app_installation_id": ids.INSTALLATION_ID,
        }
        auth = (ids.CLIENT_ID, ids.CLIENT_SECRET)
        response = requests.post(standin.url + "/auth/o/token/", data=form, auth=auth)
        assert response.status_code == 500
    finally:
        standin.stop()


def test_custom_ids_are_used_in_fixtures(clock, receiver):
    workspace_id = "0b6b3d1e-2222-4a4a-9c9c-000000000002"
    installation_id = "0b6b3d1e-9999-4a4a-9c9c-000000000009"
    standin = start_standin(
        clock, receiver, workspace_id=workspace_id, installation_id=installation_id
    )
    try:
        standin.send_fixture("issue.created")
        standin.send_fixture("app.uninstalled")
        created, notice = (json.loads(r.body) for r in receiver.received)
        assert created["workspace_id"] == workspace_id
        assert created["data"]["workspace"] == workspace_id
        assert notice["app_installation_id"] == installation_id
    finally:
        standin.stop()


def test_webhook_secret_none_signs_with_unknown_secret(clock, receiver):
    standin = StandIn(
        webhook_url=receiver.url, webhook_secret=None, clock=clock, delay_scale=0.0
    ).start()
    try:
        standin.create_work_item("Unverifiable")
        assert not verify(receiver.received[0])
        assert standin.config.webhook_secret.startswith("plane_wh_")
    finally:
        standin.stop()
