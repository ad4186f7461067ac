"""The executor's cleanup context: started after storage when the policy calls the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from receiver.keys import CLOCK, SETTINGS
from receiver.moderation.executor import ActionExecutor
from receiver.storage.context import FOLDER, READER
from receiver.tencent.control import StreamControl
from receiver.tencent.wiring import TENCENT, moderation_calls_api, tencent_client

EXECUTOR = web.AppKey("moderation_executor", ActionExecutor)


async def moderation_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the executor while the app serves. Off (no policy) and dry runs need none: a dry-run
    action is final when the fold records it."""
    if not moderation_calls_api(app[SETTINGS]) or TENCENT not in app:
        yield
        return
    executor = ActionExecutor(
        app[READER], app[FOLDER], StreamControl(tencent_client(app)), clock=app[CLOCK]
    )
    app[EXECUTOR] = executor
    app[FOLDER].add_listener(executor.wake)
    task = asyncio.create_task(executor.run(), name="moderation-executor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
