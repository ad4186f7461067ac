"""The fold process: the only writer of the database, so history never delays an acknowledgement.

The writer process appends callbacks to the inbox file and acknowledges them; this process
folds them into events (`receiver.storage.fold`) and records the relay's publishing outcomes,
in the database. Two processes, two files, two write locks: a fold transaction and an
acknowledgement never wait for each other. It runs at a lower CPU priority (`--priority`; by
default the idle class: only on a core nothing else wants), so in a burst the cores go to
answering CSS and history catches up after (`/readyz` `fold` shows how far behind it is). A
merely lower nice value is not enough: the fold then still takes the moments the HTTP process
waits for a commit, and answers slow down (bench/README.md).

It folds whenever the inbox holds rows it has not folded, in transactions of up to `--batch`
rows that end early when the service waits for an answer; it learns of new rows from `Wake`
frames (and looks now and then regardless). It ignores SIGINT/SIGTERM: the service closes the
pipe to stop it, and it then commits what it has, folds what it can in a few seconds and exits.
What is left is folded at the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Final, cast

from receiver.moderation.book import ActionBook, ActionMark
from receiver.moderation.policy import ModerationPolicy
from receiver.storage.connect import open_for_writing
from receiver.storage.fold import Folder
from receiver.storage.frames import (
    ActionMarks,
    Committed,
    Failed,
    Folded,
    FoldThrough,
    FrameBuffer,
    KindFolded,
    OutboxMarks,
    Probe,
    Ready,
    Request,
    encode,
)
from receiver.storage.inbox_file import open_inbox
from receiver.storage.pipes import READ_SIZE, arguments, begin, readable, write_all

log = logging.getLogger("receiver.storage.fold")

_HEARTBEAT: Final = (
    "INSERT INTO service_state (key, value) VALUES ('heartbeat', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_MARK_PUBLISHED: Final = (
    "UPDATE events SET published_at = ?, last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ?"
)
_MARK_FAILED: Final = (
    "UPDATE events SET last_error = ?, publish_attempts = publish_attempts + 1"
    " WHERE seq = ? AND published_at IS NULL"
)
# Inbox rows per fold transaction (it ends earlier when the service waits for an answer).
FOLD_BATCH: Final = 2000
# The fold's CPU priority: `idle` (SCHED_IDLE), `low` (nice 10), `normal` (the service's).
PRIORITIES: Final = ("idle", "low", "normal")
# With nothing to fold, look at the inbox this often anyway (a `Wake` lost with a restart).
IDLE_LOOK_SECONDS: Final = 1.0
# After a fold that stopped at a row it could not store: wait, then try that row again.
FOLD_RETRY_DELAYS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)
# On shutdown, fold for at most this long (the service waits 30 s for the process to exit).
FOLD_AT_EXIT_SECONDS: Final = 10.0


Commit = OutboxMarks | ActionMarks | Probe


def record(conn: sqlite3.Connection, messages: Sequence[Commit], book: ActionBook) -> bytes:
    """Commit outbox marks, moderation action marks and probes (a heartbeat) in one
    transaction; the reply frames."""
    started = time.perf_counter()
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for message in messages:
                if isinstance(message, OutboxMarks):
                    conn.executemany(_MARK_PUBLISHED, message.published)
                    conn.executemany(_MARK_FAILED, message.failed)
                elif isinstance(message, ActionMarks):
                    for mark in message.marks:
                        book.apply(conn, ActionMark(*mark))
                else:
                    conn.execute(_HEARTBEAT, (str(time.time()),))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        log.error("could not record publishing outcomes or a heartbeat: %s", exc)
        return b"".join(encode(Failed(message.rid, str(exc))) for message in messages)
    rids = [message.rid for message in messages]
    return encode(Committed(time.perf_counter() - started, len(messages), [], rids))


class Folding:
    """The fold's state between steps: is there work, who waits for which row, retries."""

    def __init__(self, folder: Folder, out_fd: int) -> None:
        self.folder = folder
        self._out_fd = out_fd
        self.backlog = True  # unknown at start: look
        self._waiting: list[tuple[int, int]] = []
        self._failures = 0
        self._retry_at = 0.0

    def wake(self) -> None:
        self.backlog = True

    def wait_for(self, request: FoldThrough) -> None:
        """Answer once the row is folded: now if it is, else after the step that folds it."""
        self._waiting.append((request.rid, request.seq))
        if request.seq <= self.folder.through:
            self._reply(Folded(0.0, 0, self.folder.through, [], self._settle(), None))
        else:
            self.backlog = True

    def ready(self) -> bool:
        return self.backlog and time.monotonic() >= self._retry_at

    def timeout(self) -> float:
        """How long the loop may wait on the pipe: not at all while there is work to do (but
        until a failed row's retry is due), `IDLE_LOOK_SECONDS` when there is none."""
        if not self.backlog:
            return IDLE_LOOK_SECONDS
        return max(0.0, self._retry_at - time.monotonic())

    def step(self, limit: int, stop: Callable[[], bool]) -> None:
        result = self.folder.step(limit, stop=stop)
        through = self.folder.through
        if result is None:
            self.backlog = False
            if self._waiting:
                self._reply(Folded(0.0, 0, through, [], self._settle(), None))
            return
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
            Folded(result.seconds, result.rows, through, counts, self._settle(), result.error)
        )

    def _settle(self) -> list[int]:
        if not self._waiting:
            return []
        through = self.folder.through
        done = [rid for rid, seq in self._waiting if seq <= through or not self.backlog]
        self._waiting = [(rid, seq) for rid, seq in self._waiting if rid not in done]
        return done

    def _reply(self, message: Folded) -> None:
        write_all(self._out_fd, encode(message))


def serve(
    conn: sqlite3.Connection,
    inbox: sqlite3.Connection,
    in_fd: int,
    out_fd: int,
    *,
    batch: int = FOLD_BATCH,
    book: ActionBook | None = None,
) -> None:
    """Loop until the service closes the pipe: answer its requests, fold in between."""
    book = book if book is not None else ActionBook(ModerationPolicy())
    folding = Folding(Folder(conn, inbox, book), out_fd)
    frames = FrameBuffer()
    write_all(out_fd, encode(Ready()))

    def waiting() -> bool:
        return readable(in_fd, 0.0)

    while True:
        if readable(in_fd, folding.timeout()):
            data = os.read(in_fd, READ_SIZE)
            if not data:
                break
            messages = cast(list[Request], frames.feed(data))  # the service sends only requests
            commits = [m for m in messages if isinstance(m, Commit)]
            if commits:
                write_all(out_fd, record(conn, commits, book))
            for message in messages:
                if isinstance(message, FoldThrough):
                    folding.wait_for(message)
                elif not isinstance(message, Commit):
                    folding.wake()
        elif not folding.backlog:
            folding.wake()  # look now and then, in case a row came without its `Wake`
        if folding.ready():
            folding.step(batch, waiting)
    # The service is stopping: fold what there is time for; the rest waits for the next start.
    deadline = time.monotonic() + FOLD_AT_EXIT_SECONDS
    while folding.backlog and time.monotonic() < deadline and folding.ready():
        folding.step(batch, lambda: time.monotonic() >= deadline)


def _lower_priority(priority: str) -> None:
    """Give the cores to the service first (a process may always lower its own priority)."""
    try:
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority == "low":
            os.nice(10)
    except OSError as exc:  # a container that forbids it: fold at the service's priority
        log.warning("could not lower the fold's CPU priority (%s): %s", priority, exc)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("receiver-fold", __doc__)
    parser.add_argument("--batch", type=int, default=FOLD_BATCH)
    parser.add_argument("--priority", choices=PRIORITIES, default="idle")
    # The moderation policy as JSON (receiver.moderation.policy); none: no actions.
    parser.add_argument("--moderation", default=None)
    args = parser.parse_args(argv)
    begin(args)
    _lower_priority(args.priority)
    policy = (
        ModerationPolicy()
        if args.moderation is None
        else ModerationPolicy.from_json(args.moderation)
    )
    try:
        conn = open_for_writing(args.database)
        inbox = open_inbox(args.database)
    except (OSError, sqlite3.Error) as exc:
        log.error("cannot open %s for writing: %s", args.database, exc)
        return 1
    try:
        serve(conn, inbox, args.in_fd, args.out_fd, batch=args.batch, book=ActionBook(policy))
    finally:
        inbox.close()
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
