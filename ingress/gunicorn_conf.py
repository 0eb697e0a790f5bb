"""gunicorn settings for the web process (``gunicorn -c ingress/gunicorn_conf.py``).

The access log leaves out the query string: the OAuth callback's ``code`` and
``state`` must never reach a log line.
"""

import sys

from shared.errors import SettingsError
from shared.settings import load_web_server_settings

try:
    _server = load_web_server_settings()
except SettingsError as _error:
    print(f"The web process cannot start. {_error}", file=sys.stderr)
    sys.exit(2)

bind = f"{_server.host}:{_server.port}"
workers = _server.workers
worker_class = "sync"
# Plane waits 30 s for a response, so a request that takes longer is already lost.
timeout = 30
graceful_timeout = 25
accesslog = "-"
# %(U)s is the path without the query string.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
logger_class = "ingress.access_log.SafeAccessLogger"
errorlog = "-"


def on_starting(server):
    """Check settings once in the master, so a bad .env fails with one message."""
    from shared.settings import load_settings

    try:
        load_settings()
    except SettingsError as error:
        print(f"The web process cannot start. {error}", file=sys.stderr)
        sys.exit(2)
