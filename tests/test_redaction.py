"""Redaction: secrets cut out of finished log lines and text, secret names."""

import io
import logging
import uuid

import pytest

from shared.logs import ContextFilter, JsonFormatter, KeyValueFormatter, log_context
from shared.redaction import (
    MAX_REGISTERED_TOKENS,
    REDACTED,
    is_secret_name,
    redact_text,
    register_secrets,
    register_token,
)

FORMATTERS = [KeyValueFormatter, JsonFormatter]


def new_secret() -> str:
    return f"secret-{uuid.uuid4().hex}"


@pytest.fixture(params=FORMATTERS, ids=lambda cls: cls.__name__)
def log_output(request):
    """Log through a logger of its own into a buffer; return (logger, buffer)."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(request.param())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"tests.redaction.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, output
    logger.removeHandler(handler)


def test_setting_secret_cut_from_message_and_fields(log_output):
    logger, output = log_output
    secret = new_secret()
    register_secrets([secret])

    with log_context(note=f"context {secret}"):
        logger.info("message %s", secret, extra={"detail": f"extra {secret}"})

    text = output.getvalue()
    assert secret not in text
    assert text.count(REDACTED) == 3


def test_secret_split_across_arguments_is_cut(log_output):
    logger, output = log_output
    secret = new_secret()
    register_secrets([secret])

    logger.info("joined %s%s", secret[:10], secret[10:])

    assert secret not in output.getvalue()
    assert REDACTED in output.getvalue()


def test_token_registered_later_is_cut(log_output):
    logger, output = log_output
    token = new_secret()
    logger.info("before %s", "nothing")

    register_token(token)
    logger.info("after", extra={"url": f"https://plane.example/?t={token}"})

    assert token not in output.getvalue()


def test_oldest_token_no_longer_recognised():
    oldest = new_secret()
    register_token(oldest)
    for _ in range(MAX_REGISTERED_TOKENS):
        register_token(new_secret())

    assert redact_text(oldest) == oldest


def test_token_registered_twice_stays_recognised():
    token = new_secret()
    register_token(token)
    register_token(token)

    assert redact_text(f"a {token} b") == f"a {REDACTED} b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", f"Authorization: Bearer {REDACTED}"),
        ("authorization: BEARER abc", f"authorization: BEARER {REDACTED}"),
        ("GET /cb?code=Zq8W&state=s1", f"GET /cb?code={REDACTED}&state={REDACTED}"),
        ("GET /cb?CODE=Zq8W", f"GET /cb?CODE={REDACTED}"),
        # Non-ASCII text: "ſ" (long s) matches "s" when case is ignored.
        ("été ſtate=s1", f"été ſtate={REDACTED}"),
        ("café bearer abc", f"café bearer {REDACTED}"),
        ("plain line with key=value pairs", "plain line with key=value pairs"),
    ],
)
def test_credentials_in_text_are_cut(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("bot_token", True),
        ("X-Plane-Signature", True),
        ("code", True),
        ("installation_id", False),
        ("delivery_id", False),
    ],
)
def test_secret_name_verdict_is_stable(name, secret):
    assert is_secret_name(name) is secret
    assert is_secret_name(name) is secret
