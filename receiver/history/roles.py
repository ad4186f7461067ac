"""Which push of a stream Tencent plays (main or backup): a seam the history API asks through.

Only Tencent knows (`MasterFlag` of DescribeBackupStreamList, and it changes on a switch), so the
sessions view asks an implementation set on the app (`receiver.reconcile.backup`) while a stream
has more than one open session; without one, `role` stays null. A protocol here keeps the
imports one-way: history does not depend on the Tencent client.
"""

from __future__ import annotations

from typing import Literal, Protocol

from aiohttp import web

Role = Literal["main", "backup"]


class SessionRoles(Protocol):
    async def roles(self, domain: str, app_name: str, stream_id: str) -> dict[str, Role]:
        """{sequence: role} of the stream's pushes live at Tencent now ({} when unknown)."""
        ...


SESSION_ROLES = web.AppKey("session_roles", SessionRoles)
