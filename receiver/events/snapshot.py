"""Screenshot (200)."""

from __future__ import annotations

from typing import Literal

from receiver.events.base import Body, CssEvent, seconds


class Snapshot(CssEvent):
    """A screenshot written to COS (reference §3.6)."""

    event_type: Literal[200]
    app: str | None = None
    appname: str | None = None
    stream_id: str | None = None
    channel_id: str | None = None
    stream_param: str | None = None
    create_time: int | None = None
    file_size: int | None = None
    width: int | None = None
    height: int | None = None
    pic_url: str | None = None
    pic_full_url: str | None = None
    task_id: str | None = None

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        return seconds(body.get("create_time"))
