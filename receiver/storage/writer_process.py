"""The writer process: the only writer of the database, so commits never wait on the HTTP loop.

It reads framed callbacks from a pipe, and everything that arrived while the previous commit ran
goes into the next transaction (group commit without a batching window). A callback is appended
to the inbox as the bytes CSS sent, with the id it is given here, and acknowledged only after its
transaction committed (`synchronous=FULL`: on disk). A failed batch is retried one callback at a
time so a poisoned row cannot fail its neighbours.

Between those commits it folds the inbox into events (`receiver.storage.fold`): in the pauses
between callbacks, in transactions that end as soon as one arrives, and, when callbacks keep
coming so long that history would lag more than half a second, a chunk after each commit. One
process for both keeps one writer on the database: SQLite lets one transaction write at a time,
and a second writing process would make acknowledgements wait behind a fold's transaction.

It ignores SIGINT/SIGTERM: the service closes the pipe to stop it, and it then commits what it
has, acknowledges it, folds what it can in a few seconds and exits, also when the service itself
was killed. What is still in the inbox is folded when the service starts again.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from receiver import logs
from receiver.storage.commit_health import CommitHealth
from receiver.storage.fold import CHUNK, Folder
from receiver.storage.frames import (
    Ack,
    Committed,
    Event,
    Failed,
    Folded,
    FoldThrough,
    FrameBuffer,
    KindFolded,
    OutboxMarks,
    Ready,
    Request,
    encode,
)
from receiver.storage.ids import EventIds

log = logging.getLogger("receiver.storage.writer")

_APPEND: Final = (
    "INSERT INTO inbox (id, event_type, received_at, path_kind, payload) VALUES (?, ?, ?, ?, ?)"
)
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
_MARK_FAILED: Final = (
    "UPDATE events SET last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ? AND published_at IS NULL"
)
# Inbox rows read for one fold transaction while the service has nothing waiting.
FOLD_BATCH: Final = 2000
# A pause in the callbacks this long lets the fold run (it stops when the next one arrives).
FOLD_PAUSE_SECONDS: Final = 0.005
# Beyond this age of the oldest unfolded callback, fold between commits even under load.
FOLD_MAX_LAG_SECONDS: Final = 0.5
# After a fold that stopped at a row it could not store: wait, then try that row again.
FOLD_RETRY_DELAYS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)
# On shutdown, fold for at most this long (the service waits 30 s for the writer to exit).
FOLD_AT_EXIT_SECONDS: Final = 10.0


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
    """One request, ready to commit: an inbox row, an outbox update, or a readiness probe."""

    rid: int
    row: tuple[Any, ...] | None = None  # the _APPEND parameters; row[0] is the id
    outbox: OutboxMarks | None = None

    @property
    def probe(self) -> bool:
        return self.row is None and self.outbox is None


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

    def handle(self, messages: Sequence[Request]) -> bytes:
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

    def _prepare(self, message: Request) -> _Prepared:
        if isinstance(message, OutboxMarks):
            return _Prepared(message.rid, outbox=message)
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
            for item in prepared:
                if item.outbox is not None:
                    conn.executemany(_MARK_PUBLISHED, item.outbox.published)
                    conn.executemany(_MARK_FAILED, item.outbox.failed)
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


class _Folding:
    """When to fold, and the `FoldThrough` requests waiting for it.

    The fold waits for a pause: it runs once no callback has arrived for `pause` seconds,
    and stops as soon as one does. A burst therefore leaves its folding for afterwards, and
    the cores go to answering it. If callbacks never pause long enough, the oldest unfolded
    one grows old: past `max_lag` seconds, `busy_rows` rows are folded after every commit, so
    history never falls behind by much more than that.
    """

    def __init__(
        self, folder: Folder, out_fd: int, *, busy_rows: int, max_lag: float, pause: float
    ) -> None:
        self.folder = folder
        self._pause = pause
        self._out_fd = out_fd
        self._busy_rows = busy_rows
        self._max_lag = max_lag
        self.backlog = True  # unknown at start: look
        self._through = 0
        self._waiting: list[tuple[int, int]] = []
        self._failures = 0
        self._retry_at = 0.0
        # (when, callbacks appended so far) per commit, while some of them are not folded.
        self._arrivals: deque[tuple[float, int]] = deque()
        self._appended = 0
        self._folded = 0

    def appended(self, count: int) -> None:
        if count:
            self.backlog = True
            self._appended += count
            self._arrivals.append((time.monotonic(), self._appended))

    def wait_for(self, request: FoldThrough) -> None:
        """Answer once the row is folded: now if it is, else after the fold step that does.

        The request means the service saw the row in the inbox, so look even when no
        callback arrived since the last empty look (a row written by an earlier process)."""
        self._waiting.append((request.rid, request.seq))
        if request.seq <= self._through:
            self._reply(Folded(0.0, 0, self._through, [], self._settle(), None))
        else:
            self.backlog = True

    def ready(self) -> bool:
        return self.backlog and time.monotonic() >= self._retry_at

    def timeout(self) -> float | None:
        """How long the loop may block on the pipe before folding: until a pause is long
        enough (or a failed row's retry is due); for ever when there is nothing to fold."""
        if not self.backlog:
            return None
        pause = 0.0 if self._waiting else self._pause
        return max(pause, self._retry_at - time.monotonic())

    def lagging(self) -> bool:
        """Whether the oldest unfolded callback of this process is older than `max_lag`."""
        arrivals = self._arrivals
        while arrivals and arrivals[0][1] <= self._folded:
            arrivals.popleft()
        return bool(arrivals) and time.monotonic() - arrivals[0][0] >= self._max_lag

    def busy_step(self) -> None:
        """Callbacks keep coming: fold a small step between their commits, if history lags
        too far behind (or someone waits for a row)."""
        if self._busy_rows > 0 and self.ready() and (self._waiting or self.lagging()):
            self.step(self._busy_rows, lambda: False)

    def step(self, limit: int, stop: Callable[[], bool]) -> None:
        result = self.folder.step(limit, stop=stop)
        if result is None:
            self.backlog = False
            self._arrivals.clear()
            self._folded = self._appended
            if self._waiting:
                self._reply(Folded(0.0, 0, self._through, [], self._settle(), None))
            return
        self._through = max(self._through, result.through)
        self._folded += result.rows
        if result.error is not None:
            delay = FOLD_RETRY_DELAYS[min(self._failures, len(FOLD_RETRY_DELAYS) - 1)]
            self._failures += 1
            self._retry_at = time.monotonic() + delay
        else:
            self._failures = 0
        counts = [
            KindFolded(kind, c.stored, c.duplicates, c.schema_errors, c.rejected)
            for kind, c in result.counts.items()
        ]
        self._reply(
            Folded(result.seconds, result.rows, self._through, counts, self._settle(), result.error)
        )

    def _settle(self) -> list[int]:
        if not self._waiting:
            return []
        done = [rid for rid, seq in self._waiting if seq <= self._through or not self.backlog]
        self._waiting = [(rid, seq) for rid, seq in self._waiting if rid not in done]
        return done

    def _reply(self, message: Folded) -> None:
        _write_all(self._out_fd, encode(message))


def serve(
    conn: sqlite3.Connection,
    in_fd: int,
    out_fd: int,
    max_batch: int,
    *,
    fold_batch: int = FOLD_BATCH,
    fold_busy_rows: int = CHUNK,
    fold_max_lag: float = FOLD_MAX_LAG_SECONDS,
    fold_pause: float = FOLD_PAUSE_SECONDS,
) -> None:
    """Loop until the service closes the pipe: commit what arrived and reply, fold between."""
    writer = BatchWriter(conn)
    folding = _Folding(
        Folder(conn), out_fd, busy_rows=fold_busy_rows, max_lag=fold_max_lag, pause=fold_pause
    )
    frames = FrameBuffer()
    _write_all(out_fd, encode(Ready()))

    def waiting() -> bool:
        return _readable(in_fd, 0.0)

    while True:
        if _readable(in_fd, folding.timeout()):
            data = os.read(in_fd, _READ_SIZE)
            if not data:
                break
            messages = cast(list[Request], frames.feed(data))  # the service sends only requests
            commits = [m for m in messages if not isinstance(m, FoldThrough)]
            for start in range(0, len(commits), max_batch):
                _write_all(out_fd, writer.handle(commits[start : start + max_batch]))
                folding.appended(writer.appended)
            for message in messages:
                if isinstance(message, FoldThrough):
                    folding.wait_for(message)
            folding.busy_step()
        elif folding.ready():
            folding.step(fold_batch, waiting)
    # The service is stopping: fold what there is time for; the rest waits for the next start.
    deadline = time.monotonic() + FOLD_AT_EXIT_SECONDS
    while folding.backlog and time.monotonic() < deadline and folding.ready():
        folding.step(fold_batch, lambda: time.monotonic() >= deadline)


def _readable(fd: int, timeout: float | None) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


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
    parser.add_argument("--fold-batch", type=int, default=FOLD_BATCH)
    parser.add_argument("--fold-busy-rows", type=int, default=CHUNK)
    parser.add_argument("--fold-max-lag", type=float, default=FOLD_MAX_LAG_SECONDS)
    parser.add_argument("--fold-pause", type=float, default=FOLD_PAUSE_SECONDS)
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
        serve(
            conn,
            args.in_fd,
            args.out_fd,
            args.max_batch,
            fold_batch=args.fold_batch,
            fold_busy_rows=args.fold_busy_rows,
            fold_max_lag=args.fold_max_lag,
            fold_pause=args.fold_pause,
        )
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
