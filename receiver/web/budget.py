"""A cap on the bytes of request bodies being received at once, so memory stays bounded.

A body is read whole before it can be authenticated (the signature is inside it), so without a
cap N slow clients cost N x RECEIVER_MAX_BODY_BYTES of memory, unauthenticated (the hostile
scenario of `python -m tests.reliability` holds such bodies open). Over the cap a request is
answered 503 at once (CSS retries it).

Every body still arriving is counted, however small: thousands of connections each holding a
body just under any "too small to matter" threshold add up to as much memory as a few large
ones. What keeps a flood of large bodies from shutting out CSS, whose bodies are a few KB, is a
share of the budget only small bodies may use: bodies over `SMALL_BODY_BYTES` are refused once
the rest is taken. A body that arrived whole with its headers never reaches the budget (there is
nothing left to wait for).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from aiohttp import web

from receiver.errors import Overloaded

# Bodies up to this size are callbacks as CSS sends them (its largest kinds are a few KB).
SMALL_BODY_BYTES: Final = 16 * 1024
# The share of the budget kept for small bodies: large ones may fill the rest.
SMALL_BODY_SHARE: Final = 4


class BodyBudget:
    """Bytes of bodies being received; `reserve()` refuses what would exceed the limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._large_limit = limit - limit // SMALL_BODY_SHARE
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold `size` bytes of the budget while a body is read; raise `Overloaded` if full.

        A body larger than the large bodies' share is still admitted alone (used == 0), so any
        body up to RECEIVER_MAX_BODY_BYTES can be received on an idle service.
        """
        limit = self._limit if size <= SMALL_BODY_BYTES else self._large_limit
        if self._used + size > limit and self._used > 0:
            raise Overloaded()
        self._used += size
        try:
            yield
        finally:
            self._used -= size


BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
