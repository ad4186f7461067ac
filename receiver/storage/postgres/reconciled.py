"""Reconciled events in the PostgreSQL intake: the rare batches that carry them.

A push begin or end rebuilt from Tencent's records (`receiver.reconcile`) is submitted to the
intake like a callback, marked by its path kind (`RECONCILED_PATH`). The matching with real
callbacks ("the real one wins", `receiver.storage.reconciled`) runs in the database, in the
`events_reconciled` trigger (migrations/postgresql/0005_reconciled_events.sql), inside the store
transaction and under its partition locks, so it holds across replicas. What the intake does
for it is small, and only for batches that need it; every other batch is stored exactly as
before, in one call:

* `split`: a batch mixing reconciled rows and callbacks is stored as consecutive runs of either,
  one transaction each, in arrival order. A reconciled event and its real callback in one
  statement would be matched before the history trigger (which fires at the statement's end)
  made the reconciled event's push session; in two statements the second sees the first whole,
  as SQLite's fold, which stores such rows one by one.
* `mark`: prepared rows of a reconciled run carry the path kind to the trigger, which stores
  them with `source = 'reconciled'` and no path kind (`receiver.storage.fold.prepare_event`
  drops it, as the SQLite fold stores it).
* `shadowed`: a reconciled row whose real callback is stored is not inserted; the trigger
  records its id as an alias of the real event, and this finds it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from receiver.storage.fold import InboxRow
from receiver.storage.reconciled import RECONCILED_PATH

if TYPE_CHECKING:
    from receiver.storage.postgres.pool import Connection

T = TypeVar("T")

_PATH_KIND: Final = 10  # in `receiver.storage.rows.event_row`
_ALIASES: Final = "SELECT id, event_id FROM event_aliases WHERE id = ANY($1::text[])"


def is_reconciled(row: InboxRow) -> bool:
    return row.path_kind == RECONCILED_PATH


def split(batch: list[T], row_of: Callable[[T], InboxRow]) -> list[list[T]]:
    """`batch` as runs of reconciled rows and of callbacks, in order; `[batch]` when it does
    not mix them (nearly always)."""
    flags = [is_reconciled(row_of(item)) for item in batch]
    if all(flags) or not any(flags):
        return [batch]
    runs: list[list[T]] = []
    for index, (item, flag) in enumerate(zip(batch, flags, strict=True)):
        if index == 0 or flag != flags[index - 1]:
            runs.append([])
        runs[-1].append(item)
    return runs


def mark(event: tuple[Any, ...]) -> tuple[Any, ...]:
    """The prepared row of a reconciled event, with the path kind the trigger recognises."""
    return (*event[:_PATH_KIND], RECONCILED_PATH, *event[_PATH_KIND + 1 :])


async def shadowed(
    conn: Connection, columns: list[list[Any]], ids: dict[tuple[int, str], str]
) -> dict[tuple[int, str], str]:
    """{(event_type, key): real event id} of the rows `store_events` neither stored nor found
    by key: reconciled events whose real callback was stored first (`columns` as the intake
    passes them: partition, then `event_row`'s columns)."""
    missing = {
        event_id: (event_type, key)
        for event_id, event_type, key in zip(columns[1], columns[2], columns[4], strict=True)
        if (event_type, key) not in ids
    }
    if not missing:
        return {}
    rows = await conn.fetch(_ALIASES, list(missing))
    return {missing[row["id"]]: row["event_id"] for row in rows}
