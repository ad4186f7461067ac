from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from receiver.app import create_app
from receiver.settings import Settings
from tests.helpers import API_TOKEN, KEY, OLD_KEY

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build Settings explicitly; a developer's RECEIVER_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("RECEIVER_") and not name.startswith("RECEIVER_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "data" / "receiver.db"


@pytest.fixture
def make_settings(database: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "callback_keys": [SecretStr(KEY), SecretStr(OLD_KEY)],
            "api_token": SecretStr(API_TOKEN),
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
