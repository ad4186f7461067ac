"""Readiness follows the callback commits: 503 whenever callbacks are refused for storage,
steadily; a fold that cannot store events degrades readiness instead (nothing is refused).

A heartbeat row that commits proves little: these are the two ways it commits while every
event fails (a damaged index of `events`; a disk with room for a page but not for an event).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
from pathlib import Path
from typing import Any

from receiver.storage.commit_health import CommitHealth
from receiver.storage.context import WRITER
from receiver.storage.inbox_file import inbox_path
from tests.support.helpers import count, eventually_async, payload, signed


def _damage_index(database: Path, index: str, *, state: str = "service_state") -> None:
    """Write garbage over the root page of `index` in the database file (or the inbox file,
    whose key-value table is `inbox_state`).

    The WAL is checkpointed first, so no newer copy of the page hides the damage, and a commit
    from this connection afterwards makes the writer drop its page cache and read the file.
    """
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        # The fold process and the reader may be mid-transaction: wait for them rather than
        # failing the checkpoint below (it answers busy without a busy timeout).
        conn.execute("PRAGMA busy_timeout = 10000")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        with database.open("r+b") as file:
            file.seek((root - 1) * page_size)
            file.write(b"\xff" * page_size)
        conn.execute(f"INSERT OR REPLACE INTO {state} (key, value) VALUES ('test', 'x')")  # noqa: S608 - test-only SQL
    finally:
        conn.close()


def _empty_wal(database: Path) -> None:
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        conn.close()


def _screenshot(n: int) -> str:
    return json.dumps(signed({**payload("screenshot_200.json"), "pic_url": f"/r/{n}.jpg"}))


async def _ready(client: Any) -> tuple[int, dict[str, Any]]:
    answer = await client.get("/readyz")
    report: dict[str, Any] = await answer.json()
    return answer.status, report


async def test_a_damaged_events_index_stops_the_fold_but_not_the_callbacks(
    client: Any, database: Path
) -> None:
    """The acknowledgement needs only the inbox: with `events` damaged, callbacks are still
    stored (in the inbox) and readiness stays 200, degraded, naming the fold's error."""
    assert (await client.post("/callbacks", data=_screenshot(0))).status == 200
    assert (await _ready(client))[0] == 200
    _damage_index(database, "events_dedupe")
    answer = await client.post("/callbacks", data=_screenshot(1))
    assert answer.status == 200, await answer.text()

    async def fold_stuck() -> bool:
        status, report = await _ready(client)
        assert status == 200, report
        return "malformed" in str(report["fold"].get("error"))

    await eventually_async(fold_stuck, what="readiness reports the fold's error")
    _, report = await _ready(client)
    assert report["status"] == "degraded" and report["database"]["writable"] is True
    assert report["fold"]["backlog"] >= 1


async def test_a_damaged_inbox_index_fails_callbacks_and_readiness(
    client: Any, database: Path
) -> None:
    assert (await client.post("/callbacks", data=_screenshot(0))).status == 200
    assert (await _ready(client))[0] == 200
    _damage_index(inbox_path(database), "inbox_id", state="inbox_state")
    answer = await client.post("/callbacks", data=_screenshot(1))
    assert answer.status == 503, await answer.text()
    status, report = await _ready(client)
    assert status == 503, report
    assert report["database"]["writable"] is False
    assert "malformed" in report["database"]["error"]
    # Every poll agrees while the index stays damaged: the probe retries the row that failed.
    for _ in range(5):
        assert (await _ready(client))[0] == 503


async def test_a_full_disk_keeps_readiness_at_503_while_callbacks_fail(
    client: Any, database: Path
) -> None:
    """Disk-full style: the writer may write only the first 8 KiB of a file (RLIMIT_FSIZE) and
    the WAL is emptied before every round, so a one-page commit still fits where an event's
    commit (a dozen pages) does not, as on a disk whose free space is what the WAL holds."""
    for n in range(10):
        assert (await client.post("/callbacks", data=_screenshot(n))).status == 200
    writer = client.server.app[WRITER]
    assert writer.pid is not None
    resource.prlimit(writer.pid, resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))
    try:
        callbacks: list[int] = []
        ready: list[int] = []
        for n in range(1, 21):
            _empty_wal(inbox_path(database))
            batch = [_screenshot(n * 100 + i) for i in range(5)]
            answers = await asyncio.gather(*(client.post("/callbacks", data=b) for b in batch))
            callbacks.extend(a.status for a in answers)
            ready.append((await _ready(client))[0])
        assert set(callbacks) == {503}
        assert ready == [503] * len(ready)
    finally:
        resource.prlimit(
            writer.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
    assert (await client.post("/callbacks", data=_screenshot(10_000))).status == 200

    async def recovered() -> bool:
        return (await _ready(client))[0] == 200

    await eventually_async(recovered, what="readiness recovers once the disk has room")
    assert count(database) == 11


def test_hysteresis_fails_at_once_and_recovers_only_after_quiet_success() -> None:
    now = [100.0]
    health = CommitHealth(recovery_seconds=5.0, clock=lambda: now[0])
    assert health.problem() is None
    health.failed("database or disk is full")
    problem = health.problem()
    assert problem is not None and "database or disk is full" in problem
    health.succeeded()
    now[0] += 4.9
    assert health.problem() is not None  # success, but a failure too recent: still failing
    health.failed("database or disk is full")  # commits fail every other time: stays failing
    now[0] += 5.0
    assert health.problem() is not None  # quiet long enough, but nothing succeeded since
    health.succeeded()
    assert health.problem() is None
    assert health.problem() is None
