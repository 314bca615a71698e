"""Progress of an index build: each phase timed (wall and CPU seconds) and reported as it runs.

A build at DataComp scale runs for tens of minutes; the ``faiss_index`` asset forwards these
reports to its run log, so a person sees the phase, the vectors added, the rate and the ETA.
CPU seconds are kept beside wall seconds because on a shared machine the wall clock measures
the share of the cores the build got as much as the build.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

LOG = logging.getLogger(__name__)

#: Seconds between two reports inside a phase.
REPORT_INTERVAL_S = 30.0


@dataclass(frozen=True)
class BuildProgress:
    """One report: ``done`` of ``total`` items of ``phase`` (0 of 0 for a phase without a
    count); ``state`` is ``started``, ``running`` or ``finished``."""

    phase: str
    state: Literal["started", "running", "finished"]
    done: int
    total: int
    elapsed_s: float
    cpu_s: float
    detail: str = ""

    @property
    def rate(self) -> float | None:
        """Items a second so far."""
        return self.done / self.elapsed_s if self.done and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far."""
        rate = self.rate
        return (self.total - self.done) / rate if rate and self.total else None

    def __str__(self) -> str:
        head = f"index build {self.phase}"
        if self.detail:
            head += f" ({self.detail})"
        timing = f"{self.elapsed_s:.1f} s wall, {self.cpu_s:.1f} s CPU"
        if self.state == "started":
            return f"{head} started" + (f": {self.total:,} to do" if self.total else "")
        if self.state == "finished":
            count = f": {self.done:,} done" if self.total else ""
            return f"{head} finished{count} in {timing}"
        if not self.total:
            return f"{head}: {timing}"
        line = f"{head}: {self.done:,} / {self.total:,} ({self.done / self.total:.0%})"
        if self.rate:
            rate = f"{self.rate:,.0f}" if self.rate >= 10 else f"{self.rate:.2g}"
            line += f", {rate}/s, ETA {self.eta_s:.0f} s"
        return f"{line}, {timing}"


ProgressCallback = Callable[[BuildProgress], None]


def log_progress(progress: BuildProgress) -> None:
    """The default callback: one INFO line per report on this module's logger."""
    LOG.info("%s", progress)


class Phase:
    """A running phase: call :meth:`advance` as items complete."""

    def __init__(self, clock: PhaseClock, name: str, total: int, detail: str) -> None:
        self.clock, self.name, self.total, self.detail = clock, name, total, detail
        self.done = 0
        self.started = time.perf_counter()
        self.started_cpu = time.process_time()
        self._last_report = self.started

    def report(self, state: Literal["started", "running", "finished"]) -> BuildProgress:
        now = time.perf_counter()
        self._last_report = now
        progress = BuildProgress(
            self.name,
            state,
            self.done,
            self.total,
            now - self.started,
            time.process_time() - self.started_cpu,
            self.detail,
        )
        self.clock.callback(progress)
        return progress

    def advance(self, count: int) -> None:
        """Count ``count`` more items; reports at most every ``clock.interval_s`` seconds."""
        self.done += count
        if time.perf_counter() - self._last_report >= self.clock.interval_s:
            self.report("running")


class PhaseClock:
    """Times named phases into ``timings_s`` and ``cpu_s`` (a phase entered twice adds up) and
    reports each phase's start, progress and end to ``callback``."""

    def __init__(
        self, callback: ProgressCallback | None = None, interval_s: float = REPORT_INTERVAL_S
    ) -> None:
        self.callback = callback or log_progress
        self.interval_s = interval_s
        self.timings_s: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str, total: int = 0, detail: str = "") -> Iterator[Phase]:
        """Run the ``with`` body as phase ``name`` of ``total`` items."""
        phase = Phase(self, name, total, detail)
        phase.report("started")
        yield phase
        final = phase.report("finished")
        self.timings_s[name] = self.timings_s.get(name, 0.0) + final.elapsed_s
        self.cpu_s[name] = self.cpu_s.get(name, 0.0) + final.cpu_s
