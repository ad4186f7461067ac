"""What every CSS event model shares: tolerant parsing and one normalised view.

CSS spells the same facts differently per kind (`app` vs `domain`, `appname` vs `path`,
`stream_id` vs `streamId`), sends numeric IDs as numbers or strings, and adds fields without
notice. Models therefore allow extra fields, coerce numbers to strings for IDs, accept numeric
strings for numbers, and say (as class methods reading the raw body) where their kind keeps the
stream's identity and the event time: the single view storage and consumers rely on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# Anything outside this range is not a plausible event time in seconds (1970 .. year 5138).
_MAX_SECONDS = 1e11


Body = Mapping[str, Any]


class Identity(NamedTuple):
    """The stream an event is about: push domain, app name (path) and stream name."""

    domain: str | None
    app_name: str | None
    stream_id: str | None


class Normalised(NamedTuple):
    """The columns every stored event has, whatever its kind spells them as.

    A named tuple: the writer process makes one per event, and a tuple is built in one step
    where a frozen dataclass sets each field through `object.__setattr__`.
    """

    domain: str | None = None
    app_name: str | None = None
    stream_id: str | None = None
    event_time: float | None = None  # unix seconds
    sequence: str | None = None  # push session id (kinds 0, 1, 321)


def alias(*names: str, default: Any = None) -> Any:
    """A field read from any of `names` (CSS documentation and examples disagree on case)."""
    return Field(default=default, validation_alias=AliasChoices(*names))


def _number(value: object) -> float | None:
    """A finite number from a JSON number or numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float (integers are kept exact)
        return None
    return number if math.isfinite(number) else None


def seconds(value: object) -> float | None:
    """A plausible unix time in seconds from a number or numeric string, else None."""
    number = _number(value)
    if number is None or not 0 < number < _MAX_SECONDS:
        return None
    return number


def millis(value: object) -> float | None:
    """A plausible unix time from milliseconds."""
    number = _number(value)
    return None if number is None else seconds(number / 1000.0)


def text(value: object) -> str | None:
    """A non-empty string from a string or number (IDs arrive as either), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str) and value:
        return value
    return None


class CssEvent(BaseModel):
    """Base of every event model; also the model of unknown kinds (`other`).

    The model decides only whether a body fits its kind (`schema_error`). The normalised view
    is read from the raw body by the class methods below, whether or not it fits: a body that
    breaks one unrelated field (CSS's own examples do) still has its stream and its time.
    """

    model_config = ConfigDict(
        extra="allow",
        coerce_numbers_to_str=True,
        populate_by_name=True,
        str_max_length=1 << 20,
    )

    # Field names that carry the stream's identity, in order of preference (reference §3.0).
    domain_fields: ClassVar[tuple[str, ...]] = ("domain", "app")
    app_name_fields: ClassVar[tuple[str, ...]] = ("appname", "path")
    stream_fields: ClassVar[tuple[str, ...]] = ("stream_id", "streamId", "channel_id")

    event_type: int
    appid: int | None = None

    @classmethod
    def identity(cls, body: Body) -> Identity:
        """The stream a body is about (domain, app name, stream), whatever the spelling."""
        return Identity(
            first_text(body, cls.domain_fields),
            first_text(body, cls.app_name_fields),
            first_text(body, cls.stream_fields),
        )

    @classmethod
    def occurred_at(cls, body: Body) -> float | None:
        """When the event happened, in unix seconds; None when the body carries no time."""
        return seconds(body.get("event_time"))


def first_text(body: Body, names: tuple[str, ...]) -> str | None:
    """The first of `names` that holds a usable identifier in `body` (see `text`)."""
    for name in names:
        found = text(body.get(name))
        if found is not None:
            return found
    return None


def objects_at(body: Body, *path: str) -> list[Body]:
    """The objects in the list at `path` (e.g. `data`, `subtitle_tmp_res`); others skipped.

    For times computed from nested items: a body that does not fit its model may hold anything
    there, and must still not raise.
    """
    node: object = body
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return [item for item in node if isinstance(item, dict)] if isinstance(node, list) else []


def earliest(times: list[float | None]) -> float | None:
    """The earliest of the plausible `times`, None when there is none."""
    found = [t for t in times if t is not None]
    return min(found) if found else None
