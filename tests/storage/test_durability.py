"""Durability: events survive restarts, commits are shared, failures answer 503, never 200."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from receiver.app import create_app
from receiver.storage.context import FOLDER, WRITER
from receiver.storage.fold_worker import OutboxUpdate
from receiver.storage.migrations import load_migrations
from tests.conftest import ClientFactory
from tests.support.helpers import (
    API_TOKEN,
    count,
    eventually,
    eventually_async,
    payload,
    rows,
    signed,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_events_survive_a_restart(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path
) -> None:
    first = await aiohttp_client(create_app(make_settings()))
    bodies = [signed({**payload("push_begin_1.json"), "sequence": str(i)}) for i in range(20)]
    for body in bodies:
        assert (await first.post("/callbacks", json=body)).status == 200
    await first.close()  # full shutdown: writer flushed, connections closed

    second = await aiohttp_client(create_app(make_settings()))
    assert [r["sequence"] for r in rows(database)] == [str(i) for i in range(20)]
    # A retry arriving after the restart is still recognised as a duplicate.
    assert (await second.post("/callbacks", json=bodies[0])).status == 200
    assert count(database) == 20
    metrics = await (await second.get("/metrics")).text()
    assert 'receiver_duplicates_total{kind="stream_begin"} 1.0' in metrics


async def test_concurrent_requests_share_commits(client: Any, database: Path) -> None:
    n = 300
    bodies = [
        json.dumps(signed({**payload("screenshot_200.json"), "pic_url": f"/p/{i}.jpg"}))
        for i in range(n)
    ]
    responses = await asyncio.gather(*(client.post("/callbacks", data=b) for b in bodies))
    assert [r.status for r in responses] == [200] * n
    assert count(database) == n
    folds = client.server.app[FOLDER].stats
    await eventually(lambda: folds.rows_inserted == n, what="every fold reported")
    stats = client.server.app[WRITER].stats
    assert stats.transactions < n / 2, stats
    assert stats.largest_batch > 1


async def test_an_event_the_database_refuses_is_kept_and_spares_the_rest(
    client: Any, database: Path
) -> None:
    """A callback `events` refuses (here: a trigger) is acknowledged (it is on disk in the
    inbox), kept verbatim in fold_rejects and reported; the events after it fold on."""
    conn = sqlite3.connect(database)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.stream_id = 'poison'"
        " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    conn.commit()
    conn.close()
    good = [signed({**payload("push_begin_1.json"), "sequence": str(i)}) for i in range(10)]
    bad = signed({**payload("push_begin_1.json"), "stream_id": "poison"})
    responses = await asyncio.gather(
        *(client.post("/callbacks", json=b) for b in [*good[:5], bad, *good[5:]])
    )
    assert [r.status for r in responses] == [200] * 11
    assert count(database) == 10
    assert all(r["stream_id"] == "test_stream" for r in rows(database))
    conn = sqlite3.connect(database)
    try:
        kept = conn.execute("SELECT id, payload, error FROM fold_rejects").fetchall()
    finally:
        conn.close()
    assert len(kept) == 1
    assert kept[0][0] == responses[5].headers["X-Event-Id"]
    assert json.loads(kept[0][1])["stream_id"] == "poison"
    assert "disk says no" in kept[0][2]
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "degraded"
    assert ready["fold"]["rejected"] == 1 and "fold_rejects" in ready["fold"]["error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_callbacks_total{kind="stream_begin",result="rejected"} 1.0' in metrics


async def test_readyz_degrades_when_the_database_refuses_the_folds_writes(
    client: Any, database: Path
) -> None:
    """The database refusing writes stops history and publishing, not acknowledgements (the
    inbox file takes them): readiness says so, degraded, naming the error."""
    ready = await client.get("/readyz")
    assert ready.status == 200
    report = await ready.json()
    assert report["status"] == "ok"
    assert report["database"]["writable"] is True

    conn = sqlite3.connect(database)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON service_state"
        " BEGIN SELECT RAISE(ABORT, 'read-only'); END"
    )
    conn.commit()
    conn.close()
    # A fold commit up to 5 s old is evidence enough; after that readiness asks for a probe.
    reports: list[dict[str, Any]] = []

    async def refused() -> bool:
        failing = await client.get("/readyz")
        assert failing.status == 200
        reports.append(await failing.json())
        return "read-only" in str(reports[-1]["fold"].get("error"))

    await eventually_async(refused, within=15, what="readiness reports the refused writes")
    assert reports[-1]["status"] == "degraded"
    assert reports[-1]["database"]["writable"] is True
    answer = await client.post("/callbacks", json=signed(payload("push_begin_1.json")))
    assert answer.status == 200


async def test_migrations_are_recorded_once(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path
) -> None:
    for _ in range(2):
        client = await aiohttp_client(create_app(make_settings()))
        await client.close()
    conn = sqlite3.connect(database)
    applied = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert applied == [(m.version, m.name) for m in load_migrations()]
    assert journal == "wal"


def test_migrate_command(tmp_path: Path) -> None:
    database = tmp_path / "sub" / "r.db"
    run = [sys.executable, "-m", "receiver", "migrate", "--database", str(database)]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "applied 0001_events" in first.stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "up to date" in second.stdout


def test_wheel_ships_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("receiver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("receiver/migrations/"))
    expected = sorted(  # SQLite's, and PostgreSQL's in their own folder
        f"receiver/{p.relative_to(ROOT)}" for p in (ROOT / "migrations").glob("**/*.sql")
    )
    assert shipped == expected
    # Installed from the wheel (no source tree beside it), the runner finds them as resources.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(site)!r}); "
            "from receiver.storage.migrations import load_migrations, migrations_dir; "
            "from receiver.storage.postgres.migrations import postgres_migrations; "
            "print(migrations_dir(), len(load_migrations()) + len(postgres_migrations()))",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split()
    assert found == [str(site / "receiver" / "migrations"), str(len(expected))]


async def test_writer_process_crash_answers_503_then_recovers(client: Any, database: Path) -> None:
    writer = client.server.app[WRITER]
    first = signed(payload("push_begin_1.json"))
    assert (await client.post("/callbacks", json=first)).status == 200
    pid = writer.pid
    assert pid is not None
    restarted = asyncio.ensure_future(writer.wait_restarted())
    os.kill(pid, signal.SIGKILL)
    # While the writer is down, callbacks are refused with 503 (CSS retries), never 200.
    second = signed(payload("stream_end_0.json"))
    while not restarted.done():
        response = await client.post("/callbacks", json=second)
        if response.status == 200:
            break  # sent before the crash was noticed and committed by the new writer
        assert response.status == 503
        assert (await response.json())["error"] == "storage_unavailable"
        await asyncio.wait([restarted], timeout=20)
    await asyncio.wait_for(restarted, 20)
    assert (await client.post("/callbacks", json=second)).status == 200
    assert writer.pid != pid
    assert writer.restarts == 1
    assert [r["kind"] for r in rows(database)] == ["stream_begin", "stream_end"]
    # The restarted writer still knows what is stored: a retry is a duplicate.
    assert (await client.post("/callbacks", json=first)).status == 200
    assert count(database) == 2


async def test_outbox_updates_are_recorded_by_the_fold_process(client: Any, database: Path) -> None:
    for i in range(3):
        body = signed({**payload("push_begin_1.json"), "sequence": str(i)})
        assert (await client.post("/callbacks", json=body)).status == 200
    first, second, third = (r["seq"] for r in rows(database))
    writer = client.server.app[FOLDER]
    update = OutboxUpdate(published=[(1700000000.5, None, first)], failed=[("timeout", second)])
    await writer.update_outbox(update)
    stored = {r["seq"]: r for r in rows(database)}
    assert stored[first]["published_at"] == 1700000000.5
    assert stored[first]["publish_attempts"] == 1
    assert stored[second]["published_at"] is None
    assert (stored[second]["last_error"], stored[second]["publish_attempts"]) == ("timeout", 1)
    assert stored[third]["publish_attempts"] == 0


async def test_a_duplicate_is_acknowledged_with_an_id_that_finds_the_stored_event(
    client: Any, database: Path
) -> None:
    """Retries, also two in one commit, are stored once; the id each was acknowledged with
    finds the event it repeats."""
    writer = client.server.app[WRITER]
    body = json.dumps(signed(payload("screenshot_200.json"))).encode()
    first = await writer.submit(200, body, 1_700_000_000.0, None)
    again, in_one_commit = await asyncio.gather(
        writer.submit(200, body, 1_700_000_001.0, None),
        writer.submit(200, body, 1_700_000_002.0, None),
    )
    assert len({first, again, in_one_commit}) == 3
    assert [r["id"] for r in rows(database)] == [first]
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    for acknowledged in (first, again, in_one_commit):
        answer = await client.get(f"/api/events/{acknowledged}", headers=headers)
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["id"] == first
