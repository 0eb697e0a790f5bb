"""Run ``wrk`` at fixed concurrency with pre-signed deliveries and read its result."""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "rotate_deliveries.lua"
RESULT_PREFIX = "WRK_RESULT "
INSTALL_HINT = (
    "wrk is not installed. Install it with `sudo apt-get install -y wrk` "
    "(Debian, Ubuntu) or `brew install wrk` (macOS), then run the benchmark again."
)
# wrk stops on its own after the duration, and this bounds a wrk that hangs.
EXTRA_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class WrkResult:
    """Throughput and latency of one wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    wraps: int

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds


def require_wrk() -> str:
    """Return the path of ``wrk``, or raise ``RuntimeError`` with install steps."""
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


def run_wrk(
    url: str,
    deliveries_file: Path,
    *,
    seconds: int,
    connections: int,
    threads: int,
) -> WrkResult:
    """POST the deliveries in ``deliveries_file`` to ``url`` for ``seconds``."""
    command = [
        require_wrk(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=5s",
        f"--script={SCRIPT}",
        url,
        "--",
        str(deliveries_file),
        str(threads),
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + EXTRA_TIMEOUT_SECONDS,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return _parse(json.loads(line.removeprefix(RESULT_PREFIX)))
    raise RuntimeError(
        f"wrk exited with code {completed.returncode} without a result line:\n"
        f"{completed.stdout}\n{completed.stderr}"
    )


def _parse(raw: dict) -> WrkResult:
    errors = sum(
        raw[name]
        for name in (
            "connect_errors",
            "read_errors",
            "write_errors",
            "status_errors",
            "timeouts",
        )
    )
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
        wraps=raw["wraps"],
    )
