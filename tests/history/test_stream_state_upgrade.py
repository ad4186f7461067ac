"""Upgrading a database in place: migration 0004 rebuilds stream state from the stored events.

The database is built as the previous release left it (migrations up to 0003, events stored with
that release's statement), holding the events of issue 12's stream-state problems; the service
then starts on it, applies 0004, and answers from the rebuilt tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.app import create_app
from receiver.events import parse_event
from receiver.settings import Settings
from receiver.storage.dedupe import dedupe_key
from receiver.storage.ids import EventIds
from receiver.storage.migrations import _statements, load_migrations
from receiver.storage.rows import event_row, push_duration_ms
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.helpers import get

T0 = 1_703_731_000
BEFORE = 3  # the last migration of the previous release

# The writer's statement before 0004 (no `push_duration_ms` column yet).
INSERT_BEFORE_0004 = (
    "INSERT OR IGNORE INTO events (id, event_type, kind, dedupe_key, domain, app_name, stream_id,"
    " event_time, sequence, received_at, path_kind, schema_error, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def database_before_0004(path: Path, bodies: list[dict[str, Any]]) -> sqlite3.Connection:
    """A database at migration 0003 holding `bodies`, stored in order as that release did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at REAL NOT NULL)"
    )
    for migration in load_migrations():
        if migration.version > BEFORE:
            break
        conn.execute("BEGIN")
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, 0)", (migration.version, migration.name)
        )
        conn.execute("COMMIT")
    ids = EventIds()
    conn.execute("BEGIN")
    for n, body in enumerate(bodies):
        payload = orjson.dumps(body).decode()
        event_type = body["event_type"]
        row = event_row(
            ids.new(),
            parse_event(body, event_type),
            body=body,
            dedupe_key=dedupe_key(event_type, body),
            payload=payload,
            received_at=T0 + 1000 + n,
            path_kind=None,
        )
        conn.execute(INSERT_BEFORE_0004, row[:-1])  # the last value is 0004's new column
    conn.execute("COMMIT")
    return conn


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in fields}


PROBLEMS = [
    # (a) a backup push (2002) begins and ends while the main push (1001) goes on
    push_begin("a", "1001", T0),
    push_begin("a", "2002", T0 + 10),
    stream_end("a", "2002", T0 + 60, duration_ms=50_000),
    # (b) B replaced A, whose begin was never stored; A's end came a second after B's begin
    push_begin("b", "B", T0 + 50),
    stream_end("b", "A", T0 + 51, errcode=21, duration_ms=51_000),
    # (c) the end carries neither `app` nor `appname`
    push_begin("c", "C", T0),
    without(stream_end("c", "C", T0 + 60, duration_ms=60_000), "app", "appname"),
]


async def test_upgrading_rebuilds_stream_state_from_the_stored_events(
    aiohttp_client: Any, settings: Settings, database: Path
) -> None:
    old = database_before_0004(database, PROBLEMS)
    try:
        before = {
            (r["stream_id"], r["app_name"]): r["state"]
            for r in old.execute("SELECT stream_id, app_name, state FROM streams")
        }
    finally:
        old.close()
    # What 0002's triggers made of them: the problems, reproduced.
    assert before == {
        ("a", APP): "ended",
        ("b", APP): "ended",
        ("c", APP): "live",
        ("c", ""): "ended",
    }

    client = await aiohttp_client(create_app(settings))
    found = {s["stream_id"]: s for s in (await get(client, "/api/streams?order=asc"))["streams"]}
    assert sorted(found) == ["a", "b", "c"]  # no second row for c
    assert {name: (s["state"], s["open_sessions"]) for name, s in found.items()} == {
        "a": ("live", 1),
        "b": ("live", 1),
        "c": ("ended", 0),
    }
    assert (found["c"]["domain"], found["c"]["app_name"]) == (DOMAIN, APP)
    assert found["c"]["event_counts"] == {"stream_begin": 1, "stream_end": 1}
    assert found["a"]["current_sequence"] == "1001"
    assert found["b"]["current_sequence"] == "B"

    async def sessions(name: str) -> list[tuple[str, str, str]]:
        page = (await get(client, f"/api/streams/{name}/sessions"))["sessions"]
        return [(s["sequence"], s["state"], s["start"]) for s in page]

    assert await sessions("a") == [
        ("2002", "ended", "2023-12-28T02:36:50Z"),
        ("1001", "live", "2023-12-28T02:36:40Z"),
    ]
    assert await sessions("b") == [
        ("B", "live", "2023-12-28T02:37:30Z"),
        ("A", "ended", "2023-12-28T02:36:40Z"),  # placed 51 s before its end
    ]
    assert await sessions("c") == [("C", "ended", "2023-12-28T02:36:40Z")]
    with sqlite3.connect(database) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in load_migrations()]  # 0004 and every later one


MAX = 10**18 - 1  # 18 digits: the most the column takes
DURATIONS: list[tuple[object, int | None]] = [
    ("128581", 128581), (" 42 ", 42), ("0", 0), (5000, 5000), (0, 0), (1500.0, 1500),
    (-0.0, 0), (str(MAX), MAX), (MAX, MAX),
    (1.5, None), (-3, None), ("-3", None), ("+3", None), ("1e3", None), ("", None), (" ", None),
    ("12x", None), ("\t5", None), ("\u0661\u0662", None), ("1_000", None), (str(MAX + 1), None),
    (MAX + 1, None), (1e18, None), (1e300, None), (True, None), (False, None), (None, None),
    ([1], None), ({"ms": 1}, None),
]  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), DURATIONS, ids=repr)
def test_the_migration_reads_push_duration_as_the_writer_does(
    tmp_path: Path, value: object, expected: int | None
) -> None:
    body = {**stream_end("s", "A", T0), "push_duration": value}
    assert push_duration_ms(body) == expected  # the writer's reading
    conn = database_before_0004(tmp_path / "r.db", [body])
    try:
        (migration,) = [m for m in load_migrations() if m.version == BEFORE + 1]
        conn.execute("BEGIN")
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute("COMMIT")
        (stored,) = conn.execute("SELECT push_duration_ms FROM events").fetchone()
    finally:
        conn.close()
    assert stored == expected  # the migration's reading of events stored before it
