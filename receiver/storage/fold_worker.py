"""The service's side of the fold process: what it folded, and what waits for it.

The fold process (`receiver.storage.fold_process`) is the database's only writer: it folds the
inbox into events and records the relay's publishing outcomes. This side tells it of new inbox
rows (`wake`, at most once per loop iteration), hands it the relay's marks, asks it to fold up to
a row now (an id asked for before its fold), and reports each fold: what it stored, for metrics;
that new events exist, for the relay (listeners are called after folds: only folded events can
be published); how far it got, for the writer, which may then delete those inbox rows; and the
fold's last error, for readiness.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.errors import CommitFailed
from receiver.storage.frames import (
    ActionMarks,
    Committed,
    Failed,
    Folded,
    FoldThrough,
    OutboxMarks,
    Probe,
    Reply,
    Wake,
    encode,
)
from receiver.storage.worker import WorkerProcess

FOLD_EVERYTHING = 2**62  # an inbox seq beyond any real one
_WAKE = encode(Wake())


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
class FoldStats:
    """Counters for tests: what the fold has done since the service started."""

    folds: int = 0
    rows_inserted: int = 0  # events stored
    duplicates: int = 0  # callbacks that repeated a stored event
    fold_failures: int = 0
    through: int = 0  # the last inbox seq folded


FoldObserver = Callable[[Folded], None]


class FoldWorker(WorkerProcess):
    """Runs and talks to the fold process."""

    name = "fold"

    def __init__(
        self,
        database: Path,
        *,
        batch: int | None = None,
        priority: str | None = None,
        log_level: str = "INFO",
        log_format: str = "text",
        moderation: str | None = None,
        on_fold: FoldObserver | None = None,
        on_through: Callable[[int], None] | None = None,
    ) -> None:
        args = ["--database", str(database), "--log-level", log_level, "--log-format", log_format]
        if batch is not None:
            args += ["--batch", str(batch)]
        if priority is not None:
            args += ["--priority", priority]
        if moderation is not None:
            args += ["--moderation", moderation]
        super().__init__("receiver.storage.fold_process", args)
        self._on_fold = on_fold
        # Told how far the fold got (the writer deletes those inbox rows).
        self.on_through = on_through
        self._listeners: list[Callable[[], None]] = []
        self._woken = False
        # The last fold's error while the fold is stuck on a row (None once it moves again).
        self.fold_error: str | None = None
        # When the fold process last committed anything (monotonic clock): recent proof that
        # the database takes its writes, which readiness uses before asking for a probe.
        self.last_commit: float | None = None
        self.stats = FoldStats()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every fold that stored new events (the outbox wakes on it)."""
        self._listeners.append(callback)

    def wake(self) -> None:
        """New inbox rows: tell the fold process (once per loop iteration at most)."""
        if self._woken or not self.running or self._closing:
            return
        self._woken = True
        self._post(_WAKE)

    def _flush(self) -> None:
        self._woken = False
        super()._flush()

    async def probe(self) -> None:
        """Commit a heartbeat in the database (`CommitFailed` says why it could not)."""
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

    async def mark_actions(self, marks: Sequence[tuple[int, str, float, str | None]]) -> None:
        """Record moderation executor reports; returns once they are committed (raises
        `CommitFailed` if they could not be). A finished action stores its published event in
        that commit, so the listeners (the relay) are told of new events."""
        rid = self._new_rid()
        await self._send(rid, encode(ActionMarks(rid, list(marks))))
        if any(state in ("done", "failed") for _, state, _, _ in marks):
            for listener in self._listeners:
                listener()

    def _on_replies(self, messages: Sequence[Reply]) -> None:
        new_events = False
        for message in messages:
            if isinstance(message, Committed):
                self.last_commit = time.monotonic()
                for rid in message.done:
                    self._settle(rid, None)
            elif isinstance(message, Folded):
                new_events |= self._on_folded(message)
            elif isinstance(message, Failed):
                self._settle(message.rid, exc=CommitFailed(message.message))
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
            self.last_commit = time.monotonic()
        if folded.through > self.stats.through:
            self.stats.through = folded.through
            if self.on_through is not None:
                self.on_through(folded.through)
        if self._on_fold is not None:
            self._on_fold(folded)
        for rid in folded.done:
            self._settle(rid, None)
        return stored > 0
