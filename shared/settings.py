"""Read and check every setting in one place.

``load_settings`` is the only code in the project that reads ``os.environ``. It
collects every problem it finds, so a fresh ``.env`` can be fixed in one pass
rather than one problem per restart.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from dotenv import dotenv_values

from shared.errors import SettingsError

DEFAULT_SCOPES = "read write"

# Plane's largest work-item payloads are a few hundred KB (description HTML plus
# label and assignee objects); 5 MiB leaves a wide margin and still bounds memory.
DEFAULT_WEBHOOK_MAX_BODY_BYTES = 5 * 1024 * 1024

# Refresh a token this long before its expiry time, so a call made at the end of
# a long handler never carries a token that expires on the way.
DEFAULT_TOKEN_REFRESH_MARGIN_SECONDS = 300

MIN_SECRET_KEY_LENGTH = 32

# After Plane first refuses a bot token for an installation, wait this long and
# ask once more before marking it uninstalled, so a passing 500 is not enough.
DEFAULT_UNINSTALL_RECHECK_SECONDS = 60

# The dashboard can delete and requeue jobs, and a short password falls quickly
# to guessing over the public port the web process listens on.
MIN_DASHBOARD_PASSWORD_LENGTH = 16

LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """The checked configuration of one process."""

    plane_base_url: str
    plane_client_id: str
    plane_client_secret: str
    plane_redirect_uri: str
    plane_scopes: str
    webhook_secrets: tuple[str, ...]
    redis_url: str
    secret_key: str
    token_encryption_keys: tuple[str, ...]
    handler_modules: tuple[str, ...]
    sentry_dsn: str
    allow_install_without_state: bool
    app_mentions: bool
    webhook_max_body_bytes: int
    token_refresh_margin_seconds: int
    worker_concurrency: int
    log_level: str
    log_format: str
    sentry_environment: str
    metrics_token: str
    dashboard_username: str
    dashboard_password: str
    uninstall_recheck_seconds: int
    api_rate_limit_per_minute: int
    token_rate_limit_per_minute: int


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv_path: str = ".env"
) -> Settings:
    """Build ``Settings`` from ``environ`` (default: the process environment and .env).

    Variables in the environment win over the same names in ``.env``. Raises
    ``SettingsError`` naming every missing or invalid variable.
    """
    if environ is None:
        merged = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        merged.update(os.environ)
        environ = merged

    reader = _Reader(environ)
    settings = Settings(
        plane_base_url=reader.url("PLANE_BASE_URL").rstrip("/"),
        plane_client_id=reader.required(
            "PLANE_CLIENT_ID", "Copy it from your app's settings in Plane."
        ),
        plane_client_secret=reader.required(
            "PLANE_CLIENT_SECRET", "Copy it from your app's settings in Plane."
        ),
        plane_redirect_uri=reader.url("PLANE_REDIRECT_URI"),
        plane_scopes=reader.optional("PLANE_SCOPES", DEFAULT_SCOPES),
        webhook_secrets=reader.secret_list("PLANE_WEBHOOK_SECRET"),
        redis_url=reader.redis_url("REDIS_URL"),
        secret_key=reader.secret_key("SECRET_KEY"),
        token_encryption_keys=reader.fernet_keys("TOKEN_ENCRYPTION_KEYS"),
        handler_modules=reader.name_list("HANDLER_MODULES"),
        sentry_dsn=reader.optional("SENTRY_DSN", ""),
        allow_install_without_state=reader.boolean(
            "PLANE_ALLOW_INSTALL_WITHOUT_STATE", False
        ),
        app_mentions=reader.boolean("PLANE_APP_MENTIONS", False),
        webhook_max_body_bytes=reader.positive_int(
            "WEBHOOK_MAX_BODY_BYTES", DEFAULT_WEBHOOK_MAX_BODY_BYTES
        ),
        token_refresh_margin_seconds=reader.positive_int(
            "TOKEN_REFRESH_MARGIN_SECONDS", DEFAULT_TOKEN_REFRESH_MARGIN_SECONDS
        ),
        worker_concurrency=reader.positive_int("WORKER_CONCURRENCY", 2),
        log_level=reader.choice(
            "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")
        ),
        log_format=reader.choice("LOG_FORMAT", "text", LOG_FORMATS, upper=False),
        sentry_environment=reader.optional("SENTRY_ENVIRONMENT", "production"),
        metrics_token=reader.optional("METRICS_TOKEN", ""),
        dashboard_username=reader.optional("RQ_DASHBOARD_USERNAME", "admin"),
        dashboard_password=reader.dashboard_password("RQ_DASHBOARD_PASSWORD"),
        uninstall_recheck_seconds=reader.positive_int(
            "UNINSTALL_RECHECK_SECONDS", DEFAULT_UNINSTALL_RECHECK_SECONDS
        ),
        api_rate_limit_per_minute=reader.positive_int(
            "PLANE_API_RATE_LIMIT_PER_MINUTE", 5000
        ),
        token_rate_limit_per_minute=reader.positive_int(
            "PLANE_TOKEN_RATE_LIMIT_PER_MINUTE", 300
        ),
    )
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


class _Reader:
    """Read typed values from a mapping and collect a message for each bad one."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def _raw(self, name: str) -> str:
        return self.environ.get(name, "").strip()

    def required(self, name: str, hint: str) -> str:
        value = self._raw(name)
        if not value:
            self.problems.append(f"{name} is not set. {hint}")
        return value

    def optional(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def url(self, name: str) -> str:
        value = self.required(name, "Give a full http:// or https:// URL.")
        if value and (urlsplit(value).scheme not in ("http", "https")):
            self.problems.append(
                f"{name} must be an http:// or https:// URL, got {value!r}."
            )
        return value

    def redis_url(self, name: str) -> str:
        value = self.required(
            name, "Give your Redis URL, for example redis://127.0.0.1:6379/0."
        )
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            self.problems.append(
                f"{name} must start with redis://, rediss:// or unix://, "
                f"got {urlsplit(value).scheme!r}."
            )
        return value

    def secret_list(self, name: str) -> tuple[str, ...]:
        raw = self.environ.get(name, "")
        if not raw.strip():
            self.problems.append(
                f"{name} is not set. Set it to the Webhook Secret from your app's "
                "settings in Plane; without it no delivery can be verified."
            )
            return ()
        secrets = tuple(part.strip() for part in raw.split(","))
        if any(not secret for secret in secrets):
            self.problems.append(
                f"{name} contains an empty entry. List secrets separated by commas, "
                "with no empty item (an empty key would accept forged signatures)."
            )
            return ()
        return secrets

    def secret_key(self, name: str) -> str:
        value = self.required(
            name,
            'Generate one with: python -c "import secrets; '
            'print(secrets.token_urlsafe(48))"',
        )
        if value and len(value) < MIN_SECRET_KEY_LENGTH:
            self.problems.append(
                f"{name} must be at least {MIN_SECRET_KEY_LENGTH} characters long, "
                f"got {len(value)}."
            )
        return value

    def fernet_keys(self, name: str) -> tuple[str, ...]:
        hint = (
            "Generate one with: python -c "
            '"from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        )
        raw = self.required(name, hint)
        if not raw:
            return ()
        keys = tuple(part.strip() for part in raw.split(","))
        for position, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError:
                self.problems.append(
                    f"{name} entry {position} is not a valid Fernet key "
                    f"(32 url-safe base64-encoded bytes). {hint}"
                )
        return keys

    def name_list(self, name: str) -> tuple[str, ...]:
        return tuple(
            part.strip() for part in self._raw(name).split(",") if part.strip()
        )

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name).lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false, got {raw!r}.")
        return default

    def positive_int(self, name: str, default: int) -> int:
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            self.problems.append(
                f"{name} must be a positive whole number, got {raw!r}."
            )
            return default
        return value

    def dashboard_password(self, name: str) -> str:
        value = self._raw(name)
        if value and len(value) < MIN_DASHBOARD_PASSWORD_LENGTH:
            self.problems.append(
                f"{name} must be at least {MIN_DASHBOARD_PASSWORD_LENGTH} characters "
                f"long, got {len(value)}. Leave it empty to turn the dashboard off."
            )
            return ""
        return value

    def choice(
        self,
        name: str,
        default: str,
        allowed: tuple[str, ...],
        *,
        upper: bool = True,
    ) -> str:
        raw = self._raw(name)
        value = (raw.upper() if upper else raw.lower()) or default
        if value not in allowed:
            self.problems.append(
                f"{name} must be one of {', '.join(allowed)}, got {value!r}."
            )
            return default
        return value


@dataclass(frozen=True)
class WebServerSettings:
    """Address, port and worker count of the gunicorn web process."""

    host: str
    port: int
    workers: int


def load_web_server_settings(
    environ: Mapping[str, str] | None = None, *, dotenv_path: str = ".env"
) -> WebServerSettings:
    """Read HOST, PORT and WEB_CONCURRENCY (the environment wins over .env).

    HOST defaults to 0.0.0.0, which platforms such as Heroku require; the demo
    sets 127.0.0.1, because its secrets are published.
    """
    if environ is None:
        merged = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        merged.update(os.environ)
        environ = merged
    reader = _Reader(environ)
    server = WebServerSettings(
        host=reader.optional("HOST", "0.0.0.0"),
        port=reader.positive_int("PORT", 8000),
        workers=reader.positive_int("WEB_CONCURRENCY", 2),
    )
    if reader.problems:
        raise SettingsError(reader.problems)
    return server
