"""Connecting to PostgreSQL: a connection pool, and the server settings durability needs.

An event is acknowledged only once its commit returned; that proves it is on disk only when the
server flushes the commit first. `synchronous_commit=off` (for the server, the database or the
role) returns before the flush, and `fsync=off` never flushes: a crash of the server would then
lose acknowledged events, which CSS never sends again. So the service refuses to start on such
a server rather than break its promise quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from receiver.errors import StartupRefused
from receiver.storage.engine import PostgresUrl

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    # A connection of its own or one borrowed from the pool: both run the same queries.
    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
    Pooled = PoolConnectionProxy[Any]  # a connection borrowed from the pool

T = TypeVar("T")

# Values of synchronous_commit that wait for the local flush before COMMIT returns.
DURABLE_COMMIT: Final = frozenset({"on", "remote_apply", "remote_write", "local"})
CONNECT_TIMEOUT_SECONDS: Final = 10.0


def describe_error(exc: BaseException) -> str:
    """One line about a database error, never with a URL (asyncpg's messages carry none)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def open_pool(
    url: PostgresUrl, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool[asyncpg.Record]:
    """A pool on `url` whose server commits durably; `StartupRefused` (one line) otherwise.

    The pool replaces a connection that broke (the server restarted, the network dropped) on
    the next acquire, so the service recovers without a restart once the server is back.
    """
    import asyncpg  # here: SQLite installs need not have it

    try:
        pool = await asyncpg.create_pool(
            url.dsn(),
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": "receiver"},
        )
    except Exception as exc:
        raise StartupRefused(
            f"cannot connect to PostgreSQL at {url.masked}: {describe_error(exc)}"
        ) from None
    try:
        await check_durability(pool, url)
    except BaseException:
        await pool.close()
        raise
    return pool


async def check_durability(pool: asyncpg.Pool[Any], url: PostgresUrl) -> None:
    """Refuse a server that acknowledges commits before they are on disk (module doc)."""
    async with pool.acquire() as conn:
        commit = await conn.fetchval("SHOW synchronous_commit")
        fsync = await conn.fetchval("SHOW fsync")
    if commit not in DURABLE_COMMIT:
        raise StartupRefused(
            f"PostgreSQL at {url.masked} has synchronous_commit={commit} for this role: a crash "
            "would lose acknowledged callbacks; set it to on (ALTER ROLE ... SET "
            "synchronous_commit = on, or in postgresql.conf)"
        )
    if fsync != "on":
        raise StartupRefused(
            f"PostgreSQL at {url.masked} runs with fsync={fsync}: a crash would lose "
            "acknowledged callbacks; set fsync = on in postgresql.conf"
        )


async def bounded(conn: Connection, seconds: float, work: Awaitable[T]) -> T:
    """`work` on `conn`, or `TimeoutError` after `seconds` with the connection closed.

    Cancelling a query does not end it: asyncpg then waits for the server to confirm the cancel,
    and a transaction's rollback waits for the server too, so a server that stopped answering
    (paused, a network partition) would hold the caller for ever. Closing the connection ends
    every wait on it at once; the server rolls the transaction back when it sees the close.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    if not done:
        conn.terminate()
        with contextlib.suppress(BaseException):
            await task
        raise TimeoutError(f"PostgreSQL did not answer within {seconds:g} s")
    return task.result()


async def acquire(pool: asyncpg.Pool[Any], seconds: float) -> Pooled:
    """A connection from the pool within `seconds` (connecting included)."""
    async with asyncio.timeout(seconds):
        return await pool.acquire()


async def release(pool: asyncpg.Pool[Any], conn: Pooled, seconds: float) -> None:
    """Give `conn` back; asyncpg closes it if resetting it fails or takes longer."""
    with contextlib.suppress(Exception):
        await pool.release(conn, timeout=seconds)


def usable(conn: Pooled) -> bool:
    """Whether a borrowed connection can still run queries (a closed one is handed back to the
    pool by asyncpg itself, and then refuses every call)."""
    import asyncpg

    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False
