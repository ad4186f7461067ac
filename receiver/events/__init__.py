"""The event vocabulary: the kinds table (`kinds`), a model per kind family, and `parse_event`,
which never loses a body.

A body whose kind is unknown, or that does not fit its kind's model (CSS changes fields without
notice), is still stored: it falls back to a best-effort normalised view and is counted.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from pydantic import ValidationError

from receiver.events.base import CssEvent, Normalised, normalise_mapping
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


def parse_event(body: dict[str, Any], event_type: int) -> ParsedEvent:
    """Validate `body` against its kind's model; fall back to a lenient view, never raise."""
    kind = BY_EVENT_TYPE.get(event_type)
    model_class = kind.model if kind is not None else CssEvent
    try:
        if type(body.get("event_type")) is not int:  # "1" is tolerated; Literal[1] is strict
            body = {**body, "event_type": event_type}
        model = model_class.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return ParsedEvent(
            event_type=event_type,
            normalised=normalise_mapping(body, push_session=kind is not None and kind.push_session),
            model=None,
            schema_error=f"{where}: {first['msg']}",
        )
    return ParsedEvent(event_type=event_type, normalised=model.normalised(), model=model)


__all__ = ["MODEL_BY_EVENT_TYPE", "CssEvent", "Normalised", "ParsedEvent", "parse_event"]
