"""Planning a sweep: windows inside Tencent's limits, halves that always shrink."""

from __future__ import annotations

import itertools

import pytest

from receiver.reconcile.windows import Window, WindowError, plan

NOW = 1_800_000_000.75
DAY = 86400


def test_a_long_sweep_is_cut_into_30_day_windows_of_whole_seconds() -> None:
    windows = plan(NOW - 45 * DAY - 0.5, NOW + 100, NOW)
    assert [w.seconds for w in windows] == [30 * DAY, 15 * DAY]
    assert windows[0].start == int(NOW - 45 * DAY - 0.5)
    assert windows[-1].end == int(NOW)  # never after now
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))


@pytest.mark.parametrize(
    ("since", "until"), [(NOW - 61 * DAY, NOW), (NOW, NOW - 10), (NOW + 5, NOW + 10)]
)
def test_a_sweep_tencent_cannot_answer_is_refused(since: float, until: float) -> None:
    with pytest.raises(WindowError):
        plan(since, until, NOW)


def test_halving_always_shrinks_down_to_two_seconds() -> None:
    pending = [plan(NOW - 3601, NOW, NOW)[0]]
    seen = 0
    while pending:
        window = pending.pop()
        seen += 1
        if window.seconds >= 2:
            low, high = window.halves()
            assert low.seconds < window.seconds and high.seconds < window.seconds
            assert (low.start, high.end, low.end) == (window.start, window.end, high.start)
            pending += [low, high]
        else:
            assert window.seconds == 1
    assert seen < 10_000
    assert Window(10, 12).halves() == (Window(10, 11), Window(11, 12))
