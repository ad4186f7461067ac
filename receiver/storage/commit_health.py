"""Whether the writer can store events now: what the readiness probe answers.

A heartbeat that commits is not proof on its own: one small row can commit while every event
fails (a damaged index of `events`, a disk with room for a page or two but not for an event).
So the writer process records the outcome of every commit that stored events or probed the
events table, and the probe fails while they fail.

Hysteresis, so that readiness does not flap: one failed commit makes the probe fail at once; it
succeeds again only after a commit has succeeded and no commit has failed for
`RECOVERY_SECONDS`. A disk that fails every other commit therefore reads 503 steadily, not
200 and 503 by turns, and a balancer never sends traffic back to a service that still refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

RECOVERY_SECONDS: Final = 5.0


class CommitHealth:
    """The recent outcomes of event commits, reduced to: is something wrong, and what."""

    def __init__(
        self,
        *,
        recovery_seconds: float = RECOVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recovery = recovery_seconds
        self._clock = clock
        self._failing_since: float | None = None
        self._last_failure = 0.0
        self._last_error = ""
        self._failures = 0
        self._recovered = False  # a commit succeeded after the last failure

    def succeeded(self) -> None:
        """A commit that stored events, or probed the events table, went through."""
        if self._failing_since is not None:
            self._recovered = True

    def failed(self, error: str) -> None:
        """A commit failed: readiness fails from now until the recovery period has passed."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            self._failures = 0
        self._failures += 1
        self._last_failure = now
        self._last_error = error
        self._recovered = False

    def problem(self) -> str | None:
        """Why the service is not ready, in one line; None once commits work again."""
        if self._failing_since is None:
            return None
        now = self._clock()
        quiet = now - self._last_failure
        if self._recovered and quiet >= self._recovery:
            self._failing_since = None
            return None
        return (
            f"event commits are failing: {self._failures} failed in the last "
            f"{now - self._failing_since:.1f} s, the latest {quiet:.1f} s ago "
            f"({self._last_error}); ready again once commits have succeeded for "
            f"{self._recovery:g} s"
        )
