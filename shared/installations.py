"""Installations and their tokens, stored in Redis with every token encrypted.

Metadata and tokens live in two hashes per installation:
``planeapp:installation:<id>`` (workspace, bot user, status) and
``planeapp:tokens:<id>`` (Fernet-encrypted tokens with their expiry times).
``planeapp:workspace:<workspace id>`` maps a workspace to its installation.
"""

import time
from dataclasses import dataclass

import redis
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.errors import PlaneAppError
from shared.redaction import register_token
from shared.redis_client import key
from shared.settings import Settings

STATUS_INSTALLED = "installed"
STATUS_NEEDS_REAUTHORIZATION = "needs_reauthorization"
STATUS_UNINSTALLED = "uninstalled"

# Writes the new user token pair only if no other writer has stored a newer one
# since this writer read version ARGV[1], so a refresh whose lock lease ran out
# cannot overwrite a later refresh's tokens.
_SAVE_USER_TOKENS_IF_UNCHANGED = """
local current = redis.call('HGET', KEYS[1], 'user_version') or '0'
if current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1],
  'user_access_token', ARGV[2],
  'user_refresh_token', ARGV[3],
  'user_expires_at', ARGV[4],
  'user_version', tostring(tonumber(current) + 1))
return 1
"""


_ENCRYPTED_FIELDS = ("bot_access_token", "user_access_token", "user_refresh_token")


class TokenCipher:
    """Encrypt and decrypt tokens with the keys from TOKEN_ENCRYPTION_KEYS.

    The first key encrypts; every key decrypts, so a new key can be put first
    while values written with the old one are still read.
    """

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("at least one token encryption key is required")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt a value with the first key, whichever key wrote it."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise PlaneAppError(
                "A stored token cannot be decrypted with any key in "
                "TOKEN_ENCRYPTION_KEYS, so it cannot be re-encrypted either. Add "
                "the key it was written with to the list."
            ) from exc

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            token = self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise PlaneAppError(
                "A stored token cannot be decrypted with any key in "
                "TOKEN_ENCRYPTION_KEYS. Add the key it was written with back to "
                "the list (after the current one)."
            ) from exc
        register_token(token)
        return token


@dataclass(frozen=True)
class Installation:
    """One workspace's installation of this app, as Plane described it."""

    id: str
    workspace_id: str
    workspace_slug: str
    workspace_name: str
    bot_user_id: str
    application_id: str
    installed_by: str
    status: str
    updated_at: float


def installation_from_fields(fields: dict[str, str]) -> Installation:
    """Build an ``Installation`` from the fields of its Redis hash."""
    return Installation(**{**fields, "updated_at": float(fields["updated_at"])})


@dataclass(frozen=True)
class StoredToken:
    """A decrypted access token with its expiry (Unix time) and store version."""

    access_token: str
    expires_at: float
    refresh_token: str | None = None
    version: int = 0

    def expires_within(self, seconds: float, *, now: float) -> bool:
        return self.expires_at - seconds <= now


class InstallationStore:
    """Read and write installations and their encrypted tokens."""

    @classmethod
    def from_settings(
        cls, connection: redis.Redis, settings: Settings
    ) -> "InstallationStore":
        """Build a store that encrypts with TOKEN_ENCRYPTION_KEYS."""
        return cls(connection, TokenCipher(settings.token_encryption_keys))

    def __init__(self, connection: redis.Redis, cipher: TokenCipher) -> None:
        self.redis = connection
        self.cipher = cipher
        self._save_user_tokens = connection.register_script(
            _SAVE_USER_TOKENS_IF_UNCHANGED
        )

    # Installations

    def save(self, installation: Installation) -> None:
        fields = {name: str(value) for name, value in vars(installation).items()}
        with self.redis.pipeline() as pipe:
            pipe.hset(key("installation", installation.id), mapping=fields)
            pipe.set(key("workspace", installation.workspace_id), installation.id)
            pipe.execute()

    def get(self, installation_id: str) -> Installation | None:
        fields = self.redis.hgetall(key("installation", installation_id))
        if not fields:
            return None
        return installation_from_fields(
            {name.decode(): value.decode() for name, value in fields.items()}
        )

    def list_ids(self) -> list[str]:
        """Return the ids of every stored installation, sorted."""
        prefix = key("installation", "")
        return sorted(
            name.decode().removeprefix(prefix)
            for name in self.redis.scan_iter(match=prefix + "*", count=500)
        )

    def delete(self, installation: Installation) -> None:
        """Forget an installation and its tokens."""
        with self.redis.pipeline() as pipe:
            pipe.delete(key("installation", installation.id))
            pipe.delete(key("tokens", installation.id))
            pipe.delete(key("workspace", installation.workspace_id))
            pipe.execute()

    def reencrypt_tokens(self, installation_id: str) -> int:
        """Re-encrypt an installation's tokens with the first key; return the count.

        The write is a transaction watching the hash, so a token refreshed in the
        meantime is re-read and rotated rather than overwritten.
        """
        token_key = key("tokens", installation_id)

        def rotate_fields(pipe) -> int:
            fields = pipe.hgetall(token_key)
            rotated = {
                name.decode(): self.cipher.rotate(value.decode())
                for name, value in fields.items()
                if name.decode() in _ENCRYPTED_FIELDS
            }
            pipe.multi()
            if rotated:
                pipe.hset(token_key, mapping=rotated)
            return len(rotated)

        return self.redis.transaction(
            rotate_fields, token_key, value_from_callable=True
        )

    def get_by_workspace(self, workspace_id: str) -> Installation | None:
        installation_id = self.redis.get(key("workspace", workspace_id))
        if installation_id is None:
            return None
        return self.get(installation_id.decode())

    def set_status(self, installation_id: str, status: str) -> None:
        self.redis.hset(
            key("installation", installation_id),
            mapping={"status": status, "updated_at": str(time.time())},
        )

    # Bot tokens: no refresh token, a new one is minted when this one nears expiry.

    def save_bot_token(
        self, installation_id: str, access_token: str, expires_at: float
    ) -> None:
        self.redis.hset(
            key("tokens", installation_id),
            mapping={
                "bot_access_token": self.cipher.encrypt(access_token),
                "bot_expires_at": repr(expires_at),
            },
        )

    def load_bot_token(self, installation_id: str) -> StoredToken | None:
        ciphertext, expires_at = self.redis.hmget(
            key("tokens", installation_id), "bot_access_token", "bot_expires_at"
        )
        if ciphertext is None:
            return None
        return StoredToken(
            access_token=self.cipher.decrypt(ciphertext.decode()),
            expires_at=float(expires_at),
        )

    # User tokens: the refresh token rotates on every use.

    def load_user_tokens(self, installation_id: str) -> StoredToken | None:
        access, refresh, expires_at, version = self.redis.hmget(
            key("tokens", installation_id),
            "user_access_token",
            "user_refresh_token",
            "user_expires_at",
            "user_version",
        )
        if access is None:
            return None
        return StoredToken(
            access_token=self.cipher.decrypt(access.decode()),
            refresh_token=self.cipher.decrypt(refresh.decode()),
            expires_at=float(expires_at),
            version=int(version or 0),
        )

    def replace_user_tokens(
        self,
        installation_id: str,
        *,
        access_token: str,
        refresh_token: str,
        expires_at: float,
    ) -> None:
        """Store a user token pair from a fresh install, whatever was there before."""
        with self.redis.pipeline() as pipe:
            pipe.hset(
                key("tokens", installation_id),
                mapping={
                    "user_access_token": self.cipher.encrypt(access_token),
                    "user_refresh_token": self.cipher.encrypt(refresh_token),
                    "user_expires_at": repr(expires_at),
                },
            )
            pipe.hincrby(key("tokens", installation_id), "user_version", 1)
            pipe.execute()

    def save_user_tokens(
        self,
        installation_id: str,
        *,
        access_token: str,
        refresh_token: str,
        expires_at: float,
        read_version: int,
    ) -> bool:
        """Store a new user token pair unless one newer than ``read_version`` exists.

        Returns False, and writes nothing, when another writer got there first.
        """
        written = self._save_user_tokens(
            keys=[key("tokens", installation_id)],
            args=[
                str(read_version),
                self.cipher.encrypt(access_token),
                self.cipher.encrypt(refresh_token),
                repr(expires_at),
            ],
        )
        return bool(written)
