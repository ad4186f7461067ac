"""Deduplication keys: CSS retries on any non-200 or silence, so the same event arrives again.

The key is per kind (reference §1.3): the fields that identify one event of that kind (the
kinds table, `receiver.events.kinds`), plus the stream where the kind names one, so that a
collision between two streams can never drop an event. Retries may carry a fresh `t`/`sign`, so
the fallback (SHA-256 of the canonical body) leaves those two out. Keys are unique per
`event_type` in the database, which is what makes concurrent identical retries store exactly one
row.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from receiver.events.base import text
from receiver.events.kinds import BY_EVENT_TYPE

_UNSIGNED_FIELDS: Final = frozenset({"t", "sign"})


def dedupe_key(event_type: int, body: dict[str, Any]) -> str:
    """A stable identity of the event in `body`, identical for every retry of it."""
    kind = BY_EVENT_TYPE.get(event_type)
    if kind is not None and kind.key_fields is not None:
        values = [text(value) for value in kind.key_fields(body)]
        identifying = values[1:] if kind.names_stream else values
        if all(value is not None for value in identifying):
            return "k:" + _digest(orjson.dumps(values))
    return "b:" + body_digest(body)


def body_digest(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical body (sorted keys, compact) without `t` and `sign`."""
    unsigned = {key: value for key, value in body.items() if key not in _UNSIGNED_FIELDS}
    return _digest(orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
