import pytest
from cryptography.fernet import Fernet

from shared.errors import SettingsError
from shared.settings import load_settings

VALID = {
    "PLANE_BASE_URL": "https://api.plane.so/",
    "PLANE_CLIENT_ID": "client-id",
    "PLANE_CLIENT_SECRET": "client-secret",
    "PLANE_REDIRECT_URI": "https://app.example.com/oauth/callback",
    "PLANE_WEBHOOK_SECRET": "plane_wh_3f9a1c0e7b2d4a6c8e0f1a2b3c4d5e6f",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "s" * 40,
    "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def load(**changes):
    environ = {**VALID, **changes}
    return load_settings({k: v for k, v in environ.items() if v is not None})


def problems_of(**changes) -> str:
    with pytest.raises(SettingsError) as raised:
        load(**changes)
    return str(raised.value)


def test_valid_settings_load():
    settings = load()

    assert settings.plane_base_url == "https://api.plane.so"
    assert settings.webhook_secrets == ("plane_wh_3f9a1c0e7b2d4a6c8e0f1a2b3c4d5e6f",)
    assert settings.plane_scopes == "read write"
    assert settings.allow_install_without_state is False


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_webhook_secret_is_refused(value):
    message = problems_of(PLANE_WEBHOOK_SECRET=value)

    assert "PLANE_WEBHOOK_SECRET is not set" in message


@pytest.mark.parametrize("value", ["a,,b", "a,", ",a"])
def test_empty_rotation_entry_is_refused(value):
    message = problems_of(PLANE_WEBHOOK_SECRET=value)

    assert "PLANE_WEBHOOK_SECRET contains an empty entry" in message


def test_rotation_list_is_split():
    settings = load(PLANE_WEBHOOK_SECRET="new_secret, old_secret")

    assert settings.webhook_secrets == ("new_secret", "old_secret")


def test_every_problem_is_listed_at_once():
    message = problems_of(
        PLANE_CLIENT_ID=None, REDIS_URL="http://x", SECRET_KEY="short"
    )

    assert "PLANE_CLIENT_ID is not set" in message
    assert "REDIS_URL must start with redis://" in message
    assert "SECRET_KEY must be at least 32 characters" in message


def test_bad_encryption_key_names_its_position():
    message = problems_of(
        TOKEN_ENCRYPTION_KEYS=VALID["TOKEN_ENCRYPTION_KEYS"] + ",nope"
    )

    assert "TOKEN_ENCRYPTION_KEYS entry 2 is not a valid Fernet key" in message


def test_secret_values_never_appear_in_errors():
    message = problems_of(PLANE_CLIENT_ID=None, SECRET_KEY="tooshort-secret")

    assert "tooshort-secret" not in message
    assert VALID["PLANE_CLIENT_SECRET"] not in message


def test_bad_boolean_and_number_are_refused():
    message = problems_of(
        PLANE_ALLOW_INSTALL_WITHOUT_STATE="maybe", WORKER_CONCURRENCY="0"
    )

    assert "PLANE_ALLOW_INSTALL_WITHOUT_STATE must be true or false" in message
    assert "WORKER_CONCURRENCY must be a positive whole number" in message


def test_dotenv_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "\n".join(f"{k}={v}" for k, v in VALID.items()) + "\nLOG_LEVEL=DEBUG\n"
    )
    monkeypatch.setenv("LOG_LEVEL", "WARNING")

    settings = load_settings(dotenv_path=str(dotenv))

    assert settings.plane_client_id == "client-id"
    assert settings.log_level == "WARNING"


def test_log_format_accepts_json():
    assert load(LOG_FORMAT="JSON").log_format == "json"


def test_log_format_rejects_unknown():
    assert "LOG_FORMAT" in problems_of(LOG_FORMAT="xml")


def test_web_server_settings_read_dotenv(tmp_path, monkeypatch):
    from shared.settings import load_web_server_settings

    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=28000\nWEB_CONCURRENCY=3\nHOST=127.0.0.1\n")
    for name in ("PORT", "WEB_CONCURRENCY", "HOST"):
        monkeypatch.delenv(name, raising=False)

    server = load_web_server_settings(dotenv_path=str(dotenv))

    assert server.port == 28000
    assert server.workers == 3
    assert server.host == "127.0.0.1"


def test_bad_web_concurrency_is_a_clear_error():
    from shared.settings import load_web_server_settings

    with pytest.raises(SettingsError, match="WEB_CONCURRENCY must be a positive"):
        load_web_server_settings({"WEB_CONCURRENCY": "two"})
