"""Names of any length that the intake stores are found by every filter (one `Text` rule)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.support.css import push_begin
from tests.support.helpers import get, post

T0 = 1_703_731_000
# As long as fits aiohttp's request line (8190 bytes) with the longest route around it.
STREAM = "s" * 6000
APP = "a" * 1000


async def test_a_long_stream_name_is_found_by_every_route(client: Any) -> None:
    await post(client, push_begin(STREAM, "A", T0, appname=APP), push_begin("short", "B", T0))
    stream, app = quote(STREAM), quote(APP)

    (event,) = (await get(client, f"/api/events?stream_id={stream}&app_name={app}"))["events"]
    assert event["stream_id"] == STREAM and event["app_name"] == APP

    (found,) = (await get(client, f"/api/streams?stream_id={stream}&app_name={app}"))["streams"]
    assert found["stream_id"] == STREAM and found["state"] == "live"

    answer = await get(client, f"/api/streams/{stream}/sessions?app_name={app}")
    assert answer["stream"]["stream_id"] == STREAM
    (session,) = answer["sessions"]
    assert session["state"] == "live"


async def test_an_empty_name_is_still_refused_with_its_reason(client: Any) -> None:
    answer = await get(client, "/api/events?stream_id=", status=400)
    assert answer["error"] == "invalid_parameter"
    assert "stream_id" in answer["message"]
