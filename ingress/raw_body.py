"""Capture a webhook's raw bytes before any Flask code can parse them.

Werkzeug reads a request body once. With a form content type, anything that
touches ``request.form`` or ``request.values`` first (a ``before_request`` hook,
an extension) parses the stream and leaves ``get_data()`` empty, or raises 413
past ``MAX_FORM_MEMORY_SIZE``. The signature must be checked over the exact
bytes Plane sent, so this middleware reads them in the WSGI layer, keeps them in
the environ and hides the declared content type from Flask on these paths.
"""

import io
from collections.abc import Callable, Iterable

RAW_BODY_KEY = "planeapp.raw_body"
BODY_TOO_LARGE_KEY = "planeapp.body_too_large"
# Bytes received, or for a body over the limit its declared length (or, without
# one, the bytes read before giving up: the limit plus one).
BODY_SIZE_KEY = "planeapp.body_size"

_READ_CHUNK_BYTES = 64 * 1024


class RawBodyMiddleware:
    """Read the body of POSTs to ``paths`` up to ``max_bytes`` into the environ."""

    def __init__(
        self, app: Callable, *, paths: tuple[str, ...], max_bytes: int
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_bytes = max_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("REQUEST_METHOD") == "POST"
            and environ.get("PATH_INFO") in self.paths
        ):
            self._capture(environ)
        return self.app(environ, start_response)

    def _capture(self, environ: dict) -> None:
        declared_length = _content_length(environ)
        if declared_length is not None and declared_length > self.max_bytes:
            body, size = b"", declared_length
        else:
            body, size = _read_at_most(environ["wsgi.input"], self.max_bytes)

        environ[RAW_BODY_KEY] = body
        environ[BODY_TOO_LARGE_KEY] = size > self.max_bytes
        environ[BODY_SIZE_KEY] = size
        # Flask parses form content types on access; octet-stream it leaves alone.
        environ["CONTENT_TYPE"] = "application/octet-stream"
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input"] = io.BytesIO(body)


def _content_length(environ: dict) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _read_at_most(stream, max_bytes: int) -> tuple[bytes, int]:
    """Read up to ``max_bytes``; return the body and the number of bytes read.

    A body longer than ``max_bytes`` comes back empty with a count of
    ``max_bytes + 1``, so nothing past the limit is held in memory.
    """
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = stream.read(min(_READ_CHUNK_BYTES, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        return b"", total
    return b"".join(chunks), total
