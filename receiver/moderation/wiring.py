"""The executor's cleanup context: started after storage when the policy calls the API (on
SQLite and on each PostgreSQL replica)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from receiver.health import ComponentCheck
from receiver.keys import CLOCK, HEALTH_CHECKS, SETTINGS
from receiver.moderation.claims import ActionStore, FoldActions, PgActions
from receiver.moderation.executor import ActionExecutor
from receiver.storage.context import FOLDER, READER
from receiver.storage.postgres.context import POSTGRES
from receiver.storage.postgres.intake import store_rows
from receiver.tencent.control import StreamControl
from receiver.tencent.wiring import TENCENT, moderation_calls_api, tencent_client

EXECUTOR = web.AppKey("moderation_executor", ActionExecutor)
# An action still open after this long is reported (`/readyz` `moderation` degraded).
STUCK_SECONDS = 60.0


def action_store(app: web.Application) -> ActionStore:
    """The executor's storage: the fold process on SQLite, leases on PostgreSQL (several
    replicas, each with an executor: receiver.moderation.claims)."""
    postgres = app.get(POSTGRES)
    if postgres is None:
        return FoldActions(app[READER], app[FOLDER])
    book = postgres.intake.moderation
    if book is None:  # pragma: no cover - the PostgreSQL storage context sets it
        raise RuntimeError("the PostgreSQL intake records no moderation actions")
    return PgActions(postgres.pool, book, store_rows)


async def moderation_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the executor while the app serves. Off (no policy) and dry runs need none: a dry-run
    action is final when it is recorded with its event."""
    if not moderation_calls_api(app[SETTINGS]) or TENCENT not in app:
        yield
        return
    store = action_store(app)
    executor = ActionExecutor(store, StreamControl(tencent_client(app)), clock=app[CLOCK])
    app[EXECUTOR] = executor
    postgres = app.get(POSTGRES)
    if postgres is not None and postgres.intake.moderation is not None:
        postgres.intake.moderation.listeners.append(executor.wake)
    else:
        app[FOLDER].add_listener(executor.wake)
    clock = app[CLOCK]

    async def check() -> ComponentCheck:
        """Open actions and how old the oldest is: `degraded` once one waits over a minute."""
        count, oldest = await store.summary()
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
