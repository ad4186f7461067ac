"""Requests being handled right now, so a shutdown can let them finish before closing anything.

aiohttp's own shutdown closes every connection as soon as it stops listening and then ignores
what arrives on them: a request whose body was still arriving at SIGTERM was never completed or
answered, and the shutdown waited its whole timeout for it. `receiver serve` stops listening,
waits here until the requests it has begun are done, and only then closes connections.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class InFlight:
    """A count of requests in their handlers, with a way to wait until there are none."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    def begin(self) -> None:
        self._count += 1
        self._idle.clear()

    def end(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no request is being handled."""
        await self._idle.wait()


IN_FLIGHT = web.AppKey("in_flight", InFlight)
