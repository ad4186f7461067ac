"""`receiver tencent sessions STREAM`: a stream's push sessions, with main/backup from Tencent.

The sessions come from the database (as `GET /api/streams/{stream_id}/sessions` lists them);
while the stream has more than one open session, DescribeBackupStreamList says which push
Tencent plays (`MasterFlag`, matched on `UpstreamSequence` = `sequence`), the same lookup the
API does (`receiver.reconcile.backup`). Region: `--region`, else RECEIVER_TENCENT_BACKUP_REGION,
else TENCENTCLOUD_REGION. Exit status: 0 done, 1 the database or Tencent failed, 2 invalid
options, configuration or credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from receiver.cli.common import add_database_option, configure_logging, load_credentials
from receiver.cli.common import load_settings as load_cli_settings
from receiver.cli.readonly import CommandError, open_postgres, open_readonly
from receiver.cli.table import json_line, when, write_table
from receiver.errors import ApiError
from receiver.history import pg_sql as pg_history
from receiver.history import sql as history
from receiver.history.models import Session
from receiver.history.params import SessionQuery
from receiver.history.sql import StreamKey
from receiver.reconcile.backup import BackupRoles
from receiver.storage.engine import PostgresUrl
from receiver.tencent.client import TencentClient
from receiver.tencent.limits import ActionLimits
from receiver.tencent.streams import LiveStreamApi
from receiver.tencent.wiring import client_retry

_HEADER = ("SEQUENCE", "STATE", "ROLE", "START", "END", "BEGIN FROM", "END FROM")


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "sessions",
        help="a stream's push sessions, with main/backup from Tencent",
        description="Push sessions of one stream, latest first; ROLE (main/backup) while "
        "several are open, from DescribeBackupStreamList.",
    )
    parser.add_argument("stream_id", metavar="STREAM")
    parser.add_argument("--domain")
    parser.add_argument("--app-name")
    parser.add_argument("--region", help="Tencent region (DescribeBackupStreamList needs one)")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    credentials = load_credentials()
    region = args.region or settings.tencent_backup_region or credentials.region
    try:
        query = SessionQuery.model_validate(
            {"domain": args.domain, "app_name": args.app_name, "limit": args.limit}
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def stored() -> tuple[StreamKey, list[Session]]:
        database = settings.database
        if isinstance(database, PostgresUrl):
            async with open_postgres(database) as pool:
                stream = await pg_history.find_stream(
                    pool, args.stream_id, args.domain, args.app_name
                )
                return stream, (await pg_history.list_sessions(pool, stream, query)).items
        async with open_readonly(database) as reader:
            stream = await history.find_stream(reader, args.stream_id, args.domain, args.app_name)
            return stream, (await history.list_sessions(reader, stream, query)).items

    async def main() -> list[Session]:
        stream, sessions = await stored()
        if region is None or sum(s.state == "live" for s in sessions) < 2:
            return sessions
        async with aiohttp.ClientSession() as session:
            client = TencentClient(
                session,
                credentials,
                endpoint=settings.tencent_endpoint,
                retry=client_retry(settings),
                limits=ActionLimits(share=settings.tencent_rate_share),
            )
            roles = await BackupRoles(LiveStreamApi(client), region).roles(
                stream.domain, stream.app_name, stream.stream_id
            )
        return [
            s.model_copy(update={"role": roles[s.sequence]}) if s.sequence in roles else s
            for s in sessions
        ]

    try:
        sessions = asyncio.run(main())
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for s in sessions:
            print(json_line(json.dumps(_json(s), ensure_ascii=False)))
    else:
        write_table(sys.stdout, _HEADER, [_row(s) for s in sessions])
    return 0


def _json(session: Session) -> dict[str, Any]:
    return session.model_dump(
        mode="json", exclude={"recordings", "snapshots", "moderation", "push_exceptions"}
    )


def _row(s: Session) -> tuple[str, ...]:
    return (
        s.sequence or "-",
        s.state,
        s.role or "-",
        when(s.start),
        when(s.end),
        s.begin_source or "-",
        s.end_source or "-",
    )
