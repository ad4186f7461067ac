"""The one table of CSS event kinds: every fact about a kind is one entry here.

CSS identifies an event by the integer `event_type` in its body. Everything downstream uses the
short kind name instead, so that a consumer binding `css.stream_end` or an operator filtering
`kind=porn` never has to remember numbers. Unknown types are kind `other` and are never dropped.

Each entry says, for its kind: the model that validates it (which also knows where the kind keeps
its stream's identity and its event time: several kinds compute the time, e.g. the earliest of
nested items, so that stays with the model), the fields that identify one event for
deduplication, whether it names a stream and belongs to a push session, whether CSS signs it,
the `/callbacks/<slug>` path and the Tencent template URL field the receiver manages for it, and
the push-session category the history API lists it under (docs/events.md explains each kind's
deduplication key). Storage, the callback routes, dedupe, history and Tencent registration all
read this table (directly or through the views below it), so adding a kind is one entry and its
model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from receiver.events.analysis import (
    EvaluationAverage,
    EvaluationThreshold,
    Highlight,
    QualityControl,
    SmartErase,
    Subtitles,
    Summary,
)
from receiver.events.base import Body, CssEvent, first_text
from receiver.events.moderation import SCREENSHOT_TIME, AudioModeration, PornDetection
from receiver.events.push import PushException, StreamBegin, StreamEnd
from receiver.events.recording import RecordException, RecordFile, RecordStatus
from receiver.events.snapshot import Snapshot
from receiver.events.tasks import Monitor, Relay

# The values that identify one event of a kind within its stream (the stream's identity is added
# by `receiver.storage.dedupe`, read by the model's `identity`, as the normalised columns are).
KeyFields = Callable[[Body], list[object]]

OTHER: Final = "other"


def _exception_type(body: Body) -> object:
    exception = body.get("exception")
    return exception.get("type") if isinstance(exception, dict) else None


@dataclass(frozen=True, slots=True)
class Kind:
    """Everything the receiver knows about one CSS event kind."""

    event_type: int
    name: str
    model: type[CssEvent]
    # Deduplication (reference §1.3): the fields that identify one event of its stream, every one
    # of them required (a body missing any is keyed by its whole content); None: the whole body.
    key_fields: KeyFields | None = None
    # The kind names its stream by domain, app name and stream (reference §3.0): a key is built
    # only when the body has all three, so that it can never collide across streams.
    names_stream: bool = False
    # The kind belongs to one publishing session (its `sequence` is the session id).
    push_session: bool = False
    # CSS documents `t`/`sign` for it; unsigned kinds are authenticated by the URL token only.
    signed: bool = True
    # `/callbacks/<slug>`, and the template field pointing there (managed by registration).
    slug: str | None = None
    template_field: str | None = None
    # Where the history API lists it within a push session.
    session_category: str | None = None


KINDS: Final[tuple[Kind, ...]] = (
    Kind(
        1,
        "stream_begin",
        StreamBegin,
        lambda b: [b.get("sequence")],
        names_stream=True,
        push_session=True,
        slug="stream-begin",
        template_field="StreamBeginNotifyUrl",
    ),
    Kind(
        0,
        "stream_end",
        StreamEnd,
        lambda b: [b.get("sequence")],
        names_stream=True,
        push_session=True,
        slug="stream-end",
        template_field="StreamEndNotifyUrl",
    ),
    Kind(
        100,
        "record",
        RecordFile,
        # The file's extent too: a file id reported again with another end, duration or size
        # (a recording that went on) is another event.
        lambda b: [
            b.get("record_file_id") or b.get("file_id"),
            b.get("start_time"),
            b.get("end_time"),
            b.get("duration"),
            b.get("file_size"),
        ],
        names_stream=True,
        slug="record",
        template_field="RecordNotifyUrl",
        session_category="recordings",
    ),
    Kind(
        200,
        "snapshot",
        Snapshot,
        # create_time too: a template may overwrite one file name, and each shot is a new event.
        lambda b: [b.get("pic_url"), b.get("create_time")],
        names_stream=True,
        slug="snapshot",
        template_field="SnapshotNotifyUrl",
        session_category="snapshots",
    ),
    Kind(
        317,
        "porn",
        PornDetection,
        lambda b: [b.get("img"), first_text(b, SCREENSHOT_TIME)],
        names_stream=True,
        slug="porn",
        template_field="PornCensorshipNotifyUrl",
        session_category="moderation",
    ),
    Kind(
        321,
        "push_exception",
        PushException,
        lambda b: [b.get("sequence"), b.get("data_time")],
        names_stream=True,
        push_session=True,
        slug="push-exception",
        template_field="PushExceptionNotifyUrl",
        session_category="push_exceptions",
    ),
    Kind(
        332,
        "record_status",
        RecordStatus,
        lambda b: [b.get("session_id"), b.get("record_event"), b.get("seq")],
        names_stream=True,
        slug="record-status",
        template_field="RecordStatusNotifyUrl",
    ),
    Kind(
        341,
        "record_exception",
        RecordException,
        lambda b: [b.get("session_id"), _exception_type(b), b.get("timestamp")],
        names_stream=True,
        slug="record-exception",
        template_field="RecordExceptionNotifyUrl",
    ),
    Kind(
        315,
        "audio_moderation",
        AudioModeration,
        # One request reports many pieces of audio: `seq` numbers them, and the transcript is
        # compared too, as nothing documents `seq` as unique.
        lambda b: [b.get("request_id"), b.get("seq"), b.get("asr_text")],
        names_stream=True,
        slug="audio-moderation",
        template_field="AudioAuditNotifyUrl",
        session_category="moderation",
    ),
    # Relay: the whole body. (task_id, callback_event, msg) would merge two events whose
    # `event_time` differs; without one, a file started again (looped playback) cannot be told
    # from a retry and is stored once.
    Kind(314, "relay", Relay, signed=False),
    Kind(328, "monitor", Monitor, signed=False),
    Kind(338, "subtitles", Subtitles),
    Kind(343, "quality_control", QualityControl, names_stream=True),
    Kind(344, "evaluation_threshold", EvaluationThreshold, names_stream=True),
    Kind(345, "evaluation_average", EvaluationAverage, names_stream=True),
    Kind(347, "smart_erase", SmartErase),
    Kind(348, "summary", Summary, names_stream=True),
    Kind(349, "highlight", Highlight, names_stream=True),
)

# Views of the table, for the places that look a kind up one way.
BY_EVENT_TYPE: Final[dict[int, Kind]] = {kind.event_type: kind for kind in KINDS}
KIND_BY_EVENT_TYPE: Final[dict[int, str]] = {kind.event_type: kind.name for kind in KINDS}
EVENT_TYPE_BY_KIND: Final[dict[str, int]] = {kind.name: kind.event_type for kind in KINDS}
ALL_KINDS: Final[tuple[str, ...]] = (*KIND_BY_EVENT_TYPE.values(), OTHER)
# Events the receiver emits itself, stored and published like callbacks (routing key
# `css.<kind>`). CSS event types are never negative and the intake refuses negative ones
# (`receiver.callbacks.body`), so a callback can never pose as one of these.
MODERATION_ACTION: Final = -1
OWN_KINDS: Final[dict[int, str]] = {MODERATION_ACTION: "moderation_action"}
# What the `kind` filter of listings, replay and the CLI accepts: every stored kind.
FILTER_KINDS: Final[tuple[str, ...]] = (*ALL_KINDS, *OWN_KINDS.values())
UNSIGNED_EVENT_TYPES: Final[frozenset[int]] = frozenset(
    kind.event_type for kind in KINDS if not kind.signed
)
# The per-kind callback URLs a template points at (`/callbacks/<slug>`). The body's
# `event_type` stays authoritative; the path is metadata.
PATH_KINDS: Final[dict[str, int]] = {
    kind.slug: kind.event_type for kind in KINDS if kind.slug is not None
}
URL_FIELD_BY_PATH_KIND: Final[dict[str, str]] = {
    kind.slug: kind.template_field
    for kind in KINDS
    if kind.slug is not None and kind.template_field is not None
}
SESSION_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    category: tuple(kind.name for kind in KINDS if kind.session_category == category)
    for category in dict.fromkeys(k.session_category for k in KINDS if k.session_category)
}


def kind_of(event_type: int) -> str:
    """Return the kind name of an `event_type`, `other` for types this version does not know."""
    return KIND_BY_EVENT_TYPE.get(event_type) or OWN_KINDS.get(event_type, OTHER)
