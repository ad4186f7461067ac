"""Connections: a cap below the open files limit, a deadline for request heads, shedding logged.

Every connection holds a file descriptor. Left to itself the server accepts until the process
runs out of them, and then nothing works: not the callbacks, not `/readyz`, not a restart of the
writer process (it needs two pipes), and nothing says why. So `receiver serve`:

- raises the soft open files limit to the hard limit at start (`raise_open_files_limit`);
- caps the connections below that limit, keeping `FD_HEADROOM` descriptors for the database,
  the writer's pipes, the broker and the Tencent API (`connection_cap`);
- at the cap, admits a new connection by closing the connection that has been idle longest (no
  request under way: waiting for its first request or between two). A client that connects
  sends its request at once, while closing an idle connection costs its client little (HTTP
  clients reopen closed keep-alive connections), so idle connections held open by the thousand
  cannot lock real work out. Only when every connection is busy is the new one closed at once.
  One WARNING per episode, not one per connection; `receiver_connections_closed_total{reason}`
  counts each;
- closes a connection whose request head (request line and headers) is not complete within
  the header timeout of its first byte (of the connection opening, for its first request).
  aiohttp's own timer applies only the keep-alive timeout, which closes idle connections.

The guard wraps aiohttp's protocol (one `RequestHandler` per connection) in a thin one of its
own: aiohttp has no option for either a cap or a header deadline. Two facts are read from
aiohttp's handler: whether it waits for a request (`_waiter`, the very test its keep-alive timer
makes) and how many request heads it has parsed (`_request_count`); the tests of this module
fail if aiohttp renames them.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from typing import Final, Literal, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

# Descriptors kept free of connections: the database (file, WAL, shared memory), the writer's
# two pipes and its restarts, the broker, the Tencent API client, the event loop's own.
FD_HEADROOM: Final = 128
# Fewer connections than this means an open files limit too low to serve.
_MIN_CAP: Final = 16
# How many of the least recently active connections one admission looks at for an idle one.
_EVICTION_SCAN: Final = 64
# An episode of shedding (or of header timeouts) ends after this long without one.
_EPISODE_QUIET_SECONDS: Final = 10.0

CloseReason = Literal["limit_idle", "limit_refused", "header_timeout"]


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (logged); return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d to %d: %s", soft, hard, exc)
        else:
            log.info("raised the open files limit from %d to %d", soft, hard)
            return hard
    return soft


def connection_cap(configured: int, open_files: int) -> int:
    """RECEIVER_MAX_CONNECTIONS, lowered to leave `FD_HEADROOM` descriptors free."""
    room = open_files - FD_HEADROOM
    if room < min(configured, _MIN_CAP):
        log.warning(
            "the open files limit of %d leaves room for %d connections only; raise it (ulimit -n)",
            open_files,
            max(room, 0),
        )
        return max(1, min(configured, _MIN_CAP))
    if room < configured:
        log.info(
            "at most %d connections (RECEIVER_MAX_CONNECTIONS is %d; the open files limit is %d)",
            room,
            configured,
            open_files,
        )
        return room
    return configured


def _awaiting_request(handler: RequestHandler) -> bool:
    """True while aiohttp waits for the connection's next request head (no request under way)."""
    waiter: asyncio.Future[None] | None = getattr(handler, "_waiter", None)
    return waiter is not None and not waiter.done()


def _heads_parsed(handler: RequestHandler) -> int:
    """How many request heads aiohttp's parser has completed on the connection so far.

    Read rather than `_awaiting_request` when bytes arrive: a client that sends its request
    with the connection can be read before aiohttp's handler starts waiting for it.
    """
    parsed: int = getattr(handler, "_request_count", 0)
    return parsed


class _Episode:
    """Logs the first of a run of events at WARNING and a summary when it has been quiet."""

    def __init__(self, loop: asyncio.AbstractEventLoop, started: str, ended: str) -> None:
        self._loop = loop
        self._started = started
        self._ended = ended
        self._count = 0
        self._seen = 0  # `_count` at the last check
        self._timer: asyncio.TimerHandle | None = None

    def hit(self, *args: object) -> None:
        if self._timer is None:
            log.warning(self._started, *args)
            self._count = self._seen = 0
            self._timer = self._loop.call_later(_EPISODE_QUIET_SECONDS, self._check)
        self._count += 1

    def _check(self) -> None:
        if self._count != self._seen:
            self._seen = self._count
            self._timer = self._loop.call_later(_EPISODE_QUIET_SECONDS, self._check)
            return
        self._timer = None
        log.info(self._ended, self._count)

    def close(self) -> None:
        """End an episode still under way (at shutdown) with its summary."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            log.info(self._ended, self._count)


class ConnectionGuard:
    """Admits, tracks and times out the connections of one listening socket."""

    def __init__(self, registry: CollectorRegistry, *, cap: int, header_timeout: float) -> None:
        self._server: web.Server | None = None  # set by `attach` once the app has started
        self._loop = asyncio.get_running_loop()
        self.cap = cap
        self._header_timeout = header_timeout
        # Least recently active first: idle connections gather at the front.
        self._open: OrderedDict[_Connection, None] = OrderedDict()
        self._closed = Counter(
            "receiver_connections_closed",
            "Connections the service closed itself, by reason: limit_idle (idle, to admit a new "
            "one at the cap), limit_refused (new, at the cap with none idle), header_timeout.",
            ["reason"],
            registry=registry,
        )
        gauge = Gauge("receiver_connections_open", "Open HTTP connections.", registry=registry)
        gauge.set_function(lambda: len(self._open))
        self._shedding = _Episode(
            self._loop,
            "connection limit of %d reached (RECEIVER_MAX_CONNECTIONS, the open files limit): "
            "closing idle connections to admit new ones, new ones when none is idle",
            "connection limit episode over: %d connections closed",
        )
        self._slow_heads = _Episode(
            self._loop,
            "closing connections whose request head takes over %g s "
            "(RECEIVER_HEADER_TIMEOUT_SECONDS)",
            "header timeout episode over: %d connections closed",
        )
        self._reason_children = {
            reason: self._closed.labels(reason)
            for reason in ("limit_idle", "limit_refused", "header_timeout")
        }

    def attach(self, server: web.Server) -> None:
        """Hand connections to `server` (the started app's) from now on."""
        self._server = server

    def protocol(self) -> asyncio.Protocol:
        """The protocol factory for `loop.create_server`: serve only once `attach`ed."""
        return _Connection(self)

    def close(self) -> None:
        self._shedding.close()
        self._slow_heads.close()

    def _admit(self, connection: _Connection) -> bool:
        if len(self._open) >= self.cap:
            victim = self._idle_victim()
            if victim is None:
                self._count("limit_refused")
                return False
            self._count("limit_idle")
            del self._open[victim]
            victim.close()
        self._open[connection] = None
        return True

    def _idle_victim(self) -> _Connection | None:
        """The least recently active idle connection among the first few; busy ones go last."""
        for _ in range(min(len(self._open), _EVICTION_SCAN)):
            candidate = next(iter(self._open))
            if candidate.idle:
                return candidate
            self._open.move_to_end(candidate)
        return None

    def _count(self, reason: CloseReason) -> None:
        self._reason_children[reason].inc()
        if reason == "header_timeout":
            self._slow_heads.hit(self._header_timeout)
        else:
            self._shedding.hit(self.cap)

    def _active(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.move_to_end(connection)

    def _release(self, connection: _Connection) -> None:
        self._open.pop(connection, None)


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's handler inside, admission and head deadline outside."""

    __slots__ = ("_deadline", "_guard", "_handler", "_heads")

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._handler: RequestHandler | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._heads = 0  # heads parsed when the deadline started: one more ends it

    @property
    def idle(self) -> bool:
        return self._handler is not None and _awaiting_request(self._handler)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard._server is None or not guard._admit(self):
            # At once and without lingering: the descriptor is what is short.
            cast(asyncio.Transport, transport).abort()
            return
        self._handler = guard._server()
        self._handler.connection_made(transport)
        self._start_deadline()  # a client that connects sends its request at once

    def data_received(self, data: bytes) -> None:
        handler = self._handler
        if handler is None:
            return
        handler.data_received(data)
        self._guard._active(self)
        if self._deadline is not None:
            if _heads_parsed(handler) != self._heads:  # the head is complete
                self._deadline.cancel()
                self._deadline = None
        elif _awaiting_request(handler):  # the start of the next request's head
            self._start_deadline()

    def eof_received(self) -> None:
        if self._handler is not None:
            self._handler.eof_received()

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._release(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._handler is not None:
            self._handler.connection_lost(exc)

    def close(self) -> None:
        """Close the connection (aiohttp's handler cleans up when the transport reports it)."""
        if self._handler is not None:
            self._handler.force_close()

    def _start_deadline(self) -> None:
        assert self._handler is not None
        self._heads = _heads_parsed(self._handler)
        self._deadline = self._guard._loop.call_later(
            self._guard._header_timeout, self._head_overdue
        )

    def _head_overdue(self) -> None:
        self._deadline = None
        if self._handler is not None and _heads_parsed(self._handler) == self._heads and self.idle:
            self._guard._release(self)
            self._guard._count("header_timeout")
            self.close()
