"""plane-sdk clients that read the current token from the store on every request.

``PlaneClient`` takes a fixed token at construction. Here every HTTP session
inside the client gets a ``requests`` auth hook instead. The hook reads the
current token from ``InstallationCredentials`` for each request. When Plane
rejects it (401, or 403 "Authentication credentials were not provided."), the
hook renews the token once and sends the same request again.
"""

import logging
from collections.abc import Callable, Iterator

import requests
from plane.client import PlaneClient

from shared.errors import PlaneRateLimitedError
from shared.logs import context_field
from shared.metrics import plane_response_hook
from shared.rate_limits import RateBudget, fingerprint

logger = logging.getLogger(__name__)

# The 403 detail Plane's API returns for an expired, revoked or unknown token.
CREDENTIALS_MISSING_DETAIL = "Authentication credentials were not provided."

# Every call to Plane made for a delivery carries its delivery id in this header,
# so a request in Plane's logs can be matched to the delivery's log lines.
DELIVERY_ID_HEADER = "X-Request-ID"

# PlaneClient refuses to start without a credential; this one is never sent,
# because the auth hook replaces the Authorization header on every request.
_PLACEHOLDER_TOKEN = "replaced-per-request"


class LiveTokenAuth(requests.auth.AuthBase):
    """Set ``Authorization: Bearer`` from ``get_token`` and renew once on rejection."""

    def __init__(
        self,
        get_token: Callable[[], str],
        renew_token: Callable[[str], str],
        installation_id: str,
        budget: RateBudget | None = None,
    ) -> None:
        self.get_token = get_token
        self.renew_token = renew_token
        self.installation_id = installation_id
        self.budget = budget

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.get_token()
        self._spend(token)
        request.headers["Authorization"] = f"Bearer {token}"
        delivery_id = context_field("delivery_id")
        if delivery_id:
            request.headers[DELIVERY_ID_HEADER] = str(delivery_id)
        request.register_hook("response", self._retry_after_renewal)
        return request

    def _spend(self, token: str) -> None:
        if self.budget is not None:
            self.budget.take(fingerprint(token))

    def _retry_after_renewal(
        self, response: requests.Response, **send_kwargs
    ) -> requests.Response:
        sent_with = response.request.headers["Authorization"].removeprefix("Bearer ")
        if self.budget is not None:
            self.budget.learn_from(fingerprint(sent_with), response)
        if response.status_code == 429:
            raise PlaneRateLimitedError(
                f"Plane rate-limited an API call for installation "
                f"{self.installation_id} (HTTP 429).",
                retry_after=_retry_after(response),
                status=429,
            )
        if not token_was_rejected(response):
            return response

        rejected = sent_with
        logger.info(
            "Plane rejected the token, renewing it once",
            extra={
                "installation_id": self.installation_id,
                "status": response.status_code,
                "path": response.request.path_url.split("?")[0],
            },
        )
        fresh = self.renew_token(rejected)
        self._spend(fresh)

        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {fresh}"
        retry.hooks["response"] = []  # one renewal per request, never a loop
        response.close()

        answer = response.connection.send(retry, **send_kwargs)
        answer.history.append(response)
        answer.request = retry
        return answer


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def token_was_rejected(response: requests.Response) -> bool:
    """Tell whether Plane refused the token itself (not the permission)."""
    if response.status_code == 401:
        return True
    if response.status_code != 403:
        return False
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return False
    return detail == CREDENTIALS_MISSING_DETAIL


def build_plane_client(base_url: str, auth: LiveTokenAuth) -> PlaneClient:
    """Build a plane-sdk ``PlaneClient`` whose every request goes through ``auth``.

    Building a client opens dozens of sessions (about 1.7 ms), so workers keep
    one per installation rather than one per job.
    """
    client = PlaneClient(base_url=base_url, access_token=_PLACEHOLDER_TOKEN)
    for session in _sessions_in(client):
        session.auth = auth
        session.hooks["response"].append(plane_response_hook("api"))
    return client


def _sessions_in(client: PlaneClient) -> Iterator[requests.Session]:
    """Yield every ``requests.Session`` held by the client's resource objects."""
    seen: set[int] = set()
    pending: list[object] = [client]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, requests.Session):
            yield current
            continue
        for value in getattr(current, "__dict__", {}).values():
            if isinstance(value, requests.Session) or _is_sdk_object(value):
                pending.append(value)


def _is_sdk_object(value: object) -> bool:
    return type(value).__module__.startswith("plane.") and hasattr(value, "__dict__")
