"""Hostile and broken input over real HTTP: a specific status and JSON error, never a crash."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from tests.conftest import ClientFactory
from tests.support.helpers import KEY, OLD_KEY, URL_TOKEN, count, md5_sign, payload, rows, signed


async def _refused(client: Any, data: Any, status: int, error: str, **kw: Any) -> Any:
    response = await client.post("/callbacks", data=data, **kw)
    body = await response.json()
    assert response.status == status, body
    assert body["error"] == error
    assert body["code"] != 0
    assert isinstance(body["message"], str) and body["message"]
    return body


async def _metric(client: Any, line: str) -> bool:
    return line in await (await client.get("/metrics")).text()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "body_empty"),
        (b"   \n", "body_empty"),
        (b"not json", "body_not_json"),
        (b'{"event_type": 1', "body_not_json"),
        (b"[1, 2, 3]", "body_not_object"),
        (b'"a string"', "body_not_object"),
        (b"null", "body_not_object"),
        (b'{"event_type": 1, "x": "\xff\xfe"}', "body_not_utf8"),
        (b'{"event_type": 1, "x": "\\ud800"}', "body_not_json"),
        (b'{"event_type": 1, "t": NaN}', "body_not_json"),
        (b'\xef\xbb\xbf{"event_type": 1}', "body_not_json"),
        (b"{}", "event_type_missing"),
        (b'{"event_type": null}', "event_type_missing"),
        (b'{"event_type": "abc"}', "event_type_invalid"),
        (b'{"event_type": 1.5}', "event_type_invalid"),
        (b'{"event_type": true}', "event_type_invalid"),
        (b'{"event_type": [1]}', "event_type_invalid"),
        (b'{"event_type": 99999999999999}', "event_type_invalid"),
        (b'{"event_type": -1}', "event_type_negative"),
        (b'{"event_type": "-5"}', "event_type_negative"),
    ],
)
async def test_bad_bodies_are_400(client: Any, database: Path, data: bytes, error: str) -> None:
    await _refused(client, data, 400, error)
    assert count(database) == 0
    assert await _metric(client, 'receiver_refusals_total{reason="body"} 1.0')


async def test_nesting_beyond_the_parser_is_400_too_deep(client: Any, database: Path) -> None:
    # Deeper than orjson itself parses: the same refusal as one level past the limit.
    nested = b'{"event_type": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    await _refused(client, nested, 400, "body_too_deep")
    assert count(database) == 0


async def test_huge_body_is_413(client: Any, database: Path) -> None:
    big = b'{"event_type": 1, "x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    await _refused(client, io.BytesIO(big), 413, "body_too_large")

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # no Content-Length: the limit applies while reading
        for _ in range(40):
            yield b"a" * 65536

    await _refused(client, chunks(), 413, "body_too_large")
    assert count(database) == 0
    assert await _metric(client, 'receiver_refusals_total{reason="too_large"} 2.0')


async def test_ten_thousand_unknown_fields_are_stored(client: Any, database: Path) -> None:
    body = signed(payload("push_begin_1.json"))
    body.update({f"extra_{i}": i for i in range(10_000)})
    response = await client.post("/callbacks", json=body)
    assert response.status == 200
    (row,) = rows(database)
    assert json.loads(row["payload"])["extra_9999"] == 9999


async def test_content_type_is_not_trusted(client: Any, database: Path) -> None:
    body = json.dumps(signed(payload("push_begin_1.json")))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "image/png"):
        response = await client.post(
            "/callbacks", data=body, headers={"Content-Type": content_type}
        )
        assert response.status == 200
    assert count(database) == 1  # the same event three times


@pytest.mark.parametrize(
    ("change", "reason", "error"),
    [
        ({"t": None}, "missing", "signature_missing"),
        ({"sign": None}, "missing", "signature_missing"),
        ({"t": "soon"}, "malformed", "signature_malformed"),
        ({"t": 1703732078.0}, "malformed", "signature_malformed"),
        ({"sign": "0123456789abcdef0123456789abcdef"}, "mismatch", "signature_mismatch"),
    ],
)
async def test_bad_signatures_are_401(
    client: Any, database: Path, change: dict[str, Any], reason: str, error: str
) -> None:
    body = {**signed(payload("push_begin_1.json")), **change}
    body = {k: v for k, v in body.items() if v is not None}
    await _refused(client, json.dumps(body), 401, error)
    assert count(database) == 0
    assert await _metric(client, f'receiver_refusals_total{{reason="{reason}"}} 1.0')


async def test_expired_and_far_future_t_are_401(client: Any, database: Path) -> None:
    now = int(time.time())
    expired = signed(payload("push_begin_1.json"), t=now - 301)
    await _refused(client, json.dumps(expired), 401, "signature_expired")
    future = signed(payload("push_begin_1.json"), t=now + 3600)
    await _refused(client, json.dumps(future), 401, "signature_too_far_in_future")
    assert count(database) == 0


async def test_t_as_string_upper_case_sign_and_old_key_are_accepted(
    client: Any, database: Path
) -> None:
    t = int(time.time()) + 600
    begin = {**payload("push_begin_1.json"), "t": str(t), "sign": md5_sign(KEY, t).upper()}
    assert (await client.post("/callbacks", json=begin)).status == 200
    end = signed(payload("stream_end_0.json"), key=OLD_KEY)
    assert (await client.post("/callbacks", json=end)).status == 200
    assert [r["kind"] for r in rows(database)] == ["stream_begin", "stream_end"]


async def test_unsigned_kinds_need_the_url_token(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path
) -> None:
    relay = payload("relay_314_task_start.json")
    plain = await aiohttp_client(create_app(make_settings()))
    await _refused(plain, json.dumps(relay), 401, "token_required")
    # A valid CSS signature does not make an unsigned kind acceptable without a token.
    await _refused(plain, json.dumps(signed(relay)), 401, "token_required")
    assert count(database) == 0
    await plain.close()  # one service per database: the next one starts once this one stopped

    with_token = await aiohttp_client(create_app(make_settings(url_token=URL_TOKEN)))
    response = await with_token.post(f"/callbacks?token={URL_TOKEN}", json=relay)
    assert response.status == 200
    assert count(database) == 1


async def test_configured_url_token_is_required_for_every_kind(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(url_token=URL_TOKEN)))
    body = json.dumps(signed(payload("push_begin_1.json")))
    await _refused(client, body, 401, "token_missing")
    response = await client.post("/callbacks?token=wrong", data=body)
    assert response.status == 401
    assert (await response.json())["error"] == "token_mismatch"
    # The token is checked before the body: garbage without a token learns nothing more.
    await _refused(client, b"garbage", 401, "token_missing")
    ok = await client.post(f"/callbacks/stream-begin?token={URL_TOKEN}", data=body)
    assert ok.status == 200
    assert count(database) == 1
    assert await _metric(client, 'receiver_refusals_total{reason="token"} 3.0')


async def test_fifty_concurrent_duplicates_store_one_row(client: Any, database: Path) -> None:
    body = json.dumps(signed(payload("push_begin_1.json")))
    responses = await asyncio.gather(*(client.post("/callbacks", data=body) for _ in range(50)))
    assert [r.status for r in responses] == [200] * 50
    assert {await r.read() for r in responses} == {b'{"code":0}'}
    assert count(database) == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_duplicates_total{kind="stream_begin"} 49.0' in metrics
    assert 'receiver_callbacks_total{kind="stream_begin",result="stored"} 1.0' in metrics


async def test_retry_with_fresh_signature_is_a_duplicate(client: Any, database: Path) -> None:
    # CSS may re-sign a retry: a new t/sign must not make it a new event.
    first = signed(payload("stream_end_0.json"), t=int(time.time()) + 600)
    retry = signed(payload("stream_end_0.json"), t=int(time.time()) + 480)
    for body in (first, retry):
        assert (await client.post("/callbacks", json=body)).status == 200
    assert count(database) == 1


async def test_distinct_events_with_shared_ids_across_streams_are_kept(
    client: Any, database: Path
) -> None:
    a = signed({**payload("push_begin_1.json"), "stream_id": "a"})
    b = signed({**payload("push_begin_1.json"), "stream_id": "b"})
    for body in (a, b):
        assert (await client.post("/callbacks", json=body)).status == 200
    assert count(database) == 2


async def test_service_survives_all_of_it(client: Any) -> None:
    for data in (b"\x00" * 100, b"{" * 5000, b'{"event_type": 1}' * 1000, bytes(range(256))):
        response = await client.post("/callbacks", data=data)
        assert response.status in (400, 401)
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_wrong_method_is_405_json(client: Any) -> None:
    response = await client.get("/callbacks")
    assert response.status == 405
    assert (await response.json())["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /callbacks HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"POST /callbacks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /callbacks HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["header-without-colon", "bad-chunk-size", "oversized-header"],
)
async def test_malformed_http_is_400_a_counted_warning_and_no_traceback(
    client: Any, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Scanners send broken HTTP all day: one WARNING line each, counted, never an ERROR."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert status_line.split()[1] == b"400", status_line

    server_records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert server_records, "the refusal is logged"
    assert all(r.levelname == "WARNING" and r.exc_info is None for r in server_records)
    assert "malformed HTTP request from 127.0.0.1 refused with 400" in server_records[0].message
    assert await _metric(client, "receiver_malformed_http_requests_total 1.0")
    # The service carries on answering.
    assert (await client.get("/healthz")).status == 200
