"""gunicorn settings for the web process (``gunicorn -c ingress/gunicorn_conf.py``).

The access log leaves out the query string: the OAuth callback's ``code`` and
``state`` must never reach a log line.
"""

import os
import sys

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# gunicorn also reads WEB_CONCURRENCY itself; it is set here so the default is visible.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# Plane waits 30 s for a response, so a request that takes longer is already lost.
timeout = 30
graceful_timeout = 25
accesslog = "-"
# %(U)s is the path without the query string.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"


def on_starting(server):
    """Check settings once in the master, so a bad .env fails with one message."""
    from shared.errors import SettingsError
    from shared.settings import load_settings

    try:
        load_settings()
    except SettingsError as error:
        print(f"The web process cannot start. {error}", file=sys.stderr)
        sys.exit(2)
