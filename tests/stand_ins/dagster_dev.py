"""``dagster dev`` as a user starts it, or the daemon alone, for the tests that need them.

``with dagster_dev(env, port) as dev:`` starts ``dagster dev -w workspace.yaml`` from the
repository root; ``with dagster_daemon(env):`` starts ``dagster-daemon run -w workspace.yaml``
(sensors, run queue, monitoring, retries, no webserver: lighter on a loaded machine). Both run
with default signal handlers and a process session of their own, so the whole tree stops by
its pid (SIGTERM, then SIGKILL after 30 s); ``log`` keeps the output for a failure's
post-mortem. :func:`wait_for` polls a condition until it holds or the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
DAEMON = Path(sys.executable).parent / "dagster-daemon"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def dagster_dev(
    env: dict[str, str], port: int, log: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster dev`` on 127.0.0.1:``port`` with ``env``, stopped by its process group."""
    command = [str(DAGSTER), "dev", "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"]
    with _process_group(command, env, log) as dev:
        yield dev


@contextmanager
def dagster_daemon(
    env: dict[str, str], log: IO[bytes] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run`` with ``env``, stopped by its process group."""
    with _process_group([str(DAEMON), "run", "-w", "workspace.yaml"], env, log) as daemon:
        yield daemon


@contextmanager
def _process_group(
    command: list[str], env: dict[str, str], log: IO[bytes] | None
) -> Iterator[subprocess.Popen[bytes]]:
    output = log if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, every: float = 1.0) -> T:
    """``condition()``'s first truthy value, polled every ``every`` s; fails the test after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
