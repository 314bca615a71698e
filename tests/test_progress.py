"""Long steps report progress: plain lines (at most one per interval, one at the end) when
stderr is a log file, as it is for runs the daemon launches."""

from __future__ import annotations

import sys

import pytest

from clip_assets.graph.progress import StepProgress


def test_progress_logs_plain_lines_when_not_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    lines: list[str] = []
    progress = StepProgress(lines.append, "p-0001", 300, "images", interval_s=0.0)
    progress.update(100, "12 images/s")
    slow = StepProgress(lines.append, "p-0002", 300, "images", interval_s=3600.0)
    slow.update(100)
    slow.update(200)
    slow.close("done")
    assert lines == ["p-0001: 100/300 images, 12 images/s", "p-0002: 200/300 images, done"]
