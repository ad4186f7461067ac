"""Auto-registration inside `receiver serve`: in the background, reported by /readyz, and never
in the way of callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from receiver.app import create_app
from receiver.cli.serve import build_app
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup
from receiver.tencent.wiring import REGISTRAR
from testbed.service import ServiceProcess
from tests.conftest import ClientFactory
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.helpers import KEY, payload, signed
from tests.support.tencent_helpers import Sleeps, credentials, instant

DOMAINS = ["push.example.com", "push2.example.com"]
App = TestClient[web.Request, web.Application]


@pytest.fixture
def auto_settings(make_settings: Callable[..., Settings], fake_tencent: FakeTencent) -> Settings:
    return make_settings(
        tencent_auto_register=True,
        public_url="https://cb.example.com",
        tencent_domains=DOMAINS,
        tencent_endpoint=fake_tencent.url,
    )


def setup(secret_key: str = SECRET_KEY, sleeps: Sleeps | None = None) -> TencentSetup:
    return TencentSetup(
        credentials(secret_key),
        client_retry=instant(attempts=2),
        registration_retry=instant(attempts=3, sleeps=sleeps),
    )


async def finished(client: App) -> None:
    async with asyncio.timeout(20):
        await client.app[REGISTRAR].finished.wait()


async def readiness(client: App) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    body: dict[str, Any] = await response.json()
    return response.status, body


async def test_registers_at_start_and_reports_it(
    aiohttp_client: ClientFactory, auto_settings: Settings, fake_tencent: FakeTencent
) -> None:
    client = await aiohttp_client(create_app(auto_settings, tencent=setup()))
    await finished(client)

    status, body = await readiness(client)
    assert status == 200 and body["status"] == "ok"
    template_id = fake_tencent.template_named("receiver")["TemplateId"]
    assert body["registration"] == {
        "state": "registered",
        "attempts": 1,
        "domains": DOMAINS,
        "template_id": template_id,
    }
    assert set(fake_tencent.bindings()) == {(d, "live") for d in DOMAINS}
    assert fake_tencent.template_named("receiver")["CallbackKey"] == KEY


async def test_callbacks_are_stored_while_registration_is_pending(
    aiohttp_client: ClientFactory, auto_settings: Settings, fake_tencent: FakeTencent
) -> None:
    fake_tencent.hold = asyncio.Event()  # Tencent does not answer yet
    client = await aiohttp_client(create_app(auto_settings, tencent=setup()))

    response = await client.post(
        "/callbacks/stream-begin", json=signed(payload("push_begin_1.json"))
    )
    assert response.status == 200
    assert await response.json() == {"code": 0}
    status, body = await readiness(client)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["registration"]["state"] == "pending"
    assert body["database"]["writable"] is True

    fake_tencent.hold.set()
    await finished(client)
    status, body = await readiness(client)
    assert body["status"] == "ok" and body["registration"]["state"] == "registered"


async def test_a_permanent_failure_is_degraded_and_not_retried(
    aiohttp_client: ClientFactory, auto_settings: Settings, fake_tencent: FakeTencent
) -> None:
    sleeps = Sleeps()
    client = await aiohttp_client(
        create_app(auto_settings, tencent=setup("wrongSecretKey", sleeps=sleeps))
    )
    await finished(client)

    status, body = await readiness(client)
    assert status == 200 and body["status"] == "degraded"
    registration = body["registration"]
    assert registration["state"] == "failed"
    assert registration["attempts"] == 1 and sleeps.delays == []
    assert registration["code"] == "AuthFailure.SignatureFailure"
    assert registration["request_id"]
    assert "TENCENTCLOUD_SECRET_KEY" in registration["error"]
    assert "wrongSecretKey" not in str(body)

    response = await client.post("/callbacks", json=signed(payload("stream_end_0.json")))
    assert response.status == 200


async def test_transient_failures_are_retried_until_registered(
    aiohttp_client: ClientFactory, auto_settings: Settings, fake_tencent: FakeTencent
) -> None:
    # Three 502s outlast the client's two attempts, so one whole registration attempt fails.
    fake_tencent.fail("http502", times=3, action="DescribeLiveCallbackTemplates")
    sleeps = Sleeps()
    client = await aiohttp_client(create_app(auto_settings, tencent=setup(sleeps=sleeps)))
    await finished(client)

    _, body = await readiness(client)
    assert body["registration"]["state"] == "registered"
    assert body["registration"]["attempts"] == 2
    assert len(sleeps.delays) == 1


async def test_registration_gives_up_after_its_attempts(
    aiohttp_client: ClientFactory, auto_settings: Settings, fake_tencent: FakeTencent
) -> None:
    fake_tencent.fail("InternalError", times=100, action="DescribeLiveCallbackRules")
    client = await aiohttp_client(create_app(auto_settings, tencent=setup()))
    await finished(client)

    status, body = await readiness(client)
    assert status == 200 and body["status"] == "degraded"
    assert body["registration"]["state"] == "failed"
    assert body["registration"]["attempts"] == 3
    assert body["registration"]["code"] == "InternalError"


async def test_a_foreign_binding_is_never_forced(
    aiohttp_client: ClientFactory, auto_settings: Settings, fake_tencent: FakeTencent
) -> None:
    other = fake_tencent.add_template(TemplateName="legacy", RecordNotifyUrl="https://x.cn/r")
    fake_tencent.add_rule(DOMAINS[1], "live", other)
    client = await aiohttp_client(create_app(auto_settings, tencent=setup()))
    await finished(client)

    _, body = await readiness(client)
    assert body["registration"]["state"] == "failed"
    assert "--force" in body["registration"]["error"]
    assert fake_tencent.mutations() == []


async def test_serve_builds_the_registrar_from_the_environment(
    aiohttp_client: ClientFactory,
    auto_settings: Settings,
    fake_tencent: FakeTencent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    client = await aiohttp_client(build_app(auto_settings))
    await finished(client)
    _, body = await readiness(client)
    assert body["registration"]["state"] == "registered"


async def test_without_auto_register_there_is_no_registration_check(
    client: App, fake_tencent: FakeTencent
) -> None:
    _, body = await readiness(client)
    assert "registration" not in body
    assert fake_tencent.calls == []


def test_auto_register_needs_credentials(auto_settings: Settings) -> None:
    with pytest.raises(ValueError, match="TENCENTCLOUD_SECRET_ID"):
        create_app(auto_settings)


def test_auto_register_needs_a_public_url_and_domains(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValidationError, match="RECEIVER_PUBLIC_URL"):
        make_settings(tencent_auto_register=True, tencent_domains=DOMAINS)
    with pytest.raises(ValidationError, match="RECEIVER_TENCENT_DOMAINS"):
        make_settings(tencent_auto_register=True, public_url="https://cb.example.com")


def test_serve_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_TENCENT_AUTO_REGISTER": "true",
        "RECEIVER_PUBLIC_URL": "https://cb.example.com",
        "RECEIVER_TENCENT_DOMAINS": "push.example.com",
    }
    service = ServiceProcess(tmp_path / "r.db", env)
    with pytest.raises(RuntimeError, match="TENCENTCLOUD_SECRET_ID"):
        service.start()
