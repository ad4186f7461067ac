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
    """One request, ready to commit: an event row, an outbox update, or a heartbeat probe."""

    rid: int
    row: tuple[Any, ...] | None = None  # the INSERT_EVENT parameters; row[0] is the id
    schema_error: str | None = None
    outbox: OutboxMarks | None = None


class BatchWriter:
    """Commits groups of framed requests and produces the reply frames."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._ids = EventIds()

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
        started = time.perf_counter()
        try:
            duplicates = self._commit(prepared)
        except sqlite3.Error as exc:
            if len(prepared) == 1:
                log.error("could not store event: %s", exc)
                return b"".join([*refused, encode(Failed(prepared[0].rid, str(exc)))])
            log.warning("commit of %d failed (%s); retrying one by one", len(prepared), exc)
            return b"".join([*refused, *(self._retry_alone(item) for item in prepared)])
        return b"".join([*refused, _committed(time.perf_counter() - started, prepared, duplicates)])

    def _retry_alone(self, item: _Prepared) -> bytes:
        started = time.perf_counter()
        try:
            duplicates = self._commit([item])
        except sqlite3.Error as exc:
            log.error("could not store event: %s", exc)
            return encode(Failed(item.rid, str(exc)))
        return _committed(time.perf_counter() - started, [item], duplicates)

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
            if any(item.row is None and item.outbox is None for item in prepared):
                conn.execute(_HEARTBEAT, (str(time.time()),))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return duplicates

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


def _committed(seconds: float, prepared: list[_Prepared], duplicates: dict[str, str]) -> bytes:
    """The one reply frame of a commit: every request it carried, acknowledged."""
    acks: list[Ack] = []
    done: list[int] = []
    for item in prepared:
        if item.row is None:
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
