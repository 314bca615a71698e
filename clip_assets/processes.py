"""Is a process still the one we think it is? Answered from ``/proc`` (Linux).

A pid alone is not an identity: after a process dies its pid is reused. The process start
time makes it one: the owner of a pid is the same process as long as that pid's start time
has not changed. Used to find run workers killed mid-run and scratch folders they left.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration):
        return None
    # Fields after the parenthesised command name (which may hold spaces): state is field 3,
    # starttime field 22 (clock ticks after boot).
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def this_process() -> tuple[int, int]:
    """``(pid, start second)`` of this process: an identity that outlives pid reuse."""
    pid = os.getpid()
    return pid, int(process_start_time(pid) or 0)


def is_alive(pid: int, start_second: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start_second``."""
    started = process_start_time(pid)
    return started is not None and abs(int(started) - start_second) <= 1
