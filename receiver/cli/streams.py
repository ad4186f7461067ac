"""`receiver streams`: streams and their state from the database file (`--live`: pushing now)."""

from __future__ import annotations

import argparse
from typing import TextIO

from receiver.cli.common import add_database_option
from receiver.cli.insight import register_quality
from receiver.cli.listing import Listing, add_listing_options, run_listing
from receiver.cli.table import when
from receiver.history import pg_sql as pg_history
from receiver.history import sql as history
from receiver.history.models import Stream
from receiver.history.params import StreamQuery


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "streams",
        help="list streams and their push state",
        description="One row per (domain, app name, stream): live or ended, last begin and "
        "end, why it ended. State follows push session sequences, not arrival order; "
        "'live (reconciled)' means Tencent's records, not a callback, decided it.",
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
    register_quality(parser)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return run_listing(STREAMS, args, out)


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
    elif item.state == "ended" and item.end_message:
        reason = item.end_message
    state: str = item.state
    if item.state_source not in (None, "callback"):
        state = f"{state} ({item.state_source})"  # where the state came from
    return (
        where,
        state,
        when(item.last_begin),
        when(item.last_end),
        reason,
        str(item.sessions),
        str(item.events),
    )


STREAMS: Listing[StreamQuery, Stream] = Listing(
    command="streams",
    query_model=StreamQuery,
    options=("state", "domain", "app_name", "stream_id"),
    fetch=history.list_streams,
    fetch_postgres=pg_history.list_streams,
    header=_HEADER,
    row=_row,
)
