"""Callback bodies rebuilt from Tencent's records, in the shape CSS posts them.

Fields map as the reference §1.1 table says: `DomainName` -> `app`, `AppName` -> `appname`,
`StreamName` -> `stream_id` (and `channel_id`), `StreamStartTime`/`StreamEndTime` ->
`event_time`, `Duration` (s) -> `push_duration` (ms, a string), `ClientIp` -> `user_ip`,
`Resolution` "W*H" -> `width`/`height`, `StopReason` -> `errmsg` (the API has no numeric code,
so `errcode` is left out). The record itself rides along under `reconciled`, so a consumer sees
what the event was built from.

The `sequence`: the session's own when we hold it (the end then closes exactly that session, and
its real end callback, arriving later, has the same key); for a push we never saw, a made-up
`reconciled-<unix start>`, so the begin and end of one record pair into one session and a second
run of the sweep builds the same key (its events are duplicates, never stored twice).
"""

from __future__ import annotations

from typing import Any, Final

from receiver.tencent.streams import StreamEventInfo, api_time

SEQUENCE_PREFIX: Final = "reconciled-"
NOT_LIVE_REASON: Final = "not live at Tencent"


def made_up_sequence(start: float) -> str:
    return f"{SEQUENCE_PREFIX}{int(start)}"


def begin_body(record: StreamEventInfo, sequence: str | None) -> dict[str, Any]:
    body = _common(record, sequence)
    body.update(event_type=1, event_time=int(record.stream_start_time or 0), errcode=0)
    return body


def end_body(record: StreamEventInfo, sequence: str | None) -> dict[str, Any]:
    body = _common(record, sequence)
    body.update(
        event_type=0, event_time=int(record.stream_end_time or 0), errmsg=record.stop_reason
    )
    if record.duration is not None:
        body["push_duration"] = str(record.duration * 1000)
    return body


def online_begin_body(identity: tuple[str, str, str], published_at: float) -> dict[str, Any]:
    """A push Tencent lists live that we never saw begin."""
    domain, app, stream = identity
    return {
        "event_type": 1,
        "app": domain,
        "appname": app,
        "stream_id": stream,
        "channel_id": stream,
        "event_time": int(published_at),
        "sequence": made_up_sequence(published_at),
        "errcode": 0,
        "reconciled": {"from": "DescribeLiveStreamOnlineList", "PublishTime": int(published_at)},
    }


def not_live_end_body(
    identity: tuple[str, str, str], sequence: str | None, at: float, began: float | None
) -> dict[str, Any]:
    """The end of a session we hold open while Tencent has not listed the stream twice."""
    domain, app, stream = identity
    body: dict[str, Any] = {
        "event_type": 0,
        "app": domain,
        "appname": app,
        "stream_id": stream,
        "channel_id": stream,
        "event_time": int(at),
        "errmsg": NOT_LIVE_REASON,
        "reconciled": {"from": "DescribeLiveStreamOnlineList", "reason": NOT_LIVE_REASON},
    }
    if sequence is not None:
        body["sequence"] = sequence
    if began is not None and at >= began:
        body["push_duration"] = str(int((at - began) * 1000))
    return body


def _common(record: StreamEventInfo, sequence: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app": record.domain_name,
        "appname": record.app_name,
        "stream_id": record.stream_name,
        "channel_id": record.stream_name,
    }
    if sequence is not None:
        body["sequence"] = sequence
    if record.client_ip and record.client_ip != "-":
        body["user_ip"] = record.client_ip
    width, _, height = record.resolution.partition("*")
    if width.isdigit() and height.isdigit():
        body.update(width=int(width), height=int(height))
    shown = record.model_dump(by_alias=True)
    for name in ("StreamStartTime", "StreamEndTime"):
        if shown[name] is not None:
            shown[name] = api_time(shown[name])
    body["reconciled"] = {"from": "DescribeLiveStreamEventList", "record": shown}
    return body
