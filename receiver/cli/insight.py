"""`receiver streams quality ID` and `receiver tencent audience`: Tencent's monitoring data from
the command line, through the same code as `GET /api/streams/{id}/quality` and `/api/audience`
(one call each; no cache: a command asks once).

Exit codes: 0 with an answer, 1 when Tencent could not answer (one line with the reason), 2 for
invalid options.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from receiver.cli.common import (
    add_database_option,
    configure_logging,
    load_credentials,
    load_settings,
)
from receiver.cli.readonly import CommandError, open_postgres, open_readonly
from receiver.cli.table import json_line, write_table
from receiver.errors import ApiError
from receiver.history.params import validate_query
from receiver.insight.audience import (
    Audience,
    AudienceQuery,
    audience_of,
    audience_window,
    fetch_groups,
)
from receiver.insight.cache import Answer, Unavailable, unavailable
from receiver.insight.quality import (
    Quality,
    QualityQuery,
    fetch_points,
    pg_quality_window,
    quality_of,
    quality_window,
)
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl
from receiver.tencent.errors import TencentError
from receiver.tencent.monitoring import Monitoring
from receiver.tencent.wiring import command_client

T = TypeVar("T")


def register_quality(streams: argparse.ArgumentParser) -> None:
    """`receiver streams quality ID` (a sub-command of `streams`)."""
    sub = streams.add_subparsers(dest="streams_command", required=False, metavar="[quality]")
    quality = sub.add_parser(
        "quality",
        help="push quality of a stream's open or last session (DescribeStreamPushInfoList)",
        description="Frame rates, bitrates, resolution, client and server IPs over the "
        "session's last 3 hours (Tencent keeps 7 days). Needs TENCENTCLOUD_SECRET_ID/KEY.",
    )
    quality.add_argument("stream_id", metavar="ID", help="stream name")
    quality.add_argument("--domain", help="push domain, when the name exists on several")
    quality.add_argument("--app", dest="app_name", help="push path (AppName)")
    quality.add_argument("--sequence", help="the push session (default: the open or last)")
    quality.add_argument("--json", action="store_true", help="the API's JSON document")
    add_database_option(quality)
    quality.set_defaults(handler=run_quality)


def register_audience(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`receiver tencent audience`."""
    audience = actions.add_parser(
        "audience",
        help="viewers by province and ISP (DescribeGroupProIspPlayInfoList)",
        description="Bandwidth, flux, requests and online viewers per 5-minute point for each "
        "province and ISP. Times: ISO 8601 with an offset or unix seconds; default the last "
        "hour; at most 31 days within the last 31 days.",
    )
    audience.add_argument("--since")
    audience.add_argument("--until")
    audience.add_argument("--play-domain", action="append", default=[], help="repeatable")
    audience.add_argument("--province", action="append", default=[], help="repeatable")
    audience.add_argument("--isp", action="append", default=[], help="repeatable")
    audience.add_argument("--json", action="store_true", help="the API's JSON document")
    audience.set_defaults(handler=run_audience)


def run_quality(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    values = {"domain": args.domain, "app_name": args.app_name, "sequence": args.sequence}

    async def work(monitoring: Monitoring) -> Quality:
        query = validate_query(QualityQuery, {k: v for k, v in values.items() if v is not None})
        database = settings.database
        if isinstance(database, PostgresUrl):
            async with open_postgres(database) as pool:
                window = await pg_quality_window(pool, args.stream_id, query, time.time())
        else:
            async with open_readonly(database) as conn:
                window = await quality_window(conn, args.stream_id, query, time.time())
        return quality_of(window, await _once(fetch_points(monitoring, window)))

    result = _run("streams quality", settings, work)
    if isinstance(result, int):
        return result
    if args.json:
        print(json_line(result.model_dump_json()))
        return 0
    print(
        f"{result.stream.domain or '-'}/{result.stream.app_name or '-'}/{result.stream.stream_id}"
        f" session {result.sequence or '-'} ({'open' if result.session_open else 'ended'}),"
        f" {result.since:%Y-%m-%d %H:%M:%S} - {result.until:%Y-%m-%d %H:%M:%S} UTC"
    )
    rows = (
        (
            f"{p.time:%H:%M:%S}" if p.time else "-",
            _num(p.video_fps),
            _num(p.video_bitrate_bps, 1000),
            _num(p.audio_fps),
            _num(p.audio_bitrate_bps, 1000),
            p.resolution or "-",
            p.client_ip or "-",
            p.server_ip or "-",
        )
        for p in result.points
    )
    header = ("TIME (UTC)", "V FPS", "V KBPS", "A FPS", "A KBPS", "RESOLUTION", "CLIENT", "SERVER")
    write_table(sys.stdout, header, rows)
    if not result.points:
        print("(no push data from Tencent for this window)", file=sys.stderr)
    return 0


def run_audience(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    values = {
        "since": args.since,
        "until": args.until,
        "play_domain": args.play_domain,
        "province": args.province,
        "isp": args.isp,
    }

    async def work(monitoring: Monitoring) -> Audience:
        query = validate_query(AudienceQuery, {k: v for k, v in values.items() if v is not None})
        window = audience_window(query, time.time())
        return audience_of(window, await _once(fetch_groups(monitoring, window)))

    result = _run("tencent audience", settings, work)
    if isinstance(result, int):
        return result
    if args.json:
        print(json_line(result.model_dump_json()))
        return 0
    rows = (
        (
            group.province or "-",
            group.isp or "-",
            f"{point.time:%Y-%m-%d %H:%M}" if point.time else "-",
            _num(point.online),
            _num(point.requests),
            _num(point.bandwidth_mbps),
            _num(point.flux_mb),
        )
        for group in result.groups
        for point in group.points
    )
    header = ("PROVINCE", "ISP", "TIME (UTC)", "ONLINE", "REQUESTS", "MBPS", "FLUX MB")
    write_table(sys.stdout, header, rows)
    return 0


def _run(command: str, settings: Settings, work: Callable[[Monitoring], Awaitable[T]]) -> T | int:
    credentials = load_credentials()

    async def main() -> T:
        async with aiohttp.ClientSession() as session:
            return await work(Monitoring(command_client(session, settings, credentials)))

    try:
        return asyncio.run(main())
    except ApiError as exc:
        print(f"receiver {command}: {exc.message}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
    except CommandError as exc:
        print(f"receiver {command}: {exc}", file=sys.stderr)
        return exc.code
    except Unavailable as exc:
        print(f"receiver {command}: {exc.reason}", file=sys.stderr)
        return 1


async def _once(fetch: Awaitable[T]) -> Answer[T]:
    """One call, as the cache would report it (a command asks once, caches nothing)."""
    try:
        return Answer(await fetch, time.time(), False, None)
    except TencentError as exc:
        raise unavailable(exc, 0) from None


def _num(value: float | None, scale: float = 1) -> str:
    return "-" if value is None else f"{value / scale:g}"
