"""Reading stored push sessions for reconciliation, on either engine.

Reconciliation compares Tencent's records with the push sessions we hold: those that could pair
with a record of a sweep (`matching`), and the open ones (`live`). The same two queries are
written here for SQLite (the service's reader, or the CLI's read-only connection) and for
PostgreSQL (a pool), so the rest of the package does not care which engine it runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import aiosqlite

if TYPE_CHECKING:
    import asyncpg

History: TypeAlias = "aiosqlite.Connection | asyncpg.Pool[Any]"

# Every session that could pair with a record of the sweep: the open ones (a lost end), and
# those placed or ended since the oldest record's start (minus the tolerance).
_SESSIONS_SELECT: Final = (
    "SELECT s.domain, s.app_name, s.stream_id, p.id, p.sequence, p.begin_time, p.end_time,"
    " p.started_at FROM push_sessions AS p JOIN streams AS s ON s.id = p.stream"
)
_SESSIONS_SQLITE: Final = (
    f"{_SESSIONS_SELECT} WHERE p.end_seq IS NULL OR p.started_at >= ? OR p.end_time >= ?"
)
_SESSIONS_POSTGRES: Final = (
    f"{_SESSIONS_SELECT} WHERE p.end_seq IS NULL OR p.started_at >= $1 OR p.end_time >= $1"
)
_OPEN_SQLITE: Final = (
    "SELECT s.domain, s.app_name, s.stream_id, p.sequence, p.begin_time"
    " FROM push_sessions AS p INDEXED BY push_sessions_open JOIN streams AS s ON s.id = p.stream"
    " WHERE p.end_seq IS NULL"
)
_OPEN_POSTGRES: Final = (
    "SELECT s.domain, s.app_name, s.stream_id, p.sequence, p.begin_time"
    " FROM push_sessions AS p JOIN streams AS s ON s.id = p.stream WHERE p.end_seq IS NULL"
)


async def session_rows(history: History, oldest: float) -> Sequence[Sequence[Any]]:
    """(domain, app, stream, id, sequence, begin_time, end_time, started_at) of every session
    open, placed or ended since `oldest`."""
    if isinstance(history, aiosqlite.Connection):
        return list(await history.execute_fetchall(_SESSIONS_SQLITE, (oldest, oldest)))
    return list(await history.fetch(_SESSIONS_POSTGRES, oldest))


async def open_session_rows(history: History) -> Sequence[Sequence[Any]]:
    """(domain, app, stream, sequence, begin_time) of every open session."""
    if isinstance(history, aiosqlite.Connection):
        return list(await history.execute_fetchall(_OPEN_SQLITE))
    return list(await history.fetch(_OPEN_POSTGRES))
