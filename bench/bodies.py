"""Signed callback bodies of every kind, made unique per request by the load generator.

CSS signs only `t` (`sign = md5(key + t)`), so one `t`/`sign` pair signs every body: the load
generator can stamp a unique id into each body without recomputing a signature. The id goes into
the field that identifies the event for deduplication, so no request is a duplicate (duplicates
skip the insert and would flatter the result).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Final

from testbed import PAYLOADS

PLACEHOLDER: Final = "__UNIQ__"
STREAM_PLACEHOLDER: Final = "__STREAM__"
# Where each kind names its stream (receiver.events.base.CssEvent.stream_fields).
STREAM_FIELDS: Final = ("stream_id", "streamId", "channel_id")

# The field(s) that make each kind's event unique (see receiver/storage/dedupe.py).
UNIQUE_FIELDS: Final[dict[int, tuple[str, ...]]] = {
    1: ("sequence",),
    0: ("sequence",),
    100: ("file_id", "record_file_id"),
    200: ("pic_url",),
    317: ("img",),
    315: ("request_id",),
    321: ("sequence",),
    332: ("seq",),
    341: ("session_id",),
}
# The current examples of every signed kind (relay/monitor need a URL token instead).
TEMPLATE_FILES: Final = (
    "push_begin_1.json",
    "stream_end_0.json",
    "record_file_100.json",
    "record_status_332.json",
    "record_exception_341.json",
    "screenshot_200.json",
    "image_moderation_317.json",
    "audio_moderation_315.json",
    "push_exception_321.json",
    "quality_control_343.json",
    "eval_threshold_344.json",
    "eval_average_345.json",
    "smart_erase_347.json",
    "subtitles_338.json",
    "summary_348.json",
    "highlight_349.json",
)


def templates(key: str, *, validity: int = 600, spread_streams: bool = False) -> list[str]:
    """JSON body templates with `PLACEHOLDER` where the unique id goes, all signed with `key`.

    With `spread_streams`, `STREAM_PLACEHOLDER` stands in for the stream name, for the load
    generator to spread events over many streams (each kind's example names one stream).

    `t` is now + 600 s, as CSS sends it (a later `t` is refused as too far in the future), so
    make fresh templates for each run.
    """
    t = int(time.time()) + validity
    sign = hashlib.md5(f"{key}{t}".encode()).hexdigest()
    out: list[str] = []
    for name in TEMPLATE_FILES:
        body: dict[str, Any] = json.loads((PAYLOADS / name).read_text("utf-8"))
        for field in UNIQUE_FIELDS.get(body["event_type"], ("bench_id",)):
            body[field] = PLACEHOLDER
        if spread_streams:
            for name in STREAM_FIELDS:
                if name in body:
                    body[name] = STREAM_PLACEHOLDER
        body["t"], body["sign"] = t, sign
        out.append(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
    return out


def render(template: str, unique: str) -> str:
    return template.replace(PLACEHOLDER, unique)
