"""Progress of a long step as people expect it: a bar on a terminal, plain lines in logs.

A run started from ``clip-assets run`` in a terminal executes in that process, so its stderr
is the terminal: there a ``tqdm`` bar follows the step. A run launched by the daemon writes to
its compute logs, where a bar would be noise: there the step logs one line at most every
``interval_s`` seconds, and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm


class StepProgress:
    """``update(done, note)`` as work advances, ``close(note)`` when it ends."""

    def __init__(
        self,
        log: Callable[[str], None],
        label: str,
        total: int | None,
        unit: str,
        interval_s: float = 10.0,
    ) -> None:
        self._log, self._label, self._total, self._unit = log, label, total, unit
        self._interval_s = interval_s
        self._last = time.monotonic()
        self._done = 0
        self._bar = (
            tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False)
            if sys.stderr.isatty()
            else None
        )

    def update(self, done: int, note: str = "") -> None:
        if self._bar is not None:
            self._bar.update(done - self._done)
            if note:
                self._bar.set_postfix_str(note, refresh=False)
        elif time.monotonic() - self._last >= self._interval_s:
            self._line(done, note)
        self._done = done

    def close(self, note: str = "") -> None:
        if self._bar is not None:
            self._bar.close()
        self._line(self._done, note)

    def _line(self, done: int, note: str) -> None:
        self._last = time.monotonic()
        of = f"/{self._total}" if self._total is not None else ""
        self._log(f"{self._label}: {done}{of} {self._unit}" + (f", {note}" if note else ""))
