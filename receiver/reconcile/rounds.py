"""Who runs a background reconciliation round, and what rounds remember between them.

On SQLite one process serves the database: every round is its own, and the online-list
corrector remembers in memory which streams Tencent did not list last time (`InProcessMemory`).

On PostgreSQL several replicas run the same schedule. Each would spend the account's API budget
on the same sweep and store the same findings at once, so a round is run by one replica only
(`SharedRounds`): a replica starting a round takes the session-level advisory lock
`ROUND_LOCK` (`pg_try_advisory_lock`, held on a pooled connection while the round runs; a
replica that dies frees it with its session) and, holding it, reads when the last round began
(`service_state`, the database's clock). It skips the round, and says why in `/readyz`, while
another replica holds the lock or when a round began less than an interval ago; so whichever
replica's timer fires first runs it, and the others skip until the next interval. The streams
missing from the last look are kept in `service_state` too (`SharedMemory`): the next look may
be another replica's, and "missing at two consecutive looks" must count looks by any replica.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

from receiver.storage.postgres.pool import acquire, release

if TYPE_CHECKING:
    import asyncpg

Identity = tuple[str, str, str]
Missing = dict[Identity, tuple[int, float]]  # looks in a row it was missing, first miss

# pg_advisory_lock key of the reconciliation rounds: "rcvr" + 2 (the migration runner is + 1).
ROUND_LOCK: Final = 0x72637672_00000002
_LAST_ROUND: Final = "reconcile_last_round"
_MISSING: Final = "reconcile_live_missing"
_DATABASE_SECONDS: Final = 10.0  # to get a connection, and to give it back
_STATE: Final = (
    "SELECT extract(epoch FROM clock_timestamp())::float8 AS now,"
    " (SELECT value FROM service_state WHERE key = $1) AS last"
)
_SET: Final = (
    "INSERT INTO service_state (key, value) VALUES ($1, $2)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)


class MissingMemory(Protocol):
    async def load(self) -> Missing: ...

    async def save(self, missing: Missing) -> None: ...


class InProcessMemory:
    def __init__(self) -> None:
        self._missing: Missing = {}

    async def load(self) -> Missing:
        return dict(self._missing)

    async def save(self, missing: Missing) -> None:
        self._missing = dict(missing)


class SharedMemory:
    """The missing streams in `service_state` (written only by the replica holding the round)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def load(self) -> Missing:
        value = await self._pool.fetchval(
            "SELECT value FROM service_state WHERE key = $1", _MISSING
        )
        if value is None:
            return {}
        return {
            (d, a, s): (int(looks), float(first)) for d, a, s, looks, first in json.loads(value)
        }

    async def save(self, missing: Missing) -> None:
        rows = [[*identity, looks, first] for identity, (looks, first) in missing.items()]
        await self._pool.execute(_SET, _MISSING, json.dumps(rows))


class RoundGate(Protocol):
    def hold(self, spacing: float) -> AbstractAsyncContextManager[str | None]:
        """Enter: None when this replica runs the round now, else why it skips it (a round
        runs now elsewhere, or one began less than `spacing` seconds ago)."""
        ...


class SoloRounds:
    """One process, every round its own (SQLite)."""

    @asynccontextmanager
    async def hold(self, spacing: float) -> AsyncIterator[str | None]:
        yield None


class SharedRounds:
    """One replica per round among those on one PostgreSQL database (module docstring)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def hold(self, spacing: float) -> AsyncIterator[str | None]:
        conn = await acquire(self._pool, _DATABASE_SECONDS)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ROUND_LOCK):
                yield "another replica is reconciling"
                return
            try:
                state = await conn.fetchrow(_STATE, _LAST_ROUND)
                assert state is not None  # a SELECT without FROM returns one row
                now, last = state["now"], state["last"]
                # A little slack: timers and the database's clock never agree to the millisecond.
                if last is not None and now - float(last) < spacing - min(1.0, spacing / 10):
                    yield f"another replica began a round {now - float(last):.1f} s ago"
                    return
                await conn.execute(_SET, _LAST_ROUND, repr(now))
                yield None
            finally:
                # A broken connection has lost the lock with its session; a pooled one that
                # cannot unlock is reset by the pool (pg_advisory_unlock_all).
                with contextlib.suppress(Exception):
                    await conn.fetchval("SELECT pg_advisory_unlock($1)", ROUND_LOCK)
        finally:
            await release(self._pool, conn, _DATABASE_SECONDS)
