"""The writer process: the only writer of the inbox file, so commits never wait on the HTTP loop.

It reads framed callbacks from a pipe, and everything that arrived while the previous commit ran
goes into the next transaction (group commit without a batching window). A callback is appended
to the inbox file (`receiver.storage.inbox_file`) as the bytes CSS sent, with the id it is given
here, and acknowledged only after its transaction committed (`synchronous=FULL`: on disk). A
failed batch is retried one callback at a time so a poisoned row cannot fail its neighbours.

That is all it does on the acknowledgement's path: the fold process turns inbox rows into events
in the database, a file with its own write lock. When the fold is past some rows (`Trim`), this
process deletes them once it has nothing else to do (or, if callbacks never stop, once many are
waiting to be deleted).

It ignores SIGINT/SIGTERM: the service closes the pipe to stop it, and it then commits what it
has, acknowledges it and exits, also when the service itself was killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from receiver.storage.commit_health import CommitHealth
from receiver.storage.connect import open_for_writing
from receiver.storage.frames import (
    Ack,
    Committed,
    Event,
    Failed,
    FrameBuffer,
    Probe,
    Ready,
    Request,
    Trim,
    encode,
)
from receiver.storage.ids import EventIds
from receiver.storage.inbox_file import inbox_path
from receiver.storage.pipes import READ_SIZE, arguments, begin, readable, write_all

log = logging.getLogger("receiver.storage.writer")

_APPEND: Final = (
    "INSERT INTO inbox (id, event_type, received_at, path_kind, payload) VALUES (?, ?, ?, ?, ?)"
)
_HEARTBEAT: Final = (
    "INSERT INTO inbox_state (key, value) VALUES ('heartbeat', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_TRIM: Final = "DELETE FROM inbox WHERE seq <= ?"
# With rows to delete, wait this long for a callback before deleting them (an idle moment).
TRIM_IDLE_SECONDS: Final = 0.05
# Rows waiting to be deleted beyond which they are deleted even while callbacks keep coming.
TRIM_BUSY_ROWS: Final = 50_000


@dataclass(slots=True)
class _Prepared:
    """One request, ready to commit: an inbox row, or a readiness probe."""

    rid: int
    row: tuple[Any, ...] | None = None  # the _APPEND parameters; row[0] is the id

    @property
    def probe(self) -> bool:
        return self.row is None


class BatchWriter:
    """Commits groups of framed requests and produces the reply frames.

    It also keeps what readiness needs (`CommitHealth`): the outcome of every commit that
    appended callbacks, and the last inbox row a commit failed on, which the next probe tries
    again (and rolls back), so a probe fails for as long as the path that failed still fails.
    """

    def __init__(self, conn: sqlite3.Connection, health: CommitHealth | None = None) -> None:
        self._conn = conn
        self._ids = EventIds()
        self._health = health if health is not None else CommitHealth()
        self._failed_row: tuple[Any, ...] | None = None
        self.appended = 0  # callbacks committed by the last `handle`

    def handle(self, messages: Sequence[Event | Probe]) -> bytes:
        """Commit `messages` as one transaction (or one by one if that fails); return replies."""
        self.appended = 0
        prepared = [self._prepare(message) for message in messages]
        if not prepared:
            return b""
        if len(prepared) == 1:
            return self._commit_alone(prepared[0])
        started = time.perf_counter()
        try:
            self._commit(prepared)
        except sqlite3.Error as exc:
            log.warning("commit of %d failed (%s); retrying one by one", len(prepared), exc)
            return b"".join(self._commit_alone(item) for item in prepared)
        return b"".join(self._replies(time.perf_counter() - started, prepared))

    def _commit_alone(self, item: _Prepared) -> bytes:
        started = time.perf_counter()
        try:
            self._commit([item])
        except sqlite3.Error as exc:
            log.error("could not %s: %s", "store event" if item.row is not None else "commit", exc)
            self._health.failed(str(exc))
            if item.row is not None:
                self._failed_row = item.row
            return encode(Failed(item.rid, str(exc)))
        return b"".join(self._replies(time.perf_counter() - started, [item]))

    def _replies(self, seconds: float, prepared: list[_Prepared]) -> list[bytes]:
        """After a commit: the health it shows, and the reply frames of its requests.

        A probe that committed still fails while callback commits have been failing: that is
        what readiness is for.
        """
        appended = sum(1 for item in prepared if item.row is not None)
        probes = [item.rid for item in prepared if item.probe]
        self.appended += appended
        if appended:
            self._failed_row = None
        if appended or probes:
            self._health.succeeded()
        problem = self._health.problem() if probes else None
        replies = [_committed(seconds, prepared, failed_probes=problem is not None)]
        if problem is not None:
            replies.extend(encode(Failed(rid, problem)) for rid in probes)
        return replies

    def _prepare(self, message: Event | Probe) -> _Prepared:
        if not isinstance(message, Event):
            return _Prepared(message.rid)  # a probe: the heartbeat proves the commit path
        rid, event_type, received_at, path_kind, payload = message
        return _Prepared(rid, row=(self._ids.new(), event_type, received_at, path_kind, payload))

    def _commit(self, prepared: list[_Prepared]) -> None:
        rows = [item.row for item in prepared if item.row is not None]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany(_APPEND, rows)
            if any(item.probe for item in prepared):
                conn.execute(_HEARTBEAT, (str(time.time()),))
                self._probe_inbox()
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _probe_inbox(self) -> None:
        """Append an inbox row and roll it back: proves the inbox takes a row, which a
        heartbeat elsewhere does not. The row is the last one a commit failed on, while no
        callback has committed since (so the probe walks the same pages that failed), else a
        fresh one."""
        row = self._failed_row or (self._ids.new(), 0, time.time(), None, b"{}")
        conn = self._conn
        conn.execute("SAVEPOINT probe")
        try:
            conn.execute(_APPEND, row)
        finally:
            conn.execute("ROLLBACK TO probe")
            conn.execute("RELEASE probe")


def _committed(seconds: float, prepared: list[_Prepared], *, failed_probes: bool = False) -> bytes:
    """The one reply frame of a commit: every request it carried, acknowledged (probes only if
    they are not answered with `Failed`)."""
    acks: list[Ack] = []
    done: list[int] = []
    for item in prepared:
        if item.row is None:
            if not (failed_probes and item.probe):
                done.append(item.rid)
        else:
            acks.append(Ack(item.rid, item.row[0]))
    return encode(Committed(seconds, len(prepared), acks, done))


class Trimming:
    """Deletes inbox rows the fold is past: when idle, or once too many wait."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._through = 0  # deleted up to here (0: not known yet, the first trim finds out)
        self._target = 0

    def allow(self, message: Trim) -> None:
        self._target = max(self._target, message.seq)

    def timeout(self) -> float | None:
        return TRIM_IDLE_SECONDS if self._target > self._through else None

    def urgent(self) -> bool:
        return self._target - self._through > TRIM_BUSY_ROWS

    def trim(self) -> None:
        if self._target <= self._through:
            return
        try:
            self._conn.execute(_TRIM, (self._target,))
        except sqlite3.Error as exc:  # they are deleted at a later try; nothing is lost
            log.warning("could not delete folded inbox rows: %s", exc)
            return
        self._through = self._target


def serve(conn: sqlite3.Connection, in_fd: int, out_fd: int, max_batch: int) -> None:
    """Loop until the service closes the pipe: commit what arrived and reply; trim when idle."""
    writer = BatchWriter(conn)
    trimming = Trimming(conn)
    frames = FrameBuffer()
    write_all(out_fd, encode(Ready()))
    while True:
        if not readable(in_fd, trimming.timeout()):
            trimming.trim()
            continue
        data = os.read(in_fd, READ_SIZE)
        if not data:
            break
        messages = cast(list[Request], frames.feed(data))  # the service sends only requests
        commits: list[Event | Probe] = []
        for message in messages:
            if isinstance(message, Trim):
                trimming.allow(message)
            elif isinstance(message, Event | Probe):
                commits.append(message)
        for start in range(0, len(commits), max_batch):
            write_all(out_fd, writer.handle(commits[start : start + max_batch]))
        if trimming.urgent():
            trimming.trim()


def main(argv: list[str] | None = None) -> int:
    parser = arguments("receiver-writer", __doc__)
    parser.add_argument("--max-batch", type=int, default=1000)
    args = parser.parse_args(argv)
    begin(args)
    path = inbox_path(args.database)
    try:
        conn = open_for_writing(path)
    except (OSError, sqlite3.Error) as exc:
        log.error("cannot open %s for writing: %s", path, exc)
        return 1
    try:
        serve(conn, args.in_fd, args.out_fd, args.max_batch)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
