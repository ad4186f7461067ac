"""What a history query may ask for: validated parameter models shared by the API and the CLI.

The same models validate `/api/...` query strings, document them in the OpenAPI document
(`model_json_schema()`), and carry the CLI's options, so the three cannot drift apart. Times
follow the one rule of `receiver.times`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_origin

import orjson
from multidict import MultiMapping
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from receiver.errors import ApiBadRequest
from receiver.storage.selection import EventFilter, Text
from receiver.web.responses import explain

Order = Literal["asc", "desc"]
StreamState = Literal["live", "ended", "unknown"]


class Params(BaseModel):
    """Base of every parameter model: unknown fields are errors (a typo must not widen a query)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """A route that takes no query parameters at all."""


class Query(Params):
    """Base of every listing: `cursor` pages through results."""

    # Parameters that do not change which rows a query selects, so a cursor stays valid when a
    # client changes them between pages.
    paging_fields: ClassVar[tuple[str, ...]] = ("cursor", "limit")

    cursor: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        default=None, description="`next_cursor` of the previous page; omit for the first page."
    )

    def fingerprint(self) -> str:
        """A digest of the filters and order: a cursor is only valid for the same selection."""
        selection = self.model_dump(mode="json", exclude=set(self.paging_fields))
        return hashlib.sha256(orjson.dumps(selection, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class EventQuery(EventFilter, Query):
    """Filters of `GET /api/events` and `receiver events`; all of them combine with AND."""

    published: bool | None = Field(
        default=None, description="true: confirmed by the broker; false: still in the outbox."
    )
    source: Literal["callback", "reconciled", "confirmed"] | None = Field(
        default=None,
        description="callback: posted by CSS; reconciled: rebuilt from Tencent's records; "
        "confirmed: reconciled, then taken over by its late real callback.",
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    order: Order = Field(
        default="desc", description="desc: newest stored first; asc: oldest stored first."
    )


class StreamQuery(Query):
    """Filters of `GET /api/streams` and `receiver streams`."""

    state: StreamState | None = Field(
        default=None,
        description="live: at least one push session open (begun, not ended); ended: every "
        "session ended; unknown: no push begin or end stored for it yet.",
    )
    domain: Text | None = Field(default=None, description="Push domain.")
    app_name: Text | None = Field(default=None, description="Push path (AppName).")
    stream_id: Text | None = Field(default=None, description="Stream name.")
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    order: Order = Field(
        default="desc", description="desc: most recently first seen first; asc: the reverse."
    )


class SessionQuery(Query):
    """Parameters of `GET /api/streams/{stream_id}/sessions`."""

    paging_fields: ClassVar[tuple[str, ...]] = ("cursor", "limit", "items")

    domain: Text | None = Field(
        default=None, description="Push domain; needed when the stream name exists on several."
    )
    app_name: Text | None = Field(
        default=None, description="Push path; needed when the stream name exists on several."
    )
    limit: int = Field(default=20, ge=1, le=100, description="Sessions per page.")
    order: Order = Field(
        default="desc", description="desc: latest start first; asc: earliest start first."
    )
    items: int = Field(
        default=20,
        ge=0,
        le=100,
        description="Events listed per category and session; `counts` always has the totals.",
    )


Q = TypeVar("Q", bound=Params)


def parse_query(model: type[Q], params: MultiMapping[str]) -> Q:
    """Validate a query string; every problem becomes an `ApiBadRequest` naming the parameter."""
    known = model.model_fields
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ApiBadRequest(
            "unknown_parameter",
            f"unknown query parameter {unknown[0]!r}; this route accepts: {', '.join(known)}",
        )
    data: dict[str, Any] = {}
    for name, field in known.items():
        values = params.getall(name, [])
        if not values:
            continue
        if get_origin(field.annotation) is list:
            data[name] = values
        elif len(values) > 1:
            raise ApiBadRequest(
                "repeated_parameter", f"query parameter {name!r} may be given only once"
            )
        else:
            data[name] = values[0]
    return validate_query(model, data)


def validate_query(model: type[Q], data: Mapping[str, Any]) -> Q:
    """Validate already-collected parameters (the CLI's options) into `model`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiBadRequest("invalid_parameter", explain(exc)) from None
