"""Reconciled events in the fold: stored like callbacks, and given way to by their real callback.

A push begin or stream end rebuilt from Tencent's own records (`receiver.reconcile`) enters the
way a callback does, as an inbox row, so it is deduplicated, folded into history and published
by the same code, in storage order. Its inbox row carries the reserved `path_kind`
`RECONCILED_PATH` (no `/callbacks/<kind>` path can give it), and its event is stored with
`source = 'reconciled'` (migration 0008).

Tencent's record has no `sequence`, so a reconciled event and the real callback of the same push
do not share a deduplication key. They are matched here instead, by stream (domain, app name,
stream) and event time within `TOLERANCE_SECONDS`, and **the real one wins**:

* a real push begin or end arriving after its reconciled twin takes that row over: the row keeps
  its id (consumers may already hold its message) and takes the callback's body, `sequence`,
  time and key, with `source = 'confirmed'`; the push session it made is re-keyed to the real
  `sequence`, so the real end of that session closes it. The callback's own id becomes an alias.
* a real stream end whose begin was reconciled (a stream first seen on Tencent's online list)
  re-keys that open session to its `sequence` before it is stored, so it closes it.
* a reconciled event arriving after its real twin is a duplicate of it: not stored.

A reconciled end that closes a session we hold carries that session's real `sequence`, so its key
is the real end's key; a real end arriving later finds it by key and takes it over the same way.

On PostgreSQL the same statements run in the database, in the `events_reconciled` trigger
(migrations/postgresql/0005_reconciled_events.sql), so that replicas match what each other
stored; a change to the rule here is a change there.
"""

from __future__ import annotations

import bisect
import sqlite3
from typing import Any, Final

RECONCILED_PATH: Final = "@reconciled"
# How far apart a reconciled event and its real callback may be. Tencent's records are to the
# second and its clock is the one that stamps callbacks; a few seconds leaves room for rounding
# and for the gap between a push and its record without joining two pushes of one stream (a
# reconnect takes longer than that).
TOLERANCE_SECONDS: Final = 5.0
_PUSH: Final = (0, 1)

_RECONCILED_TIMES: Final = (
    "SELECT event_time FROM events WHERE source = 'reconciled' AND event_time IS NOT NULL"
)
_BY_KEY: Final = (
    "SELECT seq, id, source, sequence FROM events WHERE event_type = ? AND dedupe_key = ?"
)
_RECONCILED_NEAR: Final = (
    "SELECT seq, id, source, sequence FROM events WHERE source = 'reconciled'"
    " AND stream_id = ? AND event_type = ? AND event_time BETWEEN ? AND ?"
    " AND domain = ? AND app_name = ? ORDER BY abs(event_time - ?) LIMIT 1"
)
_REAL_NEAR: Final = (
    "SELECT id FROM events WHERE kind = ? AND event_time BETWEEN ? AND ?"
    " AND stream_id = ? AND domain = ? AND app_name = ? AND source <> 'reconciled'"
    " ORDER BY abs(event_time - ?) LIMIT 1"
)
_TAKE_OVER: Final = (
    "UPDATE events SET dedupe_key = ?, event_time = ?, sequence = ?, payload = ?,"
    " schema_error = ?, push_duration_ms = ?, path_kind = ?, source = 'confirmed' WHERE seq = ?"
)
_STREAM: Final = "SELECT id FROM streams WHERE domain = ? AND app_name = ? AND stream_id = ?"
_REKEY: Final = (
    "UPDATE push_sessions SET session_key = ?, sequence = ? WHERE stream = ? AND session_key = ?"
    " AND NOT EXISTS (SELECT 1 FROM push_sessions WHERE stream = ? AND session_key = ?)"
)
_BEGIN_AT: Final = (
    "UPDATE push_sessions SET begin_time = ?, started_at = ? WHERE stream = ? AND session_key = ?"
)
_END_AT: Final = (
    "UPDATE push_sessions SET end_time = ?, push_duration_ms = ? WHERE stream = ?"
    " AND session_key = ?"
)
_OPEN: Final = (
    "SELECT 1 FROM push_sessions WHERE stream = ? AND session_key = ? AND end_seq IS NULL"
)


def mark_reconciled(conn: sqlite3.Connection, event_id: str) -> None:
    conn.execute("UPDATE events SET source = 'reconciled' WHERE id = ?", (event_id,))


class Reconciled:
    """The fold's matcher between reconciled events and real callbacks (one per `Folder`).

    Rows are `receiver.storage.rows.event_row` tuples: (id, event_type, kind, dedupe_key,
    domain, app_name, stream_id, event_time, sequence, received_at, path_kind, schema_error,
    payload, push_duration_ms).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # The event times of the reconciled events, sorted (read once through the partial
        # index; a few per lost push): a callback whose time is not near one of them cannot
        # repeat one, and is stored in the fold's batch without any lookup here. Times of rows
        # taken over since stay listed: they only cost a lookup that finds nothing.
        self._times = sorted(float(row[0]) for row in conn.execute(_RECONCILED_TIMES))

    def stored(self, event: tuple[Any, ...]) -> None:
        """A reconciled event was stored: callbacks near its time look for it from now on."""
        if event[7] is not None:
            bisect.insort(self._times, float(event[7]))

    def concerns(self, event: tuple[Any, ...]) -> bool:
        """Whether storing this callback's event must look for a reconciled twin first: a push
        begin or end near a reconciled event's time (an end also by its push's start)."""
        if not self._times or event[1] not in _PUSH or event[7] is None:
            return False
        if self._near(event[7]):
            return True
        return event[1] == 0 and event[13] is not None and self._near(event[7] - event[13] / 1000)

    def _near(self, t: float) -> bool:
        i = bisect.bisect_left(self._times, t - TOLERANCE_SECONDS)
        return i < len(self._times) and self._times[i] <= t + TOLERANCE_SECONDS

    def take_over(self, event: tuple[Any, ...]) -> str | None:
        """A real push begin or end: if it repeats a reconciled event, that row takes its
        content and its id is returned (the callback becomes an alias of it); else None."""
        if event[1] not in _PUSH or None in (event[4], event[5], event[6], event[7]):
            return None
        conn = self._conn
        by_key = conn.execute(_BY_KEY, (event[1], event[3])).fetchone()
        if by_key is not None:  # the same key: a plain duplicate, unless that row is reconciled
            return self._replace(by_key, event) if by_key[2] == "reconciled" else None
        t = event[7]
        near = conn.execute(
            _RECONCILED_NEAR,
            (event[6], event[1], t - TOLERANCE_SECONDS, t + TOLERANCE_SECONDS, event[4],
             event[5], t),
        ).fetchone()  # fmt: skip
        if near is not None:
            return self._replace(near, event)
        if event[1] == 0 and event[8] is not None and event[13] is not None:
            self._adopt(event)
        return None

    def shadowed_by(self, event: tuple[Any, ...]) -> str | None:
        """A reconciled event whose real callback is stored already: that event's id."""
        if event[1] not in _PUSH or None in (event[4], event[5], event[6], event[7]):
            return None
        t = event[7]
        row = self._conn.execute(
            _REAL_NEAR,
            (event[2], t - TOLERANCE_SECONDS, t + TOLERANCE_SECONDS, event[6], event[4],
             event[5], t),
        ).fetchone()  # fmt: skip
        return None if row is None else str(row[0])

    def _replace(self, stored: tuple[Any, ...], event: tuple[Any, ...]) -> str:
        seq, stored_id, _, old_sequence = stored
        self._conn.execute(
            _TAKE_OVER,
            (event[3], event[7], event[8], event[12], event[11], event[13], event[10], seq),
        )
        stream = self._stream(event)
        if stream is not None and old_sequence is not None and event[8] is not None:
            key = self._rekey(stream, old_sequence, event[8])
            if event[1] == 1:
                self._conn.execute(_BEGIN_AT, (event[7], event[7], stream, key))
            else:
                self._conn.execute(_END_AT, (event[7], event[13], stream, key))
        return str(stored_id)

    def _adopt(self, event: tuple[Any, ...]) -> None:
        """A real end with no reconciled twin: the open session its push began (end minus
        duration) is re-keyed to its sequence if a reconciled begin opened it."""
        begun = event[7] - event[13] / 1000.0
        near = self._conn.execute(
            _RECONCILED_NEAR,
            (event[6], 1, begun - TOLERANCE_SECONDS, begun + TOLERANCE_SECONDS, event[4],
             event[5], begun),
        ).fetchone()  # fmt: skip
        stream = self._stream(event)
        if near is None or near[3] is None or stream is None:
            return
        if self._conn.execute(_OPEN, (stream, near[3])).fetchone() is not None:
            self._rekey(stream, near[3], event[8])

    def _rekey(self, stream: int, old: str, new: str) -> str:
        """Give a session the real sequence (unless a session of that key exists already)."""
        if old == new:
            return new
        cursor = self._conn.execute(_REKEY, (new, new, stream, old, stream, new))
        return new if cursor.rowcount else old

    def _stream(self, event: tuple[Any, ...]) -> int | None:
        row = self._conn.execute(_STREAM, (event[4], event[5], event[6])).fetchone()
        return None if row is None else int(row[0])
