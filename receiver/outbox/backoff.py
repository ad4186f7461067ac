"""Exponential back-off with jitter, for reconnecting to a broker that is down.

"Equal jitter": each delay is drawn between half and all of the exponential step, capped. The
random half spreads the reconnects of many receivers after a broker restart; the fixed half keeps
a dead broker from being hammered.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        *,
        initial: float = 0.25,
        cap: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or cap < initial or factor < 1:
            raise ValueError("need 0 < initial <= cap and factor >= 1")
        self._initial = initial
        self._cap = cap
        self._factor = factor
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.attempts = 0

    @property
    def cap(self) -> float:
        return self._cap

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one failed attempt."""
        step = min(self._cap, self._initial * self._factor ** min(self.attempts, 64))
        self.attempts += 1
        return self._rng.uniform(step / 2, step)

    def reset(self) -> None:
        self.attempts = 0
