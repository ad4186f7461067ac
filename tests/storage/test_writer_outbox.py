"""Outbox marks go through the fold process with its next commit, and never wake the relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from receiver.storage.connect import connect
from receiver.storage.fold_worker import FoldWorker, OutboxUpdate
from receiver.storage.inbox_file import prepare_inbox
from receiver.storage.migrations import apply_migrations
from tests.support.helpers import rows


async def test_marks_are_committed_quietly_and_keep_published_rows(tmp_path: Path) -> None:
    database = tmp_path / "w.db"
    conn = await connect(database)
    await apply_migrations(conn)
    await conn.executemany(
        "INSERT INTO events (id, event_type, kind, dedupe_key, received_at, payload)"
        " VALUES (?, 1, 'stream_begin', ?, 1.0, '{}')",
        [("a", "k1"), ("b", "k2"), ("c", "k3")],
    )
    await conn.close()
    prepare_inbox(database)
    writer = FoldWorker(database)
    wakes: list[int] = []
    writer.add_listener(lambda: wakes.append(1))
    await writer.start()
    try:
        marks = [
            writer.update_outbox(
                OutboxUpdate(published=[(10.0, None, 1), (10.0, "unroutable", 2)])
            ),
            writer.update_outbox(OutboxUpdate(failed=[("timeout", 3)])),
            writer.update_outbox(OutboxUpdate(failed=[("late", 1)])),  # already published: kept
        ]
        await asyncio.gather(*marks)
    finally:
        await writer.close()
    assert wakes == []  # recording outcomes never triggers another pass
    stored = {r["id"]: r for r in rows(database)}
    assert (stored["a"]["published_at"], stored["a"]["last_error"]) == (10.0, None)
    assert (stored["b"]["published_at"], stored["b"]["last_error"]) == (10.0, "unroutable")
    assert (stored["c"]["published_at"], stored["c"]["last_error"]) == (None, "timeout")
    assert [stored[k]["publish_attempts"] for k in "abc"] == [1, 1, 1]
