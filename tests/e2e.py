"""The whole app as real processes: Plane stand-in, gunicorn web, worker pool.

Everything talks over loopback to a real Redis, the way ``make demo`` runs it.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from plane_standin.server import StandIn
from scripts.procfile import read_procfile
from tests.conftest import CASE_SECRET, make_environ
from tests.processes import AppProcess, wait_for, wait_for_http
from tests.redis_server import free_port

STANDIN_CLIENT_SECRET = "e2e-client-secret-0123456789abcdef"
JOB_TIMEOUT_SECONDS = 30
PORT_ATTEMPTS = 5


@dataclass
class Stack:
    """A running stand-in, web process and worker pool."""

    standin: StandIn
    web: AppProcess
    worker: AppProcess
    web_url: str
    install_page: requests.Response | None = None

    def install(self) -> requests.Response:
        """Install the app the way a browser does: consent redirect, then callback."""
        browser = requests.Session()
        return browser.get(f"{self.web_url}/oauth/install", timeout=30)

    def wait_for_delivery(
        self, delivery_id: str, outcome: str = "delivery done"
    ) -> str:
        """Wait until the worker logs ``outcome`` for a delivery; return that line."""
        pattern = re.compile(
            rf"{re.escape(outcome)}.*delivery_id={re.escape(delivery_id)}"
        )

        def logged_line():
            match = pattern.search(self.worker.output())
            return match.group(0) if match else None

        return wait_for(
            logged_line,
            timeout=JOB_TIMEOUT_SECONDS,
            message=f"{outcome!r} for {delivery_id}\n{self.worker.output()[-3000:]}",
        )

    def bot_comments_on(self, work_item_id: str) -> list[dict]:
        bot = self.standin.installation()["app_bot"]
        return [
            c
            for c in self.standin.comments_created()
            if c["issue"] == work_item_id and c["user_id"] == bot
        ]

    def stop(self) -> None:
        for process in (self.worker, self.web):
            process.stop()
        self.standin.stop()


def start_stack(
    redis_url: str, *, echo_api_changes: bool = True, **settings: str
) -> Stack:
    """Start the stand-in, then the Procfile's web and worker processes.

    ``settings`` are extra environment variables for both processes. With
    ``echo_api_changes`` the stand-in sends the app's own API writes back as
    webhooks, as Plane does.
    """
    # The web port is chosen before the stand-in binds a free port of its own,
    # and the kernel may hand out the same port again. Retry until they differ.
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        web_url = f"http://127.0.0.1:{port}"
        standin = StandIn(
            webhook_url=f"{web_url}/webhooks/plane",
            webhook_secret=CASE_SECRET,
            client_secret=STANDIN_CLIENT_SECRET,
            redirect_uris=[f"{web_url}/oauth/callback"],
            webhooks_for_api_changes=echo_api_changes,
        ).start()
        if urlsplit(standin.url).port != port:
            break
        standin.stop()
    else:
        raise AssertionError(
            f"no free web port apart from the stand-in's in {PORT_ATTEMPTS} tries"
        )
    env = make_environ(
        redis_url,
        PLANE_BASE_URL=standin.url,
        PLANE_CLIENT_SECRET=STANDIN_CLIENT_SECRET,
        PLANE_REDIRECT_URI=f"{web_url}/oauth/callback",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_LEVEL="INFO",
        **{"WORKER_CONCURRENCY": "2", **settings},
    )
    commands = read_procfile()
    web = AppProcess("web", commands["web"], env).start()
    worker = AppProcess("worker", commands["worker"], env).start()
    stack = Stack(standin=standin, web=web, worker=worker, web_url=web_url)
    try:
        wait_for_http(f"{web_url}/healthz", web)
        workers = 1 + int(env["WORKER_CONCURRENCY"])
        wait_for(
            lambda: worker.output().count("worker started") >= workers,
            timeout=30,
            message=f"the worker pool to start\n{worker.output()}",
        )
    except BaseException:
        stack.stop()
        raise
    return stack
