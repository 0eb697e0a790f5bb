"""How long and how hard each part of the benchmark runs."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run. ``DEFAULT_PLAN`` takes about 2 minutes on 2 cores."""

    repetitions: int
    # How many disturbed repetitions of one measurement may run again (see
    # bench.repetitions).
    max_repeats: int
    # Length of each wrk run at fixed concurrency, in whole seconds (wrk's unit).
    wrk_seconds: int
    # Length of each fixed-rate run at half of the real endpoint's peak.
    half_peak_seconds: float
    # Jobs pre-enqueued for each worker drain.
    worker_jobs: int
    # Rate and length of each end-to-end run.
    end_to_end_rate: float
    end_to_end_seconds: float
    warmup_seconds: int = 1
    # wrk's connections and threads: 8 connections as in the earlier baselines,
    # one thread per core.
    connections: int = 8
    wrk_threads: int = 2
    # The Procfile's defaults: WEB_CONCURRENCY=2 gunicorn workers for every
    # endpoint, and WORKER_CONCURRENCY=2 general RQ workers.
    web_workers: int = 2
    pool_workers: int = 2


DEFAULT_PLAN = Plan(
    repetitions=3,
    max_repeats=2,
    wrk_seconds=4,
    half_peak_seconds=3.0,
    worker_jobs=1000,
    end_to_end_rate=100.0,
    end_to_end_seconds=3.0,
)

QUICK_PLAN = Plan(
    repetitions=1,
    max_repeats=0,
    wrk_seconds=1,
    half_peak_seconds=1.0,
    worker_jobs=200,
    end_to_end_rate=50.0,
    end_to_end_seconds=1.0,
)
