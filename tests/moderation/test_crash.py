"""`kill -9` of a real `receiver serve` around a moderation call: an action recorded but not
called is called once after the restart; one called before the crash is not called again (the
fake counts the calls it processed). On both engines: on PostgreSQL the restarted replica is a new
executor, which takes the action over once the dead one's lease ran out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from receiver.storage.engine import Database, PostgresUrl
from testbed.service import ServiceProcess, free_port
from tests.moderation.support import action_log, all_finished, result, stored_actions
from tests.support import engines
from tests.support.css import porn, push_begin
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import API_TOKEN, KEY, eventually, eventually_async, signed

# Every test here on both engines (tests/support/engines.py).
database, make_settings = engines.database, engines.make_settings

T0 = int(time.time()) - 600


@pytest.fixture
async def service(
    database: Database, streams: FakeStreams, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_MODERATION_ACTION": "forbid",
        "RECEIVER_TENCENT_ENDPOINT": streams.fake.url,
        "RECEIVER_TENCENT_RETRY_ATTEMPTS": "1",
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
    }
    if isinstance(database, PostgresUrl):
        env["RECEIVER_DATABASE"] = database.dsn()
        file = tmp_path / "unused.db"
    else:
        database.parent.mkdir(parents=True, exist_ok=True)
        file = database
    process = ServiceProcess(file, env)
    try:
        yield process
    finally:
        streams.release(discard=True)  # nothing stays held for the fake's shutdown
        process.__exit__(None, None, None)


async def deliver(service: ServiceProcess, stream: str) -> None:
    """A push begin and a Block screenshot of `stream`, acknowledged by the service."""
    async with aiohttp.ClientSession() as session:
        for body in (push_begin(stream, "seq-1", T0), porn(stream, T0 + 10)):
            data = orjson.dumps(signed(body))
            async with session.post(f"{service.url}/callbacks", data=data) as answer:
                assert answer.status == 200, await answer.text()


async def state(database: Database) -> str | None:
    found = await stored_actions(database)
    return found[0]["state"] if found else None


async def finished(database: Database) -> None:
    """The action is final (on PostgreSQL after the dead replica's lease of 15 s)."""
    await eventually_async(lambda: all_finished(database, 1), what="the action after the restart")


async def test_killed_between_record_and_call_calls_once_after_restart(
    service: ServiceProcess, streams: FakeStreams, database: Database
) -> None:
    streams.hold_before = {"ForbidLiveStream"}  # the request waits at Tencent's door
    await asyncio.to_thread(service.start)
    await deliver(service, "crash1")
    await eventually(lambda: "ForbidLiveStream" in streams.arrived, what="the call was sent")
    assert await state(database) == "calling"  # committed before the request left
    await asyncio.to_thread(service.kill)
    streams.hold_before = set()
    streams.release(discard=True)  # the dead process's request is never processed
    assert streams.count("ForbidLiveStream") == 0

    await asyncio.to_thread(service.start)
    await finished(database)
    (action,) = await stored_actions(database)
    print(
        "\n--- action log: kill -9 between record and call ---\n"
        + action_log(await stored_actions(database), streams)
    )
    assert streams.count("ForbidLiveStream") == 1
    assert streams.count("DescribeLiveForbidStreamList") == 1  # looked before calling again
    assert action["state"] == "done" and result(action)["request_id"]
    assert action["attempts"] == 2


async def test_killed_before_any_call_is_called_once_after_restart(
    service: ServiceProcess, streams: FakeStreams, database: Database
) -> None:
    # Tencent unreachable (nothing listens): the action stays recorded, `pending`.
    service.env["RECEIVER_TENCENT_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/"
    await asyncio.to_thread(service.start)
    await deliver(service, "crash2")

    async def back_to_pending() -> bool:
        found = await stored_actions(database)
        return bool(found) and found[0]["state"] == "pending" and bool(found[0]["result"])

    await eventually_async(
        back_to_pending, what="a refused connection sent the action back to pending"
    )
    await asyncio.to_thread(service.kill)
    assert streams.arrived == []

    service.env["RECEIVER_TENCENT_ENDPOINT"] = streams.fake.url
    await asyncio.to_thread(service.start)
    await finished(database)
    print(
        "\n--- action log: kill -9 while pending ---\n"
        + action_log(await stored_actions(database), streams)
    )
    assert streams.count("ForbidLiveStream") == 1
    assert (await stored_actions(database))[0]["state"] == "done"


async def test_killed_after_the_call_is_not_called_again(
    service: ServiceProcess, streams: FakeStreams, database: Database
) -> None:
    streams.hold_after = {"ForbidLiveStream"}  # processed; the answer never arrives
    await asyncio.to_thread(service.start)
    await deliver(service, "crash3")
    await eventually(lambda: streams.count("ForbidLiveStream") == 1, what="the call")
    assert await state(database) == "calling"
    await asyncio.to_thread(service.kill)
    streams.hold_after = set()
    streams.release()

    await asyncio.to_thread(service.start)
    await finished(database)
    (action,) = await stored_actions(database)
    print(
        "\n--- action log: kill -9 after the call ---\n"
        + action_log(await stored_actions(database), streams)
    )
    assert streams.count("ForbidLiveStream") == 1  # not repeated
    assert action["state"] == "done"
    assert result(action) == {
        "verified": "listed by DescribeLiveForbidStreamList; not called again"
    }
