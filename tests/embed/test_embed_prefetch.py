"""prefetch: input order, bounded read-ahead, errors at their turn, early exit."""

from __future__ import annotations

import threading
import time

import pytest

from clip_assets.embed.prefetch import prefetch


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_come_back_in_input_order(workers):
    def slow_for_early_items(i: int) -> int:
        time.sleep(0.002 * (10 - i))  # early items finish last
        return i * i

    assert list(prefetch(slow_for_early_items, range(10), workers)) == [i * i for i in range(10)]


def test_read_ahead_is_bounded_by_workers():
    started: list[int] = []
    lock = threading.Lock()

    def record(i: int) -> int:
        with lock:
            started.append(i)
        return i

    for consumed, _ in enumerate(prefetch(record, range(20), workers=2), start=1):
        time.sleep(0.002)
        with lock:
            assert len(started) <= consumed + 2


def test_worker_error_is_raised_at_its_turn_and_leaving_early_stops_work():
    seen = []

    def fail_at_three(i: int) -> int:
        seen.append(i)
        if i == 3:
            raise KeyError(i)
        return i

    results = prefetch(fail_at_three, range(100), workers=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(results)
    assert max(seen) < 10
