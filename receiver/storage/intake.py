"""What the callback pipeline hands an accepted callback to: the engine's intake.

SQLite: the writer process (`receiver.storage.writer.EventWriter`), which appends to the inbox
file. PostgreSQL: `receiver.storage.postgres.intake.PostgresIntake`, which commits events from
this process. Either way the future resolves to an event id only once the callback is on disk.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web


class Intake(Protocol):
    def submit(
        self, event_type: int, payload: bytes, received_at: float, path_kind: str | None
    ) -> asyncio.Future[str]:
        """Store an authenticated callback body (valid UTF-8 JSON); resolves to the id to
        answer with, or fails with `StorageUnavailable`."""
        ...


INTAKE = web.AppKey("intake", Intake)
