"""Turn raw callback bytes into a JSON object and its `event_type`, refusing anything else.

The Content-Type header is not trusted (CSS does not document it): the raw bytes are decoded as
UTF-8 and parsed as JSON whatever the header says. Refused at the door, before anything else
reads the body, is what could later corrupt storage, crash a reader or mislead a consumer: lone
surrogates and NaN/Infinity (orjson refuses them), nesting deeper than `MAX_DEPTH`, and a key
repeated within one object.

Depth: every consumer of a stored body has its own nesting limit (orjson parses 1024 levels but
serialises only 255, and the history API and the message envelope wrap the body in a few levels
of their own). One limit, far below all of them and far above the few levels CSS bodies use,
makes a body either refused here or readable everywhere.

Duplicate keys: JSON parsers disagree on which of two equal keys wins. The receiver reads the last
one (for the signature, the kind and the normalised columns) while the stored and published body
keeps both, so a first-wins consumer would read another stream, another kind, or a `t`/`sign`
pair that was never checked. Such a body is refused.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

from receiver.errors import PayloadInvalid
from receiver.events.decode import Shape, exact, measure

# SQLite integers are signed 64-bit; event types are small, so anything beyond 2^31 is garbage.
MAX_EVENT_TYPE = 2**31 - 1
# Nesting levels a body may have; the body itself is level 1 (CSS examples use at most seven).
MAX_DEPTH: Final = 32
_INTEGER = re.compile(r"-?[0-9]{1,12}")
# A JSON escape that could spell a colon (`\u003a`); it defeats the cheap duplicate-key check.
_ESCAPED_COLON: Final = b"\\u003"
# How orjson writes every float of magnitude 1e16 or more: `1e+16`, `1.8446744073709552e+19`.
_EXPONENT: Final = b"e+"


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse `raw` (UTF-8) as a JSON object; raise `PayloadInvalid` otherwise.

    orjson parses the bytes directly and refuses invalid UTF-8 itself, so the body is never
    decoded here (the writer process stores it as text); only a refused body is decoded, to
    tell a UTF-8 error from a JSON one.

    Depth, duplicate keys and approximated integers are each ruled out by a test over bytes
    (C speed) when it can; only a body the test cannot clear is walked in Python (`measure`):
    - depth: each level opens a `{` or `[`, so a body holding at most `MAX_DEPTH` of them
      (those inside strings included) cannot be too deep;
    - an approximated integer is a float of magnitude 2^63 or more, which orjson always writes
      in exponent form with a `+` (`1.8446744073709552e+19`): a body written out again without
      `e+` holds none;
    - duplicate keys: see `_refuse_duplicate_keys`.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not raw or raw.isspace():
            raise PayloadInvalid(
                "body_empty", "the request body is empty; expected a JSON object"
            ) from None
        if exc.msg == "depth limit exceeded":
            raise _too_deep() from None
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
    shape: Shape | None = None
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        shape = measure(body, MAX_DEPTH)
        if shape.depth > MAX_DEPTH:
            raise _too_deep()
    written = orjson.dumps(body)  # within orjson's own depth limit, now
    if raw.count(b":") != written.count(b":") or (b"\\" in raw and _ESCAPED_COLON in raw):
        _refuse_duplicate_keys(raw)
    if _EXPONENT in written:
        if shape is None:
            shape = measure(body, MAX_DEPTH)
        if shape.lossy:  # an integer beyond 64 bits: keep its digits (receiver.events.decode)
            exact_body: dict[str, Any] = exact(raw)
            return exact_body
    return body


def _refuse_duplicate_keys(raw: bytes) -> None:
    """Raise `PayloadInvalid` naming the first key repeated within one object, if any.

    `parse_body` calls this only when a cheap test cannot rule duplicates out. That test: in
    JSON, a colon outside a string separates a key from its value, so the raw bytes hold (keys
    written) + (colons inside strings) colons; the parsed body written out again by orjson (which
    never escapes a colon) holds (keys kept) + (colons inside the strings kept). Parsing keeps
    one of each repeated key and drops the other's value, so a repeated key makes the first
    count larger. Unless a colon is hidden in an escape (`\\u003a`), equal counts prove that no
    key was written twice.
    """

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(items)
        if len(found) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise PayloadInvalid(
                        "body_duplicate_keys",
                        f"the key {json.dumps(key[:100])} appears more than once in one object; "
                        "each key may appear once",
                    )
                seen.add(key)
        return found

    json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)


def _too_deep() -> PayloadInvalid:
    return PayloadInvalid(
        "body_too_deep",
        f"the body nests more than {MAX_DEPTH} levels of objects and arrays (the body itself "
        "is level 1)",
    )


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
