"""The query windows of a sweep: inside Tencent's history, no longer than its span limit.

DescribeLiveStreamEventList keeps 60 days and answers windows of at most 30 days, each with at
most 10,000 entries reachable (`receiver.tencent.streams`). A sweep is first cut into windows
that fit the span; the sweep halves a window again while Tencent counts too many records in it
(`sweep.py`), since only the answer tells how dense a window is.
"""

from __future__ import annotations

from dataclasses import dataclass

from receiver.tencent.streams import EVENT_HISTORY_SECONDS, EVENT_SPAN_SECONDS

# The shortest window worth halving: below it, more than 10,000 pushes ended within one second
# of each other, and halving cannot help (the API's times are whole seconds).
MIN_WINDOW_SECONDS = 1.0
# Leave room for the clock difference between us and Tencent at the old end of the history.
HISTORY_MARGIN_SECONDS = 60.0


class WindowError(ValueError):
    """A sweep Tencent cannot answer (outside its history, or empty): the message says why."""


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def halves(self) -> tuple[Window, Window]:
        """Two windows of whole seconds, each shorter than this one (at least 2 s long)."""
        middle = float(int((self.start + self.end) / 2))
        return Window(self.start, middle), Window(middle, self.end)


def plan(since: float, until: float, now: float) -> list[Window]:
    """Windows of at most 30 days covering [since, until], checked against the 60-day history."""
    # Whole seconds, as the API reads times: every boundary, and so every half, is an integer.
    until = float(int(min(until, now)))
    if since >= until:
        raise WindowError("the sweep window is empty: --since must be before --until (and now)")
    oldest = now - EVENT_HISTORY_SECONDS + HISTORY_MARGIN_SECONDS
    if since < oldest:
        raise WindowError(
            "Tencent keeps push records for 60 days: --since must be within the last 60 days"
        )
    windows = []
    start = float(int(since))
    while start < until:
        end = min(start + EVENT_SPAN_SECONDS, until)
        windows.append(Window(start, end))
        start = end
    return windows
