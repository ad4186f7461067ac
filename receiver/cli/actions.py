"""`receiver actions`: the moderation actions from the database (SQLite or PostgreSQL), as a
table or JSON lines.

The filters are the query parameters of `GET /api/actions`, validated by the same model
(`receiver.moderation.listing`).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, TextIO

import aiosqlite

from receiver.cli.common import add_database_option
from receiver.cli.listing import Listing, add_listing_options, run_listing
from receiver.cli.table import when
from receiver.history.sql import Page
from receiver.moderation.listing import Action, ActionQuery, list_actions, pg_list_actions

if TYPE_CHECKING:
    import asyncpg

_FILTERS = ("domain", "app_name", "stream_id", "action", "state", "since", "until")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "actions",
        help="list moderation actions (newest first)",
        description="What the moderation policy did, or in a dry run would have done, and "
        "`receiver tencent resume`: newest first, with Tencent's answer and whether the "
        "stream's end confirmed it. Times: ISO 8601 with an offset or unix seconds.",
    )
    parser.add_argument("--domain", help="push domain")
    parser.add_argument("--app", dest="app_name", help="push path (AppName)")
    parser.add_argument("--stream", dest="stream_id", help="stream name")
    parser.add_argument("--action", choices=("drop", "forbid", "resume"))
    parser.add_argument("--state", choices=("pending", "calling", "done", "failed", "dry_run"))
    parser.add_argument("--since", help="recorded at or after this instant")
    parser.add_argument("--until", help="recorded before this instant")
    add_listing_options(parser)
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    return run_listing(ACTIONS, args, out)


async def _fetch(conn: aiosqlite.Connection, query: ActionQuery, after: int | None) -> Page[Action]:
    items, last = await list_actions(conn, query, after, time.time())
    return Page(items, None if last is None else (last,))


_HEADER = ("RECORDED (UTC)", "ACTION", "STATE", "DOMAIN/APP/STREAM", "SESSION", "CONFIRMED",
           "RESULT", "ID")  # fmt: skip


def _row(action: Action) -> tuple[str, ...]:
    where = "/".join(part or "-" for part in (action.domain, action.app_name, action.stream_id))
    result = action.result or {}
    error = result.get("error")
    outcome = (
        f"{error.get('code')}" if isinstance(error, dict)
        else "verified" if "verified" in result
        else str(result.get("request_id") or "-")
    )  # fmt: skip
    return (
        when(action.created_at),
        action.action + (" (dry run)" if action.dry_run else ""),
        action.state,
        where,
        action.sequence or "-",
        action.confirmation or "-",
        outcome,
        action.id,
    )


async def _fetch_postgres(
    pool: asyncpg.Pool[Any], query: ActionQuery, after: int | None
) -> Page[Action]:
    items, last = await pg_list_actions(pool, query, after, time.time())
    return Page(items, None if last is None else (last,))


ACTIONS: Listing[ActionQuery, Action] = Listing(
    command="actions",
    query_model=ActionQuery,
    options=_FILTERS,
    fetch=_fetch,
    fetch_postgres=_fetch_postgres,
    header=_HEADER,
    row=_row,
)
