"""Every stored event reaches RabbitMQ under the documented contract, pushed by the relay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from receiver.app import create_app
from receiver.events.kinds import ALL_KINDS, UNSIGNED_EVENT_TYPES, kind_of
from tests.conftest import ClientFactory
from tests.support.amqp import Tap
from tests.support.helpers import (
    URL_TOKEN,
    eventually,
    payload,
    payload_names,
    rows,
    signed,
    unpublished,
)


def _raw(body: dict[str, Any]) -> bytes:
    # Indented and non-ASCII: the payload inside the envelope must be these very bytes.
    return json.dumps(body, ensure_ascii=False, indent=2).encode()


async def test_every_kind_is_routed_with_the_contract(
    aiohttp_client: ClientFactory,
    broker_settings: Any,
    amqp_url: str,
    exchange_name: str,
    database: Path,
) -> None:
    tap = await Tap(amqp_url, exchange_name).open()
    only_ends = await Tap(amqp_url, exchange_name, bindings=("css.stream_end",)).open()
    try:
        client = await aiohttp_client(create_app(broker_settings(url_token=URL_TOKEN)))
        for name in payload_names():
            body = payload(name)
            if body["event_type"] not in UNSIGNED_EVENT_TYPES:
                body = signed(body)
            raw = _raw(body)
            response = await client.post(f"/callbacks?token={URL_TOKEN}", data=raw)
            assert response.status == 200, await response.text()
        # An unknown event type is published too, as kind `other`.
        unknown = signed({"event_type": 9999, "stream_id": "s-other", "note": "新"})
        assert (
            await client.post(f"/callbacks?token={URL_TOKEN}", data=_raw(unknown))
        ).status == 200
        stored = rows(database)  # legacy variants of one event are stored once
        assert {row["kind"] for row in stored} == set(ALL_KINDS)

        received = await tap.wait_for(len(stored))
        by_id = {m.message_id: m for m in received}
        assert sorted(by_id) == sorted(r["id"] for r in stored)
        for row in stored:
            message = by_id[row["id"]]
            kind = kind_of(row["event_type"])
            assert row["kind"] == kind
            assert message.routing_key == f"css.{kind}"
            # The envelope: normalised fields plus the body exactly as CSS sent it.
            envelope = message.body
            assert list(envelope) == [
                "id",
                "event_type",
                "kind",
                "domain",
                "app_name",
                "stream_id",
                "event_time",
                "received_at",
                "payload",
            ]
            assert envelope["id"] == row["id"]
            assert envelope["event_type"] == row["event_type"]
            assert envelope["kind"] == kind
            assert envelope["domain"] == row["domain"]
            assert envelope["app_name"] == row["app_name"]
            assert envelope["stream_id"] == row["stream_id"]
            assert envelope["payload"] == json.loads(row["payload"])
            assert row["payload"].encode() in message.raw  # verbatim, not re-encoded
            assert envelope["received_at"].endswith("Z")
            received_at = datetime.fromisoformat(envelope["received_at"])
            assert received_at.utcoffset() == timedelta(0)
            assert abs(received_at.timestamp() - row["received_at"]) < 1e-3
            if row["event_time"] is None:
                assert envelope["event_time"] is None
            else:
                assert envelope["event_time"].endswith("Z")
                event_time = datetime.fromisoformat(envelope["event_time"])
                assert abs(event_time.timestamp() - row["event_time"]) < 1e-3
            # Properties and headers.
            assert message.properties == {
                "content_type": "application/json",
                "delivery_mode": 2,
                "timestamp": datetime.fromtimestamp(int(row["received_at"]), UTC),
                "type": kind,
                "app_id": "receiver",
            }
            expected_headers: dict[str, Any] = {
                "event_type": row["event_type"],
                "source": "callback",
            }
            for column in ("domain", "app_name", "stream_id"):
                if row[column] is not None:
                    expected_headers[column] = row[column]
            assert message.headers == expected_headers
        assert any(m.routing_key == "css.other" for m in received)

        # Routing keys are bindable per kind.
        ends = await only_ends.wait_for(1)
        assert {m.routing_key for m in ends} == {"css.stream_end"}
        # Every event is marked published once, after its confirm.
        await eventually(lambda: unpublished(database) == 0, what="all marked published")
        for row in rows(database):
            assert row["published_at"] is not None
            assert row["publish_attempts"] == 1
            assert row["last_error"] is None
    finally:
        for t in (tap, only_ends):
            await t.close()
            await t.delete()
