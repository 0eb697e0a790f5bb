"""Current tokens for one installation, renewed single-flight across all workers.

Every renewal runs under a Redis lock per installation and token kind, and
re-reads the store once it holds the lock: a worker that waited for another
worker's renewal uses that result instead of calling Plane again. This matters
most for user tokens, because Plane rotates the refresh token on every use and
a second refresh with the old one fails with ``invalid_grant``.
"""

import logging
import time
from collections.abc import Callable

import redis

from shared import metrics
from shared.errors import (
    InstallationNotFoundError,
    InvalidGrantError,
    ReauthorizationRequiredError,
)
from shared.installations import (
    STATUS_NEEDS_REAUTHORIZATION,
    InstallationStore,
    StoredToken,
)
from shared.plane_oauth import PlaneOAuthClient
from shared.redis_client import key

logger = logging.getLogger(__name__)

# The lease must outlast a token call with all its retries (about 30 s), and a
# waiter gives up a little after a lease would have run out.
RENEWAL_LOCK_LEASE_SECONDS = 45
RENEWAL_LOCK_WAIT_SECONDS = 50


class InstallationCredentials:
    """Hand out an installation's current bot and user access tokens."""

    def __init__(
        self,
        installation_id: str,
        *,
        store: InstallationStore,
        oauth: PlaneOAuthClient,
        connection: redis.Redis,
        refresh_margin_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.installation_id = installation_id
        self.store = store
        self.oauth = oauth
        self.redis = connection
        self.refresh_margin_seconds = refresh_margin_seconds
        self.clock = clock

    # Bot token

    def bot_token(self) -> str:
        """Return a bot token that is valid for at least the refresh margin."""
        stored = self.store.load_bot_token(self.installation_id)
        if stored and not self._expiring(stored):
            return stored.access_token
        return self._renew_bot_token(rejected=None)

    def renew_bot_token(self, rejected: str) -> str:
        """Replace a bot token Plane rejected, unless another worker already did."""
        return self._renew_bot_token(rejected=rejected)

    def _renew_bot_token(self, rejected: str | None) -> str:
        with self._lock("bot"):
            stored = self.store.load_bot_token(self.installation_id)
            if (
                stored
                and stored.access_token != rejected
                and not self._expiring(stored)
            ):
                return stored.access_token

            response = self.oauth.mint_bot_token(self.installation_id)
            expires_at = self.clock() + response.expires_in
            self.store.save_bot_token(
                self.installation_id, response.access_token, expires_at
            )
            metrics.increment("token_renewals", kind="bot", outcome="succeeded")
            logger.info(
                "bot token minted",
                extra={
                    "installation_id": self.installation_id,
                    "expires_in": response.expires_in,
                },
            )
            return response.access_token

    # User token

    def user_token(self) -> str:
        """Return the installing user's access token, refreshed if it nears expiry."""
        stored = self._load_user_tokens()
        if not self._expiring(stored):
            return stored.access_token
        return self._refresh_user_token(rejected=None)

    def renew_user_token(self, rejected: str) -> str:
        """Replace a user token Plane rejected, unless another worker already did."""
        return self._refresh_user_token(rejected=rejected)

    def _refresh_user_token(self, rejected: str | None) -> str:
        with self._lock("user"):
            stored = self._load_user_tokens()
            if stored.access_token != rejected and not self._expiring(stored):
                return stored.access_token

            try:
                response = self.oauth.refresh_user_token(stored.refresh_token)
            except InvalidGrantError as exc:
                metrics.increment(
                    "token_renewals", kind="user", outcome="invalid_grant"
                )
                return self._recover_from_invalid_grant(stored, exc)

            saved = self.store.save_user_tokens(
                self.installation_id,
                access_token=response.access_token,
                refresh_token=response.refresh_token or stored.refresh_token,
                expires_at=self.clock() + response.expires_in,
                read_version=stored.version,
            )
            if not saved:
                # Our lease ran out and a newer pair was stored meanwhile: keep it.
                logger.warning(
                    "user token refresh superseded by a newer one",
                    extra={"installation_id": self.installation_id},
                )
                return self._load_user_tokens().access_token
            metrics.increment("token_renewals", kind="user", outcome="succeeded")
            logger.info(
                "user token refreshed", extra={"installation_id": self.installation_id}
            )
            return response.access_token

    def _recover_from_invalid_grant(
        self, used: StoredToken, error: InvalidGrantError
    ) -> str:
        """Use a pair another worker stored meanwhile, or give up for good."""
        current = self._load_user_tokens()
        if current.version != used.version:
            return current.access_token

        self.store.set_status(self.installation_id, STATUS_NEEDS_REAUTHORIZATION)
        message = (
            f"Plane rejected the refresh token for installation "
            f"{self.installation_id} (invalid_grant). The workspace must "
            "reinstall the app to grant new tokens."
        )
        logger.error(message, extra={"installation_id": self.installation_id})
        raise ReauthorizationRequiredError(message) from error

    # Helpers

    def _load_user_tokens(self) -> StoredToken:
        stored = self.store.load_user_tokens(self.installation_id)
        if stored is None:
            raise InstallationNotFoundError(
                f"No user tokens are stored for installation {self.installation_id}."
            )
        return stored

    def _expiring(self, token: StoredToken) -> bool:
        return token.expires_within(self.refresh_margin_seconds, now=self.clock())

    def _lock(self, kind: str):
        return self.redis.lock(
            key("lock", f"{kind}-token", self.installation_id),
            timeout=RENEWAL_LOCK_LEASE_SECONDS,
            blocking_timeout=RENEWAL_LOCK_WAIT_SECONDS,
        )
