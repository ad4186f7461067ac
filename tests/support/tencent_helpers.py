"""Shared pieces of the Tencent tests: credentials the fake knows, instant retries, an API."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from pydantic import SecretStr

from receiver.tencent.actions import LiveCallbackApi
from receiver.tencent.client import RetryPolicy, TencentClient
from receiver.tencent.credentials import TencentCredentials
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent


def credentials(
    secret_key: str = SECRET_KEY, session_token: str | None = None
) -> TencentCredentials:
    token = SecretStr(session_token) if session_token else None
    return TencentCredentials(
        secret_id=SECRET_ID, secret_key=SecretStr(secret_key), session_token=token
    )


@dataclass
class Sleeps:
    """A `sleep` that returns at once and remembers what it was asked to wait."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def instant(attempts: int = 4, sleeps: Sleeps | None = None) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts, base_delay=1.0, sleep=sleeps or Sleeps(), random=lambda: 1
    )


def api_for(
    fake: FakeTencent,
    session: aiohttp.ClientSession,
    *,
    retry: RetryPolicy | None = None,
    clock: Callable[[], float] | None = None,
    creds: TencentCredentials | None = None,
) -> LiveCallbackApi:
    client = TencentClient(
        session,
        creds or credentials(),
        endpoint=fake.url,
        retry=retry or instant(),
        clock=clock or time.time,
    )
    return LiveCallbackApi(client)
