"""Render one run's results as Markdown tables, with ratios and targets."""

import datetime
import os
import platform
from importlib.metadata import version

from bench.deliveries import BODY_BYTES
from bench.end_to_end_part import EndToEndResults
from bench.ingress_part import BARE, LPUSH, REAL, IngressResults
from bench.inprocess import InProcessResults, StepCost
from bench.plan import Plan
from bench.repetitions import DISTURBED_SHARE
from bench.stats import median
from bench.worker_part import DELIVERY, LOGGING, PLAIN, WorkerResults

# Targets the ingress and worker are held to.
INGRESS_TARGET_RATIO = 0.90
WORKER_TARGET_RATIO = 0.90
ACK_P99_TARGET_MS = 10.0

ENDPOINT_LABELS = {
    BARE: "bare Flask endpoint, returns 200, no work",
    LPUSH: "HMAC check + one LPUSH (baseline)",
    REAL: "real ingress (`ingress.wsgi:app`)",
}
JOB_LABELS = {
    LOGGING: "plain RQ: no-op function that logs the delivery's 3 INFO lines "
    "(baseline)",
    PLAIN: "plain RQ: no-op function that logs nothing",
    DELIVERY: "real delivery path (`process_delivery`), no-op handler",
}


def render_report(
    plan: Plan,
    *,
    redis_description: str,
    ingress: IngressResults,
    worker: WorkerResults,
    end_to_end: EndToEndResults,
    inprocess: InProcessResults,
    elapsed_seconds: float,
) -> str:
    """Return the whole report: header, one table per part, then the targets."""
    wrk_cores = [run.other_cores for runs in ingress.wrk.values() for run in runs]
    half_peak_cores = [
        summary.other_cores
        for summaries in ingress.half_peak.values()
        for summary in summaries
    ]
    sections = [
        _header(plan, redis_description, elapsed_seconds),
        _ingress_table(plan, ingress) + _load_note(wrk_cores, ingress.wrk_repeated),
        _half_peak_table(plan, ingress)
        + _load_note(half_peak_cores, ingress.half_peak_repeated),
        _worker_table(plan, worker) + _load_note(worker.other_cores, worker.repeated),
        _end_to_end_table(plan, end_to_end)
        + _load_note([r.other_cores for r in end_to_end.runs], end_to_end.repeated),
        _inprocess_table(inprocess)
        + _load_note([inprocess.other_cores], inprocess.repeated),
        _targets_table(ingress, worker),
    ]
    return "\n\n".join(sections) + "\n"


def _load_note(other_cores: list[float | None], repeated: int) -> str:
    """Say how many cores other programs took during the runs of a table."""
    measured = [cores for cores in other_cores if cores is not None]
    if not measured:
        return ""
    if max(measured) - min(measured) < 0.005:
        amount = f"{measured[0]:.2f}"
    else:
        amount = f"{min(measured):.2f} to {max(measured):.2f}"
    note = (
        f"\n\nOther programs on the machine used {amount} of {os.cpu_count()} "
        "cores on average during these runs."
    )
    if repeated:
        share = DISTURBED_SHARE * (os.cpu_count() or 1)
        note += (
            f" {repeated} disturbed repetition(s) were discarded and run again "
            f"(other programs above {share:.2f} cores)."
        )
    return note


def _each_run(values: list[float | None]) -> str:
    return " / ".join("-" if value is None else f"{value:.2f}" for value in values)


def _header(plan: Plan, redis_description: str, elapsed_seconds: float) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("flask", "gunicorn", "rq", "redis")
    )
    return "\n".join(
        [
            f"## Benchmark run of {now}",
            "",
            f"- Machine: {os.cpu_count()} CPUs ({_cpu_model()}), "
            f"{platform.system()} {platform.release()}, load average at the end "
            f"{load}",
            f"- Software: Python {platform.python_version()}, {packages}, "
            f"{redis_description}",
            f"- {_repetitions(plan)}. Each figure is the median over the "
            "repetitions, and each ratio the median of the ratios within a "
            "repetition. "
            f"Whole run: {elapsed_seconds:.0f} s.",
        ]
    )


def _ingress_table(plan: Plan, results: IngressResults) -> str:
    lines = [
        f"### Ingress at fixed concurrency: wrk, {plan.connections} connections, "
        f"{plan.wrk_threads} threads, {plan.wrk_seconds} s per run",
        "",
        f"gunicorn with `ingress/gunicorn_conf.py`, sync, {plan.web_workers} "
        f"workers for every endpoint; signed {BODY_BYTES}-byte `issue` bodies, "
        "each sent once to the real endpoint.",
        "",
        "| endpoint | req/s | worker-ms per request | p50 ms | p99 ms "
        "| req/s ratio to baseline | ratio in each run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (BARE, LPUSH, REAL):
        runs = [run.result for run in results.wrk[name]]
        rate = median([run.rate for run in runs])
        lines.append(
            f"| {ENDPOINT_LABELS[name]} | {rate:.0f} "
            f"| {1000 * plan.web_workers / rate:.2f} "
            f"| {median([run.p50_ms for run in runs]):.2f} "
            f"| {median([run.p99_ms for run in runs]):.2f} "
            f"| {median(results.ratios(name)):.2f} "
            f"| {_each_run(results.ratios(name))} |"
        )
    wraps = sum(run.result.wraps for run in results.wrk[REAL])
    if wraps:
        lines += [
            "",
            f"Warning: the real endpoint received bodies it had seen before "
            f"({wraps} passes over the file). Raise BODY_MARGIN in "
            "bench/ingress_part.py.",
        ]
    return "\n".join(lines)


def _half_peak_table(plan: Plan, results: IngressResults) -> str:
    lines = [
        f"### Ack latency at half of the real endpoint's peak: "
        f"{results.half_peak_rate:.0f} req/s for {plan.half_peak_seconds:g} s",
        "",
        "Python open-loop client (`bench/fixed_rate.py`): requests start on a fixed "
        "schedule whatever the responses do, one connection each; latency runs "
        "from opening the connection to the end of the response. The start lag "
        "shows how far the client itself fell behind its schedule.",
        "",
        "| endpoint | p50 ms | p99 ms | p99 ms of each run | failed "
        "| client start lag p99 ms | other programs' cores in each run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (LPUSH, REAL):
        runs = results.half_peak[name]
        lines.append(
            f"| {ENDPOINT_LABELS[name]} | {median([r.p50_ms for r in runs]):.2f} "
            f"| {median([r.p99_ms for r in runs]):.2f} "
            f"| {_each_run([r.p99_ms for r in runs])} "
            f"| {sum(r.failed for r in runs)} "
            f"| {median([r.start_lag_p99_ms for r in runs]):.2f} "
            f"| {_each_run([r.other_cores for r in runs])} |"
        )
    return "\n".join(lines)


def _worker_table(plan: Plan, results: WorkerResults) -> str:
    lines = [
        f"### Worker: {plan.worker_jobs} jobs queued before each drain "
        "(inbox entries for the real path)",
        "",
        f"`python -m workers` ({plan.pool_workers} general `PlaneWorker`s, a "
        "`SimpleWorker` with the JSON serializer and the scheduler loop, plus the "
        "install-only worker); every job carries the same 2 KB body, base64 in "
        "JSON.",
        "",
        "| job | jobs/s | worker-ms per job | ratio to baseline | ratio in each run |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in (LOGGING, PLAIN, DELIVERY):
        rate = median(results.rates[kind])
        lines.append(
            f"| {JOB_LABELS[kind]} | {rate:.0f} "
            f"| {1000 * plan.pool_workers / rate:.2f} "
            f"| {median(results.ratios(kind)):.2f} "
            f"| {_each_run(results.ratios(kind))} |"
        )
    return "\n".join(lines)


def _end_to_end_table(plan: Plan, results: EndToEndResults) -> str:
    runs = results.runs
    return "\n".join(
        [
            f"### End to end: {results.rate:g} deliveries/s for "
            f"{plan.end_to_end_seconds:g} s, real ingress and worker pool running",
            "",
            "| interval | p50 ms | p99 ms | p99 ms of each run |",
            "|---|---:|---:|---:|",
            f"| start of POST to start of handler "
            f"| {median([r.p50_ms for r in runs]):.2f} "
            f"| {median([r.p99_ms for r in runs]):.2f} "
            f"| {_each_run([r.p99_ms for r in runs])} |",
            f"| start of POST to end of 202 response "
            f"| {median([r.ack_p50_ms for r in runs]):.2f} "
            f"| {median([r.ack_p99_ms for r in runs]):.2f} "
            f"| {_each_run([r.ack_p99_ms for r in runs])} |",
        ]
    )


def _inprocess_table(results: InProcessResults) -> str:
    lines = [
        "### Where the time goes: single steps in the benchmark's process",
        "",
        "Median time of one call over distinct deliveries, with Redis on "
        "loopback. Whole requests go through the WSGI interface without HTTP.",
        "",
        "| step | us per call | Redis commands per call | Redis round trips per call |",
        "|---|---:|---:|---:|",
    ]
    lines += [_step_row("ingress: ", step) for step in results.ingress]
    lines += [_step_row("worker: ", step) for step in results.worker]
    return "\n".join(lines)


def _step_row(prefix: str, step: StepCost) -> str:
    return (
        f"| {prefix}{step.label} | {step.microseconds:.0f} "
        f"| {step.redis_commands:.1f} | {step.redis_round_trips:.1f} |"
    )


def _targets_table(ingress: IngressResults, worker: WorkerResults) -> str:
    ingress_ratio = median(ingress.ratios(REAL))
    worker_ratio = median(worker.ratios(DELIVERY))
    silent_ratio = median(worker.ratios(DELIVERY, baseline=PLAIN))
    ack_p99 = median([r.p99_ms for r in ingress.half_peak[REAL]])
    rows = [
        (
            f"ingress req/s >= {INGRESS_TARGET_RATIO:.2f} x HMAC + LPUSH",
            f"{ingress_ratio:.2f}",
            ingress_ratio >= INGRESS_TARGET_RATIO,
        ),
        (
            f"worker jobs/s >= {WORKER_TARGET_RATIO:.2f} x plain RQ no-op logging "
            "the same lines",
            f"{worker_ratio:.2f}",
            worker_ratio >= WORKER_TARGET_RATIO,
        ),
        (
            "for reference: worker jobs/s over the no-op that logs nothing",
            f"{silent_ratio:.2f}",
            None,
        ),
        (
            f"ingress p99 ack < {ACK_P99_TARGET_MS:g} ms at half of peak",
            f"{ack_p99:.2f} ms",
            ack_p99 < ACK_P99_TARGET_MS,
        ),
    ]
    lines = ["### Targets", "", "| target | measured | met |", "|---|---:|---|"]
    for target, measured, met in rows:
        if met is None:
            verdict = "no target"
        else:
            verdict = "yes" if met else "no"
        lines.append(f"| {target} | {measured} | {verdict} |")
    return "\n".join(lines)


def _repetitions(plan: Plan) -> str:
    if plan.repetitions == 1:
        return "1 repetition"
    return f"{plan.repetitions} repetitions"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
