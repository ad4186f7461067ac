"""The stored form of an event and the SQL that writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from uuid6 import uuid7

from receiver.events import ParsedEvent
from receiver.kinds import kind_of


@dataclass(frozen=True, slots=True)
class EventRow:
    """One row of `events`, built on the request path and written by the group-commit writer."""

    id: str
    event_type: int
    kind: str
    dedupe_key: str
    domain: str | None
    app_name: str | None
    stream_id: str | None
    event_time: float | None
    sequence: str | None
    received_at: float
    path_kind: str | None
    schema_error: str | None
    payload: str

    @classmethod
    def build(
        cls,
        parsed: ParsedEvent,
        *,
        dedupe_key: str,
        payload: str,
        received_at: float,
        path_kind: str | None,
    ) -> EventRow:
        """A new row with a fresh time-ordered id (UUIDv7)."""
        n = parsed.normalised
        return cls(
            id=str(uuid7()),
            event_type=parsed.event_type,
            kind=kind_of(parsed.event_type),
            dedupe_key=dedupe_key,
            domain=n.domain,
            app_name=n.app_name,
            stream_id=n.stream_id,
            event_time=n.event_time,
            sequence=n.sequence,
            received_at=received_at,
            path_kind=path_kind,
            schema_error=parsed.schema_error,
            payload=payload,
        )

    def params(self) -> tuple[object, ...]:
        return (
            self.id,
            self.event_type,
            self.kind,
            self.dedupe_key,
            self.domain,
            self.app_name,
            self.stream_id,
            self.event_time,
            self.sequence,
            self.received_at,
            self.path_kind,
            self.schema_error,
            self.payload,
        )


# A retry of a stored event hits the unique (event_type, dedupe_key) index and is ignored.
INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events (id, event_type, kind, dedupe_key, domain, app_name, stream_id,"
    " event_time, sequence, received_at, path_kind, schema_error, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
