"""Callbacks PostgreSQL refuses to store as events: kept verbatim in `fold_rejects`, answered
200 only once kept, counted in `/metrics`, reported by `/readyz`, logged escaped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import ClientFactory
from tests.support.helpers import AUTH, snapshot

# A trigger standing for whatever a database may refuse: a constraint added by an operator, a
# row-level policy, a value the column cannot hold.
_REFUSE = """
CREATE FUNCTION refuse_cursed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stream_id LIKE 'cursed%' THEN
        RAISE EXCEPTION 'refused by the test for %', NEW.stream_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_cursed BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_cursed();
"""


@pytest.fixture
async def client(
    pg_url: str, aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> TestClient[web.Request, web.Application]:
    """A replica whose database refuses events of streams named cursed*."""
    client = await aiohttp_client(create_app(make_settings(database=pg_url)))
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(_REFUSE)
    finally:
        await conn.close()
    return client


async def _rejects(pg_url: str) -> list[Any]:
    conn = await asyncpg.connect(pg_url)
    try:
        return list(await conn.fetch("SELECT * FROM fold_rejects ORDER BY seq"))
    finally:
        await conn.close()


async def test_a_refused_callback_is_kept_verbatim_counted_and_reported(
    client: TestClient[web.Request, web.Application],
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ready = await (await client.get("/readyz")).json()
    assert (ready["status"], ready["database"]["rejected"]) == ("ok", 0)

    # A body with what text columns cannot hold (\u0000), an escaped surrogate pair, raw UTF-8, and
    # a log-forging newline in the stream name.
    body = snapshot("cursed\nFAKE LOG LINE", 1)
    body["note"] = "nul \u0000 end"
    odd = b'"\\u0000 \\ud83c\\udfa5 \xe6\x97\xa5\xf0\x9f\x8e\xa5"'
    raw = orjson.dumps(body)[:-1] + b', "odd": ' + odd + b"}"
    answer = await client.post("/callbacks", data=raw)
    assert answer.status == 200, await answer.text()
    event_id = answer.headers["X-Event-Id"]
    ok = await client.post("/callbacks", json=snapshot("cam", 1))
    assert ok.status == 200

    (kept,) = await _rejects(pg_url)
    assert kept["payload"] == raw  # byte for byte
    assert kept["id"] == event_id
    assert kept["event_type"] == body["event_type"]
    assert "refused by the test" in kept["error"]
    assert kept["received_at"] > 0 and kept["rejected_at"] >= kept["received_at"]

    # Not an event (its id finds nothing), but counted, reported and logged escaped.
    assert (await client.get(f"/api/events/{event_id}", headers=AUTH)).status == 404
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_callbacks_total{kind="snapshot",result="rejected"} 1.0' in metrics
    ready = await (await client.get("/readyz")).json()
    assert ready["status"] == "degraded"
    assert ready["database"]["rejected"] == 1
    assert "fold_rejects" in ready["database"]["error"]
    assert ready["database"]["writable"] is True
    assert f"PostgreSQL refuses callback {event_id}" in caplog.text
    assert "kept in fold_rejects" in caplog.text
    assert "\nFAKE LOG LINE" not in caplog.text

    # Once an operator has dealt with it and deleted the row, readiness is ok again.
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM fold_rejects")
    finally:
        await conn.close()
    assert (await (await client.get("/readyz")).json())["status"] == "ok"


async def test_a_refused_callback_that_cannot_be_kept_either_is_503(
    client: TestClient[web.Request, web.Application], pg_url: str
) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ALTER TABLE fold_rejects ADD CONSTRAINT none_kept CHECK (false)")
    finally:
        await conn.close()
    answer = await client.post("/callbacks", json=snapshot("cursed", 1))
    assert answer.status == 503  # CSS retries: never 200 for what was kept nowhere
    assert await _rejects(pg_url) == []
    metrics = await (await client.get("/metrics")).text()
    assert 'result="rejected"' not in metrics
