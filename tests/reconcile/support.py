"""What the reconciliation tests share: a stream API on the fake, and a run against the app
(on either engine)."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from receiver.reconcile.run import Report, reconcile
from receiver.reconcile.stored import History
from receiver.reconcile.submit import IntakeSubmitter
from receiver.storage.context import READER
from receiver.storage.intake import INTAKE
from receiver.storage.postgres.context import POSTGRES
from receiver.tencent.client import TencentClient
from receiver.tencent.streams import LiveStreamApi
from tests.support.fake_tencent import FakeTencent
from tests.support.helpers import folded, get
from tests.support.tencent_helpers import credentials, instant


def stream_api(fake: FakeTencent, session: aiohttp.ClientSession) -> LiveStreamApi:
    return LiveStreamApi(TencentClient(session, credentials(), endpoint=fake.url, retry=instant()))


def history(client: Any) -> History:
    """What the app reads history through: the PostgreSQL pool, else the SQLite reader."""
    app: web.Application = client.server.app
    postgres = app.get(POSTGRES)
    return postgres.pool if postgres is not None else app[READER]


def submitter(client: Any) -> IntakeSubmitter:
    """Stores through the app's intake, like the background rounds."""
    return IntakeSubmitter(client.server.app[INTAKE])


async def run(client: Any, fake: FakeTencent, *, since: float, until: float, apply: bool) -> Report:
    """One reconciliation through the app's own intake and reader; folded before it returns."""
    async with aiohttp.ClientSession() as session:
        report = await reconcile(
            stream_api(fake, session),
            history(client),
            since=since,
            until=until,
            submitter=submitter(client) if apply else None,
        )
    await folded(client)
    return report


async def events_of(client: Any, stream: str) -> list[dict[str, Any]]:
    page = await get(client, f"/api/events?stream_id={stream}&order=asc&limit=100")
    found: list[dict[str, Any]] = page["events"]
    return found


async def stream_of(client: Any, stream: str) -> dict[str, Any]:
    (found,) = (await get(client, f"/api/streams?stream_id={stream}"))["streams"]
    result: dict[str, Any] = found
    return result


async def sessions_of(client: Any, stream: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await get(client, f"/api/streams/{stream}/sessions"))["sessions"]
    return found
