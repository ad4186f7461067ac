from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer
from pydantic import SecretStr

from receiver.app import create_app
from receiver.cli import main
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from receiver.web.direct import DirectRunner
from testbed.broker import RabbitNode
from testbed.postgres import PostgresCluster
from tests.moderation.support import new_streams
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import API_TOKEN, KEY, OLD_KEY
from tests.support.postgres import create_database, drop_database

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


class ServiceTestServer(TestServer):
    """A `TestServer` with the runner `receiver serve` uses (callbacks on the direct path)."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return DirectRunner(self.app, **kwargs)


@pytest.fixture
def aiohttp_client(aiohttp_client: ClientFactory) -> ClientFactory:
    """pytest-aiohttp's, serving an application the way `receiver serve` does."""

    async def make(
        app: web.Application | BaseTestServer,
        *,
        server_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TestClient[web.Request, web.Application]:
        if isinstance(app, web.Application):
            app = ServiceTestServer(app, **(server_kwargs or {}))
        return await aiohttp_client(app, **kwargs)

    return make


@pytest.fixture
async def aiohttp_server() -> AsyncIterator[ServerFactory]:
    """pytest-aiohttp's, serving an application the way `receiver serve` does."""
    servers: list[TestServer] = []

    async def make(
        app: web.Application, *, host: str = "127.0.0.1", port: int | None = None, **kwargs: Any
    ) -> TestServer:
        server = ServiceTestServer(app, host=host, port=port)
        await server.start_server(**kwargs)
        servers.append(server)
        return server

    yield make
    while servers:
        await servers.pop().close()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "data" / "receiver.db"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The suite's own PostgreSQL cluster (private port and directory); removed at the end."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(postgres: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database of the suite's cluster for this test; its URL."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = create_database(postgres, name)
    yield url
    if not postgres.running:  # a test that stopped the server leaves it running again
        postgres.start()
    drop_database(postgres, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request: pytest.FixtureRequest, database: Path) -> Database:
    """The test's database on each engine: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return database
    return PostgresUrl(request.getfixturevalue("pg_url"))


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


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """The suite's own RabbitMQ node (private ports and data); stopped at the end, always."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
        yield node
    finally:
        node.stop()
        node.stop_epmd()


@pytest.fixture(scope="session")
def amqp_url(request: pytest.FixtureRequest) -> str:
    """The broker for ordinary publishing tests: RECEIVER_TEST_AMQP_URL, else the suite's node."""
    external = os.environ.get("RECEIVER_TEST_AMQP_URL")
    if external:
        return external
    node: RabbitNode = request.getfixturevalue("rabbit")
    return node.url


@pytest.fixture
def owned_broker(rabbit: RabbitNode) -> Iterator[RabbitNode]:
    """The suite's node for tests that stop, kill or pause it; running again afterwards."""
    yield rabbit
    if rabbit.running:
        rabbit.resume()
    else:
        rabbit.start()


@pytest.fixture
def exchange_name() -> str:
    """A fresh exchange per test, so tests never see each other's messages."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker_settings(
    make_settings: Callable[..., Settings], amqp_url: str, exchange_name: str
) -> Callable[..., Settings]:
    """Settings with publishing on, short retry pauses and timeouts for tests."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "amqp_url": SecretStr(amqp_url),
            "amqp_exchange": exchange_name,
            "publish_retry_max_seconds": 0.5,
            "publish_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def fake_tencent(aiohttp_server: ServerFactory) -> FakeTencent:
    """The fake CSS API listening on loopback; `fake_tencent.url` is its endpoint."""
    fake = FakeTencent()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url(""))
    return fake


@pytest.fixture
async def streams(aiohttp_server: ServerFactory) -> FakeStreams:
    """The fake CSS API with the stream control and monitoring actions (moderation, insight)."""
    streams = new_streams()
    server = await aiohttp_server(streams.install())
    streams.fake.url = str(server.make_url(""))
    return streams


TencentCli = Callable[..., Coroutine[Any, Any, tuple[int, str, str]]]


@pytest.fixture
def tencent_cli(
    streams: FakeStreams,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> TencentCli:
    """`receiver ARGS` in a worker thread while the fake (`streams`) answers on this loop."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("RECEIVER_TENCENT_ENDPOINT", streams.fake.url)
    monkeypatch.setenv("RECEIVER_TENCENT_RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv(
        "RECEIVER_DATABASE", database.dsn() if isinstance(database, PostgresUrl) else str(database)
    )

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
