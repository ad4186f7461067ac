"""Replay over HTTP and from the command line: same message_ids, same bodies, `x-replay: true`.

Every test runs on a SQLite file and on a PostgreSQL database (`any_database`); what only
several replicas on PostgreSQL can show is in test_pg_replay.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from receiver.app import create_app
from receiver.storage.engine import Database, PostgresUrl
from testbed.service import free_port
from tests.conftest import ClientFactory
from tests.support import engines
from tests.support.amqp import Received, Tap
from tests.support.helpers import eventually_async, payload, signed, snapshot
from tests.support.postgres import stored_events
from tests.support.publishing import post_all

TOKEN = "api-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[web.Request, web.Application]

# Every test here on both engines (tests/support/engines.py; `broker_settings` builds on it).
make_settings = engines.make_settings


def _cli_database(database: Database) -> str:
    return database.dsn() if isinstance(database, PostgresUrl) else str(database)


async def _unpublished(database: Database) -> bool:
    return not await stored_events(database, "published_at IS NULL")


def _begin(n: int) -> dict[str, Any]:
    return signed({**payload("push_begin_1.json"), "stream_id": "b", "sequence": str(n)})


@pytest.fixture
async def published(
    aiohttp_client: ClientFactory,
    broker_settings: Any,
    amqp_url: str,
    exchange_name: str,
    any_database: Database,
) -> Any:
    """A running service whose 10 snapshots (streams a, b) and 3 stream_begins were delivered."""
    tap = await Tap(amqp_url, exchange_name).open()
    client = await aiohttp_client(create_app(broker_settings(api_token=TOKEN)))
    await post_all(client, [snapshot("a" if n % 2 else "b", n) for n in range(10)])
    await post_all(client, [_begin(n) for n in range(3)])
    await tap.wait_for(13)
    await eventually_async(lambda: _unpublished(any_database), what="all published")
    originals = list(tap.received)
    tap.received.clear()
    try:
        yield client, tap, originals
    finally:
        await tap.close()
        await tap.delete()


def _check_replayed(replayed: list[Received], originals: list[Received]) -> None:
    by_id = {m.message_id: m for m in originals}
    for message in replayed:
        original = by_id[message.message_id]  # the same message_id as the first delivery
        assert message.headers == {**original.headers, "x-replay": True}
        assert message.raw == original.raw  # the same body, byte for byte
        assert message.routing_key == original.routing_key
        assert message.properties == original.properties


async def test_replay_over_http_republishes_with_the_same_ids(published: Any) -> None:
    client, tap, originals = published
    response = await client.post("/api/events/replay", json={"kind": "snapshot"}, headers=AUTH)
    assert response.status == 202, await response.text()
    job = (await response.json())["replay"]
    assert job["matched"] == 10
    assert job["filter"] == {"kind": ["snapshot"]}
    location = response.headers["Location"]
    assert location == f"/api/events/replay/{job['id']}"

    async def finished() -> bool:
        nonlocal job
        answer = await client.get(location, headers=AUTH)
        assert answer.status == 200
        job = (await answer.json())["replay"]
        return bool(job["state"] != "running")

    await eventually_async(finished, what="replay finished")
    assert job["state"] == "done", job
    assert (job["published"], job["unroutable"], job["failed"]) == (10, 0, 0)
    replayed = await tap.wait_for(10)
    snapshots = [m.message_id for m in originals if m.routing_key == "css.snapshot"]
    assert [m.message_id for m in replayed] == snapshots  # storage order
    _check_replayed(replayed, originals)
    metrics = await (await client.get("/metrics")).text()
    assert "receiver_replayed_total 10.0" in metrics

    # Filters combine: one stream of one kind.
    response = await client.post(
        "/api/events/replay", json={"kind": ["stream_begin"], "stream_id": "b"}, headers=AUTH
    )
    assert response.status == 202
    assert (await response.json())["replay"]["matched"] == 3
    more = await tap.wait_for(13)
    _check_replayed(more[10:], originals)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "authorization_missing"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "authorization_malformed"),
        ({"Authorization": "Bearer wrong-token"}, "token_mismatch"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "token_mismatch"),
    ],
)
async def test_replay_requires_the_api_token(
    aiohttp_client: ClientFactory, broker_settings: Any, headers: dict[str, str], error: str
) -> None:
    client = await aiohttp_client(create_app(broker_settings(api_token=TOKEN)))
    response = await client.post("/api/events/replay", json={"all": True}, headers=headers)
    assert response.status == 401
    body = await response.json()
    assert body["error"] == error
    assert TOKEN not in await response.text()
    metrics = await (await client.get("/metrics")).text()
    assert f'receiver_api_refusals_total{{reason="{error}"}} 1.0' in metrics


async def test_replay_is_off_without_a_broker(
    aiohttp_client: ClientFactory, make_settings: Any
) -> None:
    no_broker = await aiohttp_client(create_app(make_settings(api_token=TOKEN)))
    response = await no_broker.post("/api/events/replay", json={"all": True}, headers=AUTH)
    assert response.status == 503
    assert (await response.json())["error"] == "broker_disabled"
    await no_broker.close()  # one service per database: the next one starts once this one stopped

    url = SecretStr(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    dead = await aiohttp_client(create_app(make_settings(api_token=TOKEN, amqp_url=url)))
    response = await dead.post("/api/events/replay", json={"all": True}, headers=AUTH)
    assert response.status == 503
    assert (await response.json())["error"] == "broker_unavailable"


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (b"", "no filter given"),
        (b"{}", "no filter given"),
        (b"[1]", "JSON object"),
        (b"{not json", "not valid JSON"),
        (b'{"kind": "porno"}', "unknown kind 'porno'"),
        (b'{"since": "yesterday"}', "since"),
        (b'{"since": "2024-05-02T00:00:00Z", "until": 1714521600}', "since must be earlier"),
        (b'{"since": "2024-05-02"}', "add Z or an offset"),
        (b'{"stream": "x"}', "'stream' is now called 'stream_id'"),
        (b'{"stream_id": "x", "limit": 3}', "limit"),
    ],
)
async def test_bad_replay_requests_are_400_naming_the_problem(
    aiohttp_client: ClientFactory, broker_settings: Any, body: bytes, mentions: str
) -> None:
    client = await aiohttp_client(create_app(broker_settings(api_token=TOKEN)))
    response = await client.post("/api/events/replay", data=body, headers=AUTH)
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "replay_invalid"
    assert mentions in answer["message"]


async def test_unknown_replay_job_is_404(
    aiohttp_client: ClientFactory, broker_settings: Any
) -> None:
    client = await aiohttp_client(create_app(broker_settings(api_token=TOKEN)))
    response = await client.get("/api/events/replay/nope", headers=AUTH)
    assert response.status == 404
    assert (await response.json())["error"] == "replay_not_found"


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        "replay",
        *args,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_replay_command_works_on_the_database(
    published: Any, amqp_url: str, exchange_name: str, any_database: Database
) -> None:
    _, tap, originals = published
    env = {"RECEIVER_AMQP_URL": amqp_url, "RECEIVER_AMQP_EXCHANGE": exchange_name}
    db = ["--database", _cli_database(any_database)]

    code, out, err = await _cli("--stream", "a", "--dry-run", *db, env=env)
    assert code == 0, err
    assert out.startswith("5 events match")

    code, out, err = await _cli("--stream", "a", "--kind", "snapshot", *db, env=env)
    assert code == 0, err
    assert "replayed 5 events" in out
    assert "replay: 5/5 events (100%)" in err  # progress
    assert "guest:guest" not in out + err  # the URL is shown masked
    replayed = await tap.wait_for(5)
    expected = [r["id"] for r in await stored_events(any_database, "stream_id = 'a'")]
    assert [m.message_id for m in replayed] == expected
    _check_replayed(replayed, originals)

    code, out, err = await _cli("--since", "2000-01-01T00:00:00Z", *db, env=env)
    assert code == 0, err
    assert "replayed 13 events" in out


async def test_replay_command_refuses_bad_options(any_database: Database, amqp_url: str) -> None:
    env = {"RECEIVER_AMQP_URL": amqp_url}
    db = ["--database", _cli_database(any_database)]
    code, _, err = await _cli(*db, env=env)
    assert code == 2
    assert "no filter given" in err
    code, _, err = await _cli("--kind", "nope", *db, env=env)
    assert code == 2
    assert "unknown kind 'nope'" in err
    code, _, err = await _cli("--all", *db, env={})
    assert code == 2
    assert "RECEIVER_AMQP_URL is not set" in err
    code, _, err = await _cli("--all", *db, env=env)
    if isinstance(any_database, PostgresUrl):  # a database nothing was ever stored in
        assert code == 1
        assert "run `receiver migrate`" in err
    else:
        assert code == 2
        assert "no database" in err
