"""Times in and out: one rule for reading a time, one format for writing one.

Read (`parse_time`, `Timestamp`): unix seconds, or ISO 8601 with a UTC offset. A time without an
offset is refused rather than guessed, because operators in UTC+8 and servers in UTC would read it
differently; the history API, the CLI and replay all use this rule.

Written (`utc`, `iso_utc`): every time the service shows (the AMQP envelope, the history API,
replay jobs) is the stored unix time rounded *down* to the microsecond, so a client that passes an
event's `received_at` back as `received_since` finds that event again, and as `until` excludes it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from pydantic import BeforeValidator, WithJsonSchema

# The latest instant a query may name: 9999-12-31T23:59:59Z.
MAX_UNIX_SECONDS: Final = 253_402_300_799
_UNIX = r"[0-9]{1,12}(?:\.[0-9]{1,9})?"
# An unencoded "+" in a query string arrives as a space, so " 08:00" is read as "+08:00".
_ISO = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:[Zz]|[+\- ][0-9]{2}:?[0-9]{2})"
)
TIME_PATTERN: Final = f"^(?:{_UNIX}|{_ISO})$"
_TIME = re.compile(TIME_PATTERN)
_NAIVE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9:.]*)?")
_TIME_EXAMPLE = "unix seconds (1703731478) or ISO 8601 with a UTC offset (2023-12-28T02:44:38Z)"


def parse_time(value: object) -> float:
    """Unix seconds from unix seconds or ISO 8601 with an offset; ValueError says what is wrong."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_TIME_EXAMPLE}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime without a UTC offset is ambiguous")
        seconds = value.timestamp()
    elif isinstance(value, str):
        seconds = _parse_time_text(value.strip())
    else:
        raise ValueError(f"expected {_TIME_EXAMPLE}")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise ValueError("the time must lie between 1970-01-01 and 9999-12-31")
    return seconds


def _parse_time_text(text: str) -> float:
    if not _TIME.match(text):
        if _NAIVE.fullmatch(text):
            raise ValueError(
                f"{text!r} has no UTC offset, so it is ambiguous; add Z or an offset such as "
                "+08:00 (encode '+' as %2B in a URL)"
            )
        raise ValueError(f"expected {_TIME_EXAMPLE}, got {text!r}")
    if text[0:4].isdigit() and len(text) > 4 and text[4] == "-":
        iso = text
        if iso[-6] == " ":  # "+08:00" whose "+" a query string turned into a space
            iso = f"{iso[:-6]}+{iso[-5:]}"
        elif iso[-5] == " ":
            iso = f"{iso[:-5]}+{iso[-4:]}"
        try:
            return datetime.fromisoformat(iso).timestamp()
        except ValueError:
            raise ValueError(f"{text!r} is not a valid calendar date and time") from None
    return float(text)


Timestamp = Annotated[
    float,
    BeforeValidator(parse_time),
    WithJsonSchema(
        {"type": "string", "pattern": TIME_PATTERN, "examples": ["2023-12-28T02:44:38Z"]}
    ),
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def utc(seconds: float | None) -> datetime | None:
    """A stored unix time as an aware UTC datetime, rounded down to the microsecond.

    None for None and for a time no calendar can show.
    """
    if seconds is None:
        return None
    try:
        moment = _EPOCH + timedelta(microseconds=math.floor(seconds * 1_000_000))
        while moment.timestamp() > seconds:
            moment -= timedelta(microseconds=1)
    except (OverflowError, ValueError):
        return None
    return moment


def iso_utc(seconds: float | None) -> str | None:
    """`utc(seconds)` as ISO 8601 with a `Z`, as pydantic writes it in the history API."""
    moment = utc(seconds)
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
