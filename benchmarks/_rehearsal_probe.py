"""Where the rehearsal's CPU and memory go, process by process, read from ``/proc``.

A :class:`ProcessProbe` polls every process of ``dagster dev``'s session (and the loopback web,
whose work is the stand-in's, not ours) once a second. Each process gets a kind from its
command line (webserver, daemon, code server, download worker; run and step workers are
``multiprocessing`` children, told apart afterwards by the run worker pids the runs' events
name), a peak RSS, and its cumulative CPU seconds and RSS at every tick, so the report can sum
the CPU a run's process tree spent inside any window (one step's start to its end) and find the
most memory that tree held at once in it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from _harness import descendants

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: Command-line fragments -> process kind, first match wins.
_KINDS = (
    ("clip_assets.download.workers", "download worker"),
    ("execute_run", "run worker"),
    ("multiprocessing", "step worker"),
    ("dagster-webserver", "webserver"),
    ("dagster_webserver", "webserver"),
    ("dagster-daemon", "daemon"),
    ("_daemon", "daemon"),
    ("code-server", "code server"),
    ("api grpc", "code server"),
    ("grpc", "code server"),
    (" dev ", "dagster dev"),
)


def _kind(cmdline: str) -> str:
    for fragment, kind in _KINDS:
        if fragment in cmdline:
            return kind
    return "other"


@dataclass
class _Proc:
    pid: int
    ppid: int
    kind: str
    cpu_s: float = 0.0
    peak_rss: int = 0


@dataclass
class ProcessProbe:
    """``with ProcessProbe(session_id, extra={"loopback web": pid}) as probe: ...``."""

    session: int
    extra: dict[str, int] = field(default_factory=dict)
    interval_s: float = 1.0
    procs: dict[int, _Proc] = field(default_factory=dict)
    #: pid -> [(time, cumulative CPU seconds, RSS bytes)], one entry per tick
    series: dict[int, list[tuple[float, float, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: kind -> the largest sum of RSS over processes of that kind seen at once
    peak_total_rss: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ProcessProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        now = time.time()
        seen: dict[int, tuple[int, int, float]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) != self.session and pid not in self.extra.values():
                    continue
                with open(f"/proc/{pid}/statm") as f:
                    rss = int(f.read().split()[1]) * _PAGE
            except (OSError, IndexError, ValueError):
                continue
            cpu = (int(fields[11]) + int(fields[12])) / _TICK
            seen[pid] = (int(fields[1]), rss, cpu)
        totals: dict[str, int] = defaultdict(int)
        for pid, (ppid, rss, cpu) in seen.items():
            proc = self.procs.get(pid)
            if proc is None:
                proc = self.procs[pid] = _Proc(pid, ppid, self._kind_of(pid))
            elif proc.kind == "other":  # caught between fork and exec: look again
                proc.kind = self._kind_of(pid)
            proc.cpu_s = cpu
            proc.peak_rss = max(proc.peak_rss, rss)
            totals[proc.kind] += rss
            self.series[pid].append((now, cpu, rss))
        for kind, rss in totals.items():
            self.peak_total_rss[kind] = max(self.peak_total_rss[kind], rss)

    def _kind_of(self, pid: int) -> str:
        for name, extra_pid in self.extra.items():
            if pid == extra_pid:
                return name
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "other"
        return _kind(f" {cmdline} ")

    def tree(self, root: int) -> list[int]:
        """``root`` and every process seen that descends from it."""
        children: dict[int, list[int]] = defaultdict(list)
        for proc in self.procs.values():
            children[proc.ppid].append(proc.pid)
        return descendants(children, root)

    def cpu_between(self, root: int, start: float, end: float) -> float:
        """CPU seconds ``root``'s process tree spent between two times (tick resolution)."""
        total = 0.0
        for pid in self.tree(root):
            points = self.series.get(pid, [])
            before = [cpu for at, cpu, _rss in points if at <= start]
            upto = [cpu for at, cpu, _rss in points if at <= end + self.interval_s]
            if upto:
                total += upto[-1] - (before[-1] if before else 0.0)
        return total

    def peak_rss_between(self, root: int, start: float, end: float) -> int:
        """The most RSS ``root``'s process tree held at once between two times (bytes): its
        processes' RSS summed per tick (one tick samples them all at one time)."""
        per_tick: dict[float, int] = defaultdict(int)
        for pid in self.tree(root):
            for at, _cpu, rss in self.series.get(pid, []):
                if start <= at <= end + self.interval_s:
                    per_tick[at] += rss
        return max(per_tick.values(), default=0)

    def name_run_workers(self, pids: set[int]) -> None:
        """Run workers are ``multiprocessing`` children like step workers: the runs' events
        say which pids they are; their other ``multiprocessing`` descendants run steps."""
        for pid in pids:
            if pid in self.procs:
                self.procs[pid].kind = "run worker"

    def by_kind(self) -> dict[str, dict[str, float]]:
        """Per kind: processes seen, CPU seconds, largest RSS of one process, largest sum."""
        out: dict[str, dict[str, float]] = {}
        for proc in self.procs.values():
            row = out.setdefault(
                proc.kind, {"processes": 0, "cpu_s": 0.0, "peak_rss_mb": 0.0, "peak_sum_mb": 0.0}
            )
            row["processes"] += 1
            row["cpu_s"] += proc.cpu_s
            row["peak_rss_mb"] = max(row["peak_rss_mb"], proc.peak_rss / 2**20)
        for kind, row in out.items():
            row["peak_sum_mb"] = self.peak_total_rss[kind] / 2**20
            row["cpu_s"] = round(row["cpu_s"], 1)
            row["peak_rss_mb"] = round(row["peak_rss_mb"], 1)
            row["peak_sum_mb"] = round(row["peak_sum_mb"], 1)
        return out
