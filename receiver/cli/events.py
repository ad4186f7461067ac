"""`receiver events`: list stored events from the database file, as a table or JSON lines.

The filters are the query parameters of `GET /api/events`, validated by the same model, so an
operator on the box gets the same answers without a token or a running server.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from receiver import history
from receiver.cli.common import add_database_option
from receiver.cli.listing import Listing, add_listing_options, run_listing
from receiver.cli.table import when
from receiver.kinds import ALL_KINDS
from receiver.queries import EventQuery
from receiver.resources import Event


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "events",
        help="list stored events (newest first)",
        description="List stored events, newest stored first. Times: ISO 8601 with an offset "
        "(2024-05-01T08:00:00+08:00) or unix seconds.",
    )
    parser.add_argument(
        "--kind", action="append", choices=ALL_KINDS, metavar="KIND", help="repeatable"
    )
    parser.add_argument("--event-type", type=int, help="CSS event_type number")
    parser.add_argument("--domain")
    parser.add_argument("--app-name")
    parser.add_argument("--stream-id", "--stream", dest="stream_id")
    parser.add_argument("--since", help="event time at or after")
    parser.add_argument("--until", help="event time before")
    parser.add_argument("--received-since", help="arrival time at or after")
    parser.add_argument("--received-until", help="arrival time before")
    published = parser.add_mutually_exclusive_group()
    published.add_argument("--published", action="store_const", const=True, default=None)
    published.add_argument("--unpublished", dest="published", action="store_const", const=False)
    add_listing_options(parser)
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return run_listing(EVENTS, args, out)


_HEADER = ("RECEIVED (UTC)", "EVENT TIME", "KIND", "DOMAIN/APP/STREAM", "SEQUENCE", "PUB", "ID")


def _row(event: Event) -> tuple[str, ...]:
    where = "/".join(part or "-" for part in (event.domain, event.app_name, event.stream_id))
    return (
        when(event.received_at),
        when(event.event_time),
        event.kind,
        where,
        event.sequence or "-",
        "yes" if event.published else "no",
        event.id,
    )


_OPTIONS = (
    "kind", "event_type", "domain", "app_name", "stream_id", "since", "until",
    "received_since", "received_until", "published",
)  # fmt: skip

EVENTS: Listing[EventQuery, Event] = Listing(
    command="events",
    query_model=EventQuery,
    options=_OPTIONS,
    fetch=history.list_events,
    header=_HEADER,
    row=_row,
)
