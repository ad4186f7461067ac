"""The stored form of an event and the SQL that writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from receiver.events import ParsedEvent
from receiver.events.kinds import kind_of


def event_row(
    event_id: str,
    parsed: ParsedEvent,
    *,
    body: Mapping[str, Any],
    dedupe_key: str,
    payload: str,
    received_at: float,
    path_kind: str | None,
) -> tuple[Any, ...]:
    """The `INSERT_EVENT` parameters of one new row (a plain tuple: the writer makes thousands
    per second, and sqlite3 binds a tuple as is)."""
    n = parsed.normalised
    duration = push_duration_ms(body) if parsed.event_type == STREAM_END else None
    return (
        event_id,
        parsed.event_type,
        kind_of(parsed.event_type),
        dedupe_key,
        n.domain,
        n.app_name,
        n.stream_id,
        n.event_time,
        n.sequence,
        received_at,
        path_kind,
        parsed.schema_error,
        payload,
        duration,
    )


STREAM_END: Final = 0
_MAX_DIGITS: Final = 18  # whole milliseconds that fit a signed 64-bit integer


def push_duration_ms(body: Mapping[str, Any]) -> int | None:
    """A stream end's `push_duration` (milliseconds, a string in the reference) as an integer.

    Stored in its own column because the history triggers place a session known only from its
    end by it, and a trigger must not parse JSON: any SQL function call in a trigger on `events`
    makes SQLite open a statement journal for every insert. The rule is the SQL one in
    migrations/0004, which fills the column for events stored before it: a JSON integer, an
    integral JSON number or a string of ASCII digits (spaces around allowed), at least 0 and at
    most 18 digits; anything else is None.
    """
    value = body.get("push_duration")
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        digits = value.strip(" ")
        if not digits or len(digits) > _MAX_DIGITS or not all("0" <= c <= "9" for c in digits):
            return None
        value = int(digits)
    if isinstance(value, int) and 0 <= value < 10**_MAX_DIGITS:
        return value
    return None


# A retry of a stored event hits the unique (event_type, dedupe_key) index and is ignored.
INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events (id, event_type, kind, dedupe_key, domain, app_name, stream_id,"
    " event_time, sequence, received_at, path_kind, schema_error, payload, push_duration_ms)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
