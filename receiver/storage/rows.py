"""The stored form of an event and the SQL that writes it."""

from __future__ import annotations

from typing import Any, Final

from receiver.events import ParsedEvent
from receiver.events.kinds import kind_of


def event_row(
    event_id: str,
    parsed: ParsedEvent,
    *,
    dedupe_key: str,
    payload: str,
    received_at: float,
    path_kind: str | None,
) -> tuple[Any, ...]:
    """The `INSERT_EVENT` parameters of one new row (a plain tuple: the writer makes thousands
    per second, and sqlite3 binds a tuple as is)."""
    n = parsed.normalised
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
    )


# A retry of a stored event hits the unique (event_type, dedupe_key) index and is ignored.
INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events (id, event_type, kind, dedupe_key, domain, app_name, stream_id,"
    " event_time, sequence, received_at, path_kind, schema_error, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
