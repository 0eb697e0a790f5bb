"""Settings of one stand-in: the registered app, its limits and its workspace."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import defaults


@dataclass(frozen=True)
class StandInConfig:
    """The app as registered in Plane, its workspace, and the settings tests change.

    `webhook_secret` is what Plane signs with. Plane gives an installation a random
    `plane_wh_...` secret when the app has none, and the caller passes that random
    value here in that case.
    """

    webhook_url: str
    webhook_secret: str
    client_id: str = defaults.CLIENT_ID
    client_secret: str = defaults.CLIENT_SECRET
    redirect_uris: tuple[str, ...] = (defaults.REDIRECT_URI,)
    scopes: tuple[str, ...] = defaults.DEFAULT_REQUESTED_SCOPES
    granular_scopes_only: bool = False
    token_lifetime: float = defaults.ACCESS_TOKEN_LIFETIME_SECONDS
    code_lifetime: float = defaults.CODE_LIFETIME_SECONDS
    token_rate_limit: int = defaults.TOKEN_RATE_LIMIT_PER_MINUTE
    api_rate_limit: int = defaults.API_RATE_LIMIT_PER_MINUTE
    delay_scale: float = defaults.DELAY_SCALE
    clock: Callable[[], float] = time.time
    workspace_id: str = defaults.WORKSPACE_ID
    workspace_slug: str = defaults.WORKSPACE_SLUG
    installation_id: str = defaults.INSTALLATION_ID
    preinstalled: bool = True
    app_mentions: bool = True
    webhooks_for_api_changes: bool = True

    def id_replacements(self) -> dict[str, str]:
        """Map the fixtures' ids to this world's ids, where they differ."""
        pairs = {
            defaults.WORKSPACE_ID: self.workspace_id,
            defaults.INSTALLATION_ID: self.installation_id,
            defaults.CLIENT_ID: self.client_id,
        }
        return {old: new for old, new in pairs.items() if old != new}
