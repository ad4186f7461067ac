"""Bounded history lag with an idle-priority fold: raise its priority while it falls behind.

At the idle CPU class (`RECEIVER_FOLD_PRIORITY=idle`, the default) the fold gets only what
nothing else wants. That is what a burst needs (its cores go to acknowledging callbacks), but
on a host that stays busy (other services, a long load) the fold could wait for ever, and
history and publishing with it. So the service watches the oldest unfolded callback's age: past
`RECEIVER_FOLD_MAX_LAG_SECONDS` it moves the fold to the ordinary class (the service's own
priority), and back to the idle class once the fold has caught up. A process may always lower
another of its user's processes' priority, but raising it needs root or `CAP_SYS_NICE` (or an
`RLIMIT_NICE` that allows it): without that, the service logs it once and readiness says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

# Back to the idle class once the oldest unfolded row is younger than this (or than half the
# allowed lag, if that is shorter).
CAUGHT_UP_SECONDS = 1.0

SetScheduler = Callable[[int, int], None]


def _set_scheduler(pid: int, policy: int) -> None:
    os.sched_setscheduler(pid, policy, os.sched_param(0))


class FoldPriority:
    """Moves an idle-class fold process to the ordinary class while it lags, and back."""

    def __init__(
        self,
        pid: Callable[[], int | None],
        *,
        max_lag_seconds: float,
        set_scheduler: SetScheduler = _set_scheduler,
    ) -> None:
        self._pid = pid
        self._max_lag = max_lag_seconds
        self._set_scheduler = set_scheduler
        self._raised_pid: int | None = None
        self.error: str | None = None  # why the priority could not be raised, for readiness

    @property
    def raised(self) -> bool:
        return self._raised_pid is not None and self._raised_pid == self._pid()

    def observe(self, oldest_unfolded_age: float | None) -> None:
        """Called with the backlog's age now and then (the fold monitor)."""
        pid = self._pid()
        if pid is None:
            return
        age = oldest_unfolded_age or 0.0
        if not self.raised and age > self._max_lag:
            self._move(pid, os.SCHED_OTHER, raise_=True, age=age)
        elif self.raised and age < min(CAUGHT_UP_SECONDS, self._max_lag / 2):
            self._move(pid, os.SCHED_IDLE, raise_=False, age=age)

    def _move(self, pid: int, policy: int, *, raise_: bool, age: float) -> None:
        try:
            self._set_scheduler(pid, policy)
        except ProcessLookupError:
            return  # the fold is being restarted; the next look finds the new one
        except OSError as exc:
            if raise_ and self.error is None:
                log.warning(
                    "the fold is %.0f s behind but its CPU priority cannot be raised (%s): "
                    "set RECEIVER_FOLD_PRIORITY=low or normal, or grant CAP_SYS_NICE",
                    age,
                    exc,
                )
            self.error = f"cannot raise the fold's CPU priority: {exc.strerror or exc}"
            return
        self.error = None
        if raise_:
            self._raised_pid = pid
            log.info("the fold is %.1f s behind: running it at the ordinary priority", age)
        else:
            self._raised_pid = None
            log.info("the fold has caught up: back to the idle priority")
