"""Deduplication keys: CSS retries on any non-200 or silence, so the same event arrives again.

A key says which event a body reports, so that a retry (the same body, perhaps with a fresh
`t`/`sign` and its keys in another order) finds the stored row, and two different events never
share a key. Per kind (reference §1.3, docs/events.md): the stream's whole identity (domain, app
name, stream, read by the same accessors as the normalised columns, so key and columns agree)
plus the fields that identify one event of that stream (the kinds table,
`receiver.events.kinds`). Kinds without such fields, and bodies missing one of them (or, for a
kind that names its stream, missing part of the stream's identity), are keyed by the SHA-256 of
the canonical body without `t` and `sign`: correct for a retry, and never shared by two
different bodies. Keys are unique per `event_type` in the database, which is what makes
concurrent identical retries store exactly one row.

Every key starts with the version of this scheme. Rows keep the key they were stored with, so a
new scheme can never find a different event's old key and drop it; the price is that a retry
arriving across an upgrade, whose first copy carries an old key, is stored a second time.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import orjson

from receiver.events.base import text
from receiver.events.kinds import BY_EVENT_TYPE

# Version 1 (no prefix digit: "k:" and "b:") left the push domain and app name out of the keys.
VERSION: Final = "2"
_UNSIGNED_FIELDS: Final = frozenset({"t", "sign"})


def dedupe_key(event_type: int, body: dict[str, Any]) -> str:
    """A stable identity of the event in `body`, identical for every retry of it."""
    kind = BY_EVENT_TYPE.get(event_type)
    if kind is not None and kind.key_fields is not None:
        fields = [text(value) for value in kind.key_fields(body)]
        identity = kind.model.identity(body)
        if None not in fields and not (kind.names_stream and None in identity):
            return f"{VERSION}k:{_digest(orjson.dumps([*identity, *fields]))}"
    return f"{VERSION}b:{body_digest(body)}"


def body_digest(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical body (sorted keys, compact) without `t` and `sign`."""
    unsigned = {key: value for key, value in body.items() if key not in _UNSIGNED_FIELDS}
    try:
        canonical = orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits, which orjson cannot write: the same rule
        canonical = json.dumps(
            unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    return _digest(canonical)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
