"""Turn raw callback bytes into a JSON object and its `event_type`, refusing anything else.

The Content-Type header is not trusted (CSS does not document it): the raw bytes are decoded as
UTF-8 and parsed as JSON whatever the header says. orjson refuses what could later corrupt storage
or crash a handler: lone surrogates, NaN/Infinity, and nesting deeper than 1024 levels.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from receiver.errors import PayloadInvalid

# SQLite integers are signed 64-bit; event types are small, so anything beyond 2^31 is garbage.
MAX_EVENT_TYPE = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]{1,12}")


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse `raw` (UTF-8) as a JSON object; raise `PayloadInvalid` otherwise.

    orjson parses the bytes directly and refuses invalid UTF-8 itself, so the body is never
    decoded here (the writer process stores it as text); only a refused body is decoded, to
    tell a UTF-8 error from a JSON one.
    """
    if not raw or raw.isspace():
        raise PayloadInvalid("body_empty", "the request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise PayloadInvalid(
                "body_not_utf8", f"the request body is not valid UTF-8 (byte {bad.start})"
            ) from None
        raise PayloadInvalid("body_not_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadInvalid(
            "body_not_object",
            f"the request body is a JSON {_json_type(body)}; expected a JSON object",
        )
    return body


def read_event_type(body: dict[str, Any]) -> int:
    """The body's `event_type` as a non-negative integer (a string of digits is tolerated)."""
    if "event_type" not in body or body["event_type"] is None:
        raise PayloadInvalid("event_type_missing", "the body has no event_type field")
    value = body["event_type"]
    event_type: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        event_type = value
    elif isinstance(value, str):
        stripped = value.strip()
        if _INTEGER.fullmatch(stripped):
            event_type = int(stripped)
    if event_type is None:
        raise PayloadInvalid(
            "event_type_invalid", f"event_type must be an integer, got {_json_type(value)}"
        )
    if event_type < 0:
        raise PayloadInvalid("event_type_negative", "event_type must not be negative")
    if event_type > MAX_EVENT_TYPE:
        raise PayloadInvalid("event_type_invalid", "event_type is out of range")
    return event_type


def _json_type(value: object) -> str:
    match value:
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
        case None:
            return "null"
    return type(value).__name__
