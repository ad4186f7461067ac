"""The fold: accepted callbacks in the inbox become events, in arrival order, in large batches.

The acknowledgement needs only the callback on disk (its row in the inbox file); deduplication,
model validation, normalised columns, the indexes of `events` and the history triggers change
nothing in the answer, so they run here, after it, in the fold process. A fold transaction
stores the events of a run of inbox rows and records, in the same transaction, that the fold is
past them (`fold_progress`): a row is folded exactly once, whatever stops the process, and a
fold that is rolled back is simply done again (same ids, same order, same outcome). It commits
with `synchronous=FULL`: the writer deletes inbox rows the fold is past, so those events must
be on disk first.

A duplicate (its key is stored already) is not stored again; the id its callback was given at
acknowledgement becomes an alias of the stored event, so that id still finds it. Events rebuilt
from Tencent's records (`source` reconciled) and their real callbacks, which share no key, are
matched by `receiver.storage.reconciled`: the real one wins.

Rows are folded strictly in `seq` order: when a row cannot be stored for a reason that is not
the row's (a disk error, a damaged index), the fold stops at it and tries again later; the rows
after it wait, so storage order stays arrival order. A row the database refuses for itself (a
constraint or trigger: `sqlite3.IntegrityError`) would stop the fold for ever, so it is copied,
verbatim, to `fold_rejects` and reported, and the fold goes on. A body that cannot be parsed or
normalised (the service checked it, so this means a bug) is still stored, verbatim, with the
error in `schema_error`: never dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from receiver.events import Normalised, ParsedEvent, parse_event
from receiver.events.decode import loads
from receiver.events.kinds import kind_of
from receiver.logs import printable
from receiver.moderation.book import STREAM_END, ActionBook
from receiver.storage.dedupe import VERSION, dedupe_key
from receiver.storage.reconciled import RECONCILED_PATH, Reconciled, mark_reconciled
from receiver.storage.rows import INSERT_EVENT, event_row

log = logging.getLogger("receiver.storage.fold")

_NEXT: Final = (
    "SELECT seq, id, event_type, received_at, path_kind, payload FROM inbox WHERE seq > ?"
    " ORDER BY seq LIMIT ?"
)
_PROGRESS: Final = "SELECT inbox_seq FROM fold_progress WHERE id = 1"
_ADVANCE: Final = "UPDATE fold_progress SET inbox_seq = ? WHERE id = 1"
_ALIAS: Final = "INSERT OR IGNORE INTO event_aliases (id, event_id) VALUES (?, ?)"
_STORED_ID: Final = "SELECT id FROM events WHERE event_type = ? AND dedupe_key = ?"
_REJECT: Final = (
    "INSERT INTO fold_rejects (seq, id, event_type, received_at, path_kind, payload, error,"
    " rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Rows stored between two looks at the service's pipe (a request may be waiting).
CHUNK: Final = 32
_EMPTY: Final = Normalised(None, None, None, None, None)


# An inbox row ready to store: its `INSERT_EVENT` row, its schema error, its parsed body.
Prepared = tuple[tuple[Any, ...], str | None, dict[str, Any]]


class InboxRow(NamedTuple):
    seq: int
    id: str
    event_type: int
    received_at: float
    path_kind: str | None
    payload: bytes


@dataclass(slots=True)
class KindCounts:
    stored: int = 0
    duplicates: int = 0
    schema_errors: int = 0
    rejected: int = 0

    def add(self, other: KindCounts) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.schema_errors += other.schema_errors
        self.rejected += other.rejected


@dataclass(slots=True)
class FoldResult:
    """One fold transaction: how many inbox rows, up to which `seq`, and what they became."""

    rows: int
    through: int
    seconds: float
    counts: dict[str, KindCounts] = field(default_factory=dict)
    error: str | None = None  # the fold stopped at a row it could not store


class Folder:
    """Folds the inbox file (`inbox`, read) into the database (`conn`, the fold's writer)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        inbox: sqlite3.Connection,
        book: ActionBook | None = None,
    ) -> None:
        self._conn = conn
        self._inbox = inbox
        # Moderation actions are recorded in the fold transaction of their triggering event.
        self._book = book
        row = conn.execute(_PROGRESS).fetchone()
        self.through = int(row[0]) if row is not None else 0  # the last inbox seq folded
        self._reconciled = Reconciled(conn)

    def step(self, limit: int, *, stop: Callable[[], bool] = lambda: False) -> FoldResult | None:
        """Fold up to `limit` of the oldest inbox rows in one transaction; None when empty.

        `stop` is asked between chunks of `CHUNK` rows: the fold commits as soon as the service
        waits for something (a probe, outbox marks), so those never wait for a long fold.
        """
        rows = [InboxRow(*r) for r in self._inbox.execute(_NEXT, (self.through, limit))]
        if not rows:
            return None
        started = time.perf_counter()
        counts: dict[str, KindCounts] = {}
        try:
            done = self._fold(rows, counts, stop)
        except sqlite3.Error as exc:
            if len(rows) > 1:
                log.warning("fold of %d rows failed (%s); folding one at a time", len(rows), exc)
            return self._one_by_one(rows, started)
        return FoldResult(done, rows[done - 1].seq, time.perf_counter() - started, counts)

    def _one_by_one(self, rows: list[InboxRow], started: float) -> FoldResult:
        """After a failed batch: fold rows singly, in order, up to the first that fails."""
        counts: dict[str, KindCounts] = {}
        folded, through = 0, self.through
        for row in rows:
            try:
                self._fold([row], counts, lambda: False)
            except sqlite3.IntegrityError as exc:
                log.error("the database refuses event %s (%s); kept in fold_rejects", row.id, exc)
                try:
                    self._reject(row, str(exc))
                except sqlite3.Error as again:
                    return FoldResult(
                        folded, through, time.perf_counter() - started, counts, str(again)
                    )
                counts.setdefault(kind_of(row.event_type), KindCounts()).rejected += 1
            except sqlite3.Error as exc:
                log.error("could not fold inbox row %d (event %s): %s", row.seq, row.id, exc)
                return FoldResult(folded, through, time.perf_counter() - started, counts, str(exc))
            folded, through = folded + 1, row.seq
        return FoldResult(folded, through, time.perf_counter() - started, counts)

    def _reject(self, row: InboxRow, error: str) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_REJECT, (*row, error, time.time()))
            conn.execute(_ADVANCE, (row.seq,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self.through = row.seq

    def _fold(
        self, rows: list[InboxRow], counts: dict[str, KindCounts], stop: Callable[[], bool]
    ) -> int:
        """Store the events of `rows` (chunk by chunk until `stop()`), record the progress,
        commit; returns how many rows were folded. Adds to `counts` only once committed."""
        pending: dict[str, KindCounts] = {}
        self._transaction(rows, pending, stop)
        for kind, c in pending.items():
            counts.setdefault(kind, KindCounts()).add(c)
        return sum(c.stored + c.duplicates for c in pending.values())

    def _transaction(
        self, rows: list[InboxRow], pending: dict[str, KindCounts], stop: Callable[[], bool]
    ) -> None:
        conn = self._conn
        done = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            while done < len(rows):
                chunk = rows[done : done + CHUNK]
                prepared = [prepare_event(row) for row in chunk]
                book = self._book
                if self._one_at_a_time(chunk, prepared) or (
                    book is not None and any(book.watches(e[1]) for e, _, _ in prepared)
                ):
                    # Row by row (both are rare): a reconciled row or its late twin, or a
                    # moderation trigger, whose push session is the one current at that event.
                    self._store_singly(chunk, prepared, pending)
                    done += len(chunk)
                    if stop():
                        break
                    continue
                events = [event for event, _, _ in prepared]
                inserted = conn.executemany(INSERT_EVENT, events).rowcount
                duplicates = self._duplicates(events) if inserted != len(events) else {}
                if duplicates:
                    conn.executemany(_ALIAS, list(duplicates.items()))
                if book is not None:
                    # Only a stream end can matter here (it may confirm an action).
                    for event, _, body in prepared:
                        if event[1] == STREAM_END and event[0] not in duplicates:
                            book.on_stored(conn, event, body)
                for event, schema_error, _ in prepared:
                    c = pending.setdefault(event[2], KindCounts())
                    if event[0] in duplicates:
                        c.duplicates += 1
                    else:
                        c.stored += 1
                    c.schema_errors += schema_error is not None
                done += len(chunk)
                if stop():
                    break
            conn.execute(_ADVANCE, (rows[done - 1].seq,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self.through = rows[done - 1].seq

    def _one_at_a_time(self, chunk: list[InboxRow], prepared: list[Prepared]) -> bool:
        """A chunk holding a reconciled row, or a push begin/end that may repeat one (near a
        reconciled event's time), is stored row by row: rare, since only late callbacks of lost
        pushes are near one."""
        return any(row.path_kind == RECONCILED_PATH for row in chunk) or any(
            self._reconciled.concerns(event) for event, _, _ in prepared
        )

    def _store_singly(
        self,
        chunk: list[InboxRow],
        prepared: list[Prepared],
        pending: dict[str, KindCounts],
    ) -> None:
        conn = self._conn
        for row, (event, schema_error, body) in zip(chunk, prepared, strict=True):
            c = pending.setdefault(event[2], KindCounts())
            c.schema_errors += schema_error is not None
            reconciled = row.path_kind == RECONCILED_PATH
            twin = (
                self._reconciled.shadowed_by(event)
                if reconciled
                else self._reconciled.take_over(event)
            )
            if twin is not None:
                conn.execute(_ALIAS, (event[0], twin))
                c.duplicates += 1
                continue
            if conn.execute(INSERT_EVENT, event).rowcount:
                c.stored += 1
                if self._book is not None:
                    self._book.on_stored(conn, event, body)
                if reconciled:
                    mark_reconciled(conn, event[0])
                    self._reconciled.stored(event)
                continue
            conn.executemany(_ALIAS, list(self._duplicates([event]).items()))
            c.duplicates += 1

    def _duplicates(self, events: list[tuple[Any, ...]]) -> dict[str, str]:
        """{acknowledged id: stored id} for the `events` not inserted (same transaction)."""
        duplicates: dict[str, str] = {}
        for event in events:  # layout: receiver.storage.rows.event_row (id, event_type, kind, key)
            stored = self._conn.execute(_STORED_ID, (event[1], event[3])).fetchone()
            if stored is None:  # ignored, yet nothing has its key: never fold that away
                raise sqlite3.IntegrityError(f"event {event[0]} was not stored")
            if stored[0] != event[0]:
                duplicates[event[0]] = stored[0]
        return duplicates


def prepare_event(row: InboxRow) -> Prepared:
    """The `INSERT_EVENT` row of an inbox row, its schema error and its body."""
    try:
        body = loads(row.payload)  # as the service read it: integers beyond 64 bits stay exact
        parsed = parse_event(body, row.event_type)
        if parsed.schema_error is not None:
            log.warning(
                "stored %s event not fitting its model: %s",
                kind_of(row.event_type),
                printable(parsed.schema_error),
            )
        event = event_row(
            row.id,
            parsed,
            body=body,
            dedupe_key=dedupe_key(row.event_type, body),
            payload=row.payload.decode(),  # valid UTF-8: the service parsed it
            received_at=row.received_at,
            path_kind=None if row.path_kind == RECONCILED_PATH else row.path_kind,
        )
        return event, parsed.schema_error, body
    except Exception as exc:  # a bug, never a reason to lose the callback
        log.exception("could not fold event %s; storing it verbatim", row.id)
        error = f"not folded: {type(exc).__name__}: {exc}"
        parsed = ParsedEvent(row.event_type, _EMPTY, None, error)
        key = f"{VERSION}r:{hashlib.sha256(row.payload).hexdigest()}"
        text = row.payload.decode("utf-8", "backslashreplace")
        event = event_row(
            row.id,
            parsed,
            body={},
            dedupe_key=key,
            payload=text,
            received_at=row.received_at,
            path_kind=row.path_kind,
        )
        return event, error, {}
