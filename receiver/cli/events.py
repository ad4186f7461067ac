"""`receiver events`: list stored events from the database file, as a table or JSON lines.

The filters are the query parameters of `GET /api/events`, validated by the same model, so an
operator on the box gets the same answers without a token or a running server.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from receiver.cli.common import add_database_option
from receiver.cli.filters import FILTER_OPTIONS, add_filter_options
from receiver.cli.listing import Listing, add_listing_options, run_listing
from receiver.cli.table import when
from receiver.history import pg_sql as pg_history
from receiver.history import sql as history
from receiver.history.models import Event
from receiver.history.params import EventQuery


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "events",
        help="list stored events (newest first)",
        description="List stored events, newest stored first. Times: ISO 8601 with an offset "
        "(2024-05-01T08:00:00+08:00) or unix seconds.",
    )
    add_filter_options(parser)
    published = parser.add_mutually_exclusive_group()
    published.add_argument("--published", action="store_const", const=True, default=None)
    published.add_argument("--unpublished", dest="published", action="store_const", const=False)
    parser.add_argument(
        "--source",
        choices=("callback", "reconciled", "confirmed"),
        help="where the events came from (reconciled: rebuilt from Tencent's records)",
    )
    add_listing_options(parser)
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return run_listing(EVENTS, args, out)


_HEADER = (
    "RECEIVED (UTC)",
    "EVENT TIME",
    "KIND",
    "DOMAIN/APP/STREAM",
    "SEQUENCE",
    "SOURCE",
    "PUB",
    "ID",
)


def _row(event: Event) -> tuple[str, ...]:
    where = "/".join(part or "-" for part in (event.domain, event.app_name, event.stream_id))
    return (
        when(event.received_at),
        when(event.event_time),
        event.kind,
        where,
        event.sequence or "-",
        event.source,
        "yes" if event.published else "no",
        event.id,
    )


_OPTIONS = (*FILTER_OPTIONS, "published", "source")

EVENTS: Listing[EventQuery, Event] = Listing(
    command="events",
    query_model=EventQuery,
    options=_OPTIONS,
    fetch=history.list_events,
    fetch_postgres=pg_history.list_events,
    header=_HEADER,
    row=_row,
)
