"""One rule for reading times and one format for writing them, wherever a time crosses the API."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from receiver.history.models import Event
from receiver.history.params import EventQuery
from receiver.outbox.envelope import from_row
from receiver.outbox.replay import ReplayFilter
from receiver.times import iso_utc, parse_time, utc

# Stored arrival times: unix seconds from time.time(), any sub-microsecond remainder.
_STORED = st.floats(min_value=946_684_800, max_value=4_102_444_800, allow_nan=False)


def _published_received_at(received_at: float) -> str:
    row = (1, "id", 200, "snapshot", "d", "live", "s", None, received_at, "{}", "callback")
    envelope: dict[str, Any] = orjson.loads(from_row(row).body)
    return str(envelope["received_at"])


@settings(max_examples=2000)
@given(_STORED)
def test_a_published_received_at_passed_back_finds_its_own_event(received_at: float) -> None:
    shown = _published_received_at(received_at)
    # received_since=<shown> selects `received_at >= since`: the event itself is included...
    since = EventQuery.model_validate({"received_since": shown}).received_since
    assert since is not None and since <= received_at
    # ...and received_until=<shown> (`received_at < until`) leaves it out.
    assert not received_at < parse_time(shown)
    # The history API shows the same string for the same stored time.
    event = Event.model_validate(
        {
            "id": "x", "event_type": 1, "kind": "stream_begin", "domain": None,
            "app_name": None, "stream_id": None, "event_time": None, "sequence": None,
            "received_at": utc(received_at), "path_kind": None, "schema_error": None,
            "published": False, "published_at": None, "publish_attempts": 0, "payload": {},
            "source": "callback",
        }
    )  # fmt: skip
    assert orjson.loads(event.model_dump_json())["received_at"] == shown


def test_formatting_rounds_down_to_the_microsecond() -> None:
    assert iso_utc(1703731478.9999996) == "2023-12-28T02:44:38.999999Z"
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(None) is None
    assert iso_utc(1e20) is None  # no calendar shows it; never an exception


@pytest.mark.parametrize(
    "build",
    [
        lambda t: EventQuery.model_validate({"since": t}),
        lambda t: ReplayFilter.model_validate({"received_since": t}),
        lambda t: ReplayFilter.model_validate({"until": t}),
    ],
)
def test_a_time_without_an_offset_is_refused_everywhere(build: Any) -> None:
    with pytest.raises(ValidationError, match="no UTC offset"):
        build("2024-05-01T08:00:00")
    assert build("2024-05-01T08:00:00+08:00") is not None
    assert build("1714521600") is not None
