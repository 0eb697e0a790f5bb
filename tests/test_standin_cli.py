"""The `python -m plane_standin` commands against a running stand-in."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plane_standin import StandIn
from plane_standin import defaults as ids
from plane_standin.cli import main, read_env
from plane_standin.receiver import WebhookReceiver

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def receiver():
    with WebhookReceiver(default_status=202) as receiver:
        yield receiver


@pytest.fixture
def standin(receiver):
    with StandIn(
        webhook_url=receiver.url, webhook_secret="plane_wh_test", delay_scale=0.0
    ) as standin:
        yield standin


def test_work_item_command_prints_summary(standin, capsys):
    assert main(["work-item", "Checkout fails", "--standin-url", standin.url]) == 0
    output = capsys.readouterr().out
    assert "Created work item #43" in output
    assert "issue/created: HTTP 202 after 1 attempt(s)" in output


def test_comment_command_with_mention_starts_agent_run(standin, receiver, capsys):
    args = ["comment", ids.WORK_ITEM_ID, "Triage?", "--mention"]
    main([*args, "--standin-url", standin.url])
    events = [r.headers["X-Plane-Event"] for r in receiver.received]
    assert events == ["issue_comment", "agent_run_create", "agent_run_user_prompt"]


def test_send_command_sends_fixture(standin, receiver):
    main(["send", "project.deleted", "--standin-url", standin.url])
    assert json.loads(receiver.received[0].body)["event"] == "project"


def test_uninstall_command_prints_notice_status(standin, capsys):
    main(["uninstall", "--standin-url", standin.url])
    assert f"Uninstalled {ids.INSTALLATION_ID}; notice: 202" in capsys.readouterr().out


def test_unreachable_standin_is_reported(capsys):
    code = main(["send", "issue.updated", "--standin-url", "http://127.0.0.1:9"])
    assert code == 1
    assert "Could not reach the stand-in" in capsys.readouterr().out


def test_environment_sets_serve_defaults():
    env = read_env(
        {
            "STANDIN_PORT": "8191",
            "PLANE_CLIENT_ID": "client-from-env",
            "PLANE_REDIRECT_URI": "http://a/cb,http://b/cb",
        }
    )
    assert env["port"] == 8191
    assert env["client_id"] == "client-from-env"
    assert env["redirect_uri"] == ["http://a/cb", "http://b/cb"]


def test_serve_without_webhook_secret_names_the_setting():
    result = subprocess.run(
        [sys.executable, "-m", "plane_standin", "serve", "--webhook-url", "http://x"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": ""},
    )
    assert result.returncode == 2
    assert "PLANE_WEBHOOK_SECRET is not set" in result.stdout
