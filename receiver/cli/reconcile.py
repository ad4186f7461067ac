"""`receiver tencent reconcile`: compare stored push history with Tencent's own records.

Sweeps DescribeLiveStreamEventList over `--since`..`--until` (default: the last 24 hours),
matches each record to stored push sessions, and reports sessions Tencent has and we lack,
begins without ends that Tencent shows ended, begins missing before stored ends, and ended
sessions Tencent does not know. Without `--apply` nothing changes. With `--apply` the missing
begins and ends are stored as reconciled events: on SQLite appended to the inbox file (a running
`receiver serve` folds and publishes them within about a second, and the command waits for
that; a stopped one does so at its next start); on PostgreSQL committed before the command
ends (any replica publishes them). Running it again stores nothing.

Output: a table, or JSON lines (`--json`: one object per finding, then a summary object);
progress on stderr for sweeps of more than one window. Exit status: 0 done, 1 Tencent or the
database failed, 2 invalid options, configuration or credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite

from receiver.cli.common import add_database_option, configure_logging, load_credentials
from receiver.cli.common import load_settings as load_cli_settings
from receiver.cli.readonly import CommandError, open_postgres, open_readonly
from receiver.cli.table import json_line
from receiver.errors import StartupRefused, StorageUnavailable
from receiver.logs import printable
from receiver.metrics import Metrics
from receiver.reconcile.matching import StoredSession
from receiver.reconcile.run import Report, reconcile
from receiver.reconcile.submit import InboxFileSubmitter, IntakeSubmitter
from receiver.reconcile.sweep import SweepProgress
from receiver.reconcile.windows import WindowError
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl
from receiver.storage.lock import DatabaseLock
from receiver.storage.postgres.intake import PostgresIntake
from receiver.storage.postgres.pool import check_durability
from receiver.tencent.credentials import TencentCredentials
from receiver.tencent.errors import TencentError
from receiver.tencent.masking import redact
from receiver.tencent.streams import LiveStreamApi, StreamEventInfo
from receiver.tencent.wiring import command_client
from receiver.times import iso_utc, parse_time

DEFAULT_SPAN_SECONDS = 86400.0
# How long --apply waits for a running service to fold what it appended.
FOLD_WAIT_SECONDS = 30.0


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "reconcile",
        help="find (and with --apply store) push begins/ends CSS never delivered",
        description="Compare stored push sessions with Tencent's records "
        "(DescribeLiveStreamEventList: 60 days of history). Times: unix seconds or ISO 8601 "
        "with an offset. Without --apply nothing changes.",
    )
    parser.add_argument("--since", help="start of the sweep (default: --until minus 24 h)")
    parser.add_argument("--until", help="end of the sweep (default: now)")
    parser.add_argument(
        "--domain",
        dest="domains",
        action="append",
        metavar="DOMAIN",
        help="push domain; repeat for several (default: every domain)",
    )
    parser.add_argument(
        "--apply", action="store_true", help="store the missing events (as reconciled)"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    try:
        until = parse_time(args.until) if args.until else time.time()
        since = parse_time(args.since) if args.since else until - DEFAULT_SPAN_SECONDS
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    credentials = load_credentials()
    secrets = [credentials.secret_key.get_secret_value()]
    if credentials.session_token is not None:
        secrets.append(credentials.session_token.get_secret_value())
    try:
        return asyncio.run(_run(settings, credentials, args, since, until))
    except (WindowError, CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CommandError) else 2
    except TencentError as exc:
        print(f"error: {redact(str(exc), secrets)}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:  # the inbox file could not take the events
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (StartupRefused, StorageUnavailable) as exc:  # PostgreSQL refused or failed
        print(f"error: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
        return 1


async def _run(
    settings: Settings,
    credentials: TencentCredentials,
    args: argparse.Namespace,
    since: float,
    until: float,
) -> int:
    async with aiohttp.ClientSession() as session:
        api = LiveStreamApi(command_client(session, settings, credentials))
        if isinstance(settings.database, PostgresUrl):
            report = await _on_postgres(settings, api, args, since, until)
            folded: bool | None = True  # committed: any replica publishes it
        else:
            report, folded = await _on_sqlite(settings.database, api, args, since, until)
    for line in _json_lines(report) if args.json else _table(report):
        # Stream names come from callbacks and from Tencent: never raw to a terminal.
        print(json_line(line) if args.json else printable(line))
    if report.applied and report.stored and not folded:
        print(
            "the events are in the inbox file: `receiver serve` folds and publishes them "
            + (
                "when it starts"
                if folded is None
                else f"(it did not within {FOLD_WAIT_SECONDS:.0f} s)"
            ),
            file=sys.stderr,
        )
    return 0


async def _on_sqlite(
    database: Path, api: LiveStreamApi, args: argparse.Namespace, since: float, until: float
) -> tuple[Report, bool | None]:
    """Appended to the inbox file; whether a running service folded it (None: none runs)."""
    submitter = InboxFileSubmitter(database) if args.apply else None
    async with open_readonly(database) as reader:
        report = await reconcile(
            api,
            reader,
            since=since,
            until=until,
            domains=args.domains or (),
            submitter=submitter,
            on_progress=_progress,
        )
        folded = None
        if submitter is not None and report.stored and _service_running(database):
            folded = await _wait_for_fold(reader, submitter.last_seq)
    return report, folded


async def _on_postgres(
    settings: Settings,
    api: LiveStreamApi,
    args: argparse.Namespace,
    since: float,
    until: float,
) -> Report:
    """Stored through an intake of the command's own, as the service stores callbacks (the
    matching with real callbacks is the database's: migrations/postgresql, reconciled_events)."""
    url = settings.database
    assert isinstance(url, PostgresUrl)
    async with open_postgres(url) as pool:
        intake = None
        if args.apply:
            await check_durability(pool, url)
            intake = PostgresIntake(
                pool, Metrics.create(), commit_timeout=settings.database_timeout_seconds
            )
            intake.start()
        try:
            return await reconcile(
                api,
                pool,
                since=since,
                until=until,
                domains=args.domains or (),
                submitter=IntakeSubmitter(intake) if intake is not None else None,
                on_progress=_progress,
            )
        finally:
            if intake is not None:
                await intake.close()


def _service_running(database: Path) -> bool:
    """Whether a `receiver serve` holds the database (it then folds what was appended)."""
    try:
        DatabaseLock.acquire(database).release()
    except StartupRefused:
        return True
    return False


async def _wait_for_fold(reader: aiosqlite.Connection, seq: int) -> bool:
    """Whether the fold passed inbox row `seq` within `FOLD_WAIT_SECONDS` (polled)."""
    deadline = time.monotonic() + FOLD_WAIT_SECONDS
    while time.monotonic() < deadline:
        rows = await reader.execute_fetchall("SELECT inbox_seq FROM fold_progress WHERE id = 1")
        if rows and next(iter(rows))[0] >= seq:
            return True
        await asyncio.sleep(0.1)
    return False


def _progress(progress: SweepProgress) -> None:
    if progress.windows > 1 or progress.splits:
        print(
            f"swept {progress.windows} window(s) ({progress.splits} split), "
            f"{progress.pages} page(s), {progress.records} record(s)",
            file=sys.stderr,
        )


def _findings(report: Report) -> Iterator[dict[str, Any]]:
    f = report.findings
    for record in f.missing:
        yield {"finding": "missing", **_record(record)}
    for pair in f.missing_end:
        yield {"finding": "missing_end", **_record(pair.record), "sequence": pair.session.sequence}
    for pair in f.missing_begin:
        yield {
            "finding": "missing_begin",
            **_record(pair.record),
            "sequence": pair.session.sequence,
        }
    for session in f.unknown:
        yield {"finding": "unknown_to_tencent", **_session(session)}


def _record(record: StreamEventInfo) -> dict[str, Any]:
    domain, app, stream = record.identity
    return {
        "domain": domain,
        "app_name": app,
        "stream_id": stream,
        "start": iso_utc(record.stream_start_time),
        "end": iso_utc(record.stream_end_time),
        "stop_reason": record.stop_reason,
    }


def _session(session: StoredSession) -> dict[str, Any]:
    domain, app, stream = session.identity
    return {
        "domain": domain,
        "app_name": app,
        "stream_id": stream,
        "start": iso_utc(session.begin_time or session.started_at),
        "end": iso_utc(session.end_time),
        "sequence": session.sequence,
    }


def _summary(report: Report) -> dict[str, Any]:
    f = report.findings
    return {
        "since": iso_utc(report.since),
        "until": iso_utc(report.until),
        "records": report.records,
        "matched": f.matched,
        "missing": len(f.missing),
        "missing_end": len(f.missing_end),
        "missing_begin": len(f.missing_begin),
        "unknown_to_tencent": len(f.unknown),
        "events": len(report.bodies),
        "stored": len(report.stored),
        "applied": report.applied,
        "pages": report.progress.pages,
        "splits": report.progress.splits,
    }


def _json_lines(report: Report) -> Iterator[str]:
    for finding in _findings(report):
        yield json.dumps(finding, ensure_ascii=False)
    yield json.dumps({"summary": _summary(report)}, ensure_ascii=False)


def _table(report: Report) -> Iterator[str]:
    s = _summary(report)
    yield (
        f"swept {s['since']} .. {s['until']}: {s['records']} Tencent record(s), "
        f"{s['matched']} matched"
    )
    for finding in _findings(report):
        where = "/".join((finding["domain"], finding["app_name"], finding["stream_id"]))
        yield (
            f"  {finding['finding']:<18} {where}  {finding['start'] or '-'} .. "
            f"{finding['end'] or '-'}"
        )
    if report.applied:
        yield f"stored {s['stored']} reconciled event(s)"
    elif s["events"]:
        yield f"dry run: {s['events']} event(s) would be stored (use --apply)"
    else:
        yield "nothing to store"
