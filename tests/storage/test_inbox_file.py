"""The inbox file beside the database: parked callbacks moved into it once, its seq never behind
the fold, a lost one reported and replaced, another database's refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.errors import StartupRefused
from receiver.storage.ids import EventIds
from receiver.storage.inbox_file import inbox_files, inbox_path, prepare_inbox
from tests.conftest import ClientFactory
from tests.support.helpers import inbox_rows, payload, rows, signed


def _shots(tag: str, n: int) -> list[dict[str, Any]]:
    return [
        signed({**payload("screenshot_200.json"), "pic_url": f"/p/{tag}{i}.jpg"}) for i in range(n)
    ]


async def _serve_once(aiohttp_client: ClientFactory, settings: Any, bodies: list[Any]) -> None:
    client = await aiohttp_client(create_app(settings))
    for body in bodies:
        assert (await client.post("/callbacks", json=body)).status == 200
    rows(settings.database)  # folded
    await client.close()


def _park(database: Path, made: list[tuple[Any, ...]]) -> list[str]:
    """Callbacks parked in the database's own `inbox` table (a database from before the inbox
    file, or a backup copy)."""
    conn = sqlite3.connect(database)
    with conn:
        conn.executemany(
            "INSERT INTO inbox (id, event_type, received_at, path_kind, payload)"
            " VALUES (?, ?, ?, ?, ?)",
            made,
        )
    conn.close()
    return [row[0] for row in made]


async def test_parked_callbacks_are_moved_into_the_inbox_file_and_folded_once(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path
) -> None:
    settings = make_settings()
    await _serve_once(aiohttp_client, settings, _shots("a", 3))
    ids = EventIds()
    made = [
        (ids.new(), 200, 1_700_000_000.0 + n, None, json.dumps(b).encode())
        for n, b in enumerate(_shots("b", 4))
    ]
    parked = _park(database, made)
    prepare_inbox(database)
    assert inbox_rows(database) == 4
    # As if the move stopped between its two commits: the rows are in both files.
    _park(database, made)
    prepare_inbox(database)
    assert inbox_rows(database) == 4  # moved once
    await _serve_once(aiohttp_client, settings, _shots("c", 2))
    stored = rows(database)
    assert [r["id"] for r in stored][3:7] == parked
    assert len(stored) == 3 + 4 + 2
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    conn.close()


async def test_a_lost_inbox_file_is_replaced_and_new_callbacks_still_fold(
    aiohttp_client: ClientFactory,
    make_settings: Any,
    database: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings()
    await _serve_once(aiohttp_client, settings, _shots("a", 5))
    for path in inbox_files(database):
        path.unlink(missing_ok=True)
    await _serve_once(aiohttp_client, settings, _shots("b", 3))
    assert "was missing" in caplog.text
    # The new inbox continued after the fold's progress: nothing looked folded already.
    assert len(rows(database)) == 8


async def test_an_inbox_file_of_another_database_is_refused(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path, tmp_path: Path
) -> None:
    await _serve_once(aiohttp_client, make_settings(), _shots("a", 1))
    other = tmp_path / "other" / "receiver.db"
    await _serve_once(aiohttp_client, make_settings(database=other), _shots("b", 1))
    inbox_path(other).replace(inbox_path(database))
    with pytest.raises(StartupRefused, match="inbox of another database"):
        prepare_inbox(database)
