from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from receiver.app import create_app
from receiver.settings import Settings
from tests.fake_tencent import FakeTencent
from tests.helpers import KEY, OLD_KEY

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build Settings explicitly; a developer's RECEIVER_* variables must not leak in,
    nor real Tencent Cloud credentials (tests only ever talk to the local fake)."""
    for name in list(os.environ):
        if name.startswith("RECEIVER_") and not name.startswith("RECEIVER_TEST_"):
            monkeypatch.delenv(name)
        if name.startswith("TENCENTCLOUD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "data" / "receiver.db"


@pytest.fixture
def make_settings(database: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "callback_keys": [SecretStr(KEY), SecretStr(OLD_KEY)],
            "database": database,
            "host": "127.0.0.1",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, settings: Settings
) -> TestClient[web.Request, web.Application]:
    """The real app on a real loopback socket, over a real SQLite file."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def fake_tencent(aiohttp_server: ServerFactory) -> FakeTencent:
    """The fake CSS API listening on loopback; `fake_tencent.url` is its endpoint."""
    fake = FakeTencent()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url(""))
    return fake
