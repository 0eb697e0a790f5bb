"""Start the app's processes the way the Procfile does, and stop them again.

Each process runs in a session of its own, so stopping it signals its whole
group (the gunicorn master and its workers, the worker pool and its RQ workers)
and nothing else. Output goes to a file in the run's log directory.
"""

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet
from rq import Worker

from scripts.procfile import read_procfile
from shared.redis_client import connect
from shared.settings import (
    DEFAULT_SCOPES,
    DEFAULT_TOKEN_REFRESH_MARGIN_SECONDS,
    DEFAULT_WEBHOOK_MAX_BODY_BYTES,
)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 30
# A stopping RQ worker can hang about 60 s on exit (rq 3.0 with redis-py 8.2), so
# a process that has not stopped after this grace period is killed.
STOP_GRACE_SECONDS = 5
POLL_SECONDS = 0.05

REAL_APP = "ingress.wsgi:app"


class AppProcess:
    """One process group started by the benchmark, with its output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "AppProcess":
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Send SIGTERM to the group, wait for the leader, then SIGKILL what is left."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        # Children can outlive the leader, so the group is killed in any case.
        self._signal_group(signal.SIGKILL)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print(
                f"warning: {self.name} (pid {self.process.pid}) did not exit",
                file=sys.stderr,
            )

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def app_environment(
    redis_url: str, *, webhook_secret: str, web_workers: int, pool_workers: int
) -> dict[str, str]:
    """Return the environment for the app's processes.

    Every setting the app reads is given, so a developer's ``.env`` cannot
    change the run. ``SENTRY_DSN`` is empty, so nothing leaves the machine, and
    ``PLANE_BASE_URL`` is the discard port on loopback, which no run calls.
    """
    # gunicorn would add GUNICORN_CMD_ARGS to the Procfile's flags.
    env = {
        name: value for name, value in os.environ.items() if name != "GUNICORN_CMD_ARGS"
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PLANE_BASE_URL="http://127.0.0.1:9",
        PLANE_CLIENT_ID="bench-client-id",
        PLANE_CLIENT_SECRET="bench-client-secret",
        PLANE_REDIRECT_URI="http://127.0.0.1:8000/oauth/callback",
        PLANE_SCOPES=DEFAULT_SCOPES,
        PLANE_WEBHOOK_SECRET=webhook_secret,
        PLANE_ALLOW_INSTALL_WITHOUT_STATE="false",
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        TOKEN_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        HANDLER_MODULES="bench.handlers",
        SENTRY_DSN="",
        WEBHOOK_MAX_BODY_BYTES=str(DEFAULT_WEBHOOK_MAX_BODY_BYTES),
        TOKEN_REFRESH_MARGIN_SECONDS=str(DEFAULT_TOKEN_REFRESH_MARGIN_SECONDS),
        WEB_CONCURRENCY=str(web_workers),
        WORKER_CONCURRENCY=str(pool_workers),
        LOG_LEVEL="INFO",
    )
    return env


def web_command(port: int, app_uri: str = REAL_APP) -> list[str]:
    """Return the Procfile's web command serving ``app_uri`` on 127.0.0.1:``port``.

    The command keeps the Procfile's config file. ``--bind`` on the command line
    overrides the config's 0.0.0.0, so nothing listens beyond loopback.
    """
    argv = shlex.split(read_procfile()["web"])
    if REAL_APP not in argv:
        raise RuntimeError(
            f"the Procfile's web command no longer serves {REAL_APP!r}: {argv!r}. "
            "Update bench/processes.py to match it."
        )
    argv[argv.index(REAL_APP)] = app_uri
    return argv + ["--bind", f"127.0.0.1:{port}"]


def worker_command() -> list[str]:
    """Return the Procfile's worker command."""
    return shlex.split(read_procfile()["worker"])


def wait_for_web(process: AppProcess, port: int, workers: int) -> None:
    """Wait until gunicorn accepts connections and has booted ``workers`` workers."""

    def ready() -> bool:
        if process.output().count("Booting worker") < workers:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    _wait(process, ready, f"{process.name} to serve on port {port}")


def wait_for_pool(process: AppProcess, redis_url: str, workers: int) -> None:
    """Wait until ``workers`` RQ workers have registered in Redis."""
    connection = connect(redis_url)
    try:
        _wait(
            process,
            lambda: Worker.count(connection=connection) >= workers,
            f"{workers} RQ workers of {process.name} to register",
        )
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(process: AppProcess, condition, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(
                f"{process.name} exited while waiting for {what}:\n"
                f"{process.output()[-3000:]}"
            )
        if condition():
            return
        time.sleep(POLL_SECONDS)
    raise RuntimeError(
        f"timed out after {START_TIMEOUT_SECONDS} s waiting for {what}:\n"
        f"{process.output()[-3000:]}"
    )
