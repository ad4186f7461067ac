"""Push quality of one stream's session: `DescribeStreamPushInfoList` over the session's window.

The session is the one asked for by `sequence`, else the stream's current one (the latest open
session, else the latest: `streams.current_session`). The window is the session's span, as
Tencent can answer it: at most the last 3 hours of it (the API's span), and nothing older than
7 days (its history). Points of other pushes of the same name (a backup push has its own
`Sequence`) are left out when the session's sequence is known: the API's `Sequence` is the
callback's `sequence`, the one exact join between the two (team reference §1.5).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import aiosqlite
from pydantic import Field

from receiver.errors import ApiNotFound
from receiver.history.models import StreamRef
from receiver.history.params import Params
from receiver.history.pg_sql import find_stream as pg_find_stream
from receiver.history.sql import StreamKey, find_stream
from receiver.insight.cache import Answer
from receiver.storage.postgres.placeholders import numbered
from receiver.storage.selection import Text
from receiver.tencent.monitoring import (
    PUSH_HISTORY_SECONDS,
    PUSH_SPAN_SECONDS,
    Monitoring,
    parse_api_time,
)
from receiver.times import utc
from receiver.web.responses import Resource

if TYPE_CHECKING:
    import asyncpg

# An open session's data grows: ask again after this long; an ended one's is final.
OPEN_TTL_SECONDS: Final = 30.0
ENDED_TTL_SECONDS: Final = 600.0
# Start a little inside the 7 days, so the request is not refused for a second's drift.
_HISTORY_MARGIN: Final = 60.0

_BY_SEQUENCE: Final = (
    "SELECT session_key, sequence, begin_time, end_time, started_at FROM push_sessions"
    " WHERE stream = ? AND sequence = ? ORDER BY id DESC LIMIT 1"
)
_CURRENT: Final = (
    "SELECT p.session_key, p.sequence, p.begin_time, p.end_time, p.started_at"
    " FROM streams AS s JOIN push_sessions AS p ON p.id = s.current_session WHERE s.id = ?"
)


class QualityQuery(Params):
    domain: Text | None = Field(
        default=None, description="Push domain; needed when the stream name exists on several."
    )
    app_name: Text | None = Field(
        default=None, description="Push path; needed when the stream name exists on several."
    )
    sequence: Text | None = Field(
        default=None, description="The push session (its `sequence`); default: the open or last."
    )


class QualityPoint(Resource):
    time: datetime | None = Field(description="When Tencent sampled it (UTC).")
    sequence: str | None = Field(description="The push session it belongs to.")
    video_fps: float | None
    video_bitrate_bps: float | None
    audio_fps: float | None
    audio_bitrate_bps: float | None
    resolution: str | None = Field(description="WIDTH*HEIGHT, as Tencent writes it.")
    video_codec: str | None
    audio_codec: str | None
    client_ip: str | None = Field(description="The pushing client.")
    server_ip: str | None = Field(description="The ingest server (may be null).")
    lag_ms: float | None = Field(
        description="LocalTs - VideoTs: the larger, the worse the upstream lag (Tencent)."
    )
    bandwidth_mbps: float | None


class Quality(Resource):
    stream: StreamRef
    sequence: str | None = Field(description="The session's sequence (null: not known).")
    session_open: bool
    since: datetime
    until: datetime
    points: list[QualityPoint]
    fetched_at: datetime | None = Field(description="When Tencent was asked.")
    cached: bool = Field(description="Served from the cache (no call for this request).")
    stale: bool = Field(description="Tencent could not be asked again; this is the last answer.")
    stale_reason: str | None


@dataclass(frozen=True, slots=True)
class Window:
    stream: StreamKey
    session_key: str
    sequence: str | None
    open: bool
    start: float
    end: float

    @property
    def key(self) -> Hashable:
        # An open session's end is "now": keyed without it, so a busy page shares one entry.
        return (
            "quality",
            self.stream.id,
            self.session_key,
            None if self.open else (self.start, self.end),
        )

    @property
    def ttl(self) -> float:
        return OPEN_TTL_SECONDS if self.open else ENDED_TTL_SECONDS


async def quality_window(
    conn: aiosqlite.Connection, stream_id: str, query: QualityQuery, now: float
) -> Window:
    """The stream, its session and the window to ask about; 404 when there is nothing to ask."""
    stream = await find_stream(conn, stream_id, query.domain, query.app_name)
    sql, params = _session_sql(stream, query)
    return _window(stream, list(await conn.execute_fetchall(sql, params)), query, now)


async def pg_quality_window(
    pool: asyncpg.Pool[Any], stream_id: str, query: QualityQuery, now: float
) -> Window:
    """`quality_window` on PostgreSQL: the same session, the same window."""
    stream = await pg_find_stream(pool, stream_id, query.domain, query.app_name)
    sql, params = _session_sql(stream, query)
    return _window(stream, list(await pool.fetch(numbered(sql), *params)), query, now)


def _session_sql(stream: StreamKey, query: QualityQuery) -> tuple[str, tuple[object, ...]]:
    if query.sequence is not None:
        return _BY_SEQUENCE, (stream.id, query.sequence)
    return _CURRENT, (stream.id,)


def _window(stream: StreamKey, rows: list[Any], query: QualityQuery, now: float) -> Window:
    if not rows:
        if query.sequence is not None:
            raise ApiNotFound(
                "session_not_found",
                f"stream {stream.stream_id!r} has no session {query.sequence!r}",
            )
        raise ApiNotFound(
            "session_not_found", f"no push session of stream {stream.stream_id!r} is stored yet"
        )
    session_key, sequence, begin, end, started = tuple(rows[0])
    is_open = end is None
    start = float(begin if begin is not None else started)
    stop = min(float(end), now) if end is not None else now
    if stop < now - PUSH_HISTORY_SECONDS:
        raise ApiNotFound(
            "quality_expired",
            "Tencent keeps push data for 7 days; this session ended before that",
        )
    start = max(start, stop - PUSH_SPAN_SECONDS, now - PUSH_HISTORY_SECONDS + _HISTORY_MARGIN)
    return Window(stream, str(session_key), sequence, is_open, min(start, stop), stop)


async def fetch_points(monitoring: Monitoring, window: Window) -> list[QualityPoint]:
    stream = window.stream
    found = await monitoring.push_info(
        stream.stream_id, stream.domain or None, stream.app_name or None, window.start, window.end
    )
    points = [_point(p) for p in found]
    if window.sequence is not None:
        points = [p for p in points if p.sequence in (None, window.sequence)]
    return points


def quality_of(window: Window, answer: Answer[list[QualityPoint]]) -> Quality:
    since, until = utc(window.start), utc(window.end)
    assert since is not None
    assert until is not None
    return Quality(
        stream=window.stream.ref(),
        sequence=window.sequence,
        session_open=window.open,
        since=since,
        until=until,
        points=answer.value,
        fetched_at=utc(answer.fetched_at),
        cached=answer.cached,
        stale=answer.stale_reason is not None,
        stale_reason=answer.stale_reason,
    )


def _point(data: dict[str, Any]) -> QualityPoint:
    local, video = _number(data.get("LocalTs")), _number(data.get("VideoTs"))
    return QualityPoint(
        time=_time(data.get("Time")),
        sequence=_text(data.get("Sequence")),
        video_fps=_number(data.get("VideoFps")),
        video_bitrate_bps=_number(data.get("VideoRate")),
        audio_fps=_number(data.get("AudioFps")),
        audio_bitrate_bps=_number(data.get("AudioRate")),
        resolution=_text(data.get("Resolution")),
        video_codec=_text(data.get("VCodec")),
        audio_codec=_text(data.get("ACodec")),
        client_ip=_text(data.get("ClientIp")),
        server_ip=_text(data.get("ServerIp")),
        lag_ms=None if local is None or video is None else local - video,
        bandwidth_mbps=_number(data.get("Bandwidth")),
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc(parse_api_time(value))
    except ValueError:
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
