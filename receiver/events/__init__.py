"""The event vocabulary: the kinds table (`kinds`), a model per kind family, and `parse_event`,
which never loses a body.

A body whose kind is unknown, or that does not fit its kind's model (CSS changes fields without
notice), is still stored: the model only decides `schema_error`. The normalised view comes from
the same per-kind accessors either way (`normalise`), so a body that breaks one field keeps its
stream, its time and its push session.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from pydantic import ValidationError

from receiver.events.base import Body, CssEvent, Normalised, text
from receiver.events.kinds import BY_EVENT_TYPE, KINDS

MODEL_BY_EVENT_TYPE: Final[dict[int, type[CssEvent]]] = {
    kind.event_type: kind.model for kind in KINDS
}


class ParsedEvent(NamedTuple):
    """A body with its normalised view; `model` is None when the body did not fit its model."""

    event_type: int
    normalised: Normalised
    model: CssEvent | None
    schema_error: str | None = None


def normalise(body: Body, event_type: int) -> Normalised:
    """The stored columns of `body`, read by its kind's accessors (whether or not it fits)."""
    kind = BY_EVENT_TYPE.get(event_type)
    model = kind.model if kind is not None else CssEvent
    domain, app_name, stream_id = model.identity(body)
    return Normalised(
        domain=domain,
        app_name=app_name,
        stream_id=stream_id,
        event_time=model.occurred_at(body),
        sequence=text(body.get("sequence")) if kind is not None and kind.push_session else None,
    )


def parse_event(body: dict[str, Any], event_type: int) -> ParsedEvent:
    """Validate `body` against its kind's model and normalise it; never raise."""
    normalised = normalise(body, event_type)
    kind = BY_EVENT_TYPE.get(event_type)
    model_class = kind.model if kind is not None else CssEvent
    try:
        if type(body.get("event_type")) is not int:  # "1" is tolerated; Literal[1] is strict
            body = {**body, "event_type": event_type}
        model = model_class.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return ParsedEvent(event_type, normalised, None, f"{where}: {first['msg']}")
    return ParsedEvent(event_type, normalised, model)


__all__ = [
    "MODEL_BY_EVENT_TYPE",
    "CssEvent",
    "Normalised",
    "ParsedEvent",
    "normalise",
    "parse_event",
]
