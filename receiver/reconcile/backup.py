"""Main or backup: which push of a stream Tencent plays, from DescribeBackupStreamList.

With the backup-stream feature, two pushes of one stream name are both live, each its own
publishing session with its own `sequence`; Tencent plays one (`MasterFlag` 1) and may switch
(SwitchBackupStream, optimal scheduling). The action's `UpstreamSequence` is the push's unique id,
the callback's `sequence` [inferred, reference §2.2], so a session is matched on it alone:
Tencent groups pushes by stream name, and a group may span app names (seed 002).

Asked only while a stream has more than one open session (the sessions view), cached per stream
name for `TTL_SECONDS` (a switch shows within that), and kept within the action's 20 QPS by the
process's shared token buckets. A failed call answers "unknown" (no role) and is cached as
briefly, so a failing API is not hammered. `Region` is required by this action:
`RECEIVER_TENCENT_BACKUP_REGION`, else the credentials' `TENCENTCLOUD_REGION`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from receiver.history.roles import SESSION_ROLES, Role
from receiver.keys import SETTINGS
from receiver.tencent.client import TencentClient
from receiver.tencent.errors import TencentError
from receiver.tencent.streams import BackupStreamGroupInfo, LiveStreamApi
from receiver.tencent.wiring import CLIENT_SESSION, TENCENT, TENCENT_LIMITS

log = logging.getLogger(__name__)

TTL_SECONDS = 10.0


def roles_of(groups: list[BackupStreamGroupInfo], stream_id: str) -> dict[str, Role]:
    return {
        push.upstream_sequence: "main" if push.master_flag == 1 else "backup"
        for group in groups
        if group.stream_name == stream_id
        for push in group.backup_list
    }


class BackupRoles:
    """`SessionRoles` from Tencent, cached per stream name."""

    def __init__(
        self,
        api: LiveStreamApi,
        region: str,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._region = region
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Role]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.calls = 0

    async def roles(self, domain: str, app_name: str, stream_id: str) -> dict[str, Role]:
        lock = self._locks.setdefault(stream_id, asyncio.Lock())
        async with lock:  # one call per stream at a time: the rest read its answer
            cached = self._cache.get(stream_id)
            if cached is not None and self._clock() < cached[0]:
                return cached[1]
            self.calls += 1
            try:
                groups = await self._api.backup_streams(region=self._region, stream_name=stream_id)
                found = roles_of(groups, stream_id)
            except TencentError as exc:
                log.warning("main/backup of stream %r unknown: %s", stream_id, exc)
                found = {}
            self._cache[stream_id] = (self._clock() + self._ttl, found)
            if len(self._cache) > 10_000:  # forget expired entries of streams gone quiet
                now = self._clock()
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                self._locks = {k: self._locks[k] for k in self._cache if k in self._locks}
            return found


def backup_region(app: web.Application) -> str | None:
    settings = app[SETTINGS]
    setup = app.get(TENCENT)
    return settings.tencent_backup_region or (setup.credentials.region if setup else None)


async def backup_roles_ctx(app: web.Application) -> AsyncIterator[None]:
    """Offer main/backup roles to the sessions view (added only with credentials and a region)."""
    settings = app[SETTINGS]
    region = backup_region(app)
    assert region is not None, "backup_roles_ctx is only added with a region"
    client = TencentClient(
        app[CLIENT_SESSION],
        app[TENCENT].credentials,
        endpoint=settings.tencent_endpoint,
        timeout_seconds=settings.tencent_timeout_seconds,
        retry=app[TENCENT].client_retry,
        limits=app[TENCENT_LIMITS],
    )
    app[SESSION_ROLES] = BackupRoles(LiveStreamApi(client), region)
    yield
