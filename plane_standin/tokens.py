"""Authorization codes, access tokens and refresh tokens, kept in memory.

The store does no locking: the world that owns it holds its lock around every call.
"""

import secrets
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# oauthlib's default generator, which Plane uses: 30 characters from [A-Za-z0-9].
TOKEN_LENGTH = 30
TOKEN_ALPHABET = string.ascii_letters + string.digits


def generate_token() -> str:
    """Return a new random token in oauthlib's default format."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


@dataclass
class AccessToken:
    """An access token bound to a user, an installation and its workspace."""

    token: str
    user_id: str
    installation_id: str
    workspace_id: str
    scope: str
    grant_type: str
    is_bot: bool
    issued_at: float
    expires_at: float
    revoked: bool = False
    refresh_token: str | None = None

    def is_valid(self, now: float) -> bool:
        """Tell whether the token still authenticates a request at `now`."""
        return not self.revoked and now < self.expires_at


@dataclass
class RefreshToken:
    """A refresh token. It never expires by time, only by rotation or revocation."""

    token: str
    access_token: str
    user_id: str
    installation_id: str
    workspace_id: str
    scope: str
    revoked: bool = False


@dataclass
class AuthorizationCode:
    """A code issued at consent, single use, valid until `expires_at`."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    installation_id: str
    workspace_id: str
    expires_at: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used: bool = False
    issued_tokens: list[str] = field(default_factory=list)


class TokenStore:
    """Codes and tokens by value, with rotation and revocation as Plane does them."""

    def __init__(self, clock: Callable[[], float], access_lifetime: float) -> None:
        self.clock = clock
        self.access_lifetime = access_lifetime
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self._preset: deque[str] = deque()

    def preset(self, values: tuple[str, ...]) -> None:
        """Queue values for the next access and refresh tokens, in minting order."""
        self._preset.extend(values)

    def next_value(self) -> str:
        """Return a queued token string, or a new random one."""
        if self._preset:
            return self._preset.popleft()
        return generate_token()

    def mint(
        self,
        *,
        user_id: str,
        installation_id: str,
        workspace_id: str,
        scope: str,
        grant_type: str,
        is_bot: bool,
        with_refresh: bool,
    ) -> tuple[AccessToken, RefreshToken | None]:
        """Issue an access token, and a refresh token paired with it if asked."""
        now = self.clock()
        access = AccessToken(
            token=self.next_value(),
            user_id=user_id,
            installation_id=installation_id,
            workspace_id=workspace_id,
            scope=scope,
            grant_type=grant_type,
            is_bot=is_bot,
            issued_at=now,
            expires_at=now + self.access_lifetime,
        )
        self.access[access.token] = access
        if not with_refresh:
            return access, None

        refresh = RefreshToken(
            token=self.next_value(),
            access_token=access.token,
            user_id=user_id,
            installation_id=installation_id,
            workspace_id=workspace_id,
            scope=scope,
        )
        access.refresh_token = refresh.token
        self.refresh[refresh.token] = refresh
        return access, refresh

    def find_valid_access(self, token: str) -> AccessToken | None:
        """Return the access token if it exists, is not revoked and has not expired."""
        access = self.access.get(token)
        if access is None or not access.is_valid(self.clock()):
            return None
        return access

    def rotate(self, refresh: RefreshToken) -> tuple[AccessToken, RefreshToken]:
        """Revoke a refresh token and its access token, and issue a new pair."""
        self.revoke(refresh.token)
        access, new_refresh = self.mint(
            user_id=refresh.user_id,
            installation_id=refresh.installation_id,
            workspace_id=refresh.workspace_id,
            scope=refresh.scope,
            grant_type="refresh_token",
            is_bot=False,
            with_refresh=True,
        )
        assert new_refresh is not None
        return access, new_refresh

    def revoke(self, token: str) -> None:
        """Revoke an access or refresh token together with its partner."""
        access = self.access.get(token)
        refresh = self.refresh.get(token)
        if access is not None and access.refresh_token:
            refresh = self.refresh.get(access.refresh_token)
        if refresh is not None:
            refresh.revoked = True
            access = self.access.get(refresh.access_token)
        if access is not None:
            access.revoked = True

    def expire(self, token: str) -> bool:
        """Make an access token expire now. Return False for an unknown token."""
        access = self.access.get(token)
        if access is None:
            return False
        access.expires_at = min(access.expires_at, self.clock())
        return True

    def end_installation(self, installation_id: str, *, revoke_access: bool) -> None:
        """Expire (or revoke) every access token and revoke every refresh token."""
        for access in self.access.values():
            if access.installation_id == installation_id:
                access.expires_at = min(access.expires_at, self.clock())
                access.revoked = access.revoked or revoke_access
        for refresh in self.refresh.values():
            if refresh.installation_id == installation_id:
                refresh.revoked = True
