"""`receiver tencent resume STREAM`: lift a forbid (ResumeLiveStream) and record it.

The record is a `resume` row of `moderation_actions` and, once Tencent answered, its published
`moderation_action` event, written by the same code the fold process runs
(`receiver.moderation.book`). The command writes them itself, in two short transactions (before
the call: `calling`; after: `done`/`failed` with the event): SQLite serialises them with the
running service's fold, so it works whether `serve` runs or not. On PostgreSQL it writes the
same two transactions through the same statements (`receiver.moderation.pg_book`). A resume
interrupted before its answer stays `calling` (the service's executor leaves resumes to this
command): run it again, which is harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import aiohttp
import orjson

from receiver.cli.common import (
    add_database_option,
    configure_logging,
    load_credentials,
    load_settings,
)
from receiver.cli.readonly import CommandError, open_postgres, open_readonly
from receiver.moderation.book import ActionBook, ActionMark
from receiver.moderation.pg_book import PgActionBook
from receiver.moderation.policy import ModerationPolicy
from receiver.settings import Settings, check_app_name, check_domain
from receiver.storage.connect import open_for_writing
from receiver.storage.engine import PostgresUrl, sqlite_path
from receiver.storage.ids import EventIds
from receiver.storage.postgres.intake import store_rows
from receiver.storage.postgres.placeholders import numbered
from receiver.tencent.control import StreamControl
from receiver.tencent.credentials import TencentCredentials
from receiver.tencent.errors import TencentApiError, TencentError
from receiver.tencent.wiring import command_client

_RECORD = (
    "INSERT INTO moderation_actions (action_id, action, domain, app_name, stream_id,"
    " session_key, reason, state, attempts, created_at, called_at)"
    " VALUES (?, 'resume', ?, ?, ?, ?, ?, 'calling', 1, ?, ?)"
)


def register_resume(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    resume = actions.add_parser(
        "resume",
        help="lift a forbid of a stream (ResumeLiveStream) and record it",
        description="Call ResumeLiveStream for the stream and record the action (listed by "
        "`receiver actions`, published as a moderation_action event).",
    )
    resume.add_argument("stream", metavar="STREAM", help="stream name")
    resume.add_argument(
        "--domain", required=True, help="push domain (DomainName; required by the API)"
    )
    resume.add_argument("--app", default="live", help="AppName, the push path (default live)")
    resume.add_argument("--reason", help="a note kept with the record")
    add_database_option(resume)
    resume.set_defaults(handler=run_resume)


def run_resume(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    try:
        domain, app = check_domain(args.domain), check_app_name(args.app)
    except ValueError as exc:
        print(f"receiver tencent resume: {exc}", file=sys.stderr)
        return 2
    if not args.stream.strip():
        print("receiver tencent resume: the stream name is empty", file=sys.stderr)
        return 2
    credentials = load_credentials()
    target = Target(domain, app, args.stream, args.reason)
    database = settings.database
    try:
        if isinstance(database, PostgresUrl):
            return asyncio.run(_resume_postgres(database, settings, credentials, target))
        asyncio.run(_check_database(database))
    except CommandError as exc:
        print(f"receiver tencent resume: {exc}", file=sys.stderr)
        return exc.code
    return asyncio.run(_resume(settings, credentials, target))


class Target(NamedTuple):
    """The stream to resume, and the note kept with the record."""

    domain: str
    app: str
    stream: str
    reason: str | None


async def _check_database(database: Path) -> None:
    async with open_readonly(database):
        pass  # exists and has every migration: the record can be written


async def _resume(settings: Settings, credentials: TencentCredentials, target: Target) -> int:
    # A command's own short transactions: blocking the loop for them is harmless.
    conn = open_for_writing(sqlite_path(settings.database, "receiver tencent resume"))
    try:
        action = _record(conn, target)
        mark, code = await _call(action, settings, credentials, target)
        _apply(conn, ActionBook(ModerationPolicy()), mark)
        return code
    finally:
        conn.close()


async def _resume_postgres(
    url: PostgresUrl, settings: Settings, credentials: TencentCredentials, target: Target
) -> int:
    """The same two transactions on PostgreSQL; the published event is stored like any other
    (`store_events`: its partition's lock and order)."""
    async with open_postgres(url) as pool:
        action_id = EventIds().new()
        now = time.time()
        action = await pool.fetchval(
            numbered(_RECORD) + " RETURNING id", *_record_values(action_id, target, now)
        )
        mark, code = await _call(action, settings, credentials, target)
        async with pool.acquire() as conn:
            await PgActionBook(ModerationPolicy()).apply(conn, mark, store_rows)
        return code


async def _call(
    action: int, settings: Settings, credentials: TencentCredentials, target: Target
) -> tuple[ActionMark, int]:
    """ResumeLiveStream; the report to record and the exit code."""
    domain, app, stream, _ = target
    async with aiohttp.ClientSession() as session:
        client = command_client(session, settings, credentials)
        try:
            answer = await StreamControl(client).resume(domain, app, stream)
        except TencentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            state, result, code = "failed", _error(exc), 1
        else:
            print(f"resumed {domain}/{app}/{stream} (RequestId {answer.get('RequestId')})")
            state, result, code = "done", {"request_id": answer.get("RequestId")}, 0
    return ActionMark(action, state, time.time(), orjson.dumps(result).decode()), code


def _record_values(action_id: str, target: Target, now: float) -> tuple[object, ...]:
    """`_RECORD`'s parameters."""
    domain, app, stream, reason = target
    return (action_id, domain, app, stream, f"resume:{action_id}", reason, now, now)


def _record(conn: sqlite3.Connection, target: Target) -> int:
    action_id = EventIds().new()
    with _transaction(conn):
        cursor = conn.execute(_RECORD, _record_values(action_id, target, time.time()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _apply(conn: sqlite3.Connection, book: ActionBook, mark: ActionMark) -> None:
    with _transaction(conn):
        book.apply(conn, mark)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _error(exc: TencentError) -> dict[str, object]:
    if isinstance(exc, TencentApiError):
        return {"error": {"code": exc.code, "message": exc.message, "request_id": exc.request_id}}
    return {"error": {"code": type(exc).__name__, "message": str(exc)}}
