"""gunicorn's access log, with every field made safe to print on one line.

gunicorn writes the decoded request path as it came, so a path holding a
newline or an escape sequence (``/x%0a...``, ``%1b[31m``) could forge a log line
or colour a terminal. Control characters are escaped here.
"""

from gunicorn.glogging import Logger


def printable(text: str) -> str:
    """Escape control characters, keeping everything else as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class SafeAccessLogger(Logger):
    """Access log whose fields never contain control characters."""

    def atoms(self, resp, req, environ, request_time):
        fields = super().atoms(resp, req, environ, request_time)
        return {
            name: printable(value) if isinstance(value, str) else value
            for name, value in fields.items()
        }
