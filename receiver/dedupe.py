"""Deduplication keys: CSS retries on any non-200 or silence, so the same event arrives again.

The key is per kind (reference §1.3): the fields that identify one event of that kind, plus the
stream where the kind names one, so that a collision between two streams can never drop an event.
Retries may carry a fresh `t`/`sign`, so the fallback (SHA-256 of the canonical body) leaves those
two out. Keys are unique per `event_type` in the database, which is what makes concurrent
identical retries store exactly one row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

import orjson

from receiver.events.base import text

_Fields = Callable[[dict[str, Any]], list[object]]


def _stream(body: dict[str, Any]) -> object:
    return body.get("stream_id") or body.get("streamId")


def _exception_type(body: dict[str, Any]) -> object:
    exception = body.get("exception")
    return exception.get("type") if isinstance(exception, dict) else None


# For each kind, the identifying fields; the first ones after the stream must all be present.
_KEY_FIELDS: Final[dict[int, _Fields]] = {
    1: lambda b: [_stream(b), b.get("sequence")],
    0: lambda b: [_stream(b), b.get("sequence")],
    100: lambda b: [_stream(b), b.get("record_file_id") or b.get("file_id")],
    332: lambda b: [b.get("session_id"), b.get("record_event"), b.get("seq")],
    341: lambda b: [b.get("session_id"), _exception_type(b), b.get("timestamp")],
    # create_time too: a template may overwrite one file name, and each shot is a new event.
    200: lambda b: [_stream(b), b.get("pic_url"), b.get("create_time")],
    317: lambda b: [_stream(b), b.get("img"), b.get("screenshotTime")],
    315: lambda b: [b.get("request_id")],
    321: lambda b: [_stream(b), b.get("sequence"), b.get("data_time")],
    314: lambda b: [b.get("task_id"), b.get("callback_event"), b.get("msg")],
}

_UNSIGNED_FIELDS: Final = frozenset({"t", "sign"})


def dedupe_key(event_type: int, body: dict[str, Any]) -> str:
    """A stable identity of the event in `body`, identical for every retry of it."""
    fields = _KEY_FIELDS.get(event_type)
    if fields is not None:
        values = [text(value) for value in fields(body)]
        identifying = values[1:] if event_type in (0, 1, 100, 200, 317, 321) else values
        if all(value is not None for value in identifying):
            return "k:" + _digest(orjson.dumps(values))
    return "b:" + body_digest(body)


def body_digest(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical body (sorted keys, compact) without `t` and `sign`."""
    unsigned = {key: value for key, value in body.items() if key not in _UNSIGNED_FIELDS}
    return _digest(orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
