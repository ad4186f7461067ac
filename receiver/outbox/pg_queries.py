"""The outbox on PostgreSQL (the relay reads and marks through these): unpublished events of
the partitions this replica owns, each partition in storage order, and their outcomes.

Why a cursor per partition: on several replicas a lower seq may commit after a higher one, but
never within one partition (docs/scaling.md, "Storage order across replicas"). A single cursor
over several partitions ("seq > the last seq read") would pass over a lower seq of partition A
still committing while a higher one of partition B was read, then publish A's later events
before it. With one cursor per partition, nothing a cursor has passed can still appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from receiver.outbox.envelope import COLUMNS, OutboxRow

if TYPE_CHECKING:
    from receiver.storage.postgres.pool import Connection

_UNPUBLISHED: Final = (
    f"SELECT e.partition, {', '.join(f'e.{c.strip()}' for c in COLUMNS.split(','))}"  # noqa: S608
    " FROM UNNEST($1::smallint[], $2::bigint[]) AS o(partition, after)"
    " CROSS JOIN LATERAL (SELECT * FROM events AS x WHERE x.partition = o.partition"
    "   AND x.published_at IS NULL AND x.seq > o.after ORDER BY x.seq LIMIT $3) AS e"
    " ORDER BY e.seq LIMIT $3"
)
_MARK_PUBLISHED: Final = (
    "UPDATE events AS e SET published_at = m.at, last_error = m.error,"
    " publish_attempts = e.publish_attempts + 1"
    " FROM UNNEST($1::float8[], $2::text[], $3::bigint[]) AS m(at, error, seq)"
    " WHERE e.seq = m.seq"
)
_MARK_FAILED: Final = (
    "UPDATE events AS e SET last_error = m.error, publish_attempts = e.publish_attempts + 1"
    " FROM UNNEST($1::text[], $2::bigint[]) AS m(error, seq)"
    " WHERE e.seq = m.seq AND e.published_at IS NULL"
)


async def unpublished(conn: Connection, cursors: dict[int, int], limit: int) -> list[OutboxRow]:
    """Up to `limit` unpublished events of the partitions in `cursors` (partition -> the last
    seq already read of it), oldest first; advances `cursors` past what it returns."""
    if not cursors:
        return []
    partitions = sorted(cursors)
    rows = await conn.fetch(_UNPUBLISHED, partitions, [cursors[p] for p in partitions], limit)
    found: list[OutboxRow] = []
    for row in rows:
        partition, *columns = tuple(row)
        cursors[partition] = max(cursors[partition], columns[0])
        found.append(tuple(columns))
    return found


async def mark(
    conn: Connection,
    published: Sequence[tuple[float, str | None, int]],
    failed: Sequence[tuple[str, int]],
) -> None:
    """Record outcomes (as the SQLite fold does): `published` (published_at, last_error, seq)
    for what the broker took, `failed` (error, seq) for an attempt that did not go through."""
    async with conn.transaction():
        if published:
            at, errors, seqs = zip(*published, strict=True)
            await conn.execute(_MARK_PUBLISHED, list(at), list(errors), list(seqs))
        if failed:
            errors_failed, seqs_failed = zip(*failed, strict=True)
            await conn.execute(_MARK_FAILED, list(errors_failed), list(seqs_failed))


def start_cursors(owned: Iterable[int]) -> dict[int, int]:
    """Cursors at the start of each owned partition (a pass reads from its oldest unpublished)."""
    return dict.fromkeys(owned, 0)
