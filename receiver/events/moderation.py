"""Content moderation: image moderation / porn detection (317) and audio moderation (315).

317 mixes camelCase at top level with PascalCase in nested results (the reference tables write
the nested keys in lower case), so nested fields accept both spellings.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from receiver.events.base import (
    Body,
    CssEvent,
    alias,
    earliest,
    first_text,
    objects_at,
    seconds,
)

# 317's times, in either spelling (its deduplication key reads the screenshot time too).
SCREENSHOT_TIME: Final = ("screenshotTime", "screenshot_time")
SEND_TIME: Final = ("sendTime", "send_time")


class _Nested(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class Location(_Nested):
    x: float | None = alias("X", "x")
    y: float | None = alias("Y", "y")
    width: float | None = alias("Width", "width")
    height: float | None = alias("Height", "height")
    rotate: float | None = alias("Rotate", "rotate")


class ResultDetail(_Nested):
    id: str | None = alias("Id", "id")
    name: str | None = alias("Name", "name")
    value: str | None = alias("Value", "value")
    text: str | None = alias("Text", "text")
    label: str | None = alias("Label", "label")
    score: float | None = alias("Score", "score")
    keywords: list[str] | None = alias("Keywords", "keywords")
    location: Location | None = alias("Location", "location")


class ModerationResult(_Nested):
    """One entry of `labelResults`, `objectResults`, `ocrResults` or `libResults`."""

    hit_flag: int | None = alias("HitFlag", "hitFlag")
    scene: str | None = alias("Scene", "scene")
    suggestion: str | None = alias("Suggestion", "suggestion")
    label: str | None = alias("Label", "label")
    sub_label: str | None = alias("SubLabel", "subLabel")
    score: float | None = alias("Score", "score")
    text: str | None = alias("Text", "text")
    names: list[str] | None = alias("Names", "names")
    details: list[ResultDetail] = alias("Details", "details", default=[])


class PornDetection(CssEvent):
    """Image moderation result for one screenshot (reference §3.7; legacy shape tolerated)."""

    event_type: Literal[317]
    app: str | None = None
    appname: str | None = None
    stream_id: str | None = alias("streamId", "stream_id")
    channel_id: str | None = alias("channelId", "channel_id")
    stream_param: str | None = None
    img: str | None = None
    type: list[int] | int | None = None  # legacy bodies send a single integer
    score: list[float] | None = alias("score", "socre")  # the official example misspells it
    ocr_msg: str | None = alias("ocrMsg", "ocr_msg")
    suggestion: str | None = None
    label: str | None = None
    sub_label: str | None = alias("subLabel", "sub_label")
    label_results: list[ModerationResult] = alias("labelResults", "label_results", default=[])
    object_results: list[ModerationResult] = alias("objectResults", "object_results", default=[])
    ocr_results: list[ModerationResult] = alias("ocrResults", "ocr_results", default=[])
    lib_results: list[ModerationResult] = alias("libResults", "lib_results", default=[])
    screenshot_time: int | None = alias(*SCREENSHOT_TIME)
    send_time: int | None = alias(*SEND_TIME)
    tid: str | None = None

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        # The screenshot is the event; the send time only says when CSS reported it.
        return seconds(first_text(body, SCREENSHOT_TIME)) or seconds(first_text(body, SEND_TIME))

    @property
    def hits(self) -> list[ModerationResult]:
        """The results that actually flagged something (`HitFlag` 1)."""
        every = [*self.label_results, *self.object_results, *self.ocr_results, *self.lib_results]
        return [result for result in every if result.hit_flag == 1]


class AudioResult(_Nested):
    label: str | None = alias("Label", "label")
    sub_label: str | None = alias("SubLabel", "subLabel")
    score: float | None = alias("Score", "score")
    suggestion: str | None = alias("Suggestion", "suggestion")
    start_time: float | None = alias("StartTime", "startTime")
    end_time: float | None = alias("EndTime", "endTime")
    keywords: list[str] | None = alias("Keywords", "keywords")
    tags: list[dict[str, Any]] | None = alias("Tags", "tags")
    hit_infos: list[dict[str, Any]] | None = alias("HitInfos", "hitInfos")


class AudioModeration(CssEvent):
    """Audio moderation result (reference §3.8)."""

    event_type: Literal[315]
    interface: str | None = None
    stream_id: str | None = None
    channel_id: str | None = None
    domain: str | None = None
    path: str | None = None
    hit_flag: int | None = alias("HitFlag", "hit_flag")
    score: float | None = alias("Score", "score")
    sub_tag: str | None = alias("SubTag", "sub_tag")
    task_id: str | None = None
    status: int | None = None
    asr_text: str | None = None
    cdn_url: str | None = None
    duration: float | None = None
    label: str | None = None
    sub_label: str | None = None
    suggestion: str | None = None
    request_id: str | None = None
    seq: str | None = None
    language_results: list[AudioResult] = Field(default_factory=list)
    moan_results: list[AudioResult] = Field(default_factory=list)
    recognition_results: list[AudioResult] = Field(default_factory=list)
    speaker_results: list[AudioResult] = Field(default_factory=list)
    text_results: list[AudioResult] = Field(default_factory=list)
    data: dict[str, Any] | None = None

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        # The only absolute times are those of the recognised audio pieces (unix seconds, in
        # `data.asr_tmp_full_results[].create_time`); the result times are offsets into the audio.
        pieces = objects_at(body, "data", "asr_tmp_full_results")
        return earliest([seconds(piece.get("create_time")) for piece in pieces])
