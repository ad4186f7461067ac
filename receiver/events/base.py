"""What every CSS event model shares: tolerant parsing and one normalised view.

CSS spells the same facts differently per kind (`app` vs `domain`, `appname` vs `path`,
`stream_id` vs `streamId`), sends numeric IDs as numbers or strings, and adds fields without
notice. Models therefore allow extra fields, coerce numbers to strings for IDs, accept numeric
strings for numbers, and expose `normalised()`, the single view storage and consumers rely on.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# Anything outside this range is not a plausible event time in seconds (1970 .. year 5138).
_MAX_SECONDS = 1e11


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
    number = float(value)
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
    """Base of every event model; also the model of unknown kinds (`other`)."""

    model_config = ConfigDict(
        extra="allow",
        coerce_numbers_to_str=True,
        populate_by_name=True,
        str_max_length=1 << 20,
    )

    # Field names that carry the normalised facts, in order of preference.
    domain_fields: ClassVar[tuple[str, ...]] = ("domain", "app")
    app_name_fields: ClassVar[tuple[str, ...]] = ("appname", "path")
    stream_fields: ClassVar[tuple[str, ...]] = ("stream_id", "streamId", "channel_id")

    event_type: int
    appid: int | None = None

    def normalised(self) -> Normalised:
        """Domain, app name, stream, event time and push sequence, whatever the spelling."""
        return Normalised(
            domain=self._first(self.domain_fields),
            app_name=self._first(self.app_name_fields),
            stream_id=self._first(self.stream_fields),
            event_time=self.occurred_at(),
            sequence=self.push_sequence(),
        )

    def occurred_at(self) -> float | None:
        """When the event happened, in unix seconds; None when the kind carries no time."""
        return seconds(self._value("event_time"))

    def push_sequence(self) -> str | None:
        """The push session id, for kinds that belong to one publishing session."""
        return None

    def _value(self, name: str) -> object:
        # Declared fields live in __dict__, undeclared ones in the extras (extra="allow").
        value = self.__dict__.get(name)
        if value is None and self.__pydantic_extra__:
            value = self.__pydantic_extra__.get(name)
        return value

    def _first(self, names: tuple[str, ...]) -> str | None:
        declared, extra = self.__dict__, self.__pydantic_extra__  # `_value`, inlined: per event
        for name in names:
            value = declared.get(name)
            if value is None and extra:
                value = extra.get(name)
            found = text(value)
            if found is not None:
                return found
        return None


def normalise_mapping(body: dict[str, Any], *, push_session: bool) -> Normalised:
    """Best-effort normalised view of a body that failed its kind's model (never raises)."""

    def first(names: tuple[str, ...]) -> str | None:
        for name in names:
            found = text(body.get(name))
            if found is not None:
                return found
        return None

    return Normalised(
        domain=first(CssEvent.domain_fields),
        app_name=first(CssEvent.app_name_fields),
        stream_id=first(CssEvent.stream_fields),
        event_time=seconds(body.get("event_time")),
        sequence=text(body.get("sequence")) if push_session else None,
    )
