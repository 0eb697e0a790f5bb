"""Per-process state of a worker: settings, Redis, the store and Plane clients.

A job looks its dependencies up here instead of receiving them as arguments,
so job arguments stay plain JSON. ``init`` runs once when a worker process
starts (or in a test); Plane clients are built once per installation and kept.
"""

import importlib
import logging
import pkgutil
import threading
from dataclasses import dataclass, field

import redis
from plane.client import PlaneClient

from shared import metrics
from shared.agents.session import HEARTBEAT_INTERVAL_SECONDS
from shared.credentials import InstallationCredentials
from shared.installations import InstallationStore
from shared.plane_api import LiveTokenAuth, build_plane_client
from shared.plane_oauth import PlaneOAuthClient
from shared.rate_limits import RateBudget
from shared.redis_client import connect
from shared.registry import HandlerRegistry, registry
from shared.settings import Settings
from workers.delivery_state import DeliveryState
from workers.entity_locks import EntityLocks

logger = logging.getLogger(__name__)

HANDLERS_PACKAGE = "handlers"


@dataclass
class WorkerContext:
    """Everything a job needs, built once per worker process."""

    settings: Settings
    redis: redis.Redis
    store: InstallationStore
    oauth: PlaneOAuthClient
    registry: HandlerRegistry
    deliveries: DeliveryState
    api_budget: RateBudget | None = None
    agent_heartbeat_seconds: float = HEARTBEAT_INTERVAL_SECONDS
    _clients: dict[str, PlaneClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def credentials(self, installation_id: str) -> InstallationCredentials:
        return InstallationCredentials(
            installation_id,
            store=self.store,
            oauth=self.oauth,
            connection=self.redis,
            refresh_margin_seconds=self.settings.token_refresh_margin_seconds,
        )

    def bot_client(self, installation_id: str) -> PlaneClient:
        """Return this process's plane-sdk client for the installation's bot."""
        with self._lock:
            client = self._clients.get(installation_id)
            if client is None:
                credentials = self.credentials(installation_id)
                auth = LiveTokenAuth(
                    credentials.bot_token,
                    credentials.renew_bot_token,
                    installation_id,
                    budget=self.api_budget,
                )
                client = build_plane_client(self.settings.plane_base_url, auth)
                self._clients[installation_id] = client
            return client


_context: WorkerContext | None = None


def init(settings: Settings, *, connection: redis.Redis | None = None) -> WorkerContext:
    """Build this process's context and import the handler modules."""
    global _context
    connection = connection or connect(settings.redis_url)
    load_handler_modules(settings.handler_modules)
    metrics.configure(connection)
    oauth = PlaneOAuthClient.from_settings(settings)
    oauth.token_budget = RateBudget(
        connection, kind="token", per_minute=settings.token_rate_limit_per_minute
    )
    _context = WorkerContext(
        settings=settings,
        redis=connection,
        store=InstallationStore.from_settings(connection, settings),
        oauth=oauth,
        registry=registry,
        deliveries=DeliveryState(connection, EntityLocks(connection)),
        api_budget=RateBudget(
            connection, kind="api", per_minute=settings.api_rate_limit_per_minute
        ),
    )
    return _context


def current() -> WorkerContext:
    """Return the context ``init`` built; jobs call this."""
    if _context is None:
        raise RuntimeError(
            "workers.runtime.init(settings) was not called in this process; "
            "start workers with `python -m workers`."
        )
    return _context


def load_handler_modules(extra_modules: tuple[str, ...]) -> list[str]:
    """Import every module of the ``handlers`` package, then ``extra_modules``.

    Importing a module runs its ``@on`` decorators, which is what registers it.
    """
    package = importlib.import_module(HANDLERS_PACKAGE)
    names = [
        f"{HANDLERS_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]
    names.extend(extra_modules)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(
                f"Cannot import handler module {name!r} (from HANDLER_MODULES or "
                f"the handlers package): {exc}"
            ) from exc
    logger.info("handler modules loaded", extra={"modules": ",".join(names)})
    return names
