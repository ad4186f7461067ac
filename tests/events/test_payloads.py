"""Every example body of the reference is accepted, stored verbatim and normalised right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.events import MODEL_BY_EVENT_TYPE, parse_event
from receiver.events.kinds import UNSIGNED_EVENT_TYPES
from receiver.settings import Settings
from tests.conftest import ClientFactory
from tests.support.helpers import URL_TOKEN, payload, payload_names, rows, signed

# file -> (kind, domain, app_name, stream_id, event_time, sequence)
EXPECTED: dict[str, tuple[str, str | None, str | None, str | None, float | None, str | None]] = {
    "push_begin_1.json": (
        "stream_begin",
        "test.domain.com",
        "live",
        "test_stream",
        1703731478,
        "2210464508206756938",
    ),
    "push_begin_1_legacy.json": (
        "stream_begin",
        "test.domain.com",
        "live",
        "test_stream",
        1703731478,
        "2210464508206756938",
    ),
    "stream_end_0.json": (
        "stream_end",
        "test.domain.com",
        "live",
        "test_stream",
        1703731606,
        "2210464508206756938",
    ),
    "record_file_100.json": ("record", "yourapp", "yourappname", "stream_test", 1642089598, None),
    "record_status_332.json": (
        "record_status",
        "****.livepush.myqcloud.com",
        "live",
        "2991615887188599295",
        1700207929,
        None,
    ),
    "record_exception_341.json": (
        "record_exception",
        "1234567.livepush.myqcloud.com",
        "live",
        "test_stream_35b4a6e6d4261",
        1739934527,
        None,
    ),
    "screenshot_200.json": ("snapshot", "test.app", "live", "your_streamid", 1622599925, None),
    "screenshot_200_legacy.json": (
        "snapshot",
        "test.app",
        "live",
        "your_streamid",
        1622599925,
        None,
    ),
    "image_moderation_317.json": (
        "porn",
        "5000.myqcloud.com",
        "live",
        "teststream",
        1610640000,
        None,
    ),
    "porn_detection_317_legacy.json": (
        "porn",
        "5000.myqcloud.com",
        "live",
        "teststream",
        1610640000,
        None,
    ),
    # The time of its recognised audio (data.asr_tmp_full_results[].create_time).
    "audio_moderation_315.json": (
        "audio_moderation",
        "xxx.cn",
        "live",
        "xxxn01",
        1685929588,
        None,
    ),
    "push_exception_321.json": (
        "push_exception",
        "example.push.com",
        "live",
        "teststream",
        1670588074.971,
        "000000000000000000",
    ),
    "push_exception_321_legacy.json": (
        "push_exception",
        "example.push.com",
        "live",
        "teststream",
        1670588074.971,
        "000000000000000000",
    ),
    "relay_314_task_start.json": ("relay", None, None, "testvod", None, None),
    "relay_314_vod_file_start.json": ("relay", None, None, "testvod", None, None),
    "relay_314_vod_file_finish.json": ("relay", None, None, "testvod", None, None),
    "relay_314_task_exit.json": ("relay", None, None, "testvod", None, None),
    "monitor_328.json": ("monitor", None, None, "teststream", 1703731606, None),
    "quality_control_343.json": (
        "quality_control",
        "abc.record.test.org",
        "live",
        "test",
        1747818881,
        None,
    ),
    "eval_threshold_344.json": (
        "evaluation_threshold",
        "abc.record.test.org",
        "live",
        "livestream1",
        1752130787,
        None,
    ),
    "eval_average_345.json": (
        "evaluation_average",
        "abc.record.test.org",
        "live",
        "livestream1",
        1752130787,
        None,
    ),
    "smart_erase_347.json": ("smart_erase", None, None, "teststream", 1750402588, None),
    "subtitles_338.json": ("subtitles", None, None, "teststream", None, None),
    "summary_348.json": (
        "summary",
        "your.livepush.myqcloud.com",
        "live",
        "test1820",
        1761212541,
        None,
    ),
    "summary_348_zh.json": (
        "summary",
        "your.livepush.myqcloud.com",
        "live",
        "test1820",
        1761212541,
        None,
    ),
    "highlight_349.json": (
        "highlight",
        "your.livepush.myqcloud.com",
        "highlight",
        "test1820",
        1761128808,
        None,
    ),
}


def test_every_payload_file_has_an_expectation() -> None:
    assert sorted(EXPECTED) == payload_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_fits_its_kind_model(name: str) -> None:
    body = payload(name)
    parsed = parse_event(body, body["event_type"])
    assert parsed.schema_error is None
    assert isinstance(parsed.model, MODEL_BY_EVENT_TYPE[body["event_type"]])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_body_that_does_not_fit_its_model_keeps_its_normalised_view(name: str) -> None:
    # `appid` must be an integer for every kind: the model refuses the body, the view stays.
    body = {**payload(name), "appid": "not a number"}
    parsed = parse_event(body, body["event_type"])
    assert parsed.model is None and parsed.schema_error is not None
    assert parsed.schema_error.startswith("appid")
    _, domain, app_name, stream_id, event_time, sequence = EXPECTED[name]
    n = parsed.normalised
    assert (n.domain, n.app_name, n.stream_id, n.sequence) == (
        domain,
        app_name,
        stream_id,
        sequence,
    )
    assert n.event_time == (pytest.approx(event_time) if event_time is not None else None)


async def test_tencents_porn_sample_with_a_scalar_score_keeps_its_time(
    client: Any, database: Path
) -> None:
    # The published sample spells `socre`; a scalar where the model wants a list must not cost
    # the event its time (nor its stream).
    body = signed({**payload("image_moderation_317.json"), "socre": 99})
    response = await client.post("/callbacks/porn", json=body)
    assert response.status == 200, await response.text()
    (row,) = rows(database)
    assert row["schema_error"] == "socre: Input should be a valid list"
    assert row["event_time"] == 1610640000
    assert (row["domain"], row["app_name"], row["stream_id"]) == (
        "5000.myqcloud.com",
        "live",
        "teststream",
    )


def _encode(body: dict[str, Any]) -> bytes:
    # Indented, non-ASCII kept: the stored payload must be these exact bytes, not a re-encoding.
    return json.dumps(body, ensure_ascii=False, indent=1).encode()


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_example_is_stored_verbatim_and_normalised(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path, name: str
) -> None:
    settings: Settings = make_settings(url_token=URL_TOKEN)
    from receiver.app import create_app

    client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(settings))
    body = payload(name)
    if body["event_type"] not in UNSIGNED_EVENT_TYPES:
        body = signed(body)
    raw = _encode(body)
    response = await client.post(f"/callbacks?token={URL_TOKEN}", data=raw)
    assert response.status == 200, await response.text()
    assert await response.read() == b'{"code":0}'

    (row,) = rows(database)
    kind, domain, app_name, stream_id, event_time, sequence = EXPECTED[name]
    assert row["kind"] == kind
    assert row["event_type"] == body["event_type"]
    assert (row["domain"], row["app_name"], row["stream_id"]) == (domain, app_name, stream_id)
    assert row["event_time"] == (pytest.approx(event_time) if event_time is not None else None)
    assert row["sequence"] == sequence
    assert row["payload"].encode() == raw
    assert orjson.loads(row["payload"]) == body
    assert row["schema_error"] is None
    assert row["published_at"] is None


async def test_unknown_event_type_is_stored_as_other(client: Any, database: Path) -> None:
    body = signed({"event_type": 329, "domain": "x.example", "stream_id": "s", "new_field": [1]})
    response = await client.post("/callbacks", json=body)
    assert response.status == 200
    (row,) = rows(database)
    assert (row["kind"], row["event_type"], row["stream_id"]) == ("other", 329, "s")


async def test_path_kind_is_metadata_and_event_type_wins(client: Any, database: Path) -> None:
    body = signed(payload("stream_end_0.json"))
    response = await client.post("/callbacks/stream-begin", json=body)
    assert response.status == 200
    (row,) = rows(database)
    assert (row["kind"], row["path_kind"]) == ("stream_end", "stream-begin")


async def test_unknown_path_kind_is_404_json(client: Any) -> None:
    response = await client.post("/callbacks/nonsense", json=signed(payload("push_begin_1.json")))
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def test_body_that_does_not_fit_its_model_is_still_stored(
    client: Any, database: Path
) -> None:
    body = signed({**payload("push_begin_1.json"), "width": "wide", "height": {"x": 1}})
    response = await client.post("/callbacks", json=body)
    assert response.status == 200
    (row,) = rows(database)
    assert row["kind"] == "stream_begin"
    assert row["stream_id"] == "test_stream"
    assert "width" in row["schema_error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_schema_mismatches_total{kind="stream_begin"} 1.0' in metrics


async def test_numeric_strings_and_numeric_ids_are_tolerated(client: Any, database: Path) -> None:
    body = payload("push_begin_1.json")
    body.update(event_type="1", event_time="1703731478", sequence=2210464508206756938, width="0")
    response = await client.post("/callbacks", json=signed(body))
    assert response.status == 200
    (row,) = rows(database)
    assert (row["event_type"], row["event_time"], row["sequence"]) == (
        1,
        1703731478,
        "2210464508206756938",
    )
    assert row["schema_error"] is None
