"""Streams and push sessions: state by sequence and event time, never by arrival order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from receiver.settings import Settings
from receiver.storage.engine import Database
from tests.support.css import DOMAIN, porn, push_begin, push_exception, record, snapshot, stream_end
from tests.support.helpers import get, post

T0 = 1_703_731_000


@pytest.fixture
def settings(make_settings: Callable[..., Settings], any_database: Database) -> Settings:
    """Every test here on both engines: the same streams and sessions from the same events."""
    settings: Settings = make_settings(database=any_database)
    return settings


async def stream(client: Any, name: str) -> dict[str, Any]:
    found = (await get(client, f"/api/streams?stream_id={name}"))["streams"]
    assert len(found) == 1, found
    result: dict[str, Any] = found[0]
    return result


async def test_end_stored_before_its_begin_still_ends_the_stream(client: Any) -> None:
    await post(
        client,
        stream_end("s", "A", T0 + 120, errcode=1, duration_ms=120_000),
        push_begin("s", "A", T0),  # the begin was retried and arrived last
    )
    state = await stream(client, "s")
    assert state["state"] == "ended"
    assert state["sessions"] == 1
    assert state["last_begin"] == "2023-12-28T02:36:40Z"
    assert state["last_end"] == "2023-12-28T02:38:40Z"
    assert state["end_code"] == 1
    assert state["end_reason"] == "the publisher stopped the push"
    assert state["end_message"] == "The push client actively stopped the push"
    assert state["event_counts"] == {"stream_begin": 1, "stream_end": 1}

    (session,) = (await get(client, "/api/streams/s/sessions"))["sessions"]
    assert session["state"] == "ended"
    assert session["start"] == "2023-12-28T02:36:40Z"
    assert session["end"] == "2023-12-28T02:38:40Z"
    assert session["duration_seconds"] == 120.0
    assert session["begin_event_id"] and session["end_event_id"]


async def test_late_end_of_an_old_session_does_not_end_a_new_one(client: Any) -> None:
    await post(
        client,
        push_begin("s", "A", T0),
        push_begin("s", "B", T0 + 600),  # a new push began...
        stream_end("s", "A", T0 + 300, duration_ms=300_000),  # ...then A's end arrived late
    )
    state = await stream(client, "s")
    assert state["state"] == "live"
    assert state["current_sequence"] == "B"
    live = (await get(client, "/api/streams?state=live"))["streams"]
    assert [s["stream_id"] for s in live] == ["s"]
    sessions = (await get(client, "/api/streams/s/sessions"))["sessions"]
    assert [(s["sequence"], s["state"]) for s in sessions] == [("B", "live"), ("A", "ended")]


async def test_a_stream_is_live_until_its_latest_session_ends(client: Any) -> None:
    await post(client, push_begin("s", "A", T0))
    assert (await stream(client, "s"))["state"] == "live"
    await post(client, stream_end("s", "A", T0 + 60, errcode=21))
    state = await stream(client, "s")
    assert state["state"] == "ended"
    assert state["end_code"] == 21
    assert "replaced" in state["end_reason"]
    assert (await get(client, "/api/streams?state=live"))["streams"] == []
    ended = (await get(client, "/api/streams?state=ended"))["streams"]
    assert [s["stream_id"] for s in ended] == ["s"]


async def test_an_end_without_its_begin_starts_push_duration_earlier(client: Any) -> None:
    await post(client, stream_end("s", "A", T0 + 90, duration_ms=90_500))
    (session,) = (await get(client, "/api/streams/s/sessions"))["sessions"]
    assert session["start"] == "2023-12-28T02:36:39.500000Z"
    assert session["duration_seconds"] == 90.5
    assert session["begin_event_id"] is None


async def test_errcode_and_duration_as_strings_or_garbage_never_fail_the_callback(
    client: Any,
) -> None:
    await post(
        client,
        stream_end("a", "A", T0, errcode="18", duration_ms=None, push_duration="12x"),  # type: ignore[arg-type]
        stream_end("b", "B", T0, errcode=[1], errmsg={"nested": True}),  # type: ignore[arg-type]
    )
    assert (await stream(client, "a"))["end_code"] == 18
    b = await stream(client, "b")
    assert b["state"] == "ended"
    assert b["end_code"] is None
    assert b["end_message"] is None
    (session,) = (await get(client, "/api/streams/a/sessions"))["sessions"]
    assert session["duration_seconds"] == 0.0


async def test_streams_without_push_events_are_in_state_unknown(client: Any) -> None:
    await post(client, snapshot("s", T0), snapshot("s", T0 + 10))
    state = await stream(client, "s")
    assert state["state"] == "unknown"
    assert state["sessions"] == 0
    assert state["events"] == 2
    assert state["event_counts"] == {"snapshot": 2}
    assert state["domain"] == DOMAIN
    unknown = (await get(client, "/api/streams?state=unknown"))["streams"]
    assert [s["stream_id"] for s in unknown] == ["s"]


async def test_a_session_lists_what_fell_in_it(client: Any) -> None:
    await post(
        client,
        push_begin("s", "A", T0),
        snapshot("s", T0 + 10),
        snapshot("s", T0 + 20),
        porn("s", T0 + 25),
        push_exception("s", "A", T0 + 30),
        stream_end("s", "A", T0 + 100, duration_ms=100_000),
        record("s", T0, T0 + 102),  # the recording file is reported after the push ended
        push_begin("s", "B", T0 + 500),
        snapshot("s", T0 + 510),
        snapshot("other", T0 + 15),  # another stream: never part of s's sessions
    )
    b, a = (await get(client, "/api/streams/s/sessions"))["sessions"]
    assert a["counts"] == {"recordings": 1, "snapshots": 2, "moderation": 1, "push_exceptions": 1}
    assert [e["event_time"] for e in a["snapshots"]] == [
        "2023-12-28T02:36:50Z",
        "2023-12-28T02:37:00Z",
    ]
    assert a["recordings"][0]["payload"]["end_time"] == T0 + 102
    assert a["moderation"][0]["kind"] == "porn"
    assert a["push_exceptions"][0]["sequence"] == "A"
    assert b["state"] == "live"
    assert b["counts"] == {"recordings": 0, "snapshots": 1, "moderation": 0, "push_exceptions": 0}
    assert b["end"] is None and b["duration_seconds"] is None


async def test_items_caps_the_lists_but_not_the_counts(client: Any) -> None:
    await post(client, push_begin("s", "A", T0), *(snapshot("s", T0 + i) for i in range(1, 6)))
    (session,) = (await get(client, "/api/streams/s/sessions?items=2"))["sessions"]
    assert session["counts"]["snapshots"] == 5
    assert len(session["snapshots"]) == 2
    (session,) = (await get(client, "/api/streams/s/sessions?items=0"))["sessions"]
    assert session["counts"]["snapshots"] == 5
    assert session["snapshots"] == []


async def test_sessions_page_newest_first_with_a_cursor(client: Any) -> None:
    bodies = []
    for i in range(5):
        bodies += [
            push_begin("s", f"S{i}", T0 + 100 * i),
            stream_end("s", f"S{i}", T0 + 100 * i + 50),
        ]
    await post(client, *reversed(bodies))
    seen: list[str] = []
    url = "/api/streams/s/sessions?limit=2"
    while True:
        page = await get(client, url)
        seen += [s["sequence"] for s in page["sessions"]]
        if page["next_cursor"] is None:
            break
        url = f"/api/streams/s/sessions?limit=2&cursor={page['next_cursor']}"
    assert seen == ["S4", "S3", "S2", "S1", "S0"]
    oldest = await get(client, "/api/streams/s/sessions?order=asc&limit=1")
    assert oldest["sessions"][0]["sequence"] == "S0"


async def test_same_stream_name_on_two_domains_needs_a_domain(client: Any) -> None:
    await post(client, push_begin("s", "A", T0), push_begin("s", "B", T0, app="other.domain.com"))
    error = await get(client, "/api/streams/s/sessions", 400)
    assert error["error"] == "ambiguous_stream"
    assert (
        "test.domain.com/live" in error["message"] and "other.domain.com/live" in error["message"]
    )
    page = await get(client, "/api/streams/s/sessions?domain=other.domain.com")
    assert page["stream"] == {"domain": "other.domain.com", "app_name": "live", "stream_id": "s"}
    assert [s["sequence"] for s in page["sessions"]] == ["B"]


async def test_unknown_stream_is_404(client: Any) -> None:
    error = await get(client, "/api/streams/nope/sessions", 404)
    assert error == {
        "error": "stream_not_found",
        "message": "no events are stored for stream 'nope'",
    }


async def test_streams_list_pages_in_first_seen_order(client: Any) -> None:
    await post(client, *(snapshot(f"s{i}", T0 + i) for i in range(5)))
    first = await get(client, "/api/streams?limit=3")
    assert [s["stream_id"] for s in first["streams"]] == ["s4", "s3", "s2"]
    await post(client, snapshot("s9", T0))  # a new stream while paging: not in the old pages
    rest = await get(client, f"/api/streams?limit=3&cursor={first['next_cursor']}")
    assert [s["stream_id"] for s in rest["streams"]] == ["s1", "s0"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/api/streams?state=pushing", "state: input should be 'live', 'ended' or 'unknown'"),
        ("/api/streams?live=1", "unknown query parameter 'live'"),
        ("/api/streams/s/sessions?items=101", "items: input should be less than or equal to 100"),
        ("/api/streams/s/sessions?limit=0", "limit: input should be greater than or equal to 1"),
    ],
)
async def test_bad_stream_parameters_are_precise_400s(client: Any, url: str, message: str) -> None:
    await post(client, push_begin("s", "A", T0))
    error = await get(client, url, 400)
    assert error["message"].startswith(message), error
