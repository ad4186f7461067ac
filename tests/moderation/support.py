"""Shared pieces of the moderation tests: the fake with stream control, actions from the
database (the SQLite file, or PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from receiver.app import create_app
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from receiver.tencent.autoregister import TencentSetup
from tests.support.fake_tencent import FakeTencent
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.postgres import fetch
from tests.support.tencent_helpers import credentials, instant

FINAL = ("done", "failed", "dry_run")


def actions(database: Path) -> list[dict[str, Any]]:
    """Every moderation action row, oldest first (read-only, beside the running service)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM moderation_actions ORDER BY id")]
    except sqlite3.OperationalError:  # not migrated yet
        return []
    finally:
        conn.close()


def finished(database: Path, count: int) -> bool:
    found = actions(database)
    return len(found) >= count and all(a["state"] in FINAL for a in found)


async def stored_actions(database: Database) -> list[dict[str, Any]]:
    """`actions` on either engine (what another client of the database sees)."""
    if isinstance(database, PostgresUrl):
        try:
            found = await fetch(database.dsn(), "SELECT * FROM moderation_actions ORDER BY id")
        except asyncpg.UndefinedTableError:  # not migrated yet
            return []
        return [dict(row) for row in found]
    return await asyncio.to_thread(actions, database)


async def all_finished(database: Database, count: int) -> bool:
    found = await stored_actions(database)
    return len(found) >= count and all(a["state"] in FINAL for a in found)


def result(action: dict[str, Any]) -> Any:
    return orjson.loads(action["result"]) if action["result"] else None


def action_log(found: list[dict[str, Any]], streams: FakeStreams | None = None) -> str:
    """One line per action (`found`), and what the fake processed, for the issue's closing note
    (printed by the tests with -s)."""
    lines = [
        f"#{a['id']} {a['action']} {a['domain']}/{a['app_name']}/{a['stream_id']}"
        f" session={a['session_key'] or '-'} state={a['state']} attempts={a['attempts']}"
        f" trigger={a['trigger_event_id']} ({a['trigger_reason']})"
        f" result={a['result']} confirmed={a['confirm_event_id'] or '-'}"
        for a in found
    ]
    if streams is not None:
        received = Counter(streams.fake.actions())
        lines.append(f"fake: processed {dict(streams.processed)}; received {dict(received)}")
    return "\n".join(lines)


def new_streams() -> FakeStreams:
    return FakeStreams(FakeTencent())


async def moderated(
    aiohttp_client: Callable[..., Awaitable[Any]],
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    **overrides: Any,
) -> Any:
    """A client of the real app with a forbid policy calling the fake (settings: `overrides`)."""
    settings = make_settings(
        **{"moderation_action": "forbid", "tencent_endpoint": streams.fake.url, **overrides}
    )
    setup = TencentSetup(credentials(), client_retry=instant())
    return await aiohttp_client(create_app(settings, tencent=setup))
