"""Media-analysis events configured in the console: subtitles (338), smart erase (347),
quality control (343), evaluation (344, 345), live summary (348) and smart highlight (349)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from receiver.events.base import Body, CssEvent, earliest, objects_at, seconds


class _Nested(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class Keyword(_Nested):
    word: str | None = None
    begin_time: int | None = None  # ms
    end_time: int | None = None  # ms


class SubtitleSegment(_Nested):
    src_txt: str | None = None
    dst_txt: str | None = None
    start_pts: int | None = None  # ms, audio timeline
    end_pts: int | None = None
    start_unix_time: int | None = None  # s
    end_unix_time: int | None = None
    steady_state: bool | None = None
    keywords_info: list[Keyword] = Field(default_factory=list)


class SubtitleData(_Nested):
    subtitle_tmp_res: list[SubtitleSegment] = Field(default_factory=list)


class _SubtitleLike(CssEvent):
    stream_id: str | None = None
    channel_id: str | None = None
    task_id: str | None = None
    data: SubtitleData | None = None

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        segments = objects_at(body, "data", "subtitle_tmp_res")
        return earliest([seconds(segment.get("start_unix_time")) for segment in segments])


class Subtitles(_SubtitleLike):
    """Live subtitles (reference §3.15)."""

    event_type: Literal[338]


class SmartErase(_SubtitleLike):
    """Smart erase keywords (reference §3.14)."""

    event_type: Literal[347]


class _MediaAnalysis(CssEvent):
    """Fields shared by quality control and evaluation events (reference §3.11-3.13)."""

    appname: str | None = None
    stream_id: str | None = None
    domain: str | None = None
    event_time: int | None = None
    transcode_template_id: int | None = None
    watermark_template_id: int | None = None
    function: str | None = None
    class_: str | None = Field(default=None, alias="class")


class QualityControl(_MediaAnalysis):
    """A quality-control anomaly (reference §3.11)."""

    event_type: Literal[343]
    score: float | None = None


class Frame(_Nested):
    score: float | None = None
    time: int | None = None  # ms


class _Evaluation(_MediaAnalysis):
    frames: list[Frame] = Field(default_factory=list)


class EvaluationThreshold(_Evaluation):
    """Frames below the evaluation threshold (reference §3.12)."""

    event_type: Literal[344]


class EvaluationAverage(_Evaluation):
    """Average evaluation score over a window (reference §3.13)."""

    event_type: Literal[345]
    average_score: float | None = None
    max_score: float | None = None
    min_score: float | None = None


class Summary(CssEvent):
    """Live summary for a time window (reference §3.16)."""

    event_type: Literal[348]
    domain: str | None = None
    path: str | None = None
    stream_id: str | None = None
    begin_time: int | None = None
    end_time: int | None = None
    title: str | None = None
    summary: str | None = None
    key_words: list[str] = Field(default_factory=list)
    key_points: list[str] = Field(default_factory=list)

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        return seconds(body.get("end_time")) or seconds(body.get("begin_time"))


class HighlightItem(_Nested):
    begin_time: int | None = None
    end_time: int | None = None
    title: str | None = None
    summary: str | None = None
    video_store_url: str | None = None
    cov_img_store_url: str | None = None
    key_words: list[str] = Field(default_factory=list)


class Highlight(CssEvent):
    """Smart highlight clips (reference §3.17)."""

    event_type: Literal[349]
    domain: str | None = None
    path: str | None = None
    stream_id: str | None = None
    items: list[HighlightItem] = Field(default_factory=list)

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        return earliest([seconds(item.get("begin_time")) for item in objects_at(body, "items")])
