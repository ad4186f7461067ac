"""The service's side of the writer process: submit a callback, get told once it is on disk.

Why a process: a commit made from the HTTP process waits for its busy event loop and for the GIL
at every step, so under load a commit took many times what the disk needs (bench/README.md).
In its own process the writer commits as fast as the disk allows, on the other core, and the
request path keeps only what can refuse a request (parsing, authentication).

Requests are sent as frames down a pipe (all frames of one loop iteration in one write) and wait
on a future; the writer replies after the commit. If the writer process dies, waiting requests
fail with `StorageUnavailable` (503, CSS retries) and it is restarted; a callback committed whose
reply was lost comes back as a duplicate, which the fold absorbs.

The writer also reports each fold (`receiver.storage.fold`): what it stored, for metrics; that
new events exist, for the relay (listeners are called after folds, not after acknowledgements:
only folded events can be published); and the fold's last error, for readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from receiver.errors import CommitFailed, StorageUnavailable
from receiver.storage.frames import (
    Committed,
    Event,
    Failed,
    Folded,
    FoldThrough,
    FrameBuffer,
    OutboxMarks,
    Probe,
    Reply,
    encode,
)

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
FOLD_EVERYTHING = 2**62  # an inbox seq beyond any real one


@dataclass(frozen=True, slots=True)
class OutboxUpdate:
    """Publishing outcomes to record, by `seq`.

    `published`: (published_at, last_error, seq): the broker confirmed the message (or returned
    it as unroutable, with last_error 'unroutable'). `failed`: (last_error, seq): an attempt that
    was not confirmed; the row stays unpublished and is retried.
    """

    published: Sequence[tuple[float, str | None, int]] = ()
    failed: Sequence[tuple[str, int]] = ()


@dataclass(slots=True)
class WriterStats:
    """Counters for tests and metrics: how many transactions carried how many rows."""

    transactions: int = 0
    appended: int = 0  # callbacks acknowledged (inbox rows committed)
    rows_inserted: int = 0  # events stored by the fold
    duplicates: int = 0  # callbacks the fold found to repeat a stored event
    failures: int = 0
    largest_batch: int = 0
    restarts: int = 0
    folds: int = 0
    fold_failures: int = 0


CommitObserver = Callable[[float, int], None]  # (seconds, batch size)
FoldObserver = Callable[[Folded], None]


class _Replies(asyncio.Protocol):
    """Reads reply frames from the writer process and hands them to the writer."""

    def __init__(self, owner: EventWriter) -> None:
        self._owner = owner
        self._frames = FrameBuffer()

    def data_received(self, data: bytes) -> None:
        replies = self._frames.feed(data)
        self._owner._on_replies(cast(list[Reply], replies))  # the writer sends only replies

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._on_lost()


class EventWriter:
    """Runs and talks to the writer process. `submit()` returns once the event is on disk."""

    def __init__(
        self,
        database: Path,
        *,
        max_batch: int = 1000,
        log_level: str = "INFO",
        log_format: str = "text",
        on_commit: CommitObserver | None = None,
        on_fold: FoldObserver | None = None,
        fold_batch: int | None = None,
        fold_busy_rows: int | None = None,
        fold_max_lag: float | None = None,
        fold_pause: float | None = None,
    ) -> None:
        self._database = database
        self._max_batch = max_batch
        self._log_level = log_level
        self._log_format = log_format
        self._on_commit = on_commit
        self._on_fold = on_fold
        self._fold_options: list[str] = []
        if fold_batch is not None:
            self._fold_options += ["--fold-batch", str(fold_batch)]
        if fold_busy_rows is not None:
            self._fold_options += ["--fold-busy-rows", str(fold_busy_rows)]
        if fold_max_lag is not None:
            self._fold_options += ["--fold-max-lag", str(fold_max_lag)]
        if fold_pause is not None:
            self._fold_options += ["--fold-pause", str(fold_pause)]
        # The last fold's error while the fold is stuck on a row (None once it moves again).
        self.fold_error: str | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._outgoing: list[bytes] = []
        self._listeners: list[Callable[[], None]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._to_writer: asyncio.WriteTransport | None = None
        self._from_writer: asyncio.ReadTransport | None = None
        self._ready: asyncio.Future[None] | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._restarted = asyncio.Event()
        self.stats = WriterStats()

    @property
    def running(self) -> bool:
        return self._to_writer is not None and not self._lost.is_set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every fold that stored new events (the outbox wakes on it)."""
        self._listeners.append(callback)

    async def start(self) -> None:
        """Start the writer process; if it cannot open the database now, keep trying.

        Meanwhile events get 503 and readiness fails, as after a crash: a service started on a
        disk that is read-only for a while recovers with it instead of exiting.
        """
        try:
            await self._spawn()
        except (OSError, RuntimeError) as exc:
            log.error("could not start the writer process, retrying: %s", exc)
            self._lost.set()  # the supervisor restarts it
        self._supervisor = asyncio.create_task(self._supervise(), name="writer-supervisor")

    async def wait_restarted(self) -> None:
        """Return once the writer process has been restarted after a crash (tests, ops)."""
        await self._restarted.wait()

    async def close(self) -> None:
        """Refuse new events, let the writer commit and acknowledge the queued ones, stop it."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._flush()
        if self._to_writer is not None:
            self._to_writer.close()  # EOF: the writer finishes what it has and exits
        process = self._process
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.error("writer process did not stop in time; killing it")
                process.kill()
                await process.wait()
        if self._from_writer is not None:
            await self._lost.wait()  # every reply the writer sent has been read
        self._fail_pending("the service is shutting down; retry later")

    def submit(
        self, event_type: int, payload: bytes, received_at: float, path_kind: str | None
    ) -> asyncio.Future[str]:
        """Store an authenticated callback body (the bytes as received, valid UTF-8 JSON).

        The future resolves to the event's id once the callback is on disk (in the inbox), or
        fails with `StorageUnavailable`. Not a coroutine: the request handler awaits the future
        itself, one frame less per callback.
        """
        rid = self._new_rid()
        return self._send(rid, encode(Event(rid, event_type, received_at, path_kind, payload)))

    async def probe(self) -> None:
        """Commit a heartbeat and a rolled-back event row through the same path as events.

        Fails (`CommitFailed`, its `detail` says why) while event commits have been failing,
        even if this commit went through: see `receiver.storage.commit_health`.
        """
        rid = self._new_rid()
        await self._send(rid, encode(Probe(rid)))

    def fold_through(self, inbox_seq: int) -> asyncio.Future[None]:
        """Resolves once every inbox row up to `inbox_seq` is folded into events."""
        rid = self._new_rid()
        return self._send(rid, encode(FoldThrough(rid, inbox_seq)))

    def fold_all(self) -> asyncio.Future[None]:
        """Resolves once the fold has emptied the inbox of what was in it (tests, shutdown)."""
        return self.fold_through(FOLD_EVERYTHING)

    def update_outbox(self, update: OutboxUpdate) -> asyncio.Future[Any]:
        """Queue publishing outcomes for the next commit; the future resolves once committed.

        Not a coroutine on purpose: the relay keeps publishing while its marks wait for the
        commit, and awaits the futures only before it reads the outbox again.
        """
        rid = self._new_rid()
        marks = OutboxMarks(rid, list(update.published), list(update.failed))
        return self._send(rid, encode(marks))

    def _new_rid(self) -> int:
        self._check_open()
        self._next_id += 1
        return self._next_id

    def _check_open(self) -> None:
        if self._closing:
            raise StorageUnavailable("the service is shutting down; retry later")
        if not self.running:
            raise StorageUnavailable("the database writer is restarting; retry later")

    def _send(self, rid: int, data: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = future
        self._outgoing.append(data)
        if len(self._outgoing) == 1:
            # One write per loop iteration carries every request made during it.
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        if not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self._to_writer is not None and not self._to_writer.is_closing():
            self._to_writer.write(data)

    def _on_replies(self, messages: Sequence[Reply]) -> None:
        new_events = False
        for message in messages:
            if isinstance(message, Committed):
                seconds, size, acks, done = message
                self.stats.transactions += 1
                self.stats.largest_batch = max(self.stats.largest_batch, size)
                if self._on_commit is not None:
                    self._on_commit(seconds, size)
                self.stats.appended += len(acks)
                for rid, event_id in acks:
                    self._settle(rid, event_id)
                for rid in done:
                    self._settle(rid, None)
            elif isinstance(message, Folded):
                new_events |= self._on_folded(message)
            elif isinstance(message, Failed):
                self.stats.failures += 1
                self._settle(message.rid, exc=CommitFailed(message.message))
            elif self._ready is not None and not self._ready.done():  # Ready
                self._ready.set_result(None)
        if new_events:
            for listener in self._listeners:
                listener()

    def _on_folded(self, folded: Folded) -> bool:
        """Count a fold; returns whether it stored new events."""
        stored = sum(c.stored for c in folded.counts)
        if folded.rows:
            self.stats.folds += 1
            self.stats.rows_inserted += stored
            self.stats.duplicates += sum(c.duplicates for c in folded.counts)
        if folded.error is not None:
            self.stats.fold_failures += 1
            self.fold_error = folded.error
        elif folded.rows:
            self.fold_error = None
        if self._on_fold is not None:
            self._on_fold(folded)
        for rid in folded.done:
            self._settle(rid, None)
        return stored > 0

    def _settle(self, rid: int, result: Any = None, exc: BaseException | None = None) -> None:
        future = self._pending.pop(rid, None)
        if future is None or future.done():
            return  # the request went away (client disconnected); the event is stored anyway
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _on_lost(self) -> None:
        self._lost.set()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError("the writer process exited while starting"))
        self._fail_pending(
            "the service is shutting down; retry later"
            if self._closing
            else "the database writer stopped; retry later"
        )

    def _fail_pending(self, message: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(StorageUnavailable(message))

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "receiver.storage.writer_process",
                "--database", str(self._database),
                "--in-fd", str(to_child_r), "--out-fd", str(from_child_w),
                "--max-batch", str(self._max_batch), "--log-level", self._log_level,
                "--log-format", self._log_format,
                *self._fold_options,
                pass_fds=(to_child_r, from_child_w),
                stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._lost = asyncio.Event()
        self._ready = loop.create_future()
        to_writer, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(to_child_w, "wb", buffering=0)
        )
        from_writer, _ = await loop.connect_read_pipe(
            lambda: _Replies(self), os.fdopen(from_child_r, "rb", buffering=0)
        )
        self._to_writer = to_writer
        self._from_writer = from_writer
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_SECONDS)
        except (TimeoutError, RuntimeError) as exc:
            if self._process.returncode is None:
                self._process.kill()
            raise RuntimeError(f"the writer process did not start: {exc!r}") from exc

    async def _supervise(self) -> None:
        """Restart the writer process if it dies; requests get 503 while it is down."""
        attempt = 0
        while True:
            await self._lost.wait()
            if self._process is not None:
                code = await self._process.wait()
                log.error("writer process exited with code %s; restarting it", code)
            self._to_writer = None
            delay = RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)]
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except (OSError, RuntimeError) as exc:
                log.error("could not restart the writer process: %s", exc)
                attempt += 1
                continue
            attempt = 0
            self.stats.restarts += 1
            self._restarted.set()
            self._restarted = asyncio.Event()
