"""Errors this project raises on purpose.

Each class carries the decision its catcher makes: ``retryable`` marks an error
a later attempt may cure, and the worker skips RQ's retries for the others.
"""


class PlaneAppError(Exception):
    """Base class for every error this project raises on purpose."""

    retryable = False


class SettingsError(PlaneAppError):
    """One or more settings are missing or invalid; the message lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"Invalid configuration ({len(problems)} problem(s)):\n{lines}\n"
            "Set these in the environment or in .env; .env.example lists every "
            "setting with a description."
        )


class JobArgumentError(PlaneAppError, TypeError):
    """A job argument cannot travel through the JSON job serializer."""


class PlaneAPIError(PlaneAppError):
    """Plane rejected or failed a request.

    ``status`` is Plane's HTTP status (None for a transport failure) and
    ``body`` its parsed response, so callers can decide without re-parsing.
    """

    def __init__(
        self, message: str, *, status: int | None = None, body: object = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class PlaneUnavailableError(PlaneAPIError):
    """Plane returned 5xx, timed out or was unreachable, so a retry may succeed."""

    retryable = True


class PlaneRateLimitedError(PlaneAPIError):
    """Plane returned 429; ``retry_after`` is the wait in seconds it requested."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class OAuthError(PlaneAPIError):
    """Plane's token endpoint rejected a request with an OAuth error code."""

    def __init__(self, message: str, *, error: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.error = error


class InvalidGrantError(OAuthError):
    """The code or refresh token is unknown, expired or already used."""


class InvalidClientError(OAuthError):
    """Plane did not accept PLANE_CLIENT_ID and PLANE_CLIENT_SECRET."""


class ReauthorizationRequiredError(PlaneAppError):
    """An installation's user tokens are gone; the workspace must reinstall the app."""


class InstallationNotFoundError(PlaneAppError):
    """No installation is stored for a workspace or installation id."""

    retryable = True
