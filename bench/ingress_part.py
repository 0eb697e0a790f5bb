"""Part 1: the real ingress against a bare endpoint and an HMAC + LPUSH endpoint.

Three gunicorn servers run side by side, each the Procfile's web command with
its config file and the same worker count. Each repetition runs wrk once
against every endpoint, starting from a different endpoint each time, so a
burst of load from elsewhere on the machine does not always hit the same one.
Then an open-loop client measures latency at half of the real endpoint's peak.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import processes
from bench.deliveries import make_deliveries, write_wrk_file
from bench.fixed_rate import Outcome, send_at_fixed_rate
from bench.machine_load import OtherLoadMeter
from bench.plan import Plan
from bench.redis_target import RedisTarget
from bench.repetitions import run_repetitions
from bench.stats import median, percentile
from bench.wrk import WrkResult, run_wrk

BARE = "bare"
LPUSH = "lpush"
REAL = "real"
APP_URIS = {
    BARE: "bench.endpoints:create_bare_app()",
    LPUSH: "bench.endpoints:create_lpush_app()",
    REAL: processes.REAL_APP,
}
# Bodies written per repetition, as a multiple of what the fastest endpoint took
# in one warm-up second times the run length. The real endpoint does more work
# than the bare one, so it receives no body twice (the report warns if it did).
BODY_MARGIN = 1.5
MIN_BODIES = 1000
# Bodies for the warm-up runs. An endpoint faster than this per warm-up second
# receives repeats, which can only raise the warm-up rate and so the body count.
WARMUP_BODIES = 6000


@dataclass(frozen=True)
class FixedRateSummary:
    """Latency of one fixed-rate run against one endpoint."""

    rate: float
    sent: int
    failed: int
    p50_ms: float
    p99_ms: float
    start_lag_p99_ms: float
    other_cores: float | None


@dataclass(frozen=True)
class WrkRun:
    """One wrk run and the cores other programs used meanwhile."""

    result: WrkResult
    other_cores: float | None


@dataclass
class IngressResults:
    """Every kept run of part 1, by endpoint."""

    wrk: dict[str, list[WrkRun]] = field(default_factory=dict)
    half_peak: dict[str, list[FixedRateSummary]] = field(default_factory=dict)
    half_peak_rate: float = 0.0
    # Repetitions discarded and run again because the machine was busy.
    wrk_repeated: int = 0
    half_peak_repeated: int = 0

    def rates(self, endpoint: str) -> list[float]:
        return [run.result.rate for run in self.wrk[endpoint]]

    def ratios(self, endpoint: str) -> list[float]:
        """Requests per second of ``endpoint`` over the baseline's, per repetition."""
        return [
            rate / baseline
            for rate, baseline in zip(
                self.rates(endpoint), self.rates(LPUSH), strict=True
            )
        ]


class IngressServers:
    """The three gunicorn servers, started together and stopped together."""

    def __init__(self, env: dict[str, str], log_dir: Path, web_workers: int):
        self.ports = {name: processes.free_port() for name in APP_URIS}
        self.servers = {
            name: processes.AppProcess(
                f"web-{name}",
                processes.web_command(self.ports[name], uri),
                env,
                log_dir,
            )
            for name, uri in APP_URIS.items()
        }
        self.web_workers = web_workers

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        for name, server in self.servers.items():
            processes.wait_for_web(server, self.ports[name], self.web_workers)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/webhooks/plane"

    def stop(self, names: tuple[str, ...] = tuple(APP_URIS)) -> None:
        for name in names:
            self.servers[name].stop()


def run_ingress_part(
    plan: Plan,
    servers: IngressServers,
    target: RedisTarget,
    *,
    secret: str,
    work_dir: Path,
    progress: Callable[[str], None],
) -> IngressResults:
    """Measure throughput at fixed concurrency, then latency at half the real peak."""
    results = IngressResults()
    fastest_rate = _warm_up(plan, servers, target, secret, work_dir)
    body_count = max(
        MIN_BODIES, math.ceil(BODY_MARGIN * fastest_rate * plan.wrk_seconds)
    )

    def measure_throughput(index: int) -> tuple[dict[str, WrkRun], float | None]:
        runs = _measure_throughput(
            plan, servers, target, index, secret, work_dir, body_count
        )
        for name, run in runs.items():
            progress(
                f"ingress {name:<5} run {index + 1}: {run.result.rate:7.0f} req/s, "
                f"p99 {run.result.p99_ms:.1f} ms"
            )
        return runs, _most_cores([run.other_cores for run in runs.values()])

    repetitions, results.wrk_repeated = run_repetitions(
        measure_throughput,
        repetitions=plan.repetitions,
        max_repeats=plan.max_repeats,
        label="ingress",
        progress=progress,
    )
    for runs in repetitions:
        for name, run in runs.items():
            results.wrk.setdefault(name, []).append(run)

    results.half_peak_rate = median(results.rates(REAL)) / 2
    count = max(1, round(results.half_peak_rate * plan.half_peak_seconds))

    def measure_half_peak(index: int):
        summaries = {}
        for name in _rotated([LPUSH, REAL], index):
            summaries[name] = _run_fixed_rate(
                servers, name, results.half_peak_rate, count, secret
            )
            target.delete_job_keys()
            progress(
                f"half peak {name:<5} run {index + 1}: "
                f"p99 {summaries[name].p99_ms:.1f} ms"
            )
        return summaries, _most_cores([s.other_cores for s in summaries.values()])

    repetitions, results.half_peak_repeated = run_repetitions(
        measure_half_peak,
        repetitions=plan.repetitions,
        max_repeats=plan.max_repeats,
        label="half peak",
        progress=progress,
    )
    for summaries in repetitions:
        for name, summary in summaries.items():
            results.half_peak.setdefault(name, []).append(summary)
    return results


def _measure_throughput(
    plan: Plan,
    servers: IngressServers,
    target: RedisTarget,
    index: int,
    secret: str,
    work_dir: Path,
    body_count: int,
) -> dict[str, WrkRun]:
    """Run wrk once against every endpoint with a fresh file of deliveries."""
    deliveries_file = work_dir / f"deliveries-{index}.txt"
    write_wrk_file(deliveries_file, make_deliveries(body_count, secret=secret))
    runs = {}
    for name in _rotated(list(APP_URIS), index):
        meter = OtherLoadMeter()
        result = _run_wrk(plan, servers.url(name), deliveries_file)
        runs[name] = WrkRun(result, meter.cores())
        target.delete_job_keys()
    deliveries_file.unlink()
    return runs


def _most_cores(values: list[float | None]) -> float | None:
    measured = [value for value in values if value is not None]
    return max(measured) if measured else None


def _rotated(names: list[str], index: int) -> list[str]:
    """Return ``names`` starting at a different one in each repetition."""
    shift = index % len(names)
    return names[shift:] + names[:shift]


def _warm_up(
    plan: Plan, servers: IngressServers, target: RedisTarget, secret: str, work_dir
) -> float:
    """Run wrk briefly against each endpoint, and return the highest rate."""
    warmup_file = work_dir / "deliveries-warmup.txt"
    write_wrk_file(warmup_file, make_deliveries(WARMUP_BODIES, secret=secret))
    rates = {}
    for name in APP_URIS:
        run = run_wrk(
            servers.url(name),
            warmup_file,
            seconds=plan.warmup_seconds,
            connections=plan.connections,
            threads=plan.wrk_threads,
        )
        rates[name] = run.rate
        target.delete_job_keys()
    warmup_file.unlink()
    return max(rates.values())


def _run_wrk(plan: Plan, url: str, deliveries_file: Path) -> WrkResult:
    run = run_wrk(
        url,
        deliveries_file,
        seconds=plan.wrk_seconds,
        connections=plan.connections,
        threads=plan.wrk_threads,
    )
    if run.errors:
        raise RuntimeError(
            f"wrk counted {run.errors} failed requests against {url}. See the "
            "server's log in the run's log directory"
        )
    return run


def _run_fixed_rate(
    servers: IngressServers, name: str, rate: float, count: int, secret: str
) -> FixedRateSummary:
    deliveries = list(make_deliveries(count, secret=secret))
    meter = OtherLoadMeter()
    outcomes = send_at_fixed_rate(
        "127.0.0.1", servers.ports[name], deliveries, rate=rate
    )
    return summarize_fixed_rate(outcomes, rate, other_cores=meter.cores())


def summarize_fixed_rate(
    outcomes: list[Outcome], rate: float, *, other_cores: float | None
) -> FixedRateSummary:
    """Summarize the accepted requests (2xx) of one fixed-rate run."""
    accepted = [o for o in outcomes if o.status is not None and o.status < 300]
    if not accepted:
        raise RuntimeError(f"none of {len(outcomes)} fixed-rate requests was accepted")
    latencies = [o.latency * 1000 for o in accepted]
    return FixedRateSummary(
        rate=rate,
        sent=len(outcomes),
        failed=len(outcomes) - len(accepted),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        start_lag_p99_ms=percentile([o.start_lag * 1000 for o in outcomes], 0.99),
        other_cores=other_cores,
    )
