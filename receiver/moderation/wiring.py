"""The executor's cleanup context: started after storage when the policy calls the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, SETTINGS
from receiver.moderation.executor import ActionExecutor
from receiver.storage.context import FOLDER, READER
from receiver.tencent.control import StreamControl
from receiver.tencent.wiring import TENCENT, moderation_calls_api, tencent_client

EXECUTOR = web.AppKey("moderation_executor", ActionExecutor)
# An action still open after this long is reported (`/readyz` `moderation` degraded).
STUCK_SECONDS = 60.0
_OPEN = (
    "SELECT count(*), min(created_at) FROM moderation_actions"
    " WHERE state IN ('pending', 'calling') AND action IN ('drop', 'forbid')"
)


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
    reader, clock = app[READER], app[CLOCK]

    async def check() -> ComponentCheck:
        """Open actions and how old the oldest is: `degraded` once one waits over a minute."""
        async with reader.execute(_OPEN) as cursor:
            row = await cursor.fetchone()
        count, oldest = (row[0], row[1]) if row is not None else (0, None)
        age = None if oldest is None else round(max(0.0, clock() - oldest), 3)
        details: dict[str, object] = {
            "open_actions": count,
            "oldest_open_age_seconds": age,
            "calls": executor.calls,
        }
        if executor.last_error is not None:
            details["last_error"] = executor.last_error
        stuck = age is not None and age > STUCK_SECONDS
        return ComponentCheck("degraded" if stuck else "ok", details)

    app[HEALTH_CHECKS]["moderation"] = check
    task = asyncio.create_task(executor.run(), name="moderation-executor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
