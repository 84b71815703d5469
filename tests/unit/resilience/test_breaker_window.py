"""Count and time sliding windows."""

from __future__ import annotations

import pytest

from daz.resilience.window import CountWindow, TimeWindow, make_window


def test_count_window_keeps_the_last_n_calls() -> None:
    window = CountWindow(3)
    for failed in (True, True, False, False):
        window.record(failed=failed, slow=failed, now=0)
    stats = window.stats(0)
    assert (stats.calls, stats.failures, stats.slow) == (3, 1, 1)
    assert stats.failure_rate == pytest.approx(1 / 3)
    window.reset()
    assert window.stats(0).calls == 0
    assert window.stats(0).failure_rate == 0.0


def test_time_window_expires_whole_buckets() -> None:
    window = TimeWindow(10.0)
    window.record(failed=True, slow=False, now=0.5)
    window.record(failed=False, slow=True, now=5.5)
    assert window.stats(9.9).calls == 2
    # ten 1-second buckets: at 10.0 the window is [1, 11), so the call at 0.5 has left it
    assert window.stats(10.0).calls == 1
    assert window.stats(10.0).failures == 0
    assert window.stats(14.9).calls == 1
    assert window.stats(15.0).calls == 0


def test_time_window_memory_is_bounded_at_any_rate() -> None:
    window = TimeWindow(1.0)
    for i in range(100_000):
        window.record(failed=i % 2 == 0, slow=False, now=i * 0.001)
    assert len(window._slots) <= 11
    assert window.stats(99.999).calls == pytest.approx(1000, abs=100)


def test_make_window_rejects_unknown_types() -> None:
    assert isinstance(make_window("count", size=2, seconds=1), CountWindow)
    assert isinstance(make_window("time", size=2, seconds=1), TimeWindow)
    with pytest.raises(ValueError, match="unknown window type"):
        make_window("sliding", size=2, seconds=1)
