"""How stream state is decided (issue 12, item 2), through the real HTTP app.

A stream is live while any of its push sessions is open; each session's state is its own; a
session known only from its stream-end is placed `push_duration` before that end; an event
missing `app`/`appname` joins the stream's one known identity, never a guessed one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from receiver.settings import Settings
from receiver.storage.engine import Database
from tests.support.css import APP, DOMAIN, push_begin, snapshot, stream_end
from tests.support.helpers import get, post

T0 = 1_703_731_000


@pytest.fixture
def settings(make_settings: Callable[..., Settings], any_database: Database) -> Settings:
    """Every test here on both engines: the same streams and sessions from the same events."""
    settings: Settings = make_settings(database=any_database)
    return settings


async def streams(client: Any, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await get(client, f"/api/streams?stream_id={name}"))["streams"]
    return found


async def sessions(client: Any, name: str, query: str = "") -> list[tuple[str, str]]:
    page = await get(client, f"/api/streams/{name}/sessions{query}")
    return [(s["sequence"], s["state"]) for s in page["sessions"]]


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in fields}


async def test_a_backup_push_ending_leaves_the_main_push_live(client: Any) -> None:
    """(a) Main and backup pushes overlap: the backup's end ends only the backup."""
    await post(
        client,
        push_begin("s", "1001", T0),  # main push
        push_begin("s", "2002", T0 + 10),  # backup push, its own sequence
        stream_end("s", "2002", T0 + 60, duration_ms=50_000),
    )
    (stream,) = await streams(client, "s")
    assert stream["state"] == "live"
    assert stream["open_sessions"] == 1
    assert stream["sessions"] == 2
    assert stream["current_sequence"] == "1001"  # the open session, not the latest ended one
    assert stream["last_end"] == "2023-12-28T02:37:40Z"  # the backup's end is still reported
    assert [s["stream_id"] for s in (await get(client, "/api/streams?state=live"))["streams"]] == [
        "s"
    ]
    assert await sessions(client, "s") == [("2002", "ended"), ("1001", "live")]

    await post(client, stream_end("s", "1001", T0 + 90, duration_ms=90_000))
    (stream,) = await streams(client, "s")
    assert (stream["state"], stream["open_sessions"]) == ("ended", 0)
    assert await sessions(client, "s") == [("2002", "ended"), ("1001", "ended")]


async def test_both_pushes_open_keep_the_stream_live_until_both_end(client: Any) -> None:
    await post(
        client,
        push_begin("s", "1001", T0),
        push_begin("s", "2002", T0 + 10),
        stream_end("s", "1001", T0 + 20, duration_ms=20_000),  # the main ends first
    )
    (stream,) = await streams(client, "s")
    assert (stream["state"], stream["open_sessions"], stream["current_sequence"]) == (
        "live",
        1,
        "2002",
    )
    assert await sessions(client, "s") == [("2002", "live"), ("1001", "ended")]


async def test_an_old_end_without_its_begin_is_placed_by_push_duration(client: Any) -> None:
    """(b) The receiver was deployed mid-push: session A's begin was never stored. A new push B
    replaced A, and A's end (errcode 21) was produced a second after B's begin."""
    await post(
        client,
        push_begin("s", "B", T0 + 50),
        stream_end("s", "A", T0 + 51, errcode=21, duration_ms=51_000),
    )
    (stream,) = await streams(client, "s")
    assert stream["state"] == "live"
    assert stream["current_sequence"] == "B"
    assert stream["end_code"] == 21  # the latest end is still A's
    page = (await get(client, "/api/streams/s/sessions"))["sessions"]
    assert [(s["sequence"], s["state"]) for s in page] == [("B", "live"), ("A", "ended")]
    a = page[1]
    assert a["start"] == "2023-12-28T02:36:40Z"  # T0: 51 s before its end
    assert a["end"] == "2023-12-28T02:37:31Z"
    assert a["duration_seconds"] == 51.0
    assert a["begin_event_id"] is None
    oldest = (await get(client, "/api/streams/s/sessions?order=asc"))["sessions"]
    assert [s["sequence"] for s in oldest] == ["A", "B"]


async def test_an_end_with_an_unusable_push_duration_is_placed_at_its_end(client: Any) -> None:
    await post(
        client,
        {**stream_end("a", "A", T0), "push_duration": "12x"},
        stream_end("b", "B", T0, duration_ms=(T0 + 1) * 1000),  # would begin before 1970
    )
    for name in ("a", "b"):
        (session,) = (await get(client, f"/api/streams/{name}/sessions"))["sessions"]
        assert session["start"] == session["end"] == "2023-12-28T02:36:40Z"


async def test_an_end_without_app_and_appname_ends_the_known_stream(client: Any) -> None:
    """(c) The end joins the one stream called `s`: no second row, and the stream ends."""
    await post(
        client,
        push_begin("s", "A", T0),
        without(stream_end("s", "A", T0 + 60), "app", "appname"),
    )
    (stream,) = await streams(client, "s")
    assert (stream["domain"], stream["app_name"]) == (DOMAIN, APP)
    assert (stream["state"], stream["sessions"], stream["open_sessions"]) == ("ended", 1, 0)
    assert stream["event_counts"] == {"stream_begin": 1, "stream_end": 1}
    (session,) = (await get(client, "/api/streams/s/sessions"))["sessions"]
    assert session["state"] == "ended"
    assert session["begin_event_id"] and session["end_event_id"]


async def test_an_end_without_appname_joins_the_stream_on_its_domain(client: Any) -> None:
    await post(
        client,
        push_begin("s", "A", T0),
        push_begin("s", "X", T0, app="other.domain.com", appname="elsewhere"),
        without(stream_end("s", "A", T0 + 60), "appname"),  # only one `s` on test.domain.com
    )
    found = {(s["domain"], s["app_name"]): s["state"] for s in await streams(client, "s")}
    assert found == {(DOMAIN, APP): "ended", ("other.domain.com", "elsewhere"): "live"}


async def test_a_missing_identity_is_never_guessed_between_two_streams(client: Any) -> None:
    await post(
        client,
        push_begin("s", "A", T0),
        push_begin("s", "B", T0, app="other.domain.com"),
        without(stream_end("s", "A", T0 + 60), "app", "appname"),
        without(snapshot("s", T0 + 70), "app", "appname"),
    )
    found = {(s["domain"], s["app_name"]): s for s in await streams(client, "s")}
    assert {key: s["state"] for key, s in found.items()} == {
        (DOMAIN, APP): "live",
        ("other.domain.com", APP): "live",
        (None, None): "ended",  # its own row: the end names neither stream
    }
    assert found[(None, None)]["event_counts"] == {"snapshot": 1, "stream_end": 1}


async def test_other_kinds_without_app_join_the_known_stream_too(client: Any) -> None:
    await post(client, push_begin("s", "A", T0), without(snapshot("s", T0 + 5), "app", "appname"))
    (stream,) = await streams(client, "s")
    assert stream["event_counts"] == {"snapshot": 1, "stream_begin": 1}
