"""Logging set-up shared by the web and worker processes.

Log calls pass ids as ``extra=`` fields. ``log_context`` adds fields to every
line logged inside it, in any module, so a handler's own lines and the Plane
client's lines carry the delivery id without passing it along. LOG_FORMAT picks
the output: ``text`` (``key=value`` pairs, for development) or ``json`` (one
object per line, for a log platform). Either way, fields named like secrets are
replaced and registered secrets are cut out of the finished line.
"""

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from shared.redaction import REDACTED, is_secret_name, redact_text

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "planeapp_log_context", default=None
)
# Set on the context, read back as elapsed_ms; never printed itself.
_STARTED_FIELD = "_started"


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[dict]:
    """Add ``fields`` to every line logged inside the block, and ``elapsed_ms``.

    ``elapsed_ms`` counts from the start of the outermost block, which is the
    web request or the job. The yielded dict can take more fields later, such as
    the event name once the body is parsed.
    """
    outer = _context.get()
    if outer is None:
        current = {_STARTED_FIELD: time.perf_counter(), **fields}
    else:
        current = {**outer, **fields}
    token = _context.set(current)
    try:
        yield current
    finally:
        _context.reset(token)


def context_field(name: str) -> object | None:
    """Return one field of the current log context, or None outside one."""
    current = _context.get()
    return None if current is None else current.get(name)


class ContextFilter(logging.Filter):
    """Copy the current log context onto each record; ``extra=`` values win."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _context.get()
        if current is None:
            return True
        for name, value in current.items():
            if name != _STARTED_FIELD and not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "elapsed_ms"):
            started = current[_STARTED_FIELD]
            record.elapsed_ms = round((time.perf_counter() - started) * 1000)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """Return the record's ``extra=`` fields, with secret-named ones replaced."""
    return {
        name: REDACTED if is_secret_name(name) else value
        for name, value in vars(record).items()
        if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")
    }


class KeyValueFormatter(logging.Formatter):
    """Format ``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = record_fields(record)
        if extras:
            line += " " + " ".join(f"{k}={_quote(v)}" for k, v in extras.items())
        return redact_text(line)


class JsonFormatter(logging.Formatter):
    """Format one JSON object per line: time, level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(document, default=str))


def _quote(value: object) -> str:
    # repr() escapes line breaks, so a value cannot forge a second log line.
    text = str(value)
    return repr(text) if (" " in text or not text or not text.isprintable()) else text


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send the project's and RQ's logs to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else KeyValueFormatter()
    )
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Placeholders safe_delivery_id returns for a missing or an unusable header.
MISSING_DELIVERY_ID = "-"
INVALID_DELIVERY_ID = "(invalid)"


def safe_delivery_id(value: str | None) -> str:
    """Return a delivery id fit for a log line: a header is attacker-controlled."""
    if not value:
        return MISSING_DELIVERY_ID
    if len(value) <= 64 and all(c.isalnum() or c == "-" for c in value):
        return value
    return INVALID_DELIVERY_ID
