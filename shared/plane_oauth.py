"""Calls to Plane's OAuth endpoints: token grants and the installation lookup.

These go through ``requests`` rather than plane-sdk: Plane's token endpoint reads
only form-encoded bodies, and plane-sdk 0.3.2's ``OAuthClient`` sends JSON and
has no installation lookup. This module is the one place that turns a
``requests`` failure or an OAuth error response into this project's errors.
"""

import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from tenacity import (
    RetryCallState,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity import Retrying as TenacityRetrying
from urllib3.exceptions import NewConnectionError

from shared.errors import (
    InstallationNotFoundError,
    InvalidClientError,
    InvalidGrantError,
    OAuthError,
    PlaneAPIError,
    PlaneRateLimitedError,
    PlaneUnavailableError,
)
from shared.metrics import plane_response_hook
from shared.rate_limits import RateBudget
from shared.redaction import register_token
from shared.settings import Settings

logger = logging.getLogger(__name__)

TOKEN_REQUEST_TIMEOUT_SECONDS = 10

# Token calls retry only what can succeed later (network errors, 429, 5xx), at
# most 5 attempts within 30 s, waiting 0.5 s doubling to 8 s with full jitter,
# or longer when Plane's 429 response requests it.
TOKEN_RETRY_MAX_ATTEMPTS = 5
TOKEN_RETRY_MAX_SECONDS = 30
TOKEN_RETRY_BASE_WAIT_SECONDS = 0.5
TOKEN_RETRY_MAX_WAIT_SECONDS = 8.0
# A 429 asking for a longer wait is not slept through inside a worker: the error
# goes up with its ``retry_after`` and the job is deferred for that long instead.
INLINE_RETRY_AFTER_LIMIT_SECONDS = 5.0
# Plane limits the token endpoint per client IP when the client authenticates
# with HTTP Basic; all workers share one budget, the cautious reading when
# several machines share an outbound address.
TOKEN_BUDGET_SUBJECT = "client"


@dataclass(frozen=True)
class TokenResponse:
    """The fields of a successful response from ``/auth/o/token/``."""

    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str


def _wait_before_retry(retry_state: RetryCallState) -> float:
    attempt = retry_state.attempt_number
    ceiling = min(
        TOKEN_RETRY_MAX_WAIT_SECONDS, TOKEN_RETRY_BASE_WAIT_SECONDS * 2**attempt
    )
    wait = random.uniform(0, ceiling)
    error = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(error, PlaneRateLimitedError) and error.retry_after:
        wait = max(wait, error.retry_after)
    return wait


def _worth_retrying_inline(error: BaseException) -> bool:
    if not getattr(error, "retryable", False):
        return False
    retry_after = getattr(error, "retry_after", None)
    return retry_after is None or retry_after <= INLINE_RETRY_AFTER_LIMIT_SECONDS


def token_retrying(**overrides) -> TenacityRetrying:
    """Return the retry policy for token calls; tests override ``sleep``."""
    policy = dict(
        stop=stop_after_attempt(TOKEN_RETRY_MAX_ATTEMPTS)
        | stop_after_delay(TOKEN_RETRY_MAX_SECONDS),
        wait=_wait_before_retry,
        retry=retry_if_exception(_worth_retrying_inline),
        before_sleep=before_sleep_log(logger, logging.WARNING),
        reraise=True,
    )
    policy.update(overrides)
    return TenacityRetrying(**policy)


class PlaneOAuthClient:
    """Plane's OAuth endpoints for one app (client id and secret)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "PlaneOAuthClient":
        """Build the client for the app that ``settings`` configures."""
        return cls(
            base_url=settings.plane_base_url,
            client_id=settings.plane_client_id,
            client_secret=settings.plane_client_secret,
            redirect_uri=settings.plane_redirect_uri,
            scopes=settings.plane_scopes,
        )

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: str,
        session: requests.Session | None = None,
        retrying: TenacityRetrying | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = scopes
        self.session = session or requests.Session()
        # Set by the worker runtime; None means no shared budget is enforced.
        self.token_budget: RateBudget | None = None
        self.session.hooks["response"].append(plane_response_hook("oauth"))
        self.retrying = retrying or token_retrying()

    def authorization_url(self, state: str) -> str:
        """Return the consent page URL that starts an install."""
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": self.redirect_uri,
                "scope": self.scopes,
                "state": state,
            }
        )
        return f"{self.base_url}/auth/o/authorize-app/?{query}"

    def exchange_code(self, code: str, *, installation_id: str) -> TokenResponse:
        """Exchange an authorization code for the installing user's tokens.

        A code is single use, so only failures that happened before Plane could
        have read the request (connection refused, 429, 502-504) are retried.
        """
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
        }
        return self._request_token(
            form,
            f"authorization code for installation {installation_id}",
            idempotent=False,
        )

    def refresh_user_token(
        self, refresh_token: str, *, installation_id: str
    ) -> TokenResponse:
        """Trade a refresh token for a new pair; Plane revokes the old one at once."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._request_token(
            form,
            f"refresh token for installation {installation_id}",
            idempotent=False,
        )

    def mint_bot_token(self, installation_id: str) -> TokenResponse:
        """Mint a new bot token for an installation (client-credentials grant).

        PLANE_SCOPES is always sent: an app with granular scopes that sends none
        gets ``invalid_scope``.
        """
        form = {
            "grant_type": "client_credentials",
            "app_installation_id": installation_id,
            "scope": self.scopes,
        }
        return self._request_token(
            form, f"bot token for installation {installation_id}", idempotent=True
        )

    def revoke_token(self, token: str, *, token_type_hint: str) -> None:
        """Revoke an access or refresh token at Plane (RFC 7009, form-encoded)."""
        self.retrying(
            self._send,
            "POST",
            f"{self.base_url}/auth/o/revoke-token/",
            f"{token_type_hint} revocation",
            data={"token": token, "token_type_hint": token_type_hint},
            auth=(self.client_id, self.client_secret),
        )

    def get_installation(self, access_token: str, installation_id: str) -> dict:
        """Look up an installation: workspace slug and id, bot user, status."""
        url = f"{self.base_url}/auth/o/app-installation/"
        request_label = f"installation lookup for {installation_id}"
        response = self.retrying(
            self._send,
            "GET",
            url,
            request_label,
            params={"id": installation_id},
            headers={"Authorization": f"Bearer {access_token}"},
        )
        entries = response.json()
        for entry in entries if isinstance(entries, list) else []:
            if entry.get("id") == installation_id:
                return entry
        raise InstallationNotFoundError(
            f"Plane returned no installation with id {installation_id!r}; "
            "the app may have been uninstalled. Install it again."
        )

    def _request_token(
        self, form: dict[str, str], request_label: str, *, idempotent: bool
    ) -> TokenResponse:
        response = self.retrying(
            self._send,
            "POST",
            f"{self.base_url}/auth/o/token/",
            request_label,
            data=form,
            auth=(self.client_id, self.client_secret),
            idempotent=idempotent,
        )
        try:
            body = response.json()
            access_token = body["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PlaneAPIError(
                f"Plane's response to the {request_label} has no access_token; "
                "check PLANE_BASE_URL points at Plane's API origin.",
                status=response.status_code,
            ) from exc
        register_token(access_token)
        register_token(body.get("refresh_token") or "")
        return TokenResponse(
            access_token=body["access_token"],
            expires_in=int(body.get("expires_in") or 0),
            refresh_token=body.get("refresh_token"),
            scope=body.get("scope", ""),
        )

    def _send(
        self,
        method: str,
        url: str,
        request_label: str,
        *,
        idempotent: bool = True,
        **kwargs,
    ) -> requests.Response:
        is_token_call = url.endswith("/auth/o/token/")
        if is_token_call and self.token_budget is not None:
            self.token_budget.take(TOKEN_BUDGET_SUBJECT)
        try:
            response = self.session.request(
                method, url, timeout=TOKEN_REQUEST_TIMEOUT_SECONDS, **kwargs
            )
        except requests.ConnectionError as exc:
            error = PlaneUnavailableError(
                f"Could not reach Plane for the {request_label}: {exc}"
            )
            # A connection that broke after sending may have used the code.
            error.retryable = idempotent or _failed_before_sending(exc)
            raise error from exc
        except requests.Timeout as exc:
            error = PlaneUnavailableError(
                f"Plane did not respond to the {request_label} in time: {exc}"
            )
            error.retryable = idempotent
            raise error from exc

        if is_token_call and self.token_budget is not None:
            self.token_budget.learn_from(TOKEN_BUDGET_SUBJECT, response)
        if response.ok:
            return response
        raise _error_from_response(response, request_label, idempotent=idempotent)


def _error_from_response(
    response: requests.Response, request_label: str, *, idempotent: bool
) -> PlaneAPIError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]

    if status == 429:
        return PlaneRateLimitedError(
            f"Plane rate-limited the {request_label} (HTTP 429).",
            retry_after=_retry_after_seconds(response),
            status=status,
            body=body,
        )
    if status >= 500:
        error = PlaneUnavailableError(
            f"Plane failed the {request_label} with HTTP {status}.",
            status=status,
            body=body,
        )
        error.retryable = idempotent or status in (502, 503, 504)
        return error

    code = body.get("error", "") if isinstance(body, dict) else ""
    if code == "invalid_client":
        return InvalidClientError(
            f"Plane rejected the client credentials for the {request_label} "
            "(invalid_client). Check PLANE_CLIENT_ID and PLANE_CLIENT_SECRET "
            "against your app's settings in Plane.",
            error=code,
            status=status,
            body=body,
        )
    if code == "invalid_grant":
        return InvalidGrantError(
            f"Plane rejected the {request_label} (invalid_grant): it is unknown, "
            "expired or already used.",
            error=code,
            status=status,
            body=body,
        )
    if code:
        return OAuthError(
            f"Plane rejected the {request_label} ({code}).",
            error=code,
            status=status,
            body=body,
        )
    return PlaneAPIError(
        f"Plane rejected the {request_label} with HTTP {status}.",
        status=status,
        body=body,
    )


def _failed_before_sending(exc: requests.ConnectionError) -> bool:
    """Tell whether the request never reached Plane (refused, or connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _retry_after_seconds(response: requests.Response) -> float | None:
    """Return the wait Plane requests: Retry-After, else X-RateLimit-Reset."""
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            value = float(reset)
        except ValueError:
            return None
        # Plane sends the reset as a Unix time; small values are taken as seconds.
        return max(0.0, value - time.time()) if value > 1_000_000_000 else value
    return None
