"""Event ids: UUIDv7 strings (RFC 9562) that follow the clock and never repeat or go backwards.

Why not `uuid6.uuid7()`: it adds a millisecond to the timestamp for every id made within the
same millisecond, so at a few thousand events per second the ids' time runs minutes ahead of
the clock, and it costs a `UUID` object and a `secrets` call per id, a noticeable share of the
writer process's work per event (bench/README.md, where the time goes). Here an id made within
the millisecond of the previous one is the previous one plus a random step (RFC 9562 §6.2,
method 2): strictly increasing, still unguessable, and the timestamp stays the real one.
"""

from __future__ import annotations

import os
import time
from typing import Final

_RANDOM_BITS: Final = 74  # 12 bits rand_a + 62 bits rand_b
_RAND_B_BITS: Final = 62
_RAND_B_MASK: Final = (1 << _RAND_B_BITS) - 1
_VERSION_VARIANT: Final = (0x7 << 76) | (0b10 << 62)
_MAX_STEP_BYTES: Final = 4  # the step within one millisecond: 1 .. 2**32
_POOL_BYTES: Final = 4096  # random bytes fetched at once: one getrandom() per ~300 ids


class EventIds:
    """Makes UUIDv7 strings, strictly increasing within this instance."""

    def __init__(self) -> None:
        self._last = 0  # the previous id without its version and variant bits (122 bits)
        self._pool = b""
        self._used = 0

    def new(self) -> str:
        ms = time.time_ns() // 1_000_000
        compact = (ms << _RANDOM_BITS) | int.from_bytes(self._random(10)) >> 6
        if compact <= self._last:
            # Same millisecond as the previous id (or the clock stepped back): keep increasing.
            compact = self._last + 1 + int.from_bytes(self._random(_MAX_STEP_BYTES))
        self._last = compact
        value = (
            (compact >> _RANDOM_BITS) << 80  # unix_ts_ms (48 bits)
            | ((compact >> _RAND_B_BITS) & 0xFFF) << 64  # rand_a (12 bits)
            | (compact & _RAND_B_MASK)  # rand_b (62 bits)
            | _VERSION_VARIANT
        )
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _random(self, size: int) -> bytes:
        if self._used + size > len(self._pool):
            self._pool, self._used = os.urandom(_POOL_BYTES), 0
        start = self._used
        self._used += size
        return self._pool[start : self._used]
