"""What `receiver events` and `receiver streams` share: options, validation, paging, printing.

Each command names its query model, its history function and its table; the rest (the same
filters as the HTTP API, `--all` paging through keyset cursors, a table or JSON lines, exit
codes) is here once, so the two commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TextIO, TypeVar

import aiosqlite
from pydantic import BaseModel

from receiver.cli.common import load_settings
from receiver.cli.readonly import CommandError, open_postgres, open_readonly
from receiver.cli.table import json_line, write_table
from receiver.errors import ApiError
from receiver.history.params import Params, validate_query
from receiver.history.sql import Page
from receiver.storage.engine import Database, PostgresUrl

if TYPE_CHECKING:
    import asyncpg

Q = TypeVar("Q", bound=Params)
T = TypeVar("T", bound=BaseModel)

# A CLI page is capped like an API page when `--all` pages through everything.
_PAGE_WITH_ALL = 1000


@dataclass(frozen=True, slots=True)
class Listing(Generic[Q, T]):
    """One listing command: where its rows come from and how they print."""

    command: str  # as typed after `receiver`, for error messages
    query_model: type[Q]
    options: tuple[str, ...]  # the argparse destinations that are query parameters
    fetch: Callable[[aiosqlite.Connection, Q, int | None], Awaitable[Page[T]]]
    fetch_postgres: Callable[[asyncpg.Pool[Any], Q, int | None], Awaitable[Page[T]]]
    header: tuple[str, ...]
    row: Callable[[T], tuple[str, ...]]


def add_listing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=100, help="rows to show (default 100)")
    parser.add_argument("--all", action="store_true", help="every matching row, page by page")
    parser.add_argument("--order", choices=("desc", "asc"), default="desc")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run_listing(listing: Listing[Q, T], args: argparse.Namespace, out: TextIO | None) -> int:
    """Validate the options as the API would, print the rows; exit 2 on a bad option."""
    settings = load_settings(args)
    values: dict[str, Any] = {
        name: getattr(args, name) for name in (*listing.options, "order")
        if getattr(args, name) is not None
    }  # fmt: skip
    values["limit"] = min(args.limit, _PAGE_WITH_ALL) if args.all else args.limit
    try:
        query = validate_query(listing.query_model, values)
        return asyncio.run(_print(listing, settings.database, query, args, out or sys.stdout))
    except ApiError as exc:
        print(f"receiver {listing.command}: {exc.message}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"receiver {listing.command}: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:  # `receiver events | head`
        return 0


async def _print(
    listing: Listing[Q, T], database: Database, query: Q, args: argparse.Namespace, out: TextIO
) -> int:
    if isinstance(database, PostgresUrl):
        async with open_postgres(database) as pool:
            return await _print_pages(
                lambda after: listing.fetch_postgres(pool, query, after), listing, args, out
            )
    async with open_readonly(database) as conn:
        return await _print_pages(
            lambda after: listing.fetch(conn, query, after), listing, args, out
        )


async def _print_pages(
    fetch: Callable[[int | None], Awaitable[Page[T]]],
    listing: Listing[Q, T],
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    after: int | None = None
    printed = 0
    while True:
        page = await fetch(after)
        if args.json:
            for item in page.items:
                out.write(json_line(item.model_dump_json()) + "\n")
        else:
            write_table(out, listing.header, (listing.row(item) for item in page.items))
        printed += len(page.items)
        if not args.all or page.after is None:
            break
        after = int(page.after[0])
    if not args.json and printed == 0:
        print(f"(no matching {listing.command})", file=sys.stderr)
    return 0
