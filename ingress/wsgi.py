"""The WSGI entry point gunicorn serves: ``gunicorn ingress.wsgi:app``."""

import sys

from ingress import create_app
from shared.errors import SettingsError
from shared.logs import configure_logging
from shared.monitoring import init_sentry
from shared.settings import load_settings

try:
    settings = load_settings()
except SettingsError as error:
    print(f"The web process cannot start. {error}", file=sys.stderr)
    sys.exit(2)

configure_logging(settings.log_level, settings.log_format)
init_sentry(settings, process="web")
app = create_app(settings)
