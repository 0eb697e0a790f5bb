"""Response bodies shared by the stand-in's endpoints, in Plane's formats."""

import json
from typing import Any, NoReturn

from flask import Response, abort

# DRF's response to a missing, unknown, expired or revoked Bearer token. Plane's first
# authenticator defines no `authenticate_header`, so DRF sends 403 instead of 401.
NOT_AUTHENTICATED = "Authentication credentials were not provided."
NO_PERMISSION = "You do not have permission to perform this action."
# Django's default page for an unhandled exception when DEBUG is off.
SERVER_ERROR_PAGE = "<h1>Server Error (500)</h1>"


def oauth_json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    """Serialize like oauthlib (`json.dumps` defaults), with its no-store headers."""
    response = Response(json.dumps(body), status, mimetype="application/json")
    response.headers.update({"Cache-Control": "no-store", "Pragma": "no-cache"})
    response.headers.update(headers or {})
    return response


def drf_json(body: Any, status: int = 200) -> Response:
    """Serialize like DRF's JSONRenderer: compact, non-ASCII kept as UTF-8."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(text.encode("utf-8"), status, mimetype="application/json")


def abort_drf(body: Any, status: int) -> NoReturn:
    """Stop the view and respond with a DRF-style JSON body."""
    abort(drf_json(body, status))


def server_error() -> Response:
    """Respond as Django does when a plain view raises."""
    return Response(SERVER_ERROR_PAGE, 500, mimetype="text/html")
