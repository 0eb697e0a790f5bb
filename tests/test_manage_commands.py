"""``python manage.py``: list, inspect, renew, remove and re-encrypt installations."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from plane_standin import defaults
from shared.installations import InstallationStore, TokenCipher
from tests.conftest import (
    STANDIN_CLIENT_SECRET,
    TEST_ENCRYPTION_KEY,
    make_environ,
    make_installation,
)

ROOT = Path(__file__).resolve().parent.parent
INSTALLATION_ID = defaults.INSTALLATION_ID


@pytest.fixture
def installed(redis_url, standin):
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    store = InstallationStore(connection, TokenCipher((TEST_ENCRYPTION_KEY,)))
    store.save(make_installation())
    bot = standin.issue_bot_token()
    access, refresh = standin.issue_user_token()
    store.save_bot_token(INSTALLATION_ID, bot, time.time() + 3600)
    store.replace_user_tokens(
        INSTALLATION_ID,
        access_token=access,
        refresh_token=refresh,
        expires_at=time.time() + 3600,
    )
    return {"store": store, "tokens": [bot, access, refresh]}


def manage(redis_url, standin, *arguments, **overrides):
    env = {
        **os.environ,
        **make_environ(
            redis_url,
            PLANE_BASE_URL=standin.url,
            PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
            **overrides,
        ),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_installations_lists_without_tokens(redis_url, standin, installed):
    result = manage(redis_url, standin, "installations")

    assert result.returncode == 0, result.stderr
    assert INSTALLATION_ID in result.stdout
    assert "acme" in result.stdout
    for token in installed["tokens"]:
        assert token not in result.stdout + result.stderr


def test_tokens_shows_expiry_not_values(redis_url, standin, installed):
    result = manage(redis_url, standin, "tokens", INSTALLATION_ID)

    assert result.returncode == 0, result.stderr
    assert "bot token:    expires in" in result.stdout
    assert "user token:   expires in" in result.stdout
    for token in installed["tokens"]:
        assert token not in result.stdout + result.stderr


def test_refresh_renews_both_tokens(redis_url, standin, installed):
    result = manage(redis_url, standin, "refresh", INSTALLATION_ID)

    assert result.returncode == 0, result.stderr
    assert len(standin.token_requests("client_credentials")) == 1
    assert len(standin.token_requests("refresh_token")) == 1
    assert (
        installed["store"].load_user_tokens(INSTALLATION_ID).access_token
        not in installed["tokens"]
    )


def test_remove_revokes_at_plane_and_deletes(redis_url, standin, installed):
    result = manage(redis_url, standin, "remove", INSTALLATION_ID)

    revoked = [r.form["token"] for r in standin.requests("revoke")]
    assert result.returncode == 0, result.stderr
    assert sorted(revoked) == sorted(installed["tokens"])
    assert installed["store"].get(INSTALLATION_ID) is None
    assert installed["store"].load_user_tokens(INSTALLATION_ID) is None


def test_remove_keeps_data_when_revocation_fails(redis_url, standin, installed):
    standin.script(
        "revoke", [{"status": 400, "json": {"error": "invalid_request"}}] * 3
    )

    result = manage(redis_url, standin, "remove", INSTALLATION_ID)

    assert result.returncode == 1
    assert "--force" in result.stdout
    assert installed["store"].get(INSTALLATION_ID) is not None


def test_unknown_installation_is_a_clear_error(redis_url, standin, installed):
    result = manage(
        redis_url, standin, "tokens", "00000000-0000-4000-8000-000000000000"
    )

    assert result.returncode == 1
    assert (
        "No installation '00000000-0000-4000-8000-000000000000' is stored"
        in result.stderr
    )


def test_reencrypt_moves_tokens_to_new_key(redis_url, standin, installed):
    new_key = Fernet.generate_key().decode()
    both_keys = f"{new_key},{TEST_ENCRYPTION_KEY}"

    result = manage(
        redis_url, standin, "reencrypt-tokens", TOKEN_ENCRYPTION_KEYS=both_keys
    )

    only_new = InstallationStore(installed["store"].redis, TokenCipher((new_key,)))
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 3 tokens of 1 installations" in result.stdout
    assert (
        only_new.load_user_tokens(INSTALLATION_ID).access_token
        == installed["tokens"][1]
    )
    assert (
        only_new.load_bot_token(INSTALLATION_ID).access_token == installed["tokens"][0]
    )


def test_missing_settings_name_the_variable(redis_url, standin):
    result = manage(redis_url, standin, "installations", TOKEN_ENCRYPTION_KEYS="")

    assert result.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS is not set" in result.stderr
