"""An answer cache in front of Tencent's monitoring APIs: fresh, shared, or stale with a reason.

    answer = await cache.get(key, ttl=30, fetch=lambda: monitoring.push_info(...))

* a fresh entry is answered without a call;
* concurrent requests for the same key share one call (single flight);
* a failure (Tencent unreachable, throttled, an API error, too slow) is remembered for
  `failure_ttl` seconds, so a busy page does not turn one failure into a burst of calls;
* after a failure the last good answer is served, marked stale with the reason; without one,
  `Unavailable` carries the reason (the view answers 503).

So however often a page asks, each key costs at most one call per `ttl` (and per `failure_ttl`
while failing), and the client's token bucket keeps all keys together within the action's QPS.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from receiver.tencent.errors import TencentApiError, TencentError

V = TypeVar("V")


class Unavailable(Exception):
    """No answer to give: Tencent failed and nothing is cached. `reason` is for people."""

    def __init__(self, reason: str, *, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled


@dataclass(frozen=True, slots=True)
class Answer(Generic[V]):
    value: V
    fetched_at: float  # wall clock, unix seconds
    cached: bool  # served from the cache (no call for this request)
    stale_reason: str | None  # set when served after a failed refresh


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V | None
    fetched_at: float
    fresh_until: float  # monotonic
    failure: Unavailable | None = None
    failed_until: float = 0.0  # monotonic


class AnswerCache(Generic[V]):
    def __init__(
        self,
        *,
        max_entries: int = 512,
        failure_ttl: float = 5.0,
        timeout: float = 20.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._flights: dict[Hashable, asyncio.Future[Answer[V]]] = {}
        self._max = max_entries
        self._failure_ttl = failure_ttl
        self._timeout = timeout
        self._clock = clock
        self._monotonic = monotonic
        self.calls = 0

    async def get(self, key: Hashable, ttl: float, fetch: Callable[[], Awaitable[V]]) -> Answer[V]:
        now = self._monotonic()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            if entry.value is not None and now < entry.fresh_until:
                return Answer(entry.value, entry.fetched_at, True, None)
            if entry.failure is not None and now < entry.failed_until:
                return self._after_failure(entry, entry.failure)
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
            try:
                flight.set_result(await self._refresh(key, ttl, fetch))
            except Unavailable as exc:
                flight.set_exception(exc)
            except BaseException:  # cancelled: the requests sharing this call get a reason
                flight.set_exception(Unavailable("the request to Tencent was cancelled"))
                flight.exception()  # retrieved: nobody may be waiting
                raise
            finally:
                del self._flights[key]
            return flight.result()
        answer = await asyncio.shield(flight)
        return Answer(answer.value, answer.fetched_at, True, answer.stale_reason)

    async def _refresh(
        self, key: Hashable, ttl: float, fetch: Callable[[], Awaitable[V]]
    ) -> Answer[V]:
        self.calls += 1
        try:
            async with asyncio.timeout(self._timeout):
                value = await fetch()
        except (TencentError, TimeoutError) as exc:
            failure = unavailable(exc, self._timeout)
            entry = self._entries.get(key) or _Entry(None, 0.0, 0.0)
            entry.failure, entry.failed_until = failure, self._monotonic() + self._failure_ttl
            self._store(key, entry)
            return self._after_failure(entry, failure)
        entry = _Entry(value, self._clock(), self._monotonic() + ttl)
        self._store(key, entry)
        return Answer(value, entry.fetched_at, False, None)

    def _after_failure(self, entry: _Entry[V], failure: Unavailable) -> Answer[V]:
        if entry.value is None:
            raise failure
        return Answer(entry.value, entry.fetched_at, True, failure.reason)

    def _store(self, key: Hashable, entry: _Entry[V]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def unavailable(exc: BaseException, timeout: float) -> Unavailable:
    """Why Tencent gave no answer, in words (`exc`: a `TencentError` or a timeout)."""
    if isinstance(exc, TimeoutError):
        return Unavailable(f"Tencent did not answer within {timeout:g} s")
    if isinstance(exc, TencentApiError):
        throttled = exc.code.startswith("RequestLimitExceeded")
        what = "throttled the request" if throttled else "refused the request"
        return Unavailable(f"Tencent {what}: {exc.code}: {exc.message}", throttled=throttled)
    return Unavailable(f"Tencent could not be reached: {exc}")
