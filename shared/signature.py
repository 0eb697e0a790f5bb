"""Verify ``X-Plane-Signature``: lowercase hex HMAC-SHA256 of the raw request body.

Plane signs ``json.dumps(payload)`` and sends those same bytes, so the check runs
over the bytes received, never over a re-serialized document. No I/O here.
"""

import enum
import hashlib
import hmac
import re

SIGNATURE_PATTERN = re.compile(r"[0-9a-f]{64}")


class SignatureCheck(enum.Enum):
    """Outcome of a signature check, with the reason the ingress reports."""

    VALID = "valid"
    MISSING = "missing X-Plane-Signature"
    MALFORMED = "malformed X-Plane-Signature (expected 64 lowercase hex characters)"
    MISMATCH = "invalid signature"


def compute_signature(body: bytes, *, secret: str) -> str:
    """Return the hex HMAC-SHA256 of ``body`` keyed with ``secret``'s UTF-8 bytes."""
    if not secret:
        raise ValueError("an empty webhook secret would accept forged signatures")
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_signature(
    body: bytes, signature: str | None, *, secrets: tuple[str, ...]
) -> SignatureCheck:
    """Check ``signature`` against each of ``secrets`` (several during rotation).

    Every secret is tried, so the time taken does not reveal which one matched.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is required")
    if not signature:
        return SignatureCheck.MISSING
    if not SIGNATURE_PATTERN.fullmatch(signature):
        return SignatureCheck.MALFORMED

    matched = False
    for secret in secrets:
        expected = compute_signature(body, secret=secret)
        matched |= hmac.compare_digest(expected, signature)
    return SignatureCheck.VALID if matched else SignatureCheck.MISMATCH
