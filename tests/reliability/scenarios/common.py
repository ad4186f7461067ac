"""Running the real service for a scenario: its settings, start/restart, and a graceful stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import aiohttp

from testbed.service import ServiceProcess
from tests.reliability.scenarios.cssload import connector
from tests.reliability.scenarios.report import Findings

KEY: Final = "chaosKey0123456789abcdefABCDEF"
TOKEN: Final = "chaos-url-token-0123456789"
STOP_TIMEOUT_SECONDS: Final = 30.0


def service(database: Path, **env: str) -> ServiceProcess:
    """The service as an operator runs it, with a URL token so relay/monitor kinds get in."""
    return ServiceProcess(
        database,
        {"RECEIVER_CALLBACK_KEYS": KEY, "RECEIVER_URL_TOKEN": TOKEN, **env},
    )


async def start(process: ServiceProcess) -> ServiceProcess:
    return await asyncio.to_thread(process.start)


async def stop(process: ServiceProcess, findings: Findings) -> None:
    """SIGTERM and wait: the service must exit 0 (a crash on the way out is a finding)."""
    code, _, err = await asyncio.to_thread(process.stop, signal.SIGTERM, STOP_TIMEOUT_SECONDS)
    findings.check(
        "service exits 0 on SIGTERM",
        code == 0,
        f"exit code {code}" + (f"; stderr tail: {err[-500:]}" if code else ""),
    )


@asynccontextmanager
async def running(process: ServiceProcess) -> AsyncIterator[ServiceProcess]:
    """Start the service; whatever happens, it is not left running."""
    try:
        yield await start(process)
    finally:
        process.__exit__(None, None, None)


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=connector()) as session:
        yield session


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=20)) as response:
        return response.status, await response.json(content_type=None)
