"""`StandIn`: a local Plane on 127.0.0.1 for tests and demos."""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import defaults, operations
from .app import create_app
from .config import StandInConfig
from .recorder import RecordedRequest
from .runtime import Runtime
from .tokens import AuthorizationCode, generate_token

logger = logging.getLogger(__name__)

# How often the serving loop checks for shutdown, so `stop()` returns quickly.
SHUTDOWN_POLL_SECONDS = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """Leave the request line to the app's own log, which hides tokens."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class StandIn:
    """Plane's OAuth provider, REST API and webhook sender for one workspace.

    `webhook_secret=None` plays an app registered without a webhook secret: Plane
    then signs with a random `plane_wh_...` secret that the app never receives.
    `delay_scale` multiplies Plane's 0-600 s webhook retry waits. The last five
    keywords change the seeded world: its ids, whether the app starts installed,
    whether bot mentions start agent runs, and whether the app's own API writes
    come back as webhooks (they do in Plane).
    """

    def __init__(
        self,
        *,
        webhook_url: str,
        webhook_secret: str | None,
        client_id: str = defaults.CLIENT_ID,
        client_secret: str = defaults.CLIENT_SECRET,
        redirect_uris: list[str] | tuple[str, ...] = (defaults.REDIRECT_URI,),
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = defaults.ACCESS_TOKEN_LIFETIME_SECONDS,
        code_lifetime: float = defaults.CODE_LIFETIME_SECONDS,
        scopes: str = "read write",
        granular_scopes_only: bool = False,
        delay_scale: float = defaults.DELAY_SCALE,
        clock: Callable[[], float] = time.time,
        token_rate_limit: int = defaults.TOKEN_RATE_LIMIT_PER_MINUTE,
        api_rate_limit: int = defaults.API_RATE_LIMIT_PER_MINUTE,
        workspace_id: str = defaults.WORKSPACE_ID,
        installation_id: str = defaults.INSTALLATION_ID,
        preinstalled: bool = True,
        app_mentions: bool = True,
        webhooks_for_api_changes: bool = True,
    ) -> None:
        self.config = StandInConfig(
            webhook_url=webhook_url,
            webhook_secret=webhook_secret or f"plane_wh_{uuid.uuid4().hex}",
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=tuple(redirect_uris),
            scopes=tuple(scopes.split()),
            granular_scopes_only=granular_scopes_only,
            token_lifetime=token_lifetime,
            code_lifetime=code_lifetime,
            token_rate_limit=token_rate_limit,
            api_rate_limit=api_rate_limit,
            delay_scale=delay_scale,
            clock=clock,
            workspace_id=workspace_id,
            installation_id=installation_id,
            preinstalled=preinstalled,
            app_mentions=app_mentions,
            webhooks_for_api_changes=webhooks_for_api_changes,
        )
        self.runtime = Runtime(self.config)
        self.world = self.runtime.world
        self.app = create_app(self.runtime)
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> "StandIn":
        """Serve in a daemon thread. Port 0 picks a free port; see `url`."""
        if self._server is not None:
            raise RuntimeError("This stand-in is already running at " + self.url)
        self.runtime.deliverer.start()
        self._server = make_server(
            self._host,
            self._port,
            self.app,
            threaded=True,
            request_handler=_QuietRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="plane-standin",
            daemon=True,
        )
        self._thread.start()
        logger.info("Plane stand-in serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and end background webhook retries."""
        self.runtime.deliverer.stop()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        logger.info("Plane stand-in stopped")

    @property
    def url(self) -> str:
        """Base URL, such as `http://127.0.0.1:53111`. Only valid once started."""
        if self._server is None:
            raise RuntimeError("The stand-in is not running. Call start() first.")
        return f"http://{self._host}:{self._server.server_port}"

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Faults and token state

    def script(self, key: str, responses: list[str | dict]) -> None:
        """Respond to the next requests matching `key` with scripted responses.

        Keys: `authorize`, `token`, `token:<grant_type>`, `app-installation`,
        `api`, `api:comments`, `api:runs`, `api:activities`. An entry is
        `"connection_reset"`, or a dict with `status`, `json` or `body`, `headers`
        and `delay` (seconds before responding). A dict with only `delay` lets the
        request be handled normally and delays the response that long.
        """
        self.runtime.recorder.script(key, responses)

    def expire_token(self, token: str) -> None:
        """Make an access token expire now. Raises KeyError for an unknown token."""
        with self.world.lock:
            if not self.world.tokens.expire(token):
                raise KeyError(f"No access token ending in {token[-4:]!r}.")

    def revoke_all(self, installation_id: str | None = None) -> None:
        """Revoke every token of an installation (default: the current one)."""
        with self.world.lock:
            target = installation_id or self._current_installation_id()
            self.world.tokens.end_installation(target, revoke_access=True)

    def preset_tokens(self, *values: str) -> None:
        """Make the next access and refresh tokens take these values, in order."""
        with self.world.lock:
            self.world.tokens.preset(values)

    def issue_code(
        self,
        code: str | None = None,
        *,
        redirect_uri: str | None = None,
        scope: str = "read write",
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
    ) -> str:
        """Record a consent without the browser step, and return its code."""
        config = self.config
        with self.world.lock:
            installation = self.world.install()
            issued = AuthorizationCode(
                code=code or generate_token(),
                client_id=config.client_id,
                redirect_uri=redirect_uri or config.redirect_uris[0],
                scope=scope,
                user_id=defaults.INSTALLER_USER_ID,
                installation_id=installation.id,
                workspace_id=installation.record["workspace"],
                expires_at=config.clock() + config.code_lifetime,
                code_challenge=code_challenge,
                code_challenge_method=code_challenge_method,
            )
            self.world.tokens.codes[issued.code] = issued
        return issued.code

    def issue_user_token(self, *, scope: str = "read write") -> tuple[str, str]:
        """Mint Ada's access and refresh token directly. Return both."""
        return self._mint(scope, is_bot=False)

    def issue_bot_token(self, *, scope: str = "read write") -> str:
        """Mint a bot token for the current installation directly."""
        return self._mint(scope, is_bot=True)[0]

    def _mint(self, scope: str, *, is_bot: bool) -> tuple[str, str]:
        with self.world.lock:
            installation = self.world.installed(self._current_installation_id())
            if installation is None:
                raise RuntimeError(
                    "The app is not installed, so no token can be minted. Install it "
                    "first with the authorize URL or issue_code()."
                )
            access, refresh = self.world.tokens.mint(
                user_id=defaults.BOT_USER_ID if is_bot else defaults.INSTALLER_USER_ID,
                installation_id=installation.id,
                workspace_id=installation.record["workspace"],
                scope=scope,
                grant_type="client_credentials" if is_bot else "authorization_code",
                is_bot=is_bot,
                with_refresh=not is_bot,
            )
        return access.token, refresh.token if refresh else ""

    def _current_installation_id(self) -> str:
        current = self.world.current_installation()
        return current.id if current else ""

    # Workspace actions (they send webhooks)

    def uninstall(self, installation_id: str | None = None) -> dict:
        """Uninstall and post Plane's unsigned notice once. See `operations`."""
        return operations.uninstall(self.runtime, installation_id)

    def create_work_item(self, name: str, *, wait: bool = True) -> dict:
        return operations.create_work_item(self.runtime, name, wait=wait)

    def create_comment(
        self,
        work_item_id: str,
        text: str,
        *,
        mention_bot: bool = False,
        parent_id: str | None = None,
        wait: bool = True,
    ) -> dict:
        return operations.create_member_comment(
            self.runtime,
            work_item_id,
            text,
            mention_bot=mention_bot,
            parent_id=parent_id,
            wait=wait,
        )

    def send_fixture(self, name: str, *, wait: bool = True) -> dict:
        return operations.send_fixture(self.runtime, name, wait=wait)

    def stop_agent_run(self, run_id: str, *, wait: bool = True) -> dict:
        return operations.stop_agent_run(self.runtime, run_id, wait=wait)

    def wait_for_background_sends(self, timeout: float = 5.0) -> bool:
        """Wait for webhooks sent in the background (API echoes, `wait=False`)."""
        return self.runtime.deliverer.wait_for_background_sends(timeout)

    # Queries

    def requests(
        self, endpoint: str | None = None, method: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests whose endpoint key starts with `endpoint`."""
        return self.runtime.recorder.find(endpoint=endpoint, method=method)

    def token_requests(self, grant_type: str | None = None) -> list[RecordedRequest]:
        return self.requests(f"token:{grant_type}" if grant_type else "token")

    def comments_created(self) -> list[dict]:
        """Comments created through the API, each with the `token` and its `user_id`."""
        with self.world.lock:
            return list(self.world.created_comments)

    def agent_runs(self) -> list[dict]:
        """Copies of every agent run, oldest first."""
        with self.world.lock:
            return [dict(run) for run in self.world.agent_runs.runs.values()]

    def agent_activities(self, run_id: str) -> list[dict]:
        """Return a run's activities, prompts included, in the order they were made."""
        return self.world.agent_runs.activities_of(run_id)

    def consents(self) -> list[dict]:
        with self.world.lock:
            return list(self.world.consents)

    def deliveries(self) -> list[dict]:
        """Finished webhook sends: event, action, sent, reason and attempts."""
        with self.world.lock:
            return list(self.world.deliveries)

    def installation(self, installation_id: str | None = None) -> dict:
        """Return a copy of an installation record (default: the current one)."""
        with self.world.lock:
            target = installation_id or self._current_installation_id()
            return dict(self.world.installations[target].record)
