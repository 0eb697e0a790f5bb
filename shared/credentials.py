"""Current tokens for one installation, renewed single-flight across all workers.

Every renewal runs under a Redis lock per installation and token kind, and
re-reads the store once it holds the lock: a worker that waited for another
worker's renewal uses that result instead of calling Plane again. This matters
most for user tokens, because Plane rotates the refresh token on every use and
a second refresh with the old one fails with ``invalid_grant``.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockNotOwnedError

from shared import metrics
from shared.errors import (
    InstallationNotFoundError,
    InvalidGrantError,
    PlaneAppError,
    PlaneUnavailableError,
    ReauthorizationRequiredError,
)
from shared.installations import (
    STATUS_NEEDS_REAUTHORIZATION,
    InstallationStore,
    StoredToken,
)
from shared.plane_oauth import PlaneOAuthClient
from shared.redis_client import key
from shared.uninstall_checks import schedule_uninstall_check

logger = logging.getLogger(__name__)


class TokenRenewalBusyError(PlaneAppError):
    """Another worker held the renewal lock for longer than we could wait."""

    retryable = True


# The lease covers one token request (10 s timeout) with room to spare. A user
# refresh is never retried once sent, so it fits; a bot-token mint may retry past
# the lease, which at worst mints one extra bot token. A worker killed while
# holding the lock delays others by at most the lease.
RENEWAL_LOCK_LEASE_SECONDS = 15
RENEWAL_LOCK_WAIT_SECONDS = 20


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
        with self._renewal_lock("bot"):
            stored = self.store.load_bot_token(self.installation_id)
            if (
                stored
                and stored.access_token != rejected
                and not self._expiring(stored)
            ):
                return stored.access_token

            try:
                response = self.oauth.mint_bot_token(self.installation_id)
            except PlaneUnavailableError as error:
                if error.status is not None:
                    # Plane most likely returns 5xx for an uninstalled installation.
                    schedule_uninstall_check(
                        self.redis,
                        self.installation_id,
                        reason=f"bot token mint failed with HTTP {error.status}",
                    )
                raise
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
        with self._renewal_lock("user"):
            stored = self._load_user_tokens()
            if stored.access_token != rejected and not self._expiring(stored):
                return stored.access_token
            self._check_not_marked_for_reauthorization()

            try:
                response = self.oauth.refresh_user_token(
                    stored.refresh_token, installation_id=self.installation_id
                )
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

    def _check_not_marked_for_reauthorization(self) -> None:
        """Raise without calling Plane once the refresh token is known to be dead."""
        installation = self.store.get(self.installation_id)
        if installation and installation.status == STATUS_NEEDS_REAUTHORIZATION:
            raise ReauthorizationRequiredError(
                f"Installation {self.installation_id} needs reauthorization: its "
                "refresh token was rejected earlier. The workspace must reinstall "
                "the app."
            )

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

    @contextmanager
    def _renewal_lock(self, kind: str) -> Iterator[None]:
        """Hold the installation's renewal lock for ``kind`` ("bot" or "user")."""
        lock = self.redis.lock(
            key("lock", f"{kind}-token", self.installation_id),
            timeout=RENEWAL_LOCK_LEASE_SECONDS,
        )
        if not lock.acquire(blocking_timeout=RENEWAL_LOCK_WAIT_SECONDS):
            raise TokenRenewalBusyError(
                f"Timed out after {RENEWAL_LOCK_WAIT_SECONDS} s waiting for another "
                f"worker's {kind} token renewal for installation "
                f"{self.installation_id}; the job will be retried."
            )
        try:
            yield
        finally:
            try:
                lock.release()
            except LockNotOwnedError:
                # The lease ran out first; the version check kept our write safe.
                logger.warning(
                    "token renewal outlived its lock lease",
                    extra={"installation_id": self.installation_id, "kind": kind},
                )
