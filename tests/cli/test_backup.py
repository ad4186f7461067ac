"""`receiver backup`: a consistent copy while the service keeps storing, usable as a database."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp

from receiver.storage.backup import backup
from testbed.service import ServiceProcess
from tests.support.helpers import KEY, eventually, kept_payloads, payload, signed


def _receiver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_a_backup_under_load_holds_every_event_acknowledged_before_it(
    tmp_path: Path,
) -> None:
    database = tmp_path / "data" / "receiver.db"
    copy = tmp_path / "copy.db"
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def sender(session: aiohttp.ClientSession, worker: int) -> None:
        n = 0
        while not stop.is_set():
            pic = f"/{worker}/{n}.jpg"
            n += 1
            body = json.dumps(signed({**payload("screenshot_200.json"), "pic_url": pic}))
            async with session.post(f"{service.url}/callbacks", data=body) as response:
                assert response.status == 200, await response.text()
            acknowledged.append(pic)

    service = ServiceProcess(database, {"RECEIVER_CALLBACK_KEYS": KEY}).start()
    try:
        async with aiohttp.ClientSession() as session:
            senders = [asyncio.create_task(sender(session, worker)) for worker in range(8)]
            await eventually(lambda: len(acknowledged) >= 300, what="300 acknowledged events")
            before = set(acknowledged)
            made = await asyncio.to_thread(
                _receiver, "backup", str(copy), "--database", str(database), "--step-pages", "1"
            )
            during = len(acknowledged) - len(before)
            stop.set()
            await asyncio.gather(*senders)
        assert service.stop()[0] == 0
    finally:
        service.__exit__(None, None, None)
    assert made.returncode == 0, made.stderr
    assert f"to {copy}" in made.stdout
    assert during > 0  # the service kept acknowledging events while the backup ran
    # A copy holds what was folded as events and what was still in the inbox (folded when a
    # service opens the restored copy).
    stored = {json.loads(payload)["pic_url"] for payload in kept_payloads(copy)}
    assert before <= stored
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        conn.close()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not copy.with_name("copy.db-wal").exists()
    listing = _receiver("events", "--database", str(copy), "--all", "--json")
    assert listing.returncode == 0, listing.stderr
    conn = sqlite3.connect(copy)
    try:
        (folded,) = conn.execute("SELECT count(*) FROM events").fetchone()
    finally:
        conn.close()
    assert len(listing.stdout.splitlines()) == folded


def test_progress_is_reported_step_by_step(tmp_path: Path) -> None:
    database = tmp_path / "r.db"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, payload TEXT)")
    conn.executemany("INSERT INTO events (payload) VALUES (?)", (("x" * 1000,) for _ in range(500)))
    conn.commit()
    conn.close()
    steps: list[tuple[int, int]] = []
    made = backup(database, tmp_path, step_pages=10, progress=lambda *step: steps.append(step))
    assert made.path.parent == tmp_path and made.path.name.startswith("r-")
    assert made.last_seq == 500
    assert len(steps) > 10
    assert [copied for copied, _ in steps] == sorted(copied for copied, _ in steps)
    assert steps[-1][0] == steps[-1][1]


def test_an_existing_destination_is_never_overwritten(tmp_path: Path) -> None:
    database = tmp_path / "r.db"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY)")
    conn.close()
    target = tmp_path / "taken.db"
    target.write_text("keep me")
    made = _receiver("backup", str(target), "--database", str(database))
    assert made.returncode == 1
    assert made.stderr.strip() == f"receiver backup: {target} exists: back up to a new file"
    assert target.read_text() == "keep me"
    missing = _receiver("backup", str(tmp_path / "new.db"), "--database", str(tmp_path / "no.db"))
    assert missing.returncode == 1 and "no database at" in missing.stderr
    assert not (tmp_path / "new.db").exists()
