"""Deduplication keys, kind by kind, over real HTTP and a real SQLite file (and, for every kind, a
PostgreSQL database too): two different events are two rows, a retry (fresh `t`/`sign`, keys in
another order) is one."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.app import create_app
from receiver.events.kinds import KINDS, UNSIGNED_EVENT_TYPES
from receiver.storage.dedupe import VERSION, dedupe_key
from receiver.storage.engine import Database
from tests.conftest import ClientFactory
from tests.support.helpers import URL_TOKEN, count, payload, rows, signed
from tests.support.postgres import stored_events

Body = dict[str, Any]
Change = Callable[[Body], Body]


def _set(**fields: Any) -> Change:
    return lambda body: {**body, **fields}


def _subtitle_text(text: str) -> Change:
    def change(body: Body) -> Body:
        segment = {**body["data"]["subtitle_tmp_res"][0], "src_txt": text}
        return {**body, "data": {"subtitle_tmp_res": [segment]}}

    return change


# kind -> (the example it starts from, changes that each make another event of that kind).
# Where a kind names its stream, the first changes move the same identifiers to another push
# domain or app: the collisions the version 1 keys made.
CASES: dict[str, tuple[str, list[Change]]] = {
    "stream_begin": ("push_begin_1.json", [_set(app="other.domain.com"), _set(appname="live2")]),
    "stream_end": ("stream_end_0.json", [_set(app="other.domain.com"), _set(appname="live2")]),
    "record": (
        "record_file_100.json",
        [
            _set(app="otherapp"),
            # The same file id, reported again for a recording that went on.
            _set(end_time=1642089658, duration=214, file_size=377941079),
        ],
    ),
    "snapshot": ("screenshot_200.json", [_set(app="other.app"), _set(appname="live2")]),
    "porn": ("image_moderation_317.json", [_set(app="other.myqcloud.com"), _set(appname="l2")]),
    "push_exception": (
        "push_exception_321.json",
        [_set(domain="other.push.com"), _set(path="live2")],
    ),
    "record_status": (
        "record_status_332.json",
        [_set(domain="other.livepush.myqcloud.com"), _set(appname="live2")],
    ),
    "record_exception": (
        "record_exception_341.json",
        [_set(domain="other.livepush.myqcloud.com"), _set(path="live2")],
    ),
    "audio_moderation": (
        "audio_moderation_315.json",
        [
            _set(domain="other.cn"),
            # The same request, the next piece of audio.
            _set(seq=3232590096, asr_text="the next sentence"),
        ],
    ),
    "relay": (
        "relay_314_vod_file_start.json",
        [_set(event_time="1700000060"), _set(task_id="118149")],
    ),
    "monitor": ("monitor_328.json", [_set(event_time=1703731666000), _set(stream_id="other")]),
    "subtitles": ("subtitles_338.json", [_subtitle_text("And now the next sentence.")]),
    "smart_erase": ("smart_erase_347.json", [_subtitle_text("Another keyword sentence.")]),
    "quality_control": ("quality_control_343.json", [_set(domain="other.record.test.org")]),
    "evaluation_threshold": ("eval_threshold_344.json", [_set(domain="other.record.test.org")]),
    "evaluation_average": ("eval_average_345.json", [_set(domain="other.record.test.org")]),
    "summary": ("summary_348.json", [_set(domain="other.livepush.myqcloud.com")]),
    "highlight": ("highlight_349.json", [_set(domain="other.livepush.myqcloud.com")]),
}
# The relay example carries no time; with one, a file started again is another event.
BASE_CHANGES: dict[str, Change] = {"relay": _set(event_time="1700000000")}


def _unchanged(body: Body) -> Body:
    return body


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, make_settings: Any) -> Client:
    """The app with a URL token, so that the unsigned kinds are accepted too."""
    return await aiohttp_client(create_app(make_settings(url_token=URL_TOKEN)))


async def _deliver(
    client: Client, body: Body, *, t: int | None = None, reverse: bool = False
) -> None:
    """Post `body` as CSS would: signed (with expiry `t`) unless its kind is unsigned."""
    if body["event_type"] not in UNSIGNED_EVENT_TYPES:
        body = signed(body, t=t)
    if reverse:
        body = dict(reversed(body.items()))
    response = await client.post(f"/callbacks?token={URL_TOKEN}", data=json.dumps(body))
    assert response.status == 200, await response.text()


def test_every_kind_has_a_case() -> None:
    assert sorted(CASES) == sorted(kind.name for kind in KINDS)


@pytest.mark.parametrize("kind", sorted(CASES))
async def test_different_events_are_rows_and_retries_are_not(
    aiohttp_client: ClientFactory, make_settings: Any, any_database: Database, kind: str
) -> None:
    settings = make_settings(url_token=URL_TOKEN, database=any_database)
    client = await aiohttp_client(create_app(settings))
    name, changes = CASES[kind]
    first = BASE_CHANGES.get(kind, _unchanged)(payload(name))
    first = {key: value for key, value in first.items() if key not in ("t", "sign")}
    events = [first, *(change(first) for change in changes)]
    now = int(time.time())
    for event in events:
        await _deliver(client, event, t=now + 600)
        # A retry: re-signed with another expiry, its keys in the opposite order.
        await _deliver(client, event, t=now + 540, reverse=True)
    stored = await stored_events(any_database)
    assert [row["kind"] for row in stored] == [kind] * len(events)
    assert len({row["dedupe_key"] for row in stored}) == len(events)
    metrics = await (await client.get("/metrics")).text()
    assert f'receiver_duplicates_total{{kind="{kind}"}} {float(len(events))}' in metrics


async def test_a_relay_file_started_again_without_a_time_is_stored_once(
    client: Client, database: Path
) -> None:
    # The documented choice: looped playback restarts file 0 with the same unsigned body, which
    # nothing tells apart from a retry.
    body = payload("relay_314_vod_file_start.json")
    await _deliver(client, body)
    await _deliver(client, body)
    assert count(database) == 1


async def test_identifiers_beyond_64_bits_keep_their_digits(client: Client, database: Path) -> None:
    # orjson reads both as 1.8446744073709552e+19: one row, and a sequence nobody sent.
    begins = [{**payload("push_begin_1.json"), "sequence": 2**64 + n} for n in (1, 2)]
    # The whole body as the key: an integer orjson cannot write must not fail the commit.
    checks = [{**payload("quality_control_343.json"), "frame_no": 2**64 + n} for n in (1, 2)]
    for body in (*begins, *checks):
        await _deliver(client, body)
        await _deliver(client, body, t=int(time.time()) + 540, reverse=True)
    stored = rows(database)
    assert [row["sequence"] for row in stored] == [
        "18446744073709551617",
        "18446744073709551618",
        None,
        None,
    ]
    assert [json.loads(row["payload"])["frame_no"] for row in stored[2:]] == [2**64 + 1, 2**64 + 2]


def _v1_key(stream: str, sequence: str) -> str:
    """The push-begin key as version 1 wrote it: the stream and the session, no domain."""
    return "k:" + hashlib.sha256(orjson.dumps([stream, sequence])).hexdigest()


async def test_keys_of_the_previous_version_never_meet_new_ones(
    client: Client, database: Path
) -> None:
    # A row stored before the upgrade: a push begin on another domain, same stream and session.
    begin = payload("push_begin_1.json")
    old = {**begin, "app": "old.domain.com"}
    conn = sqlite3.connect(database)
    with conn:
        conn.execute(
            "INSERT INTO events (id, event_type, kind, dedupe_key, domain, app_name, stream_id,"
            " sequence, received_at, payload) VALUES ('v1', 1, 'stream_begin', ?, ?, 'live', ?,"
            " ?, 1.0, ?)",
            (
                _v1_key(begin["stream_id"], begin["sequence"]),
                old["app"],
                begin["stream_id"],
                begin["sequence"],
                json.dumps(signed(old)),
            ),
        )
    conn.close()
    # The event on this domain is not the stored one, and is kept.
    await _deliver(client, begin)
    # A retry of the old event arriving after the upgrade is stored again (the safe direction).
    await _deliver(client, old)
    assert [row["domain"] for row in rows(database)] == [
        "old.domain.com",
        "test.domain.com",
        "old.domain.com",
    ]


def test_keys_carry_the_version_and_fall_back_to_the_whole_body() -> None:
    begin = payload("push_begin_1.json")
    assert dedupe_key(1, begin).startswith(f"{VERSION}k:")
    # A kind that names its stream, without its domain: never a key that ignores the domain.
    assert dedupe_key(1, {k: v for k, v in begin.items() if k != "app"}).startswith(f"{VERSION}b:")
    assert dedupe_key(1, {**begin, "sequence": None}).startswith(f"{VERSION}b:")
    assert dedupe_key(343, payload("quality_control_343.json")).startswith(f"{VERSION}b:")
    # The stream's identity comes from each kind's own spelling (317: `streamId`).
    porn = payload("image_moderation_317.json")
    assert dedupe_key(317, porn) != dedupe_key(317, {**porn, "streamId": "other"})
    assert dedupe_key(317, porn) == dedupe_key(317, {**porn, "t": 1, "sign": "x"})
