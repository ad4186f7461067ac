"""The storage contract on both engines: the same callbacks, the same answers, the same rows.

Each test runs once on a SQLite file and once on a fresh PostgreSQL database (`any_database`),
over real HTTP: what a callback is answered, what is stored, what the API and readiness say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from tests.conftest import ClientFactory
from tests.support.helpers import AUTH, payload, signed, snapshot
from tests.support.postgres import stored_events

Client = TestClient[web.Request, web.Application]


async def _client(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], database: Database
) -> Client:
    return await aiohttp_client(create_app(make_settings(database=database)))


async def test_an_acknowledged_callback_is_stored_and_found_by_its_id(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> None:
    client = await _client(aiohttp_client, make_settings, any_database)
    body = signed(payload("push_begin_1.json"))
    answer = await client.post("/callbacks", json=body)
    assert answer.status == 200, await answer.text()
    assert await answer.json() == {"code": 0}
    event_id = answer.headers["X-Event-Id"]

    found = await client.get(f"/api/events/{event_id}", headers=AUTH)
    assert found.status == 200, await found.text()
    event = await found.json()
    assert event["id"] == event_id
    assert event["kind"] == "stream_begin"
    assert event["stream_id"] == body["stream_id"]
    assert event["payload"] == body

    stored = await stored_events(any_database)
    assert [row["id"] for row in stored] == [event_id]
    missing = await client.get("/api/events/no-such-id", headers=AUTH)
    assert missing.status == 404
    assert (await missing.json())["error"] == "event_not_found"


async def test_concurrent_retries_store_one_row_and_every_one_is_answered_200(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> None:
    client = await _client(aiohttp_client, make_settings, any_database)
    base = payload("stream_end_0.json")
    # Each retry is signed afresh and its keys come in another order: the same event.
    retries = [signed(dict(reversed(base.items())) if n % 2 else base) for n in range(20)]
    answers = await asyncio.gather(*(client.post("/callbacks", json=body) for body in retries))
    assert [answer.status for answer in answers] == [200] * len(retries)
    ids = {answer.headers["X-Event-Id"] for answer in answers}
    stored = await stored_events(any_database)
    assert len(stored) == 1
    for event_id in ids:  # every id a retry was answered with finds the one event
        found = await client.get(f"/api/events/{event_id}", headers=AUTH)
        assert (await found.json())["id"] == stored[0]["id"]
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_callbacks_total{kind="stream_end",result="stored"} 1.0' in metrics
    assert 'receiver_callbacks_total{kind="stream_end",result="duplicate"} 19.0' in metrics


async def test_events_are_listed_newest_first_in_pages(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> None:
    client = await _client(aiohttp_client, make_settings, any_database)
    ids = []
    for n in range(5):
        answer = await client.post("/callbacks", json=snapshot("cam-1", n))
        assert answer.status == 200
        ids.append(answer.headers["X-Event-Id"])
    other = await client.post("/callbacks", json=snapshot("cam-2", 0))
    assert other.status == 200
    await stored_events(any_database)  # on SQLite: folded

    listed: list[str] = []
    url = "/api/events?stream_id=cam-1&limit=2"
    while True:
        page = await (await client.get(url, headers=AUTH)).json()
        listed += [event["id"] for event in page["events"]]
        if page["next_cursor"] is None:
            break
        url = f"/api/events?stream_id=cam-1&limit=2&cursor={page['next_cursor']}"
    assert listed == ids[::-1]

    oldest = await (await client.get("/api/events?order=asc&limit=1", headers=AUTH)).json()
    assert [event["id"] for event in oldest["events"]] == ids[:1]
    kinds = await (await client.get("/api/events?kind=stream_end", headers=AUTH)).json()
    assert kinds["events"] == []


async def test_readiness_reports_the_database(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> None:
    client = await _client(aiohttp_client, make_settings, any_database)
    answer = await client.post("/callbacks", json=snapshot("cam-1", 0))
    assert answer.status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    report: dict[str, Any] = await ready.json()
    assert report["status"] == "ok"
    database = report["database"]
    assert database["writable"] is True
    if isinstance(any_database, PostgresUrl):
        assert database["engine"] == "postgresql"
        assert database["pool"]["size"] >= 1
        assert database["last_commit_age_seconds"] < 60
        assert database["transactions"] >= 1
        metrics = await (await client.get("/metrics")).text()
        assert 'receiver_database_pool_connections{state="in_use"}' in metrics
        age = next(
            line for line in metrics.splitlines()
            if line.startswith("receiver_database_last_commit_age_seconds ")
        )  # fmt: skip
        assert 0 <= float(age.split()[1]) < 60


async def test_a_nul_character_in_the_identity_is_stored(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> None:
    # JSON may spell U+0000 (`\u0000`); PostgreSQL text cannot hold it, so there the normalised
    # columns read U+FFFD instead. The body is kept verbatim on both.
    client = await _client(aiohttp_client, make_settings, any_database)
    body = signed({**payload("push_begin_1.json"), "stream_id": "cam\u0000one"})
    answer = await client.post("/callbacks", json=body)
    assert answer.status == 200, await answer.text()
    (row,) = await stored_events(any_database)
    assert row["stream_id"].replace("\x00", "\ufffd") == "cam\ufffdone"
    event = await (await client.get(f"/api/events/{row['id']}", headers=AUTH)).json()
    assert event["payload"]["stream_id"] == "cam\u0000one"
