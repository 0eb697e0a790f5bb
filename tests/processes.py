"""Start the app's real processes for end-to-end tests, as the Procfile does.

Tests wait for the jobs they started to finish, never for a worker to exit.
Stopping a process at teardown is bounded and ends in SIGKILL if it must.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STOP_TIMEOUT_SECONDS = 10


class AppProcess:
    """One Procfile process with its output captured to a file."""

    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.name = name
        self.command = command
        self.env = {
            **os.environ,
            **env,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"plane-app-{name}-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> "AppProcess":
        self.process = subprocess.Popen(
            f"exec {self.command}",
            shell=True,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self.log.close()


def wait_for_http(url: str, process: AppProcess, timeout: float = 30) -> None:
    """Wait until ``url`` returns 200; else fail with the output.

    Only 200 counts, so another server on the same port, which would return
    404 for the app's paths, is not taken for the app.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.name} exited early:\n{process.output()}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or its workers are still starting
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout} s:\n{process.output()}")


def wait_for(condition, *, timeout: float, interval: float = 0.05, message: str = ""):
    """Poll ``condition`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {message or condition}"
    )
