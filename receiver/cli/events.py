"""`receiver events`: list stored events from the database file, as a table or JSON lines.

The filters are the query parameters of `GET /api/events`, validated by the same model, so an
operator on the box gets the same answers without a token or a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

from receiver import history
from receiver.cli.common import add_database_option, load_settings
from receiver.cli.readonly import CommandError, open_readonly
from receiver.cli.table import when, write_table
from receiver.errors import ApiError
from receiver.kinds import ALL_KINDS
from receiver.queries import EventQuery, validate_query
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


def add_listing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=100, help="rows to show (default 100)")
    parser.add_argument("--all", action="store_true", help="every matching row, page by page")
    parser.add_argument("--order", choices=("desc", "asc"), default="desc")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def query_values(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The given options among `names`, keyed by query parameter name."""
    values = {name: getattr(args, name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    settings = load_settings(args)
    names = (
        "kind", "event_type", "domain", "app_name", "stream_id", "since", "until",
        "received_since", "received_until", "published", "order",
    )  # fmt: skip
    values = query_values(args, names)
    values["limit"] = min(args.limit, 1000) if args.all else args.limit
    try:
        query = validate_query(EventQuery, values)
        return asyncio.run(_list(settings.database, query, args, stream))
    except ApiError as exc:
        print(f"receiver events: {exc.message}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"receiver events: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:  # `receiver events | head`
        return 0


async def _list(database: Path, query: EventQuery, args: argparse.Namespace, out: TextIO) -> int:
    async with open_readonly(database) as conn:
        after: int | None = None
        printed = 0
        while True:
            page = await history.list_events(conn, query, after)
            if args.json:
                for event in page.items:
                    out.write(event.model_dump_json() + "\n")
            else:
                write_table(out, _HEADER, (_row(event) for event in page.items))
            printed += len(page.items)
            if not args.all or page.after is None:
                break
            after = int(page.after[0])
        if not args.json and printed == 0:
            print("(no matching events)", file=sys.stderr)
    return 0


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
