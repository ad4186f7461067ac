"""`receiver streams`: streams and their state from the database file (`--live`: pushing now)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from receiver import history
from receiver.cli.common import add_database_option, load_settings
from receiver.cli.events import add_listing_options, query_values
from receiver.cli.readonly import CommandError, open_readonly
from receiver.cli.table import when, write_table
from receiver.errors import ApiError
from receiver.queries import StreamQuery, validate_query
from receiver.resources import Stream


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "streams",
        help="list streams and their push state",
        description="One row per (domain, app name, stream): live or ended, last begin and "
        "end, why it ended. State follows push session sequences, not arrival order.",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--live", dest="state", action="store_const", const="live", help="only live streams"
    )
    state.add_argument("--state", choices=("live", "ended", "unknown"))
    parser.add_argument("--domain")
    parser.add_argument("--app-name")
    parser.add_argument("--stream-id", "--stream", dest="stream_id")
    add_listing_options(parser)
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    settings = load_settings(args)
    values = query_values(args, ("state", "domain", "app_name", "stream_id", "order"))
    values["limit"] = min(args.limit, 1000) if args.all else args.limit
    try:
        query = validate_query(StreamQuery, values)
        return asyncio.run(_list(settings.database, query, args, stream))
    except ApiError as exc:
        print(f"receiver streams: {exc.message}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"receiver streams: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        return 0


async def _list(database: Path, query: StreamQuery, args: argparse.Namespace, out: TextIO) -> int:
    async with open_readonly(database) as conn:
        after: int | None = None
        printed = 0
        while True:
            page = await history.list_streams(conn, query, after)
            if args.json:
                for item in page.items:
                    out.write(item.model_dump_json() + "\n")
            else:
                write_table(out, _HEADER, (_row(item) for item in page.items))
            printed += len(page.items)
            if not args.all or page.after is None:
                break
            after = int(page.after[0])
        if not args.json and printed == 0:
            print("(no matching streams)", file=sys.stderr)
    return 0


_HEADER = (
    "DOMAIN/APP/STREAM",
    "STATE",
    "LAST BEGIN",
    "LAST END",
    "END REASON",
    "SESSIONS",
    "EVENTS",
)


def _row(item: Stream) -> tuple[str, ...]:
    where = "/".join(part or "-" for part in (item.domain, item.app_name, item.stream_id))
    reason = "-"
    if item.end_code is not None:
        reason = f"{item.end_code}: {item.end_reason}"
    return (
        where,
        item.state,
        when(item.last_begin),
        when(item.last_end),
        reason,
        str(item.sessions),
        str(item.events),
    )
