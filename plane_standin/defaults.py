"""Identifiers and limits of the stand-in's default world.

The ids are the ones used in the sample payloads under `tests/fixtures/plane/`, so a
fixture sent by the stand-in routes to the workspace and installation it serves.
"""

WORKSPACE_ID = "4f6b1d2e-8a3c-4e5f-9b7a-1c2d3e4f5a6b"
WORKSPACE_SLUG = "acme"
WORKSPACE_NAME = "Acme Corp"

INSTALLATION_ID = "0badc0de-aaaa-4bbb-8ccc-dddddddddddd"
APPLICATION_ID = "a11ce000-5eed-4c0d-8e0f-123456789abc"
WEBHOOK_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CLIENT_ID = "kQ3vYtq8Zr0pXw2LmN7aBcDeFgHiJkLmNoPqRsTu"
CLIENT_SECRET = "standin-client-secret-0123456789abcdef"
# Flask's development port, where a local backend most likely serves its callback.
REDIRECT_URI = "http://127.0.0.1:5000/oauth/callback"

# The fixtures do not name the app, so its name and slug are invented. They only
# show up in the bot user's name and email.
APP_NAME = "Stand-in App"
APP_SLUG = "standin-app"

BOT_USER_ID = "c0ffee00-1234-4abc-9def-0123456789ab"
INSTALLER_USER_ID = "7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b"
MEMBER_USER_ID = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"

PROJECT_ID = "2c3d4e5f-6a7b-4c8d-9e0f-a1b2c3d4e5f6"
WORK_ITEM_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
COMMENT_ID = "3b4c5d6e-7f80-4a91-8b2c-3d4e5f607182"

# Access tokens, user or bot, last 10 h in django-oauth-toolkit 3.0.1, which Plane
# does not override. Plane sets the authorization code lifetime to 60 s itself.
ACCESS_TOKEN_LIFETIME_SECONDS = 36000
CODE_LIFETIME_SECONDS = 60

# Plane's token endpoint allows 300 requests a minute per key, and its REST API
# 5000 a minute per access token.
TOKEN_RATE_LIMIT_PER_MINUTE = 300
API_RATE_LIMIT_PER_MINUTE = 5000

# Scopes checked when a request leaves `scope` out (django-oauth-toolkit defaults).
DEFAULT_REQUESTED_SCOPES = ("read", "write")

# Scaling of Plane's 0-600 s webhook retry waits, so a demo retries within seconds.
DELAY_SCALE = 0.01


def user_lite(user_id: str, first_name: str, last_name: str, email: str) -> dict:
    """Build a user as Plane's public-API `UserLiteSerializer` renders it."""
    return {
        "id": user_id,
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "avatar": "",
        "avatar_url": None,
        "display_name": email.split("@", 1)[0],
    }


INSTALLER = user_lite(INSTALLER_USER_ID, "Ada", "Example", "ada@example.com")
MEMBER = user_lite(MEMBER_USER_ID, "Bo", "Sample", "bo@example.com")
