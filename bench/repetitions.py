"""Run repetitions of a measurement, and run again those that others disturbed.

On a shared machine a test suite that starts in the middle of a repetition can
slow one side of a comparison and not the other. A repetition during which
other programs used more than ``DISTURBED_SHARE`` of the machine's cores is
discarded and run again, at most ``max_repeats`` times per measurement, so the
whole run stays bounded in time. After that, disturbed repetitions are kept and
the report shows how busy the machine was.
"""

import os
from collections.abc import Callable
from typing import TypeVar

DISTURBED_SHARE = 0.25

Result = TypeVar("Result")


def run_repetitions(
    run_once: Callable[[int], tuple[Result, float | None]],
    *,
    repetitions: int,
    max_repeats: int,
    label: str,
    progress: Callable[[str], None],
) -> tuple[list[Result], int]:
    """Return ``repetitions`` results of ``run_once`` and how many were run again.

    ``run_once(index)`` runs repetition ``index`` and returns its result and
    the most cores other programs used during any of its runs (None if unknown).
    """
    limit = DISTURBED_SHARE * (os.cpu_count() or 1)
    kept: list[Result] = []
    repeated = 0
    while len(kept) < repetitions:
        result, other_cores = run_once(len(kept))
        if other_cores is not None and other_cores > limit and repeated < max_repeats:
            repeated += 1
            progress(
                f"{label}: running repetition {len(kept) + 1} again, because other "
                f"programs used {other_cores:.2f} cores during it"
            )
            continue
        kept.append(result)
    return kept, repeated
