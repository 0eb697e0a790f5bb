"""Part 3: time from the start of a POST to the start of its handler.

The open-loop client posts probe deliveries to the real ingress at a modest
fixed rate while the worker pool runs. The timing handler in ``bench.handlers``
pushes its start time to Redis; both ends read ``time.time()`` on this machine,
so the difference needs no clock synchronization.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.deliveries import PROBE_ACTION, make_deliveries
from bench.fixed_rate import send_at_fixed_rate
from bench.handlers import HANDLER_STARTS_KEY
from bench.machine_load import OtherLoadMeter
from bench.plan import Plan
from bench.redis_target import RedisTarget
from bench.repetitions import run_repetitions
from bench.stats import percentile
from bench.worker_part import wait_for_finished_jobs

HANDLER_WAIT_SECONDS = 30
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class EndToEndSummary:
    """Latencies of one end-to-end run, in milliseconds."""

    sent: int
    p50_ms: float
    p99_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    other_cores: float | None


@dataclass
class EndToEndResults:
    """Every kept end-to-end run."""

    rate: float
    runs: list[EndToEndSummary] = field(default_factory=list)
    # Runs discarded and run again because the machine was busy.
    repeated: int = 0


def run_end_to_end_part(
    plan: Plan,
    target: RedisTarget,
    *,
    web_port: int,
    secret: str,
    progress: Callable[[str], None],
) -> EndToEndResults:
    """Post probes at a fixed rate and time each one until its handler starts."""
    count = max(1, round(plan.end_to_end_rate * plan.end_to_end_seconds))

    def run_once(index: int) -> tuple[EndToEndSummary, float | None]:
        summary = _run_once(target, web_port, secret, plan.end_to_end_rate, count)
        progress(
            f"end to end run {index + 1}: p50 {summary.p50_ms:.1f} ms, "
            f"p99 {summary.p99_ms:.1f} ms"
        )
        return summary, summary.other_cores

    runs, repeated = run_repetitions(
        run_once,
        repetitions=plan.repetitions,
        max_repeats=plan.max_repeats,
        label="end to end",
        progress=progress,
    )
    return EndToEndResults(rate=plan.end_to_end_rate, runs=runs, repeated=repeated)


def _run_once(
    target: RedisTarget, web_port: int, secret: str, rate: float, count: int
) -> EndToEndSummary:
    deliveries = list(make_deliveries(count, secret=secret, action=PROBE_ACTION))
    meter = OtherLoadMeter()
    outcomes = send_at_fixed_rate("127.0.0.1", web_port, deliveries, rate=rate)
    rejected = [o for o in outcomes if o.status != 202]
    if rejected:
        raise RuntimeError(
            f"{len(rejected)} of {count} probes were not accepted (statuses "
            f"{sorted({o.status for o in rejected}, key=str)}). See the web log."
        )

    handler_starts = _wait_for_handler_starts(target, count)
    other_cores = meter.cores()
    wait_for_finished_jobs(target.connection, count)
    target.delete_job_keys()

    latencies = [
        (handler_starts[o.delivery_id] - o.started_at) * 1000 for o in outcomes
    ]
    acks = [o.latency * 1000 for o in outcomes]
    return EndToEndSummary(
        sent=count,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        ack_p50_ms=percentile(acks, 0.50),
        ack_p99_ms=percentile(acks, 0.99),
        other_cores=other_cores,
    )


def _wait_for_handler_starts(target: RedisTarget, count: int) -> dict[str, float]:
    """Wait until ``count`` handlers have started, and return their start times.

    The start times are ``time.time()`` values keyed by delivery id.
    """
    deadline = time.monotonic() + HANDLER_WAIT_SECONDS
    while target.connection.llen(HANDLER_STARTS_KEY) < count:
        if time.monotonic() > deadline:
            started = target.connection.llen(HANDLER_STARTS_KEY)
            raise RuntimeError(
                f"only {started} of {count} probe handlers started within "
                f"{HANDLER_WAIT_SECONDS} s. See the worker's log."
            )
        time.sleep(POLL_SECONDS)
    starts = {}
    for entry in target.connection.lrange(HANDLER_STARTS_KEY, 0, -1):
        delivery_id, started_at = entry.decode().split(" ")
        starts[delivery_id] = float(started_at)
    return starts
