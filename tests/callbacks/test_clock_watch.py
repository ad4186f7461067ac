"""The clock watch's verdict as a sequence of signed callbacks unfolds (the readiness view of it
is in tests/web/test_ops_clock.py)."""

from __future__ import annotations

from receiver.callbacks.clock import LEAVE_SHARE, MIN_SIGNED, WINDOW, ClockWatch
from receiver.metrics import Metrics

NOW = 1_700_000_000.0
T = int(NOW) + 600  # sent now


def _suspect(metrics: Metrics) -> bool:
    return metrics.registry.get_sample_value("receiver_clock_suspect") == 1


def test_the_share_is_judged_on_the_callback_that_makes_enough_whatever_its_outcome() -> None:
    metrics = Metrics.create()
    watch = ClockWatch(metrics)
    for _ in range(MIN_SIGNED - 1):
        watch.observe(T - 2000, NOW, "expired")
    assert not _suspect(metrics)  # too few to say anything yet
    watch.observe(T, NOW)  # accepted, but 9 of 10 were refused for time
    assert _suspect(metrics)


def test_accepted_callbacks_clear_the_alarm_once_few_are_refused() -> None:
    metrics = Metrics.create()
    watch = ClockWatch(metrics)
    for _ in range(WINDOW):
        watch.observe(T - 2000, NOW, "expired")
    assert _suspect(metrics)
    accepted = 0
    while _suspect(metrics):
        watch.observe(T, NOW)
        accepted += 1
    # it clears on the first accepted callback that takes the refused share below LEAVE_SHARE
    assert accepted == WINDOW - int(LEAVE_SHARE * WINDOW) + 1
    for _ in range(WINDOW):
        watch.observe(T, NOW)
    assert not _suspect(metrics)
