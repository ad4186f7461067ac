"""Dry run against a real RabbitMQ: no API call, the action recorded as dry-run, a message
published on `css.moderation_action`; and the listing (`GET /api/actions`) with its filters."""

from __future__ import annotations

import time
from collections.abc import Callable

from receiver.app import create_app
from receiver.settings import Settings
from receiver.storage.engine import Database
from receiver.tencent.autoregister import TencentSetup
from tests.conftest import ClientFactory
from tests.moderation.support import action_log, stored_actions
from tests.support import engines
from tests.support.amqp import Tap
from tests.support.css import porn, push_begin
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import AUTH, get, post
from tests.support.postgres import stored_events
from tests.support.tencent_helpers import credentials, instant

# Every test here on both engines (tests/support/engines.py).
database, make_settings = engines.database, engines.make_settings

T0 = int(time.time()) - 600


async def test_dry_run_records_and_publishes_without_calling(
    aiohttp_client: ClientFactory,
    broker_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
    amqp_url: str,
    exchange_name: str,
) -> None:
    tap = await Tap(amqp_url, exchange_name, bindings=("css.moderation_action",)).open()
    try:
        settings = broker_settings(
            moderation_action="forbid",
            moderation_dry_run=True,
            tencent_endpoint=streams.fake.url,
        )
        setup = TencentSetup(credentials(), client_retry=instant())
        client = await aiohttp_client(create_app(settings, tencent=setup))
        block = porn("dry1", T0 + 1)
        await post(client, push_begin("dry1", "seq-1", T0), block, block, porn("dry1", T0 + 2))
        (message,) = await tap.wait_for(1)
        trigger = (await stored_events(database, "kind = 'porn'"))[0]
        assert message.routing_key == "css.moderation_action"
        assert message.properties["type"] == "moderation_action"
        payload = message.body["payload"]
        assert payload["trigger_event_id"] == trigger["id"]
        assert payload["state"] == "dry_run" and payload["dry_run"] is True
        assert payload["action"] == "forbid" and payload["result"] is None
        assert message.body["stream_id"] == "dry1" and message.body["event_type"] == -1
        assert streams.fake.calls == []  # nothing was called

        (action,) = await stored_actions(database)
        assert action["state"] == "dry_run" and action["attempts"] == 0
        print(
            "\n--- action log: dry run ---\n" + action_log(await stored_actions(database), streams)
        )

        listed = await get(client, "/api/actions")
        (shown,) = listed["actions"]
        assert shown["state"] == "dry_run" and shown["confirmation"] is None
        assert shown["trigger_event_id"] == trigger["id"] and listed["next_cursor"] is None
        events = await get(client, "/api/events?kind=moderation_action")
        assert [e["id"] for e in events["events"]] == [message.message_id]
    finally:
        await tap.close()
        await tap.delete()


async def test_listing_filters_pages_and_refusals(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    database: Database,
) -> None:
    settings = make_settings(moderation_action="drop", moderation_dry_run=True)
    client = await aiohttp_client(create_app(settings))
    for n in range(3):
        await post(client, push_begin(f"list{n}", "seq-1", T0), porn(f"list{n}", T0 + 1))
    assert len(await stored_actions(database)) == 3

    first = await get(client, "/api/actions?limit=2")
    assert [a["stream_id"] for a in first["actions"]] == ["list2", "list1"]
    rest = await get(client, f"/api/actions?limit=2&cursor={first['next_cursor']}")
    assert [a["stream_id"] for a in rest["actions"]] == ["list0"] and rest["next_cursor"] is None
    only = await get(client, "/api/actions?stream_id=list1&action=drop&state=dry_run")
    assert [a["stream_id"] for a in only["actions"]] == ["list1"]
    assert (await get(client, "/api/actions?action=forbid"))["actions"] == []
    assert (await get(client, f"/api/actions?since={T0 + 3600 * 24}"))["actions"] == []

    bad = await get(client, "/api/actions?state=bogus", status=400)
    assert "state" in bad["message"]
    unknown = await get(client, "/api/actions?colour=red", status=400)
    assert unknown["error"] == "unknown_parameter"
    wrong = await get(client, f"/api/actions?stream_id=list1&cursor={first['next_cursor']}", 400)
    assert wrong["error"]
    answer = await client.get("/api/actions")
    assert answer.status == 401
    answer = await client.get("/api/actions", headers={**AUTH, "Authorization": "Bearer nope"})
    assert answer.status == 401
