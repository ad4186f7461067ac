"""The writer process: the only writer of the database, so commits never wait on the HTTP loop.

It reads framed events from a pipe, and everything that arrived while the previous commit ran
goes into the next transaction (group commit without a batching window). For each event it does
the work that cannot refuse a request: model validation, normalisation, deduplication key, row
id. An event is acknowledged only after its transaction committed (`synchronous=FULL`: on disk).
A failed batch is retried one event at a time so a poisoned row cannot fail its neighbours.

The body crosses the pipe as the bytes CSS sent and is parsed here once more: the service had to
parse it to authenticate it, and any way of sending the parsed object across a process boundary
costs more than orjson parsing the bytes again.

It ignores SIGINT/SIGTERM: the service closes the pipe to stop it, and it then commits what it
has, acknowledges it and exits, also when the service itself was killed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from receiver import logs
from receiver.events import parse_event
from receiver.events.decode import loads
from receiver.storage.commit_health import CommitHealth
from receiver.storage.dedupe import dedupe_key
from receiver.storage.frames import (
    Ack,
    Committed,
    Event,
    Failed,
    FrameBuffer,
    OutboxMarks,
    Ready,
    Request,
    encode,
)
from receiver.storage.ids import EventIds
from receiver.storage.rows import INSERT_EVENT, event_row

log = logging.getLogger("receiver.storage.writer")

_HEARTBEAT: Final = (
    "INSERT INTO service_state (key, value) VALUES ('heartbeat', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
# A pipe holds 64 KiB; a larger read only makes every read allocate (and free) a huge buffer.
_READ_SIZE: Final = 1 << 16
_MARK_PUBLISHED: Final = (
    "UPDATE events SET published_at = ?, last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ?"
)
# The body of the probe's row: a real kind, so the row takes the path most events take.
_PROBE_EVENT: Final = parse_event({"event_type": 0}, 0)
_STORED_ID: Final = "SELECT id FROM events WHERE event_type = ? AND dedupe_key = ?"
_MARK_FAILED: Final = (
    "UPDATE events SET last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ? AND published_at IS NULL"
)


def connect(path: Path) -> sqlite3.Connection:
    """Open the database for writing, or fail: never silently read-only.

    When it cannot open the database or its WAL for writing (read-only file or mount), SQLite
    falls back to a read-only connection, even with `mode=rw`; such a writer would refuse every
    event forever, also after the disk recovered. So check first, and fail: the service restarts
    the writer (503 meanwhile) until the files are writable again.
    """
    for name in (path, path.with_name(path.name + "-wal")):
        if name.exists():
            os.close(os.open(name, os.O_RDWR))  # PermissionError / EROFS while read-only
    uri = f"{path.absolute().as_uri()}?mode=rw"  # never create an empty database here
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@dataclass(slots=True)
class _Prepared:
    """One request, ready to commit: an event row, an outbox update, or a readiness probe."""

    rid: int
    row: tuple[Any, ...] | None = None  # the INSERT_EVENT parameters; row[0] is the id
    schema_error: str | None = None
    outbox: OutboxMarks | None = None

    @property
    def probe(self) -> bool:
        return self.row is None and self.outbox is None


class BatchWriter:
    """Commits groups of framed requests and produces the reply frames.

    It also keeps what readiness needs (`CommitHealth`): the outcome of every commit that stored
    events, and the last event row a commit failed on, which the next probe tries again (and
    rolls back), so a probe fails for as long as the path that failed still fails.
    """

    def __init__(self, conn: sqlite3.Connection, health: CommitHealth | None = None) -> None:
        self._conn = conn
        self._ids = EventIds()
        self._health = health if health is not None else CommitHealth()
        self._failed_row: tuple[Any, ...] | None = None

    def handle(self, messages: Sequence[Request]) -> bytes:
        """Commit `messages` as one transaction (or one by one if that fails); return replies."""
        prepared: list[_Prepared] = []
        refused: list[bytes] = []
        for message in messages:
            try:
                prepared.append(self._prepare(message))
            except Exception as exc:  # a body the service accepted but we cannot turn into a row
                log.exception("could not prepare a request")
                refused.append(encode(Failed(message.rid, f"{type(exc).__name__}: {exc}")))
        if not prepared:
            return b"".join(refused)
        if len(prepared) == 1:
            return b"".join([*refused, self._commit_alone(prepared[0])])
        started = time.perf_counter()
        try:
            duplicates = self._commit(prepared)
        except sqlite3.Error as exc:
            log.warning("commit of %d failed (%s); retrying one by one", len(prepared), exc)
            return b"".join([*refused, *(self._commit_alone(item) for item in prepared)])
        return b"".join(
            [*refused, *self._replies(time.perf_counter() - started, prepared, duplicates)]
        )

    def _commit_alone(self, item: _Prepared) -> bytes:
        started = time.perf_counter()
        try:
            duplicates = self._commit([item])
        except sqlite3.Error as exc:
            log.error("could not %s: %s", "store event" if item.row is not None else "commit", exc)
            self._health.failed(str(exc))
            if item.row is not None:
                self._failed_row = item.row
            return encode(Failed(item.rid, str(exc)))
        return b"".join(self._replies(time.perf_counter() - started, [item], duplicates))

    def _replies(
        self, seconds: float, prepared: list[_Prepared], duplicates: dict[str, str]
    ) -> list[bytes]:
        """After a commit: the health it shows, and the reply frames of its requests.

        A probe that committed still fails while event commits have been failing: that is
        what readiness is for.
        """
        events = any(item.row is not None for item in prepared)
        probes = [item.rid for item in prepared if item.probe]
        if events:
            self._failed_row = None
        if events or probes:
            self._health.succeeded()
        problem = self._health.problem() if probes else None
        replies = [_committed(seconds, prepared, duplicates, failed_probes=problem is not None)]
        if problem is not None:
            replies.extend(encode(Failed(rid, problem)) for rid in probes)
        return replies

    def _prepare(self, message: Request) -> _Prepared:
        if isinstance(message, OutboxMarks):
            return _Prepared(message.rid, outbox=message)
        if not isinstance(message, Event):
            return _Prepared(message.rid)  # a probe: the heartbeat proves the commit path
        rid, event_type, received_at, path_kind, payload = message
        body = loads(payload)  # as the service read it: integers beyond 64 bits stay exact
        parsed = parse_event(body, event_type)
        row = event_row(
            self._ids.new(),
            parsed,
            body=body,
            dedupe_key=dedupe_key(event_type, body),
            payload=payload.decode(),  # valid UTF-8: the service parsed it before sending
            received_at=received_at,
            path_kind=path_kind,
        )
        return _Prepared(rid, row=row, schema_error=parsed.schema_error)

    def _commit(self, prepared: list[_Prepared]) -> dict[str, str]:
        """Commit the batch; returns {new id: stored id} for the rows that were duplicates.

        A duplicate is ignored by the unique (event_type, dedupe_key) index, so its fresh id
        was never stored: its acknowledgement names the stored event it repeats instead.
        """
        rows = [item.row for item in prepared if item.row is not None]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            duplicates: dict[str, str] = {}
            if rows and conn.executemany(INSERT_EVENT, rows).rowcount != len(rows):
                duplicates = self._duplicates(rows)  # else none (the usual case): no need to look
            for item in prepared:
                if item.outbox is not None:
                    conn.executemany(_MARK_PUBLISHED, item.outbox.published)
                    conn.executemany(_MARK_FAILED, item.outbox.failed)
            if any(item.probe for item in prepared):
                conn.execute(_HEARTBEAT, (str(time.time()),))
                self._probe_events()
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return duplicates

    def _probe_events(self) -> None:
        """Insert an event row and roll it back: proves the events table and all its indexes
        take a row, which a heartbeat elsewhere does not. The row is the last one a commit
        failed on, while no event has committed since (so the probe walks the same pages that
        failed), else a fresh one."""
        row = self._failed_row or event_row(
            event_id := self._ids.new(),
            _PROBE_EVENT,
            body={},
            dedupe_key=f"readiness-probe:{event_id}",
            payload="{}",
            received_at=time.time(),
            path_kind=None,
        )
        conn = self._conn
        conn.execute("SAVEPOINT probe")
        try:
            conn.execute(INSERT_EVENT, row)
        finally:
            conn.execute("ROLLBACK TO probe")
            conn.execute("RELEASE probe")

    def _duplicates(self, rows: list[tuple[Any, ...]]) -> dict[str, str]:
        """{new id: stored id} for the `rows` not inserted (inside the inserting transaction)."""
        duplicates: dict[str, str] = {}
        for (
            row
        ) in rows:  # layout: receiver.storage.rows.event_row (id, event_type, kind, dedupe_key...)
            stored = self._conn.execute(_STORED_ID, (row[1], row[3])).fetchone()
            if stored is None:  # ignored, yet nothing has its key: never acknowledge that
                raise sqlite3.IntegrityError(f"event {row[0]} was not stored")
            if stored[0] != row[0]:
                duplicates[row[0]] = stored[0]
        return duplicates


def _committed(
    seconds: float,
    prepared: list[_Prepared],
    duplicates: dict[str, str],
    *,
    failed_probes: bool = False,
) -> bytes:
    """The one reply frame of a commit: every request it carried, acknowledged (probes only if
    they are not answered with `Failed`)."""
    acks: list[Ack] = []
    done: list[int] = []
    for item in prepared:
        if item.row is None:
            if not (failed_probes and item.probe):
                done.append(item.rid)
        else:
            stored = duplicates.get(item.row[0])
            acks.append(Ack(item.rid, stored or item.row[0], stored is None, item.schema_error))
    return encode(Committed(seconds, len(prepared), acks, done))


def serve(conn: sqlite3.Connection, in_fd: int, out_fd: int, max_batch: int) -> None:
    """Loop until the service closes the pipe: read what is there, commit it, reply."""
    writer = BatchWriter(conn)
    frames = FrameBuffer()
    _write_all(out_fd, encode(Ready()))
    while True:
        data = os.read(in_fd, _READ_SIZE)  # blocks until something arrived, b"" at EOF
        if not data:
            return
        messages = cast(list[Request], frames.feed(data))  # the service sends only requests
        for start in range(0, len(messages), max_batch):
            _write_all(out_fd, writer.handle(messages[start : start + max_batch]))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return  # the service is gone; what was committed stays committed
        view = view[written:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="receiver-writer", description=__doc__)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=1000)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)  # the service's format, on its stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        conn = connect(args.database)
    except (OSError, sqlite3.Error) as exc:
        log.error("cannot open %s for writing: %s", args.database, exc)
        return 1
    try:
        serve(conn, args.in_fd, args.out_fd, args.max_batch)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
