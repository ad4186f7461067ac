"""The service's side of the writer process: submit a callback, get told once it is on disk.

Why a process: a commit made from the HTTP process waits for its busy event loop and for the GIL
at every step, so under load a commit took many times what the disk needs (bench/README.md).
In its own process the writer commits as fast as the disk allows, on the other core, and the
request path keeps only what can refuse a request (parsing, authentication).

The writer only appends to the inbox file; the fold process (`receiver.storage.fold_worker`)
turns those rows into events. A callback committed whose reply was lost (the writer died after
its commit) comes back from CSS as a duplicate, which the fold absorbs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from receiver.errors import CommitFailed
from receiver.storage.frames import Committed, Event, Failed, Probe, Reply, Trim, encode
from receiver.storage.worker import WorkerProcess


@dataclass(slots=True)
class WriterStats:
    """Counters for tests and metrics: how many transactions carried how many rows."""

    transactions: int = 0
    appended: int = 0  # callbacks acknowledged (inbox rows committed)
    failures: int = 0
    largest_batch: int = 0


CommitObserver = Callable[[float, int], None]  # (seconds, batch size)


class EventWriter(WorkerProcess):
    """Runs and talks to the writer process. `submit()` resolves once the event is on disk."""

    name = "writer"

    def __init__(
        self,
        database: Path,
        *,
        max_batch: int = 1000,
        log_level: str = "INFO",
        log_format: str = "text",
        on_commit: CommitObserver | None = None,
        on_appended: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            "receiver.storage.writer_process",
            [
                "--database", str(database), "--max-batch", str(max_batch),
                "--log-level", log_level, "--log-format", log_format,
            ],
        )  # fmt: skip
        self._on_commit = on_commit
        self._on_appended = on_appended
        self.stats = WriterStats()

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
        """Commit a heartbeat and a rolled-back inbox row through the same path as callbacks.

        Fails (`CommitFailed`, its `detail` says why) while callback commits have been failing,
        even if this commit went through: see `receiver.storage.commit_health`.
        """
        rid = self._new_rid()
        await self._send(rid, encode(Probe(rid)))

    def trim(self, seq: int) -> None:
        """The fold has stored every inbox row up to `seq`: the writer may delete them."""
        if self.running and not self._closing:
            self._post(encode(Trim(seq)))

    def _on_replies(self, messages: Sequence[Reply]) -> None:
        appended = False
        for message in messages:
            if isinstance(message, Committed):
                seconds, size, acks, done = message
                self.stats.transactions += 1
                self.stats.largest_batch = max(self.stats.largest_batch, size)
                if self._on_commit is not None:
                    self._on_commit(seconds, size)
                self.stats.appended += len(acks)
                appended |= bool(acks)
                for rid, event_id in acks:
                    self._settle(rid, event_id)
                for rid in done:
                    self._settle(rid, None)
            elif isinstance(message, Failed):
                self.stats.failures += 1
                self._settle(message.rid, exc=CommitFailed(message.message))
        if appended and self._on_appended is not None:
            self._on_appended()
