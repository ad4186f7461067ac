"""Why a push ended: the stream-end (`event_type` 0) `errcode` as a sentence.

From the CSS stream interruption table (reference §3.1-3.2). Codes 18 and 21 have sub-codes on
the console that the callback does not carry, so their text stays general and CSS's own `errmsg`
(returned next to it as `end_message`) has the detail. Where Tencent's tables disagree (10, 16),
the text says so rather than pick one.
"""

from __future__ import annotations

from typing import Final

_UNKNOWN: Final = "unknown reason"

_GROUPS: Final[tuple[tuple[tuple[int, ...], str], ...]] = (
    ((0,), _UNKNOWN),
    ((1, 2, 3, 4, 35), "the publisher stopped the push"),
    ((5, 9, 11, 24), "CSS internal error"),
    ((6, 23), "malformed RTMP content"),
    ((7,), "an RTMP frame exceeded the maximum frame size"),
    ((8, 20), "no data was pushed for too long; CSS closed the push"),
    ((10,), "the CSS proxy layer received a disconnect command (or internal error)"),
    ((12, 13, 14, 15, 17), "network problem on the push path"),
    ((16,), "network problem on the push path (or internal error)"),
    (
        (18,),
        "CSS refused or dropped the push (account, domain, stream name, push authentication "
        "or concurrency check, or an internal error; see end_message)",
    ),
    ((19,), "third-party (custom) push authentication failed"),
    (
        (21,),
        "the stream was dropped or banned through the API, or a new push replaced this one",
    ),
    ((33,), "malformed RTMP AMF data"),
)

REASONS: Final[dict[int, str]] = {code: text for codes, text in _GROUPS for code in codes}


def end_reason(code: int | None) -> str | None:
    """The reason for a stream-end `errcode`; None when there is no code at all."""
    if code is None:
        return None
    return REASONS.get(code, _UNKNOWN)
