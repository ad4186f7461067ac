"""The insight context: a monitoring client and its caches, when Tencent credentials are set."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from receiver.insight.cache import AnswerCache
from receiver.insight.views import INSIGHT, Insight
from receiver.keys import SETTINGS
from receiver.tencent.monitoring import Monitoring
from receiver.tencent.wiring import TENCENT, tencent_client


async def insight_ctx(app: web.Application) -> AsyncIterator[None]:
    if TENCENT in app:
        timeout = app[SETTINGS].tencent_timeout_seconds + 5
        app[INSIGHT] = Insight(
            Monitoring(tencent_client(app)),
            quality=AnswerCache(timeout=timeout),
            audience=AnswerCache(timeout=timeout),
        )
    yield
