"""`receiver replay`: re-publish stored events straight from the database (no server needed):
a SQLite file, or the PostgreSQL database (only read).

Same selection and publishing code as `POST /api/events/replay`; messages keep their message_id
and carry `x-replay: true`. Progress goes to stderr about once a second, the summary to stdout.
Exit status: 0 done, 1 broker or database failure (nothing is lost: run again, consumers
dedupe), 2 invalid options or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from receiver.cli.common import add_database_option, configure_logging, load_settings
from receiver.cli.filters import FILTER_OPTIONS, add_filter_options, option_name
from receiver.cli.readonly import CommandError, open_postgres
from receiver.outbox.broker import make_publisher
from receiver.outbox.pg_replay import PostgresSource
from receiver.outbox.publisher import BrokerUnavailable, describe
from receiver.outbox.replay import (
    ReplayFilter,
    ReplayProgress,
    ReplaySource,
    SqliteSource,
    replay,
)
from receiver.settings import Settings
from receiver.storage.connect import connect
from receiver.storage.engine import Database, PostgresUrl
from receiver.web.responses import explain


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="re-publish stored events (x-replay: true, same message_id)",
        description="Re-publish stored events to RECEIVER_AMQP_URL / RECEIVER_AMQP_EXCHANGE, "
        "in storage order. The filters are those of `receiver events`: --since/--until on the "
        "event time, --received-since/--received-until on the arrival time (each since "
        "inclusive, until exclusive). Times: unix seconds or ISO 8601 with an offset.",
    )
    add_filter_options(parser)
    parser.add_argument(
        "--all", action="store_true", help="replay every stored event (needed without filters)"
    )
    parser.add_argument("--dry-run", action="store_true", help="only count the matching events")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    selection = _selection(args)
    if selection is None:
        return 2
    if settings.amqp_url is None and not args.dry_run:
        print("RECEIVER_AMQP_URL is not set: nowhere to publish", file=sys.stderr)
        return 2
    database = settings.database
    if isinstance(database, Path) and not database.exists():
        print(f"no database at {database}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_replay(settings, database, selection, dry_run=args.dry_run))
    except CommandError as exc:  # PostgreSQL unreachable, or not migrated
        print(f"receiver replay: {exc}", file=sys.stderr)
        return exc.code


def _selection(args: argparse.Namespace) -> ReplayFilter | None:
    fields: dict[str, Any] = {
        name: value for name in FILTER_OPTIONS if (value := getattr(args, name)) is not None
    }
    if args.all:
        fields["all"] = True
    try:
        return ReplayFilter.model_validate(fields)
    except ValidationError as exc:
        message = explain(exc)
        for name in (*FILTER_OPTIONS, "all"):
            if message.startswith(f"{name}:"):
                message = option_name(name) + message[len(name) :]
        print(f"invalid replay filter: {message}", file=sys.stderr)
        return None


@asynccontextmanager
async def _source(database: Database) -> AsyncIterator[ReplaySource]:
    """The events to replay: read-only, on either engine."""
    if isinstance(database, PostgresUrl):
        async with open_postgres(database) as pool:
            yield PostgresSource(pool)
        return
    conn = await connect(database, readonly=True)
    try:
        yield SqliteSource(conn)
    finally:
        await conn.close()


async def _replay(
    settings: Settings, database: Database, selection: ReplayFilter, *, dry_run: bool
) -> int:
    async with _source(database) as source:
        try:
            return await _publish(settings, source, selection, dry_run=dry_run)
        except Exception as exc:
            print(f"replay failed: {describe(exc)}", file=sys.stderr)
            return 1


async def _publish(
    settings: Settings, source: ReplaySource, selection: ReplayFilter, *, dry_run: bool
) -> int:
    matched = await source.count(selection)
    if dry_run or matched == 0:
        print(f"{matched} events match {selection.describe()}")
        return 0
    publisher = make_publisher(settings, None, name="receiver replay (cli)")
    progress = ReplayProgress(matched)
    reporter = _Reporter(matched)
    try:
        await publisher.connect()
        await replay(source, publisher, selection, progress, on_progress=reporter.update)
    except BrokerUnavailable as exc:
        print(
            f"\nreplay stopped: {exc}\n{progress.published} of {matched} events were "
            "confirmed; run the same command again to finish (consumers dedupe by "
            "message_id)",
            file=sys.stderr,
        )
        return 1
    finally:
        await publisher.close()
    reporter.update(progress, force=True)
    reporter.finish()
    print(
        f"replayed {progress.published} events to exchange {publisher.exchange!r} at "
        f"{publisher.display_url}"
        + (f" ({progress.unroutable} unroutable: no queue bound)" if progress.unroutable else "")
    )
    return 0


class _Reporter:
    """Progress on stderr, at most about once a second (a line each when not a terminal)."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._started = time.monotonic()
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def update(self, progress: ReplayProgress, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        elapsed = max(now - self._started, 1e-6)
        line = (
            f"replay: {progress.done}/{self._total} events "
            f"({100 * progress.done / max(self._total, 1):.0f}%), "
            f"{progress.done / elapsed:.0f}/s"
        )
        print(("\r" + line) if self._tty else line, end="" if self._tty else "\n", file=sys.stderr)

    def finish(self) -> None:
        if self._tty:
            print(file=sys.stderr)
