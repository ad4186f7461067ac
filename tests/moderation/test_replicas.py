"""Moderation on several PostgreSQL replicas: every replica runs an executor over the same
actions, and each action is still carried out once (receiver.moderation.claims)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import aiohttp

from receiver.moderation.claims import PgActions
from receiver.moderation.executor import ActionExecutor
from receiver.moderation.pg_book import PgActionBook
from receiver.moderation.policy import ModerationPolicy
from receiver.moderation.wiring import EXECUTOR
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl
from receiver.storage.postgres.context import prepare_postgres
from receiver.storage.postgres.intake import store_rows
from receiver.tencent.client import TencentClient
from receiver.tencent.control import StreamControl
from tests.conftest import ClientFactory
from tests.moderation.support import action_log, all_finished, moderated, result, stored_actions
from tests.support.css import DOMAIN, porn, push_begin
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import eventually, eventually_async, post
from tests.support.postgres import stored_events
from tests.support.tencent_helpers import credentials, instant

T0 = int(time.time()) - 600
STREAMS = [f"rep{n}" for n in range(8)]


async def test_two_replicas_call_once_per_hit(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    streams: FakeStreams,
    pg_url: str,
) -> None:
    database = PostgresUrl(pg_url)
    a = await moderated(aiohttp_client, make_settings, streams, database=pg_url)
    b = await moderated(aiohttp_client, make_settings, streams, database=pg_url)
    streams.hold_before = {"ForbidLiveStream"}  # calls wait at Tencent's door meanwhile
    for name in STREAMS:
        hit = porn(name, T0 + 10)
        await post(a, push_begin(name, "seq-1", T0), hit)
        await post(b, hit)  # CSS retries the hit at the other replica: a duplicate
        await post(b, porn(name, T0 + 20))  # a further screenshot of the session, there
    executors = [a.server.app[EXECUTOR], b.server.app[EXECUTOR]]
    # Both executors hold an action each at Tencent's door: they really run side by side.
    await eventually(lambda: all(e.calls >= 1 for e in executors), what="both replicas call")
    streams.hold_before = set()
    streams.release()
    await eventually_async(lambda: all_finished(database, len(STREAMS)), what="every action")

    found = await stored_actions(database)
    print("\n--- action log: two replicas ---\n" + action_log(found, streams))
    assert sorted(a["stream_id"] for a in found) == STREAMS  # one per stream and session
    assert all(a["state"] == "done" and a["attempts"] == 1 for a in found)
    forbids = Counter(
        c.params["StreamName"] for c in streams.fake.calls if c.action == "ForbidLiveStream"
    )
    assert forbids == Counter(STREAMS)  # exactly one call per hit, across both replicas
    assert sum(e.calls for e in executors) == len(STREAMS)
    assert {a["claimed_by"] for a in found} == {e.store.owner for e in executors}
    assert len(await stored_events(database, "kind = 'porn'")) == 2 * len(STREAMS)
    published = await stored_events(database, "kind = 'moderation_action'")
    assert len(published) == len(STREAMS)


async def test_an_action_left_by_a_dead_replica_is_taken_over_after_its_lease(
    streams: FakeStreams, pg_url: str
) -> None:
    database = PostgresUrl(pg_url)
    pool, _ = await prepare_postgres(database)
    try:
        await pool.execute(
            "INSERT INTO moderation_actions (action_id, action, domain, app_name, stream_id,"
            " session_key, reason, resume_at, state, created_at)"
            " VALUES ('a1', 'forbid', $1, 'live', 'gone1', 'seq-1', 'test', $2, 'pending', $3)",
            DOMAIN,
            time.time() + 3600,
            time.time(),
        )
        book = PgActionBook(ModerationPolicy(action="forbid"))
        async with aiohttp.ClientSession() as session:
            control = StreamControl(
                TencentClient(session, credentials(), endpoint=streams.fake.url, retry=instant())
            )

            def executor(owner: str) -> ActionExecutor:
                store = PgActions(pool, book, store_rows, lease_seconds=0.5, owner=owner)
                return ActionExecutor(store, control)

            first, second = executor("first"), executor("second")
            streams.hold_before = {"ForbidLiveStream"}
            dying = asyncio.create_task(first.run_pending())
            await eventually(lambda: "ForbidLiveStream" in streams.arrived, what="the call")
            dying.cancel()  # the replica dies with its request at Tencent's door
            await asyncio.gather(dying, return_exceptions=True)
            streams.hold_before = set()
            streams.release(discard=True)  # that request is never processed

            assert await second.run_pending() == 0  # the lease is still the dead one's
            (action,) = await stored_actions(database)
            assert (action["state"], action["claimed_by"]) == ("calling", "first")

            async def taken_over() -> bool:
                return await second.run_pending() == 1

            await eventually_async(taken_over, within=10, what="the takeover after the lease")
    finally:
        await pool.close()
    (action,) = await stored_actions(database)
    print("\n--- action log: a dead replica's action ---\n" + action_log([action], streams))
    assert streams.count("ForbidLiveStream") == 1
    assert streams.count("DescribeLiveForbidStreamList") == 1  # looked before calling again
    assert action["state"] == "done" and action["attempts"] == 2
    assert action["claimed_by"] == "second" and result(action)["request_id"]
