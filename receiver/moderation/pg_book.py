"""The action book on PostgreSQL: what `receiver.moderation.book` does in SQLite's fold, done
in the transaction that stores the callbacks (receiver/storage/postgres/intake.py).

On PostgreSQL there is no fold: each replica's intake commits a batch of callbacks itself, in
one call of `store_events`. A batch that holds nothing for the book (almost every batch: no
moderation hit the policy watches, no stream end with errcode 21) keeps that single round trip;
`triggers` tells, from the rows alone. A batch that does hold something takes `store` instead,
still one transaction:

1. the rows are stored in the intake's order (by partition, then arrival), in segments that end
   at each trigger, with the same `store_events` call, so every ordering and locking rule of the
   common path holds (partition locks in ascending order, held until the commit);
2. after each trigger's segment, if the trigger was stored now (its stored id is its own: not a
   retry of an event stored before, on this replica or another), its action is recorded, keyed
   (domain, app, stream, push session) with `ON CONFLICT DO NOTHING`: the push session is the
   stream's current one at that event, as on SQLite, since the events before it are stored;
3. a dry-run (or an incomplete) action is final at once: its `moderation_action` event is stored
   in the same transaction; a stream end with errcode 21 confirms a finished action.

Acknowledged therefore means recorded: the event's 200 follows the commit that holds its action,
and a retry (on any replica) finds its event stored and records nothing. The executor's reports
(`apply`) and `receiver tencent resume` write through the same statements as on SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from receiver.events.decode import loads
from receiver.events.kinds import EVENT_TYPE_BY_KIND
from receiver.moderation.book import (
    CONFIRM,
    CONFIRMS,
    FINAL_STATES,
    NEW_ACTION,
    ROW,
    SESSION,
    STREAM_END,
    ActionMark,
    ActionRow,
    action_event,
    confirmations,
    mark_sql,
    planned,
    reaction,
)
from receiver.moderation.policy import ModerationPolicy
from receiver.storage.ids import EventIds
from receiver.storage.partitions import partition_of
from receiver.storage.postgres.placeholders import numbered

if TYPE_CHECKING:
    from receiver.storage.postgres.pool import Connection

# `receiver.storage.postgres.intake.store_rows`: store rows given as columns (the partition
# first), in the caller's transaction; {(event_type, key): stored id}.
StoreRows = Callable[["Connection", list[list[Any]], float], Awaitable[dict[tuple[int, str], str]]]
Triggers = dict[int, tuple[str, Mapping[str, Any]]]  # row index: (reaction, body)

_INSERT: Final = numbered(
    f"INSERT INTO {NEW_ACTION} ON CONFLICT (domain, app_name, stream_id, session_key)"
    " WHERE action IN ('drop', 'forbid') DO NOTHING RETURNING id"
)
_SESSION: Final = numbered(SESSION)
_CONFIRM: Final = numbered(CONFIRM)
_ROW: Final = numbered(ROW)
_STREAM: Final = "SELECT stream_id FROM moderation_actions WHERE id = $1"
_LOCK_PARTITION: Final = "SELECT 1 FROM ingest_partitions WHERE partition = $1 FOR UPDATE"
# Where the intake's columns hold the event type and the body (`event_row` layout, shifted by
# the partition column in front).
_TYPE: Final = 2
_PAYLOAD: Final = 13


class PgActionBook:
    """Records moderation actions on PostgreSQL; one per replica (`receiver serve`)."""

    def __init__(self, policy: ModerationPolicy, *, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._clock = clock
        self._ids = EventIds()
        # The event types worth a look: stream ends (confirmations), the watched kinds.
        self._types = frozenset({STREAM_END, *self._watched()})
        self.listeners: list[Callable[[], None]] = []  # told when a new action is pending

    def _watched(self) -> set[int]:
        if not self.policy.active:
            return set()
        return {EVENT_TYPE_BY_KIND[kind] for kind in self.policy.kinds}

    def triggers(self, columns: list[list[Any]]) -> Triggers:
        """The rows of a batch (the intake's columns) that mean something to the book; empty
        for almost every batch, which then keeps the intake's single round trip."""
        found: Triggers = {}
        for index, event_type in enumerate(columns[_TYPE]):
            if event_type not in self._types:
                continue
            event = tuple(column[index] for column in columns[1:])
            body = _body(columns[_PAYLOAD][index])
            what = reaction(self.policy, event, body)
            if what is not None:
                found[index] = (what, body)
        return found

    async def store(
        self,
        conn: Connection,
        columns: list[list[Any]],
        found: Triggers,
        now: float,
        store_rows: StoreRows,
    ) -> dict[tuple[int, str], str]:
        """Store the batch and record what its triggers mean, in one transaction (module doc);
        the stored id of every key, as `store_rows` answers."""
        ids: dict[tuple[int, str], str] = {}
        pending = False
        start = 0
        async with conn.transaction():
            for index in sorted(found):
                ids.update(await store_rows(conn, [c[start : index + 1] for c in columns], now))
                start = index + 1
                event = tuple(column[index] for column in columns[1:])
                if ids[(event[1], event[3])] != event[0]:
                    continue  # a retry of a stored event: its action is recorded already
                what, body = found[index]
                if what == CONFIRMS:
                    await conn.executemany(_CONFIRM, confirmations(event, body))
                else:
                    pending |= await self._record(conn, event, what, store_rows)
            if start < len(columns[0]):
                ids.update(await store_rows(conn, [c[start:] for c in columns], now))
        if pending:
            for listener in self.listeners:
                listener()
        return ids

    async def _record(
        self, conn: Connection, event: tuple[Any, ...], why: str, store_rows: StoreRows
    ) -> bool:
        """Record the action of a stored trigger; whether one is now pending (to execute)."""
        found = await conn.fetchrow(_SESSION, event[4] or "", event[5] or "", event[6])
        session_key, sequence = (found[0], found[1]) if found is not None else ("", None)
        plan = planned(self.policy, event, why, self._clock(), self._ids.new())
        action = await conn.fetchval(_INSERT, *plan.values(session_key, sequence))
        if action is None:
            return False  # this stream and session has its action already
        plan.log(session_key)
        if plan.state in FINAL_STATES:
            await self.publish(conn, action, store_rows)
            return False
        return True

    async def apply(self, conn: Connection, mark: ActionMark, store_rows: StoreRows) -> bool:
        """Record an executor's report in one transaction; whether it changed the action (a
        finished action is never moved)."""
        sql, params = mark_sql(mark)
        finished = mark.state in ("done", "failed")
        async with conn.transaction():
            if finished:
                # Its event is stored under its stream's partition lock; take that lock before
                # the action's row, as a store does (the partition first, then what it holds),
                # or a store recording another hit of the stream would wait for this action's
                # row while this waits for its partition: a deadlock.
                stream = await conn.fetchval(_STREAM, mark.action)
                await conn.execute(_LOCK_PARTITION, partition_of(stream or ""))
            changed = _count(await conn.execute(numbered(sql), *params)) == 1
            if changed and finished:
                await self.publish(conn, mark.action, store_rows)
        return changed

    async def publish(self, conn: Connection, action: int, store_rows: StoreRows) -> None:
        """Store the `moderation_action` event of a finished action (in the open transaction),
        published by the relay of its stream's partition like a callback."""
        found = await conn.fetchrow(_ROW, action)
        if found is None:
            return
        now = self._clock()
        event = action_event(ActionRow(*found), self._ids.new(), now)
        await store_rows(conn, event_columns([event]), now)


def event_columns(events: list[tuple[Any, ...]]) -> list[list[Any]]:
    """`events` (`event_row` tuples) as `store_rows` takes them: one list per column, the
    partition first."""
    columns: list[list[Any]] = [[partition_of(event[6]) for event in events]]
    return columns + [list(values) for values in zip(*events, strict=True)]


def _body(payload: str) -> Mapping[str, Any]:
    """The stored body as the intake parsed it (`prepare_event`); {} if it is not an object
    (stored verbatim: nothing in it can trigger)."""
    try:
        body = loads(payload.encode())
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


def _count(status: str) -> int:
    """The row count of a command status (`UPDATE 1`)."""
    return int(status.rsplit(" ", 1)[-1])
