"""A cap on the bytes of request bodies being received at once, so memory stays bounded.

A body is read whole before it can be authenticated (the signature is inside it), so without a
cap N slow clients cost N x RECEIVER_MAX_BODY_BYTES of memory, unauthenticated (the hostile
scenario of `python -m tests.reliability` holds such bodies open). Over the cap a request is
answered 503 at once (CSS retries it). Bodies up to `UNCOUNTED_BYTES` are not counted: aiohttp
buffers that much per connection anyway, and CSS bodies are a few KB, so a flood of large bodies
never shuts them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from receiver.errors import Overloaded

UNCOUNTED_BYTES = 64 * 1024


class BodyBudget:
    """Bytes of bodies being received; `reserve()` refuses what would exceed the limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold `size` bytes of the budget while a body is read; raise `Overloaded` if full."""
        if size <= UNCOUNTED_BYTES:
            size = 0
        elif self._used + size > self._limit:
            raise Overloaded()
        self._used += size
        try:
            yield
        finally:
            self._used -= size


BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
