"""Callbacks into `events` on PostgreSQL: acknowledged only once committed, commits shared.

Every callback that arrives while a commit is in flight waits for the next one, which carries
them all in one transaction (group commit, as the SQLite writer does): under load a commit's
cost is shared by the whole batch, and at rest a callback waits for one commit only.

What the SQLite engine does in its fold process happens here, before the commit, with the same
code (`receiver.storage.fold.prepare_event`: the dedupe key, normalised columns, the model
check, the verbatim fallback): the commit stores finished `events` rows, deduplicated by the
unique (event_type, dedupe_key) index with `ON CONFLICT DO NOTHING`, so a retry arriving on
another replica at the same moment stores nothing and is answered 200 with the stored event's
id.

One transaction, one round trip: a call of the `store_events` function
(migrations/postgresql/0001_events.sql). The partition locks serialise every store that shares a
partition, across replicas, so what counts is how long they are held: one call holds them for
the server's own work and the commit, where separate statements would add a network round trip
(and a wait for this process's busy event loop) each. On loopback the two measured the same. It
1. locks the rows of the batch's partitions in `ingest_partitions`, in partition order: the
   events of a partition then commit in seq order across replicas (receiver.storage.partitions),
   and since one dedupe key and one stream lie in one partition, every other lock is taken under
   a partition lock already held, so two replicas never deadlock;
2. inserts the rows, grouped by partition (here), in arrival order within it (`UNNEST ... ON
   CONFLICT DO NOTHING`);
3. records each partition's newest seq and when it was stored, and notifies the publishers;
4. returns the stored id of every key (a conflicting insert in progress holds the same partition
   lock, so it committed before step 1 returned).

Any failure (the server restarted, the connection broke, a timeout) fails every callback of the
batch with `CommitFailed`: 503, CSS retries, and a commit that did go through before the error
makes the retry a duplicate. Never 200 for an uncommitted event. The pool reconnects on the next
batch, so the service recovers by itself once the server is back. When the database refuses a
row itself (a data error or a constraint, `refuses_a_row`), the batch is stored again one
callback at a time; the one refused is kept verbatim in `fold_rejects` (`rejects`, as SQLite's
fold does) and answered 200 once that row committed, 503 if even that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from receiver.errors import CommitFailed, StorageUnavailable
from receiver.events.kinds import kind_of
from receiver.logs import printable
from receiver.metrics import Metrics
from receiver.storage.commit_health import CommitHealth
from receiver.storage.fold import InboxRow, KindCounts, prepare_event
from receiver.storage.ids import EventIds
from receiver.storage.partitions import partition_of
from receiver.storage.postgres import reconciled
from receiver.storage.postgres.pool import acquire, bounded, describe_error, release, usable
from receiver.storage.postgres.rejects import keep_rejected

if TYPE_CHECKING:
    import asyncpg

    from receiver.moderation.pg_book import PgActionBook
    from receiver.storage.postgres.pool import Connection, Pooled

log = logging.getLogger(__name__)

# How long one batch may take (connecting, then the transaction) before its callbacks are
# answered 503.
COMMIT_TIMEOUT_SECONDS: Final = 10.0

# The whole transaction in one round trip (migrations/postgresql/0001_events.sql): the columns
# of `receiver.storage.rows.event_row`, with the partition first, then the time of the store.
_STORE: Final = (
    "SELECT event_type, dedupe_key, id FROM store_events($1::smallint[], $2::text[],"
    " $3::integer[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::float8[],"
    " $10::text[], $11::float8[], $12::text[], $13::text[], $14::text[], $15::bigint[],"
    " $16::float8)"
)


async def store_rows(
    conn: Connection, columns: list[list[Any]], now: float
) -> dict[tuple[int, str], str]:
    """Store rows (`columns`: one list per column, the partition first, then those of
    `receiver.storage.rows.event_row`) with `store_events`, in the caller's transaction if one
    is open, else in its own; {(event_type, key): stored id}."""
    rows = await conn.fetch(_STORE, *columns, now)
    ids = {(row["event_type"], row["dedupe_key"]): row["id"] for row in rows}
    if len(ids) != len(columns[0]):  # a reconciled row its real callback shadows
        ids.update(await reconciled.shadowed(conn, columns, ids))
    if len(ids) != len(columns[0]):  # skipped, yet nothing has its key: never ack that
        raise CommitFailed("an event was neither stored nor found as a duplicate")
    return ids


# Text columns of `receiver.storage.rows.event_row` read from the body (domain, app_name,
# stream_id, sequence, path_kind, schema_error). PostgreSQL text cannot hold U+0000, which a JSON
# body can spell (`\u0000`); it is stored as U+FFFD there (the payload keeps the body verbatim:
# raw JSON never holds a NUL byte). SQLite keeps it; nothing else differs.
_BODY_TEXT: Final = (4, 5, 6, 8, 10, 11)
_NUL: Final = "\x00"
_REPLACEMENT: Final = "\ufffd"


def storable(event: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row with U+0000 in its body-derived text columns replaced (see `_BODY_TEXT`)."""
    if not any(isinstance(event[i], str) and _NUL in event[i] for i in _BODY_TEXT):
        return event
    row = list(event)
    for i in _BODY_TEXT:
        if isinstance(row[i], str):
            row[i] = row[i].replace(_NUL, _REPLACEMENT)
    return tuple(row)


# SQLSTATE classes that say "this row", not "this server": data exceptions, integrity
# constraint violations, PL/pgSQL raises (a trigger).
_ROW_REFUSALS: Final = ("22", "23", "P0")


def refuses_a_row(exc: BaseException) -> bool:
    """Whether the database refused the rows themselves (as opposed to being unreachable)."""
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _ROW_REFUSALS


class _Waiting(NamedTuple):
    row: InboxRow  # the same shape the SQLite fold prepares from
    future: asyncio.Future[str]


@dataclass(slots=True)
class IntakeStats:
    """Counters for tests, readiness and metrics."""

    transactions: int = 0
    stored: int = 0
    duplicates: int = 0
    failures: int = 0
    rejected: int = 0  # refused by the database, kept in fold_rejects (`rejects`)
    largest_batch: int = 0
    last_commit_at: float | None = None  # unix seconds of the last successful commit


class PostgresIntake:
    """Stores callbacks on PostgreSQL; `submit()` resolves once the event is committed."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        metrics: Metrics,
        *,
        max_batch: int = 1000,
        clock: Callable[[], float] = time.time,
        commit_timeout: float = COMMIT_TIMEOUT_SECONDS,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._max_batch = max_batch
        self._clock = clock
        self._commit_timeout = commit_timeout
        self._ids = EventIds()
        self._waiting: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Pooled | None = None  # the intake's own, while it works
        self._closing = False
        self.health = CommitHealth()
        self.stats = IntakeStats()
        # Records moderation actions with their triggering events (set by the storage context).
        self.moderation: PgActionBook | None = None

    @property
    def waiting(self) -> int:
        """Callbacks submitted and not yet in a transaction."""
        return len(self._waiting)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="postgres-intake")

    def submit(
        self, event_type: int, payload: bytes, received_at: float, path_kind: str | None
    ) -> asyncio.Future[str]:
        """Store an authenticated callback body; the future resolves to the stored event's id
        (for a duplicate, the id of the event it repeats) once committed, or fails with
        `StorageUnavailable`."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self._closing or self._task is None or self._task.done():
            future.set_exception(StorageUnavailable("the service is shutting down; retry later"))
            return future
        row = InboxRow(0, self._ids.new(), event_type, received_at, path_kind, payload)
        self._waiting.append(_Waiting(row, future))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Commit what was submitted, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for waiting in self._waiting:  # only if the loop died: never leave a caller hanging
            if not waiting.future.done():
                waiting.future.set_exception(StorageUnavailable())
        self._waiting.clear()
        if self._conn is not None:
            await release(self._pool, self._conn, self._commit_timeout)
            self._conn = None

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                await self._store(batch)
            except Exception as exc:  # a bug here must not leave callers waiting for ever
                log.exception("storing a batch of %d callbacks failed", len(batch))
                self._fail(batch, CommitFailed(describe_error(exc)))

    async def _store(self, batch: list[_Waiting]) -> None:
        runs = reconciled.split(batch, lambda waiting: waiting.row)
        if len(runs) > 1:  # reconciled events among callbacks (rare): a transaction per run
            for run in runs:
                await self._store(run)
            return
        started = time.perf_counter()
        prepared = [
            (storable(event), schema_error)
            for event, schema_error, _ in (prepare_event(waiting.row) for waiting in batch)
        ]
        if reconciled.is_reconciled(batch[0].row):
            prepared = [(reconciled.mark(event), error) for event, error in prepared]
        # One row per key: a retry inside the same batch is a duplicate of the first copy.
        first: dict[tuple[int, str], int] = {}
        unique: list[int] = []
        for index, (event, _) in enumerate(prepared):
            key = (event[1], event[3])
            if key not in first:
                first[key] = index
                unique.append(index)
        partitions = {index: partition_of(prepared[index][0][6]) for index in unique}
        unique.sort(key=partitions.__getitem__)  # stable: arrival order within a partition
        columns: list[list[Any]] = [[partitions[i] for i in unique]]
        columns += [list(values) for values in zip(*(prepared[i][0] for i in unique), strict=True)]
        try:
            ids = await self._commit(columns)
        except Exception as exc:
            error = describe_error(exc)
            if refuses_a_row(exc):
                if len(batch) > 1:
                    # One row must not fail the others: store them one by one.
                    log.warning("PostgreSQL refused a batch of %d (%s); storing one by one",
                                len(batch), error)  # fmt: skip
                    for waiting in batch:
                        await self._store([waiting])
                    return
                if await self._keep_rejected(batch[0], error):
                    return
            else:
                log.error("could not commit %d callbacks to PostgreSQL: %s", len(batch), error)
                self.health.failed(error)
            self.stats.failures += 1
            self._fail(batch, CommitFailed(error))
            return
        seconds = time.perf_counter() - started
        self.health.succeeded()
        stats = self.stats
        stats.transactions += 1
        stats.largest_batch = max(stats.largest_batch, len(batch))
        stats.last_commit_at = self._clock()
        self._metrics.observe_commit(seconds, len(batch))
        counts: dict[str, KindCounts] = {}
        for waiting, (event, schema_error) in zip(batch, prepared, strict=True):
            stored_id = ids[(event[1], event[3])]
            c = counts.setdefault(event[2], KindCounts())
            if stored_id == event[0]:
                c.stored += 1
            else:
                c.duplicates += 1
            c.schema_errors += schema_error is not None
            if not waiting.future.done():
                waiting.future.set_result(stored_id)
        for kind, c in counts.items():
            stats.stored += c.stored
            stats.duplicates += c.duplicates
            self._metrics.folded(kind, c.stored, c.duplicates, c.schema_errors, 0)

    async def _keep_rejected(self, waiting: _Waiting, error: str) -> bool:
        """Keep a callback the database refuses in `fold_rejects` and answer it 200 (module
        doc); False, and nothing answered, if that row did not commit either."""
        row = waiting.row
        try:
            conn = await acquire(self._pool, self._commit_timeout)
            try:
                work = keep_rejected(conn, row, error, self._clock())
                await bounded(conn, self._commit_timeout, work)
            finally:
                await release(self._pool, conn, self._commit_timeout)
        except Exception as again:
            log.error("PostgreSQL refuses callback %s (%s), and keeping it in fold_rejects "
                      "failed too: %s", row.id, printable(error),
                      printable(describe_error(again)))  # fmt: skip
            return False
        log.error("PostgreSQL refuses callback %s (%s); kept in fold_rejects", row.id,
                  printable(error))  # fmt: skip
        self.stats.rejected += 1
        self._metrics.folded(kind_of(row.event_type), 0, 0, 0, 1)
        if not waiting.future.done():
            waiting.future.set_result(row.id)
        return True

    async def _commit(self, columns: list[list[Any]]) -> dict[tuple[int, str], str]:
        """One transaction on the intake's own connection, bounded by the commit timeout (a
        server that stops answering closes the connection: `bounded`). A broken connection is
        replaced on the next batch."""
        conn = self._conn
        if conn is None or not usable(conn):
            self._conn = None
            if conn is not None:
                await release(self._pool, conn, self._commit_timeout)
            conn = self._conn = await acquire(self._pool, self._commit_timeout)
        hook = self.moderation  # a batch with a moderation trigger takes its own transaction
        found = hook.triggers(columns) if hook is not None else None
        work = (
            hook.store(conn, columns, found, self._clock(), store_rows)
            if hook is not None and found
            else self._transaction(conn, columns)
        )
        return await bounded(conn, self._commit_timeout, work)

    async def _transaction(
        self, conn: Connection, columns: list[list[Any]]
    ) -> dict[tuple[int, str], str]:
        """Store the rows (`columns`, one list per column) with `store_events` (one round trip,
        its own transaction); {(event_type, key): stored id}."""
        return await store_rows(conn, columns, self._clock())

    @staticmethod
    def _fail(batch: list[_Waiting], error: Exception) -> None:
        for waiting in batch:
            if not waiting.future.done():
                waiting.future.set_exception(error)
