"""Events of per-task callbacks: relay / pull-and-push (314) and stream monitoring (328).

Neither documents `t`/`sign`; they are authenticated by the URL token instead.
"""

from __future__ import annotations

from typing import Literal

from receiver.events.base import Body, CssEvent, millis


class Relay(CssEvent):
    """A relay task's lifecycle (reference §3.10)."""

    event_type: Literal[314]
    interface: str | None = None
    callback_event: str | None = None
    source_urls: str | None = None  # JSON array encoded as a string
    to_url: str | None = None
    stream_id: str | None = None
    task_id: str | None = None
    msg: str | None = None  # JSON object encoded as a string
    event_time: str | None = None  # unix seconds as a string (table only)
    callback_url: str | None = None
    product_name: str | None = None


class Monitor(CssEvent):
    """Stream monitoring task alarm (reference §3.18; Chinese docs only)."""

    event_type: Literal[328]
    interface: str | None = None
    bizid: int | None = None
    event_name: str | None = None
    event_time: int | None = None  # milliseconds
    event_msg: str | None = None
    stream_id: str | None = None

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        return millis(body.get("event_time"))
