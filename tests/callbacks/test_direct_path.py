"""Callbacks take the direct path, the one `receiver serve` uses; every other route, and a
callback with an `Expect` header, go through the application as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import ClientFactory
from tests.support.helpers import API_TOKEN, count, folded, payload, signed


async def test_callbacks_skip_the_router_and_other_routes_do_not(
    aiohttp_client: ClientFactory, settings: Settings, database: Path
) -> None:
    app = create_app(settings)
    routed: list[str] = []

    async def spy(request: web.Request, response: web.StreamResponse) -> None:
        # aiohttp sends this signal only for requests the router resolved
        routed.append(f"{request.method} {request.path}")

    app.on_response_prepare.append(spy)
    client = await aiohttp_client(app)
    for path in ("/callbacks", "/callbacks/stream-begin", "/callbacks?token=ignored"):
        answer = await client.post(path, json=signed(payload("push_begin_1.json")))
        assert answer.status == 200, await answer.text()
        assert answer.headers["X-Event-Id"]
    refused = await client.post("/callbacks", data=b"not json")
    assert refused.status == 400
    assert routed == []

    expecting = await client.post(
        "/callbacks", json=signed(payload("stream_end_0.json")), expect100=True
    )
    assert expecting.status == 200, await expecting.text()
    assert (await client.get("/healthz")).status == 200
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    assert (await client.get("/api/events", headers=auth)).status == 200
    assert routed == ["POST /callbacks", "GET /healthz", "GET /api/events"]
    await folded(client)
    assert count(database) == 2  # the push begin three times (one event), the stream end


async def test_paths_near_the_callbacks_answer_as_before(client: Any) -> None:
    """What the router answered for them, JSON included: the direct path takes none of these."""
    unknown = await client.post("/callbacks/no-such-slot", data=b"{}")
    assert unknown.status == 404
    assert await unknown.json() == {
        "code": 404,
        "error": "not_found",
        "message": "no route for /callbacks/no-such-slot",
    }
    assert (await client.post("/callbacks/", data=b"{}")).status == 404
    wrong_method = await client.put("/callbacks/stream-begin", data=b"{}")
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert (await wrong_method.json())["error"] == "method_not_allowed"
