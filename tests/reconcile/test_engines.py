"""One reconciliation story on both engines: the same API answers, row for row.

SQLite matches reconciled events with their real callbacks in its fold (Python), PostgreSQL in a
trigger (SQL): the same rule written twice. The story below goes through every branch of it (a
takeover by time and by key, a real end adopting a session begun from the online list, a
reconciled copy of a stored callback, retries) on a SQLite file and on a PostgreSQL database,
and compares what the history API shows of every stream, session and event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from receiver.app import create_app
from receiver.reconcile.bodies import online_begin_body
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from tests.conftest import ClientFactory
from tests.reconcile.support import run, submitter
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.fake_tencent import FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.helpers import folded, get, post

NOW = time.time()
T = int(NOW) - 3600
# What differs by nature between two runs: ids, arrival times, and the signature's expiry.
_VOLATILE = frozenset({"id", "received_at", "last_received_at", "published_at", "t", "sign"})


async def story(client: Any, fake: FakeTencent) -> None:
    await post(client, push_begin("no-end", "2002", T + 100))  # its end is lost
    report = await run(client, fake, since=T - 600, until=NOW, apply=False)
    # The real callbacks of one push are stored after the sweep read its record, before the
    # reconciled copies: those are duplicates of them.
    await post(
        client,
        push_begin("early", "6006", T + 400),
        stream_end("early", "6006", T + 460, duration_ms=60_000),
    )
    await submitter(client).submit(report.bodies)
    # The online list shows a stream we never saw begin.
    await submitter(client).submit([online_begin_body((DOMAIN, APP, "unseen"), T + 3000)])
    await folded(client)
    await post(
        client,
        push_begin("lost", "3003", T + 201),  # one second off Tencent's record: by time
        stream_end("lost", "3003", T + 800, duration_ms=599_000),
        stream_end("no-end", "2002", T + 700, duration_ms=600_000, errcode=1),  # by key
        stream_end("unseen", "9009", T + 3060, duration_ms=60_000),  # adopts the session
        push_begin("lost", "3003", T + 201),  # a retry: a plain duplicate
    )


async def shown(client: Any) -> dict[str, Any]:
    streams = (await get(client, "/api/streams?order=asc&limit=100"))["streams"]
    seen: dict[str, Any] = {"streams": _stable(streams)}
    for stream in streams:
        name = stream["stream_id"]
        sessions = (await get(client, f"/api/streams/{name}/sessions?limit=100"))["sessions"]
        events = (await get(client, f"/api/events?stream_id={name}&order=asc&limit=100"))["events"]
        seen[name] = {"sessions": _stable(sessions), "events": _stable(events)}
    return seen


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE and k[-3:] != "_id"}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def test_the_same_story_shows_the_same_history_on_both_engines(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    fake_tencent: FakeTencent,
    database: Path,
    pg_url: str,
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "no-end", start=T + 100, end=T + 700)
    streams.add_record(DOMAIN, APP, "lost", start=T + 200, end=T + 800, reason="bye")
    streams.add_record(DOMAIN, APP, "early", start=T + 400, end=T + 460)
    seen: list[dict[str, Any]] = []
    engines: tuple[Database, ...] = (database, PostgresUrl(pg_url))
    for engine in engines:
        client = await aiohttp_client(create_app(make_settings(database=engine)))
        await story(client, fake_tencent)
        seen.append(await shown(client))
    sqlite, postgresql = seen
    assert postgresql == sqlite
    lost = sqlite["lost"]
    assert [(e["kind"], e["source"]) for e in lost["events"]] == [
        ("stream_begin", "confirmed"),
        ("stream_end", "confirmed"),
    ]
    assert [(s["sequence"], s["state"]) for s in lost["sessions"]] == [("3003", "ended")]
    assert [s["state"] for s in sqlite["unseen"]["sessions"]] == ["ended"]
    assert [e["source"] for e in sqlite["early"]["events"]] == ["callback", "callback"]
