"""Who publishes which partition: one owner per partition among the live replicas.

The publisher of a partition must be exactly one replica at a time, so that a stream's events
reach the queue in storage order (docs/scaling.md). Ownership is a session-level advisory lock,
`pg_try_advisory_lock(OWNER_LOCKS, partition)`, held on a connection of its own: PostgreSQL
grants it to one session only, and drops it when that session ends, so a replica that dies (its
socket closes) loses its partitions at once and the others pick them up at their next
rebalance, within `interval` seconds.

Fair shares: the live replicas are the sessions of this database named `OWNER_APPLICATION`; each
aims at ceil(partitions / replicas) and takes free partitions up to it, starting from an offset
of its own so that replicas starting together do not all try partition 0 first. A replica above
its share releases partitions (the highest first) for a newcomer to take.

If the ownership connection breaks, every partition is lost at once (`owned` empties before
anything else may use it): a partition is never believed owned while the database may already
have given it to another replica. The relay (`receiver.outbox.pg_relay`) publishes only what
`owned` holds, in seq order per partition, and rebalances between its passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from receiver.storage.engine import PostgresUrl
from receiver.storage.partitions import PARTITIONS
from receiver.storage.postgres.pool import bounded, describe_error

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

# The advisory lock class of partition ownership (the first of the two-int key): "rcvt".
OWNER_LOCKS: Final = 0x72637674
OWNER_APPLICATION: Final = "receiver-partitions"
# Sent by every store transaction that stored events (receiver.storage.postgres.intake); the
# ownership session listens, so a publisher wakes at once.
NOTIFY_CHANNEL: Final = "receiver_events"
REBALANCE_SECONDS: Final = 1.0
# A publisher confirms its session answers at least this often while it publishes, and waits at
# most CONFIRM_TIMEOUT for it. The server ends a session it cannot reach after the TCP
# keepalives below (about 10 + 4 x 3 = 22 s) and only then frees its locks: by then a replica
# cut off from it has stopped publishing, its last messages settled within the default publish
# timeout (15 s) (docs/scaling.md).
CONFIRM_SECONDS: Final = 1.0
CONFIRM_TIMEOUT: Final = 2.0
_KEEPALIVES: Final = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "3",
    "tcp_keepalives_count": "4",
}

_MEMBERS: Final = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = $1 AND datname = current_database()"
)


class PartitionOwnership:
    """Holds this replica's share of the partitions; `owned` is what it may publish now."""

    def __init__(
        self,
        url: PostgresUrl,
        *,
        partitions: int = PARTITIONS,
        interval: float = REBALANCE_SECONDS,
        on_change: Callable[[frozenset[int]], None] | None = None,
        on_notify: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._partitions = partitions
        self._interval = interval
        self._on_change = on_change
        self.on_notify = on_notify
        self._offset = uuid.uuid4().int % partitions
        self._conn: asyncpg.Connection[Any] | None = None
        self._owned: set[int] = set()
        self._told: frozenset[int] = frozenset()  # what on_change heard last
        self._confirmed_at = -math.inf  # monotonic time the session last answered
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._owned)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="partition-ownership")

    async def close(self) -> None:
        """Stop, and release every partition (closing the session releases its locks)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._disconnect()

    async def rebalance(self) -> frozenset[int]:
        """One step: connect if needed, take free partitions up to the fair share, release
        those above it. Returns what is owned after it."""
        conn = await self._connection()
        try:
            members = max(1, int(await conn.fetchval(_MEMBERS, OWNER_APPLICATION)))
            self._confirmed_at = time.monotonic()
            share = math.ceil(self._partitions / members)
            while len(self._owned) > share:
                partition = max(self._owned)
                await conn.fetchval("SELECT pg_advisory_unlock($1, $2)", OWNER_LOCKS, partition)
                self._owned.discard(partition)
            if len(self._owned) < share:
                for step in range(self._partitions):
                    partition = (self._offset + step) % self._partitions
                    if partition in self._owned:
                        continue
                    taken = await conn.fetchval(
                        "SELECT pg_try_advisory_lock($1, $2)", OWNER_LOCKS, partition
                    )
                    if taken:
                        self._owned.add(partition)
                        if len(self._owned) >= share:
                            break
        except Exception:
            await self._disconnect()
            raise
        finally:
            self._changed()
        return self.owned

    async def confirm(self, now: float) -> bool:
        """Whether the ownership session still answers (asked at most every CONFIRM_SECONDS,
        `now` from a monotonic clock); if not, nothing is owned any more."""
        conn = self._conn
        if conn is None or not self._owned:
            return False
        if now - self._confirmed_at < CONFIRM_SECONDS:
            return True
        try:
            await bounded(conn, CONFIRM_TIMEOUT, conn.fetchval("SELECT 1"))
        except Exception as exc:
            self.last_error = describe_error(exc)
            log.warning("partition ownership session lost: %s", self.last_error)
            await self._disconnect()
            return False
        self._confirmed_at = now
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.rebalance()
                self.last_error = None
            except Exception as exc:  # the database is away: nothing is owned meanwhile
                self.last_error = describe_error(exc)
                log.warning("partition ownership: %s", self.last_error)
            await asyncio.sleep(self._interval)

    async def _connection(self) -> asyncpg.Connection[Any]:
        import asyncpg

        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        await self._disconnect()
        conn = await asyncpg.connect(
            self._url.dsn(),
            timeout=10,
            server_settings={"application_name": OWNER_APPLICATION, **_KEEPALIVES},
        )
        conn.add_termination_listener(lambda _: self._lost())
        if self.on_notify is not None:  # read at each connect: set it before the first one
            on_notify = self.on_notify
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: on_notify())
        self._conn = conn
        return conn

    def _lost(self) -> None:
        """The session ended: the database released every lock it held."""
        self._owned.clear()
        self._changed()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self._owned.clear()
        self._changed()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)
            if not conn.is_closed():
                conn.terminate()

    def _changed(self) -> None:
        owned = self.owned
        if owned != self._told:
            self._told = owned
            if self._on_change is not None:
                self._on_change(owned)
