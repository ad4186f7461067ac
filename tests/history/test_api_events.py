"""`GET /api/events` and `/api/events/{id}`: filters, keyset pages, precise refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from receiver.settings import Settings
from receiver.storage.engine import Database
from tests.support.css import porn, push_begin, record, snapshot, stream_end
from tests.support.helpers import AUTH, get, payload, post, signed
from tests.support.postgres import execute

T0 = 1_703_731_000  # 2023-12-28T02:36:40Z


@pytest.fixture
def settings(make_settings: Callable[..., Settings], any_database: Database) -> Settings:
    """Every test here on both engines: the same listings from the same events."""
    settings: Settings = make_settings(database=any_database)
    return settings


async def listing(client: Any, **params: Any) -> list[dict[str, Any]]:
    query = urlencode(params, doseq=True)
    events: list[dict[str, Any]] = (await get(client, f"/api/events?{query}"))["events"]
    return events


@pytest.fixture
async def stored(client: Any) -> Any:
    """A small history: two streams, several kinds, known event times."""
    await post(
        client,
        push_begin("a", "A1", T0),
        snapshot("a", T0 + 10),
        porn("a", T0 + 20),
        stream_end("a", "A1", T0 + 60),
        record("a", T0, T0 + 61),
        push_begin("b", "B1", T0 + 3600),
        snapshot("b", T0 + 3610),
    )
    return client


async def test_newest_stored_first_and_oldest_first_on_request(stored: Any) -> None:
    newest = await listing(stored)
    assert [e["kind"] for e in newest] == [
        "snapshot", "stream_begin", "record", "stream_end", "porn", "snapshot", "stream_begin",
    ]  # fmt: skip
    oldest = await listing(stored, order="asc")
    assert [e["id"] for e in oldest] == [e["id"] for e in reversed(newest)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "snapshot"}, ["b:snapshot", "a:snapshot"]),
        ({"kind": ["porn", "record"]}, ["a:record", "a:porn"]),
        ({"event_type": 1}, ["b:stream_begin", "a:stream_begin"]),
        ({"event_type": 1, "kind": "snapshot"}, []),  # contradictory filters match nothing
        ({"stream_id": "a", "kind": "snapshot"}, ["a:snapshot"]),
        ({"stream_id": "b"}, ["b:snapshot", "b:stream_begin"]),
        ({"domain": "test.domain.com", "app_name": "live", "stream_id": "nope"}, []),
        ({"since": "2023-12-28T03:36:40Z"}, ["b:snapshot", "b:stream_begin"]),
        ({"since": str(T0 + 20), "until": str(T0 + 61)}, ["a:stream_end", "a:porn"]),
        ({"until": "2023-12-28T10:36:50+08:00"}, ["a:stream_begin"]),  # until is exclusive
        ({"until": "2023-12-28T10:36:51+08:00"}, ["a:snapshot", "a:stream_begin"]),
        ({"kind": "snapshot", "since": str(T0), "until": str(T0 + 3600)}, ["a:snapshot"]),
        ({"stream_id": "a", "since": str(T0 + 15)}, ["a:record", "a:stream_end", "a:porn"]),
    ],
)
async def test_filters_combine(stored: Any, params: dict[str, Any], expected: list[str]) -> None:
    events = await listing(stored, **params)
    assert [f"{e['stream_id']}:{e['kind']}" for e in events] == expected


async def test_arrival_time_and_publish_status_filters(stored: Any, any_database: Database) -> None:
    everything = await listing(stored, order="asc")
    cut = everything[3]["received_at"]
    later = await listing(stored, received_since=cut, order="asc")
    assert [e["id"] for e in later] == [e["id"] for e in everything[3:]]
    earlier = await listing(stored, received_until=cut, order="asc")
    assert [e["id"] for e in earlier] == [e["id"] for e in everything[:3]]

    # The outbox marks events published; here the database is updated the same way.
    await execute(
        any_database, "UPDATE events SET published_at = received_at + 1 WHERE kind = 'snapshot'"
    )
    published = await listing(stored, published="true")
    assert {e["kind"] for e in published} == {"snapshot"}
    assert all(e["published"] and e["published_at"] for e in published)
    unpublished = await listing(stored, published="false")
    assert len(unpublished) == 5 and not any(e["published"] for e in unpublished)


async def test_one_event_has_normalised_fields_payload_and_publish_status(stored: Any) -> None:
    (end,) = await listing(stored, kind="stream_end")
    event = await get(stored, f"/api/events/{end['id']}")
    assert event == end
    assert event["event_type"] == 0
    assert event["domain"] == "test.domain.com" and event["app_name"] == "live"
    assert event["sequence"] == "A1"
    assert event["event_time"] == "2023-12-28T02:37:40Z"
    assert event["published"] is False and event["published_at"] is None
    assert event["payload"]["errmsg"] == "The push client actively stopped the push"
    assert event["payload"]["event_type"] == 0


async def test_payload_is_the_body_as_received(client: Any) -> None:
    body = signed(payload("record_file_100.json"))
    await post(client, body)
    (event,) = await listing(client)
    assert event["payload"] == body


async def test_unknown_event_is_404(client: Any) -> None:
    error = await get(client, "/api/events/0190-nope", 404)
    assert error == {
        "error": "event_not_found",
        "message": "no event with id '0190-nope' is stored",
    }


async def _page_through(client: Any, params: dict[str, Any], during: Any = None) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        page = await get(client, f"/api/events?{urlencode(query, doseq=True)}")
        ids += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
        if during is not None:
            await during()


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_pages_have_no_gaps_or_repeats_while_events_keep_arriving(
    client: Any, order: str
) -> None:
    await asyncio.gather(*(post(client, snapshot("s", T0 + i)) for i in range(95)))
    before = [e["id"] for e in await listing(client, limit=1000, order="asc")]
    assert len(before) == 95
    arriving = iter(range(1000, 2000))

    async def more() -> None:
        # Between pages, new events arrive concurrently (some for the filtered kind).
        await asyncio.gather(
            post(client, snapshot("s", T0 + next(arriving))),
            post(client, snapshot("t", T0 + next(arriving))),
            post(client, porn("s", T0 + next(arriving))),
        )

    ids = await _page_through(client, {"kind": "snapshot", "limit": 10, "order": order}, more)
    assert len(ids) == len(set(ids)), "an event was served twice"
    assert set(before) <= set(ids), "an event stored before paging began was skipped"
    after = {e["id"] for e in await listing(client, kind="snapshot", limit=1000)}
    assert set(ids) <= after
    if order == "desc":
        assert ids == list(reversed(before)), "newest-first pages only hold what existed"
    else:
        assert ids[:95] == before and len(ids) > 95, "oldest-first pages also reach new events"


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_a_time_window_of_any_kind_pages_in_storage_order(client: Any, order: str) -> None:
    """No kind filter: every kind's events in the window, merged, storage order, no repeats."""
    makers = (snapshot, porn, lambda stream, at: push_begin(stream, f"S{at}", at))
    for i in range(30):
        await post(client, makers[i % 3]("w", T0 + i * 10))
    everything = await listing(client, limit=1000, order=order)
    expected = [e["id"] for e in everything if T0 + 50 <= _unix(e["event_time"]) < T0 + 250]
    assert len(expected) == 20 and {e["kind"] for e in everything} >= {"snapshot", "porn"}

    ids = await _page_through(
        client, {"since": str(T0 + 50), "until": str(T0 + 250), "limit": 3, "order": order}
    )
    assert ids == expected


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_limit_changes_between_pages_keep_the_cursor_valid(stored: Any) -> None:
    first = await get(stored, "/api/events?limit=2")
    rest = await get(stored, f"/api/events?limit=10&cursor={first['next_cursor']}")
    assert len(first["events"]) + len(rest["events"]) == 7
    assert rest["next_cursor"] is None


async def test_cursor_from_another_query_or_altered_is_refused(stored: Any) -> None:
    page = await get(stored, "/api/events?limit=2&kind=snapshot")
    cursor = page["next_cursor"]
    assert cursor is None  # only two snapshots
    page = await get(stored, "/api/events?limit=2")
    cursor = page["next_cursor"]

    other = await get(stored, f"/api/events?limit=2&kind=porn&cursor={cursor}", 400)
    assert other["error"] == "cursor_mismatch"
    assert other["message"].startswith("cursor belongs to a query with other filters")
    flipped = await get(stored, f"/api/events?limit=2&order=asc&cursor={cursor}", 400)
    assert flipped["error"] == "cursor_mismatch"
    streams = await get(stored, f"/api/streams?cursor={cursor}", 400)
    assert streams["message"].startswith("cursor belongs to a query with another route (events)")

    body, _, mac = cursor.partition(".")
    altered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    error = await get(stored, f"/api/events?limit=2&cursor={altered}", 400)
    assert error["error"] == "invalid_cursor"
    assert error["message"].startswith("cursor was altered")
    for garbage in ("abc", "%20", "a.b", "!!!.???"):
        error = await get(stored, f"/api/events?cursor={garbage}", 400)
        assert error["error"] == "invalid_cursor", (garbage, error)


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        (
            "limit=0",
            "invalid_parameter",
            "limit: input should be greater than or equal to 1, got '0'",
        ),
        (
            "limit=1001",
            "invalid_parameter",
            "limit: input should be less than or equal to 1000, got '1001'",
        ),
        ("limit=ten", "invalid_parameter", "limit: input should be a valid integer"),
        (
            "kind=snapshots",
            "invalid_parameter",
            "kind: unknown kind 'snapshots'; expected one of: stream_begin,",
        ),
        (
            "since=yesterday",
            "invalid_parameter",
            "since: expected unix seconds (1703731478) or ISO 8601",
        ),
        (
            "since=2024-01-01T00:00:00",
            "invalid_parameter",
            "since: '2024-01-01T00:00:00' has no UTC offset",
        ),
        (
            "until=2024-02-30T00:00:00Z",
            "invalid_parameter",
            "until: '2024-02-30T00:00:00Z' is not a valid calendar",
        ),
        (
            "since=1703731478&until=1703731400",
            "invalid_parameter",
            "since must be earlier than until",
        ),
        ("received_since=-5", "invalid_parameter", "received_since: expected unix seconds"),
        ("published=maybe", "invalid_parameter", "published: input should be a valid boolean"),
        ("order=newest", "invalid_parameter", "order: input should be 'asc' or 'desc'"),
        (
            "event_type=-1",
            "invalid_parameter",
            "event_type: input should be greater than or equal to 0",
        ),
        ("domain=", "invalid_parameter", "domain: string should have at least 1 character"),
        (
            "stream=a",
            "unknown_parameter",
            "unknown query parameter 'stream'; this route accepts: cursor, kind,",
        ),
        ("limit=1&limit=2", "repeated_parameter", "query parameter 'limit' may be given only once"),
    ],
)
async def test_bad_parameters_are_precise_400s(
    stored: Any, query: str, error: str, message: str
) -> None:
    answer = await get(stored, f"/api/events?{query}", 400)
    assert set(answer) == {"error", "message"}
    assert answer["error"] == error
    assert answer["message"].startswith(message), answer["message"]


async def test_the_event_route_takes_no_parameters(stored: Any) -> None:
    (event,) = await listing(stored, kind="porn")
    answer = await get(stored, f"/api/events/{event['id']}?verbose=1", 400)
    assert answer["error"] == "unknown_parameter"


async def test_an_unencoded_plus_in_an_offset_is_understood(stored: Any) -> None:
    # `+08:00` typed into a URL arrives as ` 08:00`; it can only have meant the offset.
    events = await stored.get(
        "/api/events?since=2023-12-28T11:36:40+08:00", headers=AUTH
    )  # yarl leaves "+" as is; aiohttp decodes it to a space
    assert events.status == 200
    assert [e["stream_id"] for e in (await events.json())["events"]] == ["b", "b"]
