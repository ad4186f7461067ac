"""The moderation policy acting through the real app and the fake CSS API, on both engines (on
SQLite the fold records actions, on PostgreSQL the intake's store transaction): once per stream
and push session, within the API's answers, confirmed by the stream's end."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from receiver.app import create_app
from receiver.settings import Settings
from receiver.storage.engine import Database
from tests.conftest import ClientFactory
from tests.moderation.support import action_log, all_finished, moderated, result, stored_actions
from tests.support import engines
from tests.support.css import APP, DOMAIN, porn, push_begin, stream_end
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import eventually_async, get, post
from tests.support.postgres import stored_events

# Every test here on both engines (tests/support/engines.py).
database, make_settings = engines.database, engines.make_settings

T0 = int(time.time()) - 600


async def finished(database: Database, count: int, within: float = 30.0, what: str = "") -> None:
    await eventually_async(lambda: all_finished(database, count), within=within, what=what)


async def test_one_forbid_per_push_session(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    client = await moderated(aiohttp_client, make_settings, streams)
    await post(client, push_begin("room1", "seq-1", T0))
    block = porn("room1", T0 + 10)
    for _ in range(5):  # CSS retries the same callback
        await post(client, block)
    for offset in (20, 30, 40):  # more screenshots of the same session, also Block
        await post(client, porn("room1", T0 + offset))
    await finished(database, 1, what="the forbid was carried out")

    (action,) = await stored_actions(database)
    assert streams.count("ForbidLiveStream") == 1
    assert action["state"] == "done" and action["attempts"] == 1
    assert action["session_key"] == "seq-1" and action["sequence"] == "seq-1"
    trigger = (await stored_events(database, "kind = 'porn'"))[0]
    assert action["trigger_event_id"] == trigger["id"]
    assert result(action)["request_id"]
    (call,) = [c for c in streams.fake.calls if c.action == "ForbidLiveStream"]
    assert (call.params["DomainName"], call.params["AppName"], call.params["StreamName"]) == (
        DOMAIN,
        APP,
        "room1",
    )
    assert trigger["id"] in call.params["Reason"]
    assert streams.forbidden["room1"]["DomainName"] == DOMAIN
    ready = await (await client.get("/readyz")).json()
    assert ready["moderation"] == {"open_actions": 0, "oldest_open_age_seconds": None, "calls": 1}
    # The default duration: 6 hours from the action.
    assert abs(action["resume_at"] - action["created_at"] - 6 * 3600) < 1

    # The effect is confirmed by the session's end with errcode 21 (sub-code 101).
    await post(client, stream_end("room1", "seq-1", T0 + 50, errcode=21, sub_errcode=101))
    (action,) = await stored_actions(database)
    assert action["confirmed_at"] is not None
    assert (
        action["confirm_event_id"]
        == (await stored_events(database, "kind = 'stream_end'"))[0]["id"]
    )

    # A new push session triggers again (here after the forbid was lifted).
    await post(client, push_begin("room1", "seq-2", T0 + 100), porn("room1", T0 + 110))
    await finished(database, 2, what="the second forbid")
    assert streams.count("ForbidLiveStream") == 2
    assert [a["session_key"] for a in (await stored_actions(database))] == ["seq-1", "seq-2"]
    print(
        "\n--- action log: one forbid per push session ---\n"
        + action_log(await stored_actions(database), streams)
    )

    # Every finished action is an event of its own, `moderation_action`, for publishing.
    published = await stored_events(database, "kind = 'moderation_action'")
    assert len(published) == 2
    body = orjson.loads(published[0]["payload"])
    assert body["trigger_event_id"] == trigger["id"]
    assert body["state"] == "done" and body["result"]["request_id"]
    assert published[0]["event_type"] == -1 and published[0]["stream_id"] == "room1"


async def test_review_and_pass_do_not_trigger(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    client = await moderated(aiohttp_client, make_settings, streams)
    await post(client, push_begin("room2", "seq-1", T0))
    await post(
        client,
        {**porn("room2", T0 + 1), "suggestion": "Review"},
        {**porn("room2", T0 + 2), "suggestion": "Pass"},
    )
    assert await stored_actions(database) == []
    assert streams.fake.calls == []


async def test_label_and_score_rule_and_drop(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    client = await moderated(
        aiohttp_client,
        make_settings,
        streams,
        moderation_action="drop",
        moderation_suggestions=[],
        moderation_labels=["Porn"],
        moderation_min_score=95,
    )
    streams.live.add((DOMAIN, APP, "room3"))
    await post(client, push_begin("room3", "seq-1", T0))
    await post(client, {**porn("room3", T0 + 1), "suggestion": "Review"})  # Porn 99 >= 95
    await finished(database, 1, what="the drop")
    (action,) = await stored_actions(database)
    assert action["action"] == "drop" and action["trigger_reason"] == "label Porn score 99"
    assert streams.count("DropLiveStream") == 1
    assert (DOMAIN, APP, "room3") not in streams.live
    # A drop is confirmed by sub-code 100, not by 102 (a new push replaced this one).
    await post(client, stream_end("room3", "seq-1", T0 + 5, errcode=21, sub_errcode=102))
    assert (await stored_actions(database))[0]["confirmed_at"] is None
    listed = await get(client, "/api/actions")
    assert listed["actions"][0]["confirmation"] == "awaiting"


async def test_throttling_is_retried_and_calls_once(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    streams.fake.fail("RequestLimitExceeded", times=2, action="ForbidLiveStream")
    client = await moderated(aiohttp_client, make_settings, streams)
    await post(client, push_begin("room4", "seq-1", T0), porn("room4", T0 + 1))
    await finished(database, 1, what="the forbid")
    assert streams.count("ForbidLiveStream") == 1
    assert [c.action for c in streams.fake.calls].count("ForbidLiveStream") == 3
    assert (await stored_actions(database))[0]["state"] == "done"


async def test_lost_answer_is_checked_not_repeated(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    # Processed, but the answer is an internal error: ambiguous, so the executor looks at the
    # forbid list instead of calling again.
    streams.fake.fail("InternalError", action="ForbidLiveStream", after_processing=True)
    client = await moderated(aiohttp_client, make_settings, streams)
    await post(client, push_begin("room5", "seq-1", T0), porn("room5", T0 + 1))
    await finished(database, 1, within=30, what="the verified forbid")
    (action,) = await stored_actions(database)
    assert streams.count("ForbidLiveStream") == 1
    assert "DescribeLiveForbidStreamList" in streams.fake.actions()
    assert action["state"] == "done" and "verified" in result(action)


async def test_refused_action_is_recorded_failed(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    streams.fail_next("ForbidLiveStream")
    client = await moderated(aiohttp_client, make_settings, streams)
    await post(client, push_begin("room6", "seq-1", T0), porn("room6", T0 + 1))
    await finished(database, 1, what="the failed forbid")
    (action,) = await stored_actions(database)
    assert action["state"] == "failed"
    assert result(action)["error"]["code"] == "FailedOperation"
    assert streams.count("ForbidLiveStream") == 0
    published = await stored_events(database, "kind = 'moderation_action'")
    assert orjson.loads(published[0]["payload"])["result"]["error"]["code"] == "FailedOperation"


def test_a_policy_that_calls_the_api_needs_credentials(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValueError, match="TENCENTCLOUD_SECRET_ID"):
        create_app(make_settings(moderation_action="drop"))
    create_app(make_settings(moderation_action="drop", moderation_dry_run=True))


async def test_lost_drop_answer_is_checked_by_stream_state(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    database: Database,
) -> None:
    streams.live.add((DOMAIN, APP, "room7"))
    streams.fake.fail("InternalError", action="DropLiveStream", after_processing=True)
    client = await moderated(aiohttp_client, make_settings, streams, moderation_action="drop")
    await post(client, push_begin("room7", "seq-1", T0), porn("room7", T0 + 1))
    await finished(database, 1, what="the verified drop")
    (action,) = await stored_actions(database)
    assert streams.count("DropLiveStream") == 1
    assert streams.count("DescribeLiveStreamState") == 1
    assert result(action) == {"verified": "DescribeLiveStreamState is not active; not called again"}
