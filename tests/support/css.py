"""Builders of CSS callback bodies for history tests, based on the reference examples."""

from __future__ import annotations

from typing import Any

from tests.support.helpers import payload

DOMAIN = "test.domain.com"
APP = "live"


def push_begin(stream: str, sequence: str, at: int, **extra: Any) -> dict[str, Any]:
    body = payload("push_begin_1.json")
    return {**body, "app": DOMAIN, "appname": APP, "stream_id": stream, "channel_id": stream,
            "sequence": sequence, "event_time": at, **extra}  # fmt: skip


def stream_end(
    stream: str, sequence: str, at: int, errcode: int = 1, duration_ms: int | None = None,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    body = payload("stream_end_0.json")
    body = {**body, "app": DOMAIN, "appname": APP, "stream_id": stream, "channel_id": stream,
            "sequence": sequence, "event_time": at, "errcode": errcode, **extra}  # fmt: skip
    if duration_ms is None:
        body.pop("push_duration", None)
    else:
        body["push_duration"] = str(duration_ms)
    return body


def snapshot(stream: str, at: int) -> dict[str, Any]:
    body = payload("screenshot_200.json")
    pic = f"/{stream}/{stream}-{at}.jpg"
    return {**body, "app": DOMAIN, "appname": APP, "stream_id": stream, "channel_id": stream,
            "create_time": at, "pic_url": pic}  # fmt: skip


def record(stream: str, start: int, end: int) -> dict[str, Any]:
    body = payload("record_file_100.json")
    file_id = f"{stream}-{end}"
    return {**body, "app": DOMAIN, "appname": APP, "stream_id": stream, "channel_id": stream,
            "file_id": file_id, "record_file_id": file_id, "start_time": start,
            "end_time": end}  # fmt: skip


def porn(stream: str, at: int) -> dict[str, Any]:
    body = payload("image_moderation_317.json")
    return {**body, "app": DOMAIN, "appname": APP, "streamId": stream, "channelId": stream,
            "img": f"https://cos.example.com/{stream}/{at}.jpg", "screenshotTime": at,
            "sendTime": at}  # fmt: skip


def push_exception(stream: str, sequence: str, at: int) -> dict[str, Any]:
    body = payload("push_exception_321.json")
    return {**body, "domain": DOMAIN, "path": APP, "stream_id": stream, "sequence": sequence,
            "data_time": at * 1000}  # fmt: skip
