"""The names of CSS event kinds, shared by storage, metrics, routing keys and API filters.

CSS identifies an event by the integer `event_type` in its body. Everything downstream uses the
short kind name instead, so that a consumer binding `css.stream_end` or an operator filtering
`kind=porn` never has to remember numbers. Unknown types are kind `other` and are never dropped.
"""

from __future__ import annotations

from typing import Final

OTHER: Final = "other"

KIND_BY_EVENT_TYPE: Final[dict[int, str]] = {
    1: "stream_begin",
    0: "stream_end",
    100: "record",
    200: "snapshot",
    317: "porn",
    321: "push_exception",
    332: "record_status",
    341: "record_exception",
    315: "audio_moderation",
    314: "relay",
    328: "monitor",
    338: "subtitles",
    343: "quality_control",
    344: "evaluation_threshold",
    345: "evaluation_average",
    347: "smart_erase",
    348: "summary",
    349: "highlight",
}

EVENT_TYPE_BY_KIND: Final[dict[str, int]] = {kind: et for et, kind in KIND_BY_EVENT_TYPE.items()}

ALL_KINDS: Final[tuple[str, ...]] = (*KIND_BY_EVENT_TYPE.values(), OTHER)

# Kinds whose documentation has no `t`/`sign`: they can only be authenticated by the URL token.
UNSIGNED_EVENT_TYPES: Final[frozenset[int]] = frozenset({314, 328})

# The per-kind callback URLs a template points at (`/callbacks/<path kind>`), and the template
# field each one fills. The body's `event_type` stays authoritative; the path is metadata.
PATH_KINDS: Final[dict[str, int]] = {
    "stream-begin": 1,
    "stream-end": 0,
    "record": 100,
    "snapshot": 200,
    "porn": 317,
    "push-exception": 321,
}


def kind_of(event_type: int) -> str:
    """Return the kind name of an `event_type`, `other` for types this version does not know."""
    return KIND_BY_EVENT_TYPE.get(event_type, OTHER)
