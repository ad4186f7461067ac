"""The pure parts of publishing: envelope, back-off, replay filters, URL masking, settings."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from receiver.outbox.backoff import Backoff
from receiver.outbox.envelope import OutboxRow, from_row
from receiver.outbox.publisher import mask_url
from receiver.outbox.replay import ReplayFilter
from receiver.settings import Settings
from receiver.times import iso_utc

RAW = '\n  {"event_type": 1, "name": "直播\\u00e9", "n": 1.50, "nested": {"a": [1, 2]}}\n'


def _row(**changes: Any) -> OutboxRow:
    values: dict[str, Any] = {
        "seq": 7,
        "id": "01900000-0000-7000-8000-000000000000",
        "event_type": 1,
        "kind": "stream_begin",
        "domain": "d.example",
        "app_name": "live",
        "stream_id": "s1",
        "event_time": 1703731478.0,
        "received_at": 1703731479.25,
        "payload": RAW,
        "source": "callback",
    }
    values.update(changes)
    return tuple(values.values())


def test_envelope_splices_the_payload_verbatim() -> None:
    message = from_row(_row())
    assert message.seq == 7
    assert message.routing_key == "css.stream_begin"
    body = json.loads(message.body)
    assert body == {
        "id": "01900000-0000-7000-8000-000000000000",
        "event_type": 1,
        "kind": "stream_begin",
        "domain": "d.example",
        "app_name": "live",
        "stream_id": "s1",
        "event_time": "2023-12-28T02:44:38Z",
        "received_at": "2023-12-28T02:44:39.250000Z",
        "payload": json.loads(RAW),
    }
    assert RAW.encode() in message.body  # whitespace, escapes and number spelling kept


def test_envelope_properties_and_headers() -> None:
    props = from_row(_row()).properties
    assert props.message_id == "01900000-0000-7000-8000-000000000000"
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.message_type == "stream_begin"
    assert props.app_id == "receiver"
    assert props.timestamp == datetime(2023, 12, 28, 2, 44, 39, tzinfo=UTC)
    assert props.headers == {
        "event_type": 1,
        "domain": "d.example",
        "app_name": "live",
        "stream_id": "s1",
        "source": "callback",
    }
    bare = from_row(_row(domain=None, app_name=None, stream_id=None, event_time=None))
    # unknown values are left out
    assert bare.properties.headers == {"event_type": 1, "source": "callback"}
    reconciled = from_row(_row(source="reconciled")).properties.headers
    assert reconciled is not None
    assert reconciled["source"] == "reconciled"
    assert json.loads(bare.body)["event_time"] is None
    replayed = from_row(_row(), replay=True)
    assert replayed.properties.headers is not None
    assert replayed.properties.headers["x-replay"] is True
    assert replayed.body == from_row(_row()).body


def test_iso_utc_survives_absurd_times() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(None) is None
    assert iso_utc(1e20) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=0.25, cap=30.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(40)]
    assert 0.125 <= delays[0] <= 0.25
    assert all(0 < d <= 30.0 for d in delays)
    assert all(d >= 15.0 for d in delays[10:])  # at the cap: between half and all of it
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.25
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=0)


def test_replay_filter_parsing() -> None:
    f = ReplayFilter.model_validate(
        {
            "since": "2024-05-01T00:00:00Z",
            "until": 1714608000,
            "received_since": "2024-05-01T08:00:00+08:00",
            "kind": "record, porn",
            "stream_id": "s",
        }
    )
    assert f.kind == ["record", "porn"]
    where, params = f.where()
    assert where == (
        "kind IN (?,?) AND stream_id = ? AND event_time >= ? AND event_time < ?"
        " AND received_at >= ?"
    )
    assert params == ["record", "porn", "s", 1714521600.0, 1714608000.0, 1714521600.0]
    assert f.describe()["since"] == "2024-05-01T00:00:00Z"
    # One rule for times in every filter: without an offset a time is refused, not guessed.
    with pytest.raises(ValidationError, match="no UTC offset"):
        ReplayFilter.model_validate({"since": "2024-05-01"})
    # The former spelling is answered with the new name.
    with pytest.raises(ValidationError, match="'stream' is now called 'stream_id'"):
        ReplayFilter.model_validate({"stream": "s"})
    assert ReplayFilter.model_validate({"all": True}).where() == ("1", [])
    with pytest.raises(ValidationError, match="no filter given"):
        ReplayFilter.model_validate({})
    with pytest.raises(ValidationError, match="unknown kind 'x'"):
        ReplayFilter.model_validate({"kind": ["x"]})
    with pytest.raises(ValidationError, match="limit"):
        ReplayFilter.model_validate({"all": True, "limit": 1})


def test_urls_are_masked() -> None:
    assert mask_url("amqp://u:p4ss@h:5672/vh") == "amqp://u:***@h:5672/vh"
    assert mask_url("amqp://h/") == "amqp://h/"


def test_broker_settings() -> None:
    settings = Settings(
        amqp_url=SecretStr("amqp://u:p4ss@h/"), api_token=SecretStr("t0k3n-of-sixteen-chars")
    )
    assert "p4ss" not in repr(settings) and "t0k3n" not in repr(settings)
    assert settings.amqp_exchange == "css.events"
    assert settings.publish_in_flight == 256
    assert Settings(amqp_url=" ", api_token="").amqp_url is None
    with pytest.raises(ValidationError, match="amqp://"):
        Settings(amqp_url=SecretStr("http://h/"))
    with pytest.raises(ValidationError, match="publish_retry_max_seconds"):
        Settings(publish_retry_max_seconds=60)
    with pytest.raises(ValidationError, match="amqp_exchange"):
        Settings(amqp_exchange="has spaces")
