"""Handing reconciled events to storage the way callbacks go: the engine's intake.

Why not write `events` directly: the intake is where deduplication, the history tables and the
outbox order are decided (SQLite: an inbox row, then the fold; PostgreSQL: `store_events` and
its triggers). A reconciled event goes the same way, is deduplicated (also against its real
callback: `storage/reconciled.py`; on PostgreSQL the `events_reconciled` trigger) and
published by the same code as any callback, in storage order.

Three ways in, one row shape (`RECONCILED_PATH` as the row's `path_kind` marks its source):
- inside the service (the background reconciliation): through the app's intake, like a
  callback (`IntakeSubmitter`: the writer process on SQLite, `PostgresIntake` on PostgreSQL);
- from `receiver tencent reconcile --apply` on PostgreSQL: through a `PostgresIntake` of the
  command's own (committed when `submit` returns; any replica publishes it);
- from `receiver tencent reconcile --apply` on SQLite, a separate process: appended to the inbox
  file directly (`InboxFileSubmitter`). SQLite serialises it with the writer's commits; the fold
  looks at the inbox at least once a second even without being woken, so a running service
  folds and publishes it within about a second; a stopped one does at its next start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Protocol

import orjson

from receiver.storage.ids import EventIds
from receiver.storage.inbox_file import inbox_path, open_inbox
from receiver.storage.intake import Intake
from receiver.storage.reconciled import RECONCILED_PATH

_APPEND = (
    "INSERT INTO inbox (id, event_type, received_at, path_kind, payload) VALUES (?, ?, ?, ?, ?)"
)


class Submitter(Protocol):
    async def submit(self, bodies: list[dict[str, Any]]) -> list[str]:
        """Store these bodies as reconciled events (in this order); their event ids."""
        ...


class IntakeSubmitter:
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def submit(self, bodies: list[dict[str, Any]]) -> list[str]:
        now = time.time()
        futures = [
            self._intake.submit(body["event_type"], orjson.dumps(body), now, RECONCILED_PATH)
            for body in bodies
        ]
        return list(await asyncio.gather(*futures))


class InboxFileSubmitter:
    """Appends to the inbox file of `database` in one transaction; `last_seq` is the inbox seq
    of the last row appended (the CLI waits for the fold to pass it)."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._ids = EventIds()
        self.last_seq = 0

    async def submit(self, bodies: list[dict[str, Any]]) -> list[str]:
        return await asyncio.to_thread(self._append, bodies)

    def _append(self, bodies: list[dict[str, Any]]) -> list[str]:
        if not inbox_path(self._database).exists():
            raise FileNotFoundError(
                f"no inbox file beside {self._database}: start `receiver serve` (or run "
                "`receiver migrate`) once first"
            )
        now = time.time()
        rows = [
            (self._ids.new(), body["event_type"], now, RECONCILED_PATH, orjson.dumps(body))
            for body in bodies
        ]
        conn = open_inbox(self._database)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    self.last_seq = conn.execute(_APPEND, row).lastrowid or self.last_seq
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        return [row[0] for row in rows]
