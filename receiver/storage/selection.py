"""Which stored events: the filter `GET /api/events`, `receiver events`, `receiver replay` and
`POST /api/events/replay` share, so each name means the same everywhere.

`stream_id`, `domain`, `app_name`, `kind` and `event_type` match exactly; `since`/`until` bound
the event time (when CSS says it happened; events without one are left out), `received_since`/
`received_until` the arrival time (`received_at`); each `since` is inclusive, each `until`
exclusive. Times follow `receiver.times`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from receiver.events.kinds import FILTER_KINDS
from receiver.times import Timestamp


def _check_kind(value: str) -> str:
    if value not in FILTER_KINDS:
        raise ValueError(f"unknown kind {value!r}; expected one of: {', '.join(FILTER_KINDS)}")
    return value


KindName = Annotated[
    str,
    AfterValidator(_check_kind),
    WithJsonSchema({"type": "string", "enum": list(FILTER_KINDS)}),
]
# A name (stream, domain, AppName) as the intake stores it. The intake never refuses a callback
# for a long name (nothing CSS sends is dropped), so a filter accepts any length: a limit here
# would leave stored events that no filter can find. Only the transport bounds a name: over
# HTTP the request line (aiohttp's 8190 bytes, percent-encoding included), a body the body limit.
# Every name filter and the sessions route's path use this one type.
Text = Annotated[str, Field(min_length=1)]


class EventFilter(BaseModel):
    """Conditions on stored events; all of them combine with AND. Unknown names are errors (a
    typo must not widen a selection)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: list[KindName] = Field(
        default_factory=list,
        max_length=len(FILTER_KINDS),
        description="Kind name; repeat the parameter for several kinds.",
    )
    event_type: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="CSS `event_type` number."
    )
    domain: Text | None = Field(default=None, description="Push domain.")
    app_name: Text | None = Field(default=None, description="Push path (AppName).")
    stream_id: Text | None = Field(default=None, description="Stream name.")
    since: Timestamp | None = Field(
        default=None,
        description="Event time at or after this instant (events without one are left out).",
    )
    until: Timestamp | None = Field(default=None, description="Event time before this instant.")
    received_since: Timestamp | None = Field(
        default=None, description="Arrival time at or after this instant."
    )
    received_until: Timestamp | None = Field(
        default=None, description="Arrival time before this instant."
    )

    @model_validator(mode="after")
    def _ranges(self) -> EventFilter:
        _check_range("since", self.since, "until", self.until)
        _check_range("received_since", self.received_since, "received_until", self.received_until)
        return self

    def conditions(self) -> tuple[list[str], list[object]]:
        """The plain SQL conditions on `events` (fixed fragments; values always bound)."""
        clauses: list[str] = []
        params: list[object] = []
        if self.kind:
            clauses.append(f"kind IN ({','.join('?' * len(self.kind))})")
            params.extend(self.kind)
        for column, value in (
            ("event_type", self.event_type),
            ("domain", self.domain),
            ("app_name", self.app_name),
            ("stream_id", self.stream_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        for clause, bound in (
            ("event_time >= ?", self.since),
            ("event_time < ?", self.until),
            ("received_at >= ?", self.received_since),
            ("received_at < ?", self.received_until),
        ):
            if bound is not None:
                clauses.append(clause)
                params.append(bound)
        return clauses, params


def _check_range(low_name: str, low: float | None, high_name: str, high: float | None) -> None:
    if low is not None and high is not None and low >= high:
        raise ValueError(f"{low_name} must be earlier than {high_name}")
