"""The kinds table is the one place a kind is described: its entries agree with their models and
with every view derived from them."""

from __future__ import annotations

from typing import get_args

from receiver.events import MODEL_BY_EVENT_TYPE
from receiver.events.kinds import (
    ALL_KINDS,
    BY_EVENT_TYPE,
    KINDS,
    OTHER,
    PATH_KINDS,
    SESSION_CATEGORIES,
    UNSIGNED_EVENT_TYPES,
    URL_FIELD_BY_PATH_KIND,
    kind_of,
)
from tests.support.helpers import payload, payload_names


def test_each_entry_is_unique_and_matches_its_model() -> None:
    assert len({k.event_type for k in KINDS}) == len({k.name for k in KINDS}) == len(KINDS)
    for kind in KINDS:
        literal = kind.model.model_fields["event_type"].annotation
        assert get_args(literal) == (kind.event_type,), kind.name
        assert MODEL_BY_EVENT_TYPE[kind.event_type] is kind.model
        assert kind_of(kind.event_type) == kind.name
    assert ALL_KINDS[-1] == OTHER and kind_of(999_999) == OTHER


def test_views_of_the_table() -> None:
    assert PATH_KINDS == {
        "stream-begin": 1, "stream-end": 0, "record": 100, "snapshot": 200, "porn": 317,
        "push-exception": 321, "record-status": 332, "record-exception": 341,
        "audio-moderation": 315,
    }  # fmt: skip
    assert set(URL_FIELD_BY_PATH_KIND) == set(PATH_KINDS)
    assert {314, 328} == UNSIGNED_EVENT_TYPES
    assert SESSION_CATEGORIES == {
        "recordings": ("record",),
        "snapshots": ("snapshot",),
        "moderation": ("porn", "audio_moderation"),
        "push_exceptions": ("push_exception",),
    }


def test_names_stream_says_which_examples_name_domain_app_and_stream() -> None:
    # A kind that names its stream gets field keys only with all three; the table must not claim
    # it for a kind whose bodies lack them (every such body would fall back to its content).
    for name in payload_names():
        body = payload(name)
        kind = BY_EVENT_TYPE[body["event_type"]]
        identity = kind.model.identity(body)
        assert (None not in identity) is kind.names_stream, (name, identity)
