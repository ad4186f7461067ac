"""What the history API answers: response models, serialised by pydantic and documented by them.

Times are ISO 8601 UTC strings (as in the outbox message contract); `payload` is the callback
body exactly as CSS sent it, as a JSON object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from receiver.web.responses import Resource

Source = Literal["callback", "reconciled", "confirmed"]
SOURCE_DESCRIPTION = (
    "Where it came from: `callback` (CSS posted it), `reconciled` (rebuilt from Tencent's own "
    "records because its callback never arrived), `confirmed` (reconciled first, then its real "
    "callback arrived and replaced the body): docs/reconciliation.md."
)


class Event(Resource):
    """One stored callback: the normalised columns, publish status and the raw body."""

    id: str = Field(description="Stable event id (UUIDv7); the AMQP message_id.")
    event_type: int = Field(description="CSS `event_type`.")
    kind: str = Field(description="Kind name, e.g. `stream_begin`.")
    domain: str | None = Field(description="Push domain (`app` or `domain` in the body).")
    app_name: str | None = Field(description="Push path (`appname` or `path` in the body).")
    stream_id: str | None
    event_time: datetime | None = Field(description="When CSS says it happened.")
    sequence: str | None = Field(description="Push session id (kinds 0, 1 and 321).")
    received_at: datetime = Field(description="When this service stored it.")
    path_kind: str | None = Field(description="The `/callbacks/<kind>` path it was posted to.")
    schema_error: str | None = Field(
        description="Set when the body did not fit its kind's model (it is stored anyway)."
    )
    published: bool = Field(description="Whether the broker has confirmed it.")
    published_at: datetime | None
    publish_attempts: int
    payload: dict[str, Any] = Field(description="The callback body as received.")
    source: Source = Field(description=SOURCE_DESCRIPTION)


class EventList(Resource):
    events: list[Event]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Stream(Resource):
    """One (domain, app_name, stream_id) and what its push sessions say about it."""

    domain: str | None
    app_name: str | None
    stream_id: str
    state: Literal["live", "ended", "unknown"] = Field(
        description="live: at least one push session has begun and not ended (a backup push "
        "overlaps the main one); ended: every session has ended; unknown: no push begin or end "
        "is stored for the stream."
    )
    state_source: Source | None = Field(
        description="Where the state came from: the source of the push begin of the current "
        "session while live, of the latest stream end once ended (`reconciled`: Tencent's "
        "records or its online list said so, not a callback)."
    )
    current_sequence: str | None = Field(
        description="`sequence` of the latest open push session; of the latest session when "
        "none is open."
    )
    last_begin: datetime | None = Field(description="Latest push begin.")
    last_end: datetime | None = Field(description="Latest stream end.")
    end_code: int | None = Field(description="`errcode` of the latest stream end.")
    end_reason: str | None = Field(description="What that code means (CSS interruption table).")
    end_message: str | None = Field(description="`errmsg` of the latest stream end, from CSS.")
    sessions: int = Field(description="Push sessions seen.")
    open_sessions: int = Field(description="Push sessions begun and not (yet) ended.")
    events: int = Field(description="Events stored for the stream.")
    event_counts: dict[str, int] = Field(description="Events stored per kind.")
    last_received_at: datetime = Field(description="Arrival of its newest event.")


class StreamList(Resource):
    streams: list[Stream]
    next_cursor: str | None


class StreamRef(Resource):
    domain: str | None
    app_name: str | None
    stream_id: str


class SessionCounts(Resource):
    recordings: int = 0
    snapshots: int = 0
    moderation: int = 0
    push_exceptions: int = 0


class Session(Resource):
    """One push session: the push begin and stream end with the same `sequence`.

    Recordings, snapshots, moderation results and push exceptions are the stream's events from
    this session's start until the next session's start: recordings and moderation results
    arrive after the push ends, so the end is not where they stop belonging to it.
    """

    sequence: str | None
    state: Literal["live", "ended"] = Field(
        description="This session's own state: live from its push begin until its own stream "
        "end is stored, whatever other sessions of the stream do."
    )
    start: datetime = Field(
        description="Push begin; when only the stream end is stored, the end minus its "
        "`push_duration` (the end itself if that is missing or unusable)."
    )
    end: datetime | None = Field(description="Stream end; null while live or when never received.")
    duration_seconds: float | None
    end_code: int | None = Field(description="`errcode` of the stream end.")
    end_reason: str | None = Field(description="What `end_code` means (CSS interruption table).")
    end_message: str | None = Field(description="`errmsg` of the stream end, from CSS.")
    begin_event_id: str | None
    end_event_id: str | None
    begin_source: Source | None = Field(description="Source of the push begin.")
    end_source: Source | None = Field(description="Source of the stream end.")
    role: Literal["main", "backup"] | None = Field(
        default=None,
        description="While the stream has several open sessions: which push Tencent plays "
        "(`MasterFlag` of DescribeBackupStreamList, matched on `sequence`); null otherwise or "
        "when Tencent was not asked.",
    )
    counts: SessionCounts = Field(description="How many events of each category fall in it.")
    recordings: list[Event] = Field(description="Recording files (100), oldest first.")
    snapshots: list[Event] = Field(description="Screenshots (200), oldest first.")
    moderation: list[Event] = Field(description="Image (317) and audio (315) moderation hits.")
    push_exceptions: list[Event] = Field(description="Push exceptions (321).")


class SessionList(Resource):
    stream: StreamRef
    sessions: list[Session]
    next_cursor: str | None


class EventPending(Resource):
    """An acknowledged callback the fold has not turned into an event yet (a moment after its
    200, longer after a burst): it is on disk and will be there; ask again shortly."""

    id: str
    status: Literal["pending"]
    message: str
