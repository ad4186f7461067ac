"""What a history query may ask for: validated parameter models shared by the API and the CLI.

The same models validate `/api/...` query strings, document them in the OpenAPI document
(`model_json_schema()`), and carry the CLI's options, so the three cannot drift apart. Times
are ISO 8601 with a UTC offset, or unix seconds; a time without an offset is refused rather than
guessed (operators in UTC+8 and servers in UTC would read it differently).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar, get_origin

import orjson
from multidict import MultiMapping
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails

from receiver.errors import ApiBadRequest
from receiver.kinds import ALL_KINDS

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


def _check_kind(value: str) -> str:
    if value not in ALL_KINDS:
        raise ValueError(f"unknown kind {value!r}; expected one of: {', '.join(ALL_KINDS)}")
    return value


Timestamp = Annotated[
    float,
    BeforeValidator(parse_time),
    WithJsonSchema(
        {"type": "string", "pattern": TIME_PATTERN, "examples": ["2023-12-28T02:44:38Z"]}
    ),
]
KindName = Annotated[
    str,
    AfterValidator(_check_kind),
    WithJsonSchema({"type": "string", "enum": list(ALL_KINDS)}),
]
# Names as CSS allows them (a domain is at most 253 characters); also keeps URLs short.
Text = Annotated[str, Field(min_length=1, max_length=256)]
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


class EventQuery(Query):
    """Filters of `GET /api/events` and `receiver events`; all of them combine with AND."""

    kind: list[KindName] = Field(
        default_factory=list,
        max_length=len(ALL_KINDS),
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
    published: bool | None = Field(
        default=None, description="true: confirmed by the broker; false: still in the outbox."
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    order: Order = Field(
        default="desc", description="desc: newest stored first; asc: oldest stored first."
    )

    @model_validator(mode="after")
    def _ranges(self) -> EventQuery:
        _check_range("since", self.since, "until", self.until)
        _check_range("received_since", self.received_since, "received_until", self.received_until)
        return self


class StreamQuery(Query):
    """Filters of `GET /api/streams` and `receiver streams`."""

    state: StreamState | None = Field(
        default=None,
        description="live: pushing now; ended: its latest push session ended; unknown: no "
        "push begin or end stored for it yet.",
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


def _check_range(low_name: str, low: float | None, high_name: str, high: float | None) -> None:
    if low is not None and high is not None and low >= high:
        raise ValueError(f"{low_name} must be earlier than {high_name}")


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
        raise ApiBadRequest("invalid_parameter", describe(exc.errors()[0])) from None


def describe(error: ErrorDetails) -> str:
    """One precise sentence for one pydantic error, starting with the parameter's name."""
    where = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
        if error["type"] not in ("missing", "extra_forbidden"):
            message += f", got {error['input']!r}"
    return f"{where}: {message}" if where else message
