"""``python -m bench``: start everything, run the four parts, print the report."""

import argparse
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

from bench import processes
from bench.end_to_end_part import run_end_to_end_part
from bench.ingress_part import BARE, LPUSH, REAL, IngressServers, run_ingress_part
from bench.inprocess import run_inprocess_part
from bench.plan import DEFAULT_PLAN, QUICK_PLAN, Plan
from bench.redis_target import RedisTarget
from bench.report import render_report
from bench.worker_part import run_worker_part, store_installation
from bench.wrk import require_wrk


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Measure the ingress, the worker and the path from POST to handler "
            "side by side on this machine, and print Markdown tables with ratios "
            "against baselines measured in the same run. Needs wrk."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one repetition of short runs, under 30 s on 2 cores",
    )
    parser.add_argument(
        "--redis-url",
        help=(
            "an empty Redis database to use, such as redis://127.0.0.1:6379/10 "
            "(default: a throwaway redis-server on a free port). The benchmark "
            "deletes its keys from it afterwards and never flushes it."
        ),
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' logs (kept anyway when the run fails)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    plan = QUICK_PLAN if arguments.quick else DEFAULT_PLAN
    try:
        require_wrk()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C, so every process and key is still cleaned up.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work_dir = Path(tempfile.mkdtemp(prefix="plane-bench-"))
    started = time.monotonic()
    try:
        report = _run(plan, arguments.redis_url, work_dir)
    except (
        RuntimeError,
        OSError,
        redis.RedisError,
        subprocess.SubprocessError,
    ) as error:
        print(f"The benchmark failed: {error}", file=sys.stderr)
        _keep_logs_if_any(work_dir)
        return 1
    except BaseException:
        _keep_logs_if_any(work_dir)
        raise

    print(render_report(plan, elapsed_seconds=time.monotonic() - started, **report))
    if arguments.keep_logs:
        print(f"Process logs are in {work_dir}", file=sys.stderr)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def _keep_logs_if_any(work_dir: Path) -> None:
    """Point to the logs of a failed run, or remove the directory if it is empty."""
    if any(work_dir.iterdir()):
        print(f"Process logs are in {work_dir}", file=sys.stderr)
    else:
        work_dir.rmdir()


def _run(plan: Plan, redis_url: str | None, work_dir: Path) -> dict:
    """Run every part, then stop every process and remove every key, even on error."""
    with ExitStack() as cleanup:
        if redis_url:
            target = RedisTarget.existing(redis_url)
        else:
            target = RedisTarget.throwaway()
        cleanup.callback(target.close)
        _progress(f"Redis: {target.describe()}; logs in {work_dir}")
        secret = secrets.token_hex(24)
        env = processes.app_environment(
            target.url,
            webhook_secret=secret,
            web_workers=plan.web_workers,
            pool_workers=plan.pool_workers,
        )
        servers = IngressServers(env, work_dir, plan.web_workers)
        cleanup.callback(servers.stop)
        pool = processes.AppProcess("worker", processes.worker_command(), env, work_dir)
        cleanup.callback(pool.stop)

        servers.start()
        ingress = run_ingress_part(
            plan, servers, target, secret=secret, work_dir=work_dir, progress=_progress
        )
        servers.stop((BARE, LPUSH))

        store_installation(target, env)
        pool.start()
        processes.wait_for_pool(pool, target.url, 1 + plan.pool_workers)
        worker = run_worker_part(plan, target, secret=secret, progress=_progress)
        end_to_end = run_end_to_end_part(
            plan,
            target,
            web_port=servers.ports[REAL],
            secret=secret,
            progress=_progress,
        )
        pool.stop()
        servers.stop((REAL,))

        _progress("timing single steps in this process")
        inprocess = run_inprocess_part(
            plan,
            target,
            env,
            secret=secret,
            log_path=work_dir / "inprocess.log",
            progress=_progress,
        )
        return {
            "redis_description": target.describe(),
            "ingress": ingress,
            "worker": worker,
            "end_to_end": end_to_end,
            "inprocess": inprocess,
        }


_STARTED = time.monotonic()


def _progress(message: str) -> None:
    print(
        f"[{time.monotonic() - _STARTED:5.1f} s] {message}", file=sys.stderr, flush=True
    )
