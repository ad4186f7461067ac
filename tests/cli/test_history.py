"""`receiver events` and `receiver streams`: the database read directly, read-only."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.cli import main
from receiver.settings import Settings
from receiver.storage.connect import connect
from receiver.storage.engine import Database, PostgresUrl
from tests.conftest import ClientFactory
from tests.support.css import push_begin, snapshot, stream_end
from tests.support.helpers import folded, signed

T0 = 1_703_731_000


async def _store(client: Any, *bodies: dict[str, Any]) -> None:
    """Post the callbacks; return once they are folded into events (the CLI reads those)."""
    for body in bodies:
        assert (await client.post("/callbacks", json=signed(body))).status == 200
    await folded(client)


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


HISTORY = (
    push_begin("cam1", "A", T0),
    snapshot("cam1", T0 + 5),
    stream_end("cam1", "A", T0 + 60, errcode=1),
    push_begin("cam2", "B", T0 + 100),
)


@pytest.fixture
async def history_db(client: Any, database: Path) -> Path:
    await _store(client, *HISTORY)
    return database


@pytest.fixture
async def any_history(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> str:
    """The same history on each engine; what `--database` takes for it."""
    client = await aiohttp_client(create_app(make_settings(database=any_database)))
    await _store(client, *HISTORY)
    return any_database.dsn() if isinstance(any_database, PostgresUrl) else str(any_database)


async def test_events_as_a_table_and_as_json_lines(
    any_history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await _cli(capsys, "events", "--database", any_history)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "RECEIVED", "(UTC)", "EVENT", "TIME", "KIND", "DOMAIN/APP/STREAM", "SEQUENCE", "SOURCE",
        "PUB", "ID",
    ]  # fmt: skip
    assert len(lines) == 5
    assert "stream_begin" in lines[1] and "test.domain.com/live/cam2" in lines[1]

    code, out, err = await _cli(
        capsys, "events", "--database", any_history, "--json", "--stream", "cam1",
        "--kind", "stream_end", "--kind", "snapshot", "--since", "2023-12-28T02:36:40Z",
    )  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["kind"] for e in events] == ["stream_end", "snapshot"]
    assert events[0]["payload"]["errcode"] == 1


async def test_all_pages_through_everything(
    any_history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await _cli(
        capsys, "events", "--database", any_history, "--json", "--all", "--limit", "1",
        "--order", "asc",
    )  # fmt: skip
    assert code == 0
    assert [json.loads(line)["kind"] for line in out.splitlines()] == [
        "stream_begin", "snapshot", "stream_end", "stream_begin",
    ]  # fmt: skip


async def test_streams_and_live_streams(
    any_history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await _cli(capsys, "streams", "--database", any_history)
    assert code == 0, err
    rows = out.splitlines()
    assert rows[0].split()[:2] == ["DOMAIN/APP/STREAM", "STATE"]
    assert "cam2" in rows[1] and "live" in rows[1]
    assert "cam1" in rows[2] and "ended" in rows[2]
    assert "1: the publisher stopped the push" in rows[2]

    code, out, _ = await _cli(capsys, "streams", "--database", any_history, "--live", "--json")
    assert code == 0
    (live,) = [json.loads(line) for line in out.splitlines()]
    assert live["stream_id"] == "cam2" and live["state"] == "live"


async def test_bad_options_and_missing_database_are_one_line_errors(
    tmp_path: Path, history_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await _cli(capsys, "events", "--database", str(history_db), "--since", "today")
    assert code == 2 and out == ""
    assert err.startswith("receiver events: since: expected unix seconds")
    code, _, err = await _cli(capsys, "events", "--database", str(history_db), "--limit", "0")
    assert code == 2 and "limit:" in err
    code, _, err = await _cli(capsys, "streams", "--database", str(tmp_path / "none.db"))
    assert code == 1 and f"no database at {tmp_path / 'none.db'}" in err


def test_an_unmigrated_database_asks_for_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "old.db"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name, applied_at)")
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'events', 0)")
    conn.commit()
    conn.close()
    assert main(["streams", "--database", str(database)]) == 1
    assert "run `receiver migrate`" in capsys.readouterr().err


async def test_the_cli_connection_cannot_write(history_db: Path) -> None:
    conn = await connect(history_db, readonly=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await conn.execute("DELETE FROM events")
    await conn.close()


async def test_a_name_longer_than_any_url_is_found_by_the_cli(
    client: Any, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The filters take any length the intake stores; only a URL's length bounds the HTTP API."""
    name = "n" * 100_000
    await _store(client, push_begin(name, "A", T0))
    for command in ("events", "streams"):
        code, out, err = await _cli(
            capsys, command, "--database", str(database), "--stream", name, "--json"
        )
        assert code == 0, err
        (line,) = out.splitlines()
        assert json.loads(line)["stream_id"] == name
