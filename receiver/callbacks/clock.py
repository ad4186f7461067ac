"""Is this server's clock wrong? The signed callbacks tell.

CSS signs `t` = its send time + 600 s, and the signature check refuses a `t` that has expired or
lies too far ahead by this server's clock. Fast by 16 minutes, the server refuses every callback
`expired`; slow by 2 minutes, every first attempt `too_far_in_future` (the retry a minute later
gets in). Each refusal is right on its own; together they mean the server's clock is wrong, not
CSS, and nothing else would say so. So the outcomes of the most recent signed callbacks whose
signature matched (they do come from CSS) are kept, and when a large share was refused for time:
readiness reports `clock` degraded with the reason (still 200: events that do get in are stored,
and a restart or another replica would not fix the clock), one ERROR line names NTP, and the
gauge `receiver_clock_suspect` is 1. It clears, with one INFO line, once few are refused.

Thresholds: at least `ENTER_SHARE` of the window refused for time raises the alarm; a clock 2
minutes slow gives about half (each event: a refused first attempt, an accepted retry). It
clears below `LEAVE_SHARE`, so a share hovering at the threshold does not log on every callback.

The offset estimate is the smallest `now - (t - 600)` in the window: a retry carries the `t` of
its first attempt and so only ever looks later.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any, Final

from receiver.errors import RefusalReason
from receiver.health import ComponentCheck
from receiver.metrics import Metrics
from receiver.settings import SIGNATURE_VALIDITY_SECONDS

log = logging.getLogger(__name__)

WINDOW: Final = 100  # the most recent signed callbacks
MIN_SIGNED: Final = 10  # fewer say nothing yet
ENTER_SHARE: Final = 0.4
LEAVE_SHARE: Final = 0.2
_TIME_REASONS: Final[dict[RefusalReason, str]] = {
    "expired": "expired",
    "future": "too far in the future",
}


class ClockWatch:
    """The time outcomes of the most recent signed callbacks; `check` is a readiness check."""

    def __init__(self, metrics: Metrics, *, window: int = WINDOW) -> None:
        # (why it was refused for time or None, now - send time) per signed callback whose
        # signature matched
        self._window: deque[tuple[str | None, float]] = deque(maxlen=window)
        self._refused = 0
        self._suspect = False
        self._gauge = metrics.clock_suspect
        self._gauge.set(0)
        metrics.clock_offset.set_function(self.offset)

    def observe(self, t: int, now: float, refused: RefusalReason | None = None) -> None:
        """Record one signed callback with a matching signature: accepted, or refused for time."""
        window = self._window
        reason = _TIME_REASONS.get(refused) if refused is not None else None
        if len(window) == window.maxlen and window[0][0] is not None:
            self._refused -= 1
        window.append((reason, now - (t - SIGNATURE_VALIDITY_SECONDS)))
        if reason is not None:
            self._refused += 1
        if len(window) < MIN_SIGNED:
            return
        share = self._refused / len(window)
        if not self._suspect and share >= ENTER_SHARE:
            self._switch(True)
        elif self._suspect and share < LEAVE_SHARE:
            self._switch(False)

    def offset(self) -> float:
        """How far this server's clock seems ahead of CSS's, in seconds (NaN: no signed
        callbacks yet; negative: behind)."""
        if not self._window:
            return math.nan
        return min(lag for _, lag in self._window)

    async def check(self) -> ComponentCheck:
        details: dict[str, Any] = {
            "signed_callbacks": len(self._window),
            "refused_for_time": self._refused,
        }
        offset = self.offset()
        if not math.isnan(offset):
            details["offset_estimate_seconds"] = round(offset, 1)
        if not self._suspect:
            return ComponentCheck("ok", details)
        return ComponentCheck("degraded", {**details, "error": self._describe()})

    def _switch(self, suspect: bool) -> None:
        self._suspect = suspect
        self._gauge.set(int(suspect))
        if suspect:
            log.error("%s", self._describe())
        else:
            log.info(
                "signed callbacks are accepted again (%d of the last %d refused for time): "
                "the clock looks right",
                self._refused,
                len(self._window),
            )

    def _describe(self) -> str:
        offset = self.offset()
        direction = "ahead of" if offset > 0 else "behind"
        reasons = " or ".join(sorted({reason for reason, _ in self._window if reason}))
        return (
            f"{self._refused} of the last {len(self._window)} signed callbacks were refused as "
            f"{reasons}: this server's clock looks about {abs(offset):.0f} s {direction} "
            "CSS's; check NTP (timedatectl status, chronyc tracking)"
        )
