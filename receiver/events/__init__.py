"""Typed models of every CSS event kind, and `parse_event`, which never loses a body.

A body whose kind is unknown, or that does not fit its kind's model (CSS changes fields without
notice), is still stored: it falls back to a best-effort normalised view and is counted.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from pydantic import ValidationError

from receiver.events.analysis import (
    EvaluationAverage,
    EvaluationThreshold,
    Highlight,
    QualityControl,
    SmartErase,
    Subtitles,
    Summary,
)
from receiver.events.base import CssEvent, Normalised, normalise_mapping
from receiver.events.moderation import AudioModeration, PornDetection
from receiver.events.push import PushException, StreamBegin, StreamEnd
from receiver.events.recording import RecordException, RecordFile, RecordStatus
from receiver.events.snapshot import Snapshot
from receiver.events.tasks import Monitor, Relay

MODEL_BY_EVENT_TYPE: Final[dict[int, type[CssEvent]]] = {
    1: StreamBegin,
    0: StreamEnd,
    100: RecordFile,
    200: Snapshot,
    317: PornDetection,
    321: PushException,
    332: RecordStatus,
    341: RecordException,
    315: AudioModeration,
    314: Relay,
    328: Monitor,
    338: Subtitles,
    343: QualityControl,
    344: EvaluationThreshold,
    345: EvaluationAverage,
    347: SmartErase,
    348: Summary,
    349: Highlight,
}


class ParsedEvent(NamedTuple):
    """A body with its normalised view; `model` is None when the body did not fit its model."""

    event_type: int
    normalised: Normalised
    model: CssEvent | None
    schema_error: str | None = None


def parse_event(body: dict[str, Any], event_type: int) -> ParsedEvent:
    """Validate `body` against its kind's model; fall back to a lenient view, never raise."""
    model_class = MODEL_BY_EVENT_TYPE.get(event_type, CssEvent)
    try:
        if type(body.get("event_type")) is not int:  # "1" is tolerated; Literal[1] is strict
            body = {**body, "event_type": event_type}
        model = model_class.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return ParsedEvent(
            event_type=event_type,
            normalised=normalise_mapping(body, event_type),
            model=None,
            schema_error=f"{where}: {first['msg']}",
        )
    return ParsedEvent(event_type=event_type, normalised=model.normalised(), model=model)


__all__ = [
    "MODEL_BY_EVENT_TYPE",
    "AudioModeration",
    "CssEvent",
    "EvaluationAverage",
    "EvaluationThreshold",
    "Highlight",
    "Monitor",
    "Normalised",
    "ParsedEvent",
    "PornDetection",
    "PushException",
    "QualityControl",
    "RecordException",
    "RecordFile",
    "RecordStatus",
    "Relay",
    "SmartErase",
    "Snapshot",
    "StreamBegin",
    "StreamEnd",
    "Subtitles",
    "Summary",
    "parse_event",
]
