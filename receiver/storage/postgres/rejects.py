"""Callbacks PostgreSQL refuses to store as events, kept verbatim in `fold_rejects`.

SQLite acknowledges a callback once it is in the inbox, and its fold keeps a body the database
refuses (a constraint, a trigger) in `fold_rejects`, so nothing acknowledged is lost. PostgreSQL
stores the event before answering; without this table such a callback would be answered 503,
retried by CSS for about 12 minutes and then dropped: lost. So the intake keeps it here, under
the id it is acknowledged with, and answers 200 only once this row committed; if even this row
cannot be stored, the callback is answered 503 as before (CSS retries). The body is kept as the
bytes received (`bytea`): text columns cannot hold every body JSON can spell.

Operators read them (`SELECT * FROM fold_rejects`), deal with them, and delete the rows; until
then `/readyz` `database` is `degraded` with their count (docs/guarantees.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from receiver.storage.fold import InboxRow

if TYPE_CHECKING:
    from receiver.storage.postgres.pool import Connection

_KEEP: Final = (
    "INSERT INTO fold_rejects (id, event_type, received_at, path_kind, payload, error,"
    " rejected_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
COUNT_REJECTED: Final = "SELECT count(*) FROM fold_rejects"


async def keep_rejected(conn: Connection, row: InboxRow, error: str, now: float) -> None:
    """Keep the refused callback `row` (committed when this returns: autocommit)."""
    await conn.execute(
        _KEEP,
        row.id,
        row.event_type,
        row.received_at,
        row.path_kind,
        row.payload,
        error.replace("\x00", "\ufffd"),  # text cannot hold U+0000
        now,
    )
