"""How much CPU other programs took while a part of the benchmark ran (Linux).

The benchmark shares the machine, and a test suite running next to it slows
some runs more than others. This meter reads the machine's busy time from
``/proc/stat`` and subtracts the CPU time of the benchmark's own process tree:
this process, the servers, the workers, Redis and wrk. What remains shows how
busy the rest of the machine was during a run.
"""

import os
import time
from pathlib import Path

_PROC = Path("/proc")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# /proc/stat columns after "cpu" that are not busy time: idle and iowait.
_IDLE_COLUMNS = (3, 4)


class OtherLoadMeter:
    """Average number of cores used by programs outside the benchmark's tree."""

    def __init__(self) -> None:
        self._start = self._sample()

    def cores(self) -> float | None:
        """Return the cores other programs used since the meter was made.

        Returns None where ``/proc`` is not available. The figure is right
        only if the benchmark's servers and workers run through the whole
        interval: the time of one that ends inside it is counted as another
        program's, and so is that of a short-lived process that a server, not
        this process, reaps.
        """
        end = self._sample()
        if self._start is None or end is None:
            return None
        wall = end[0] - self._start[0]
        machine = end[1] - self._start[1]
        ours = end[2] - self._start[2]
        return max(0.0, (machine - ours) / _TICKS_PER_SECOND / wall)

    def _sample(self) -> tuple[float, int, int] | None:
        try:
            return time.monotonic(), _machine_busy_ticks(), _own_tree_ticks()
        except OSError:
            return None


def _machine_busy_ticks() -> int:
    with open(_PROC / "stat") as stat:
        columns = stat.readline().split()[1:]
    # guest time is already counted in user time, so only the first 8 columns add up.
    return sum(
        int(value)
        for index, value in enumerate(columns[:8])
        if index not in _IDLE_COLUMNS
    )


def _own_tree_ticks() -> int:
    """CPU ticks of this process, its reaped children and every live descendant."""
    own = os.times()
    total = round(
        (own.user + own.system + own.children_user + own.children_system)
        * _TICKS_PER_SECOND
    )
    for fields in _descendants(os.getpid()):
        # utime, stime, cutime, cstime: fields 14-17 of /proc/<pid>/stat.
        total += sum(int(value) for value in fields[11:15])
    return total


def _descendants(root: int) -> list[list[str]]:
    """Return the /proc stat fields (after the command name) of root's descendants."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we listed /proc
        # The command name sits in parentheses and may contain spaces.
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        stats[pid] = fields
    found = []
    for pid, fields in stats.items():
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor != root:
            ancestor = parents.get(ancestor)
        if ancestor == root:
            found.append(fields)
    return found
