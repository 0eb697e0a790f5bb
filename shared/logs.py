"""Logging set-up shared by the web and worker processes.

Log calls pass ids as ``extra=`` fields. The formatter appends them as
``key=value`` pairs, so a search for a delivery id finds every line about it.
"""

import logging
import sys

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """Format ``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            name: value
            for name, value in vars(record).items()
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")
        }
        if extras:
            line += " " + " ".join(f"{k}={_quote(v)}" for k, v in extras.items())
        return line


def _quote(value: object) -> str:
    text = str(value)
    return repr(text) if (" " in text or not text) else text


def configure_logging(level: str) -> None:
    """Send the project's and RQ's logs to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def safe_delivery_id(value: str | None) -> str:
    """Return a delivery id fit for a log line: a header is attacker-controlled."""
    if not value:
        return "-"
    if len(value) <= 64 and all(c.isalnum() or c == "-" for c in value):
        return value
    return "(invalid)"
