"""`receiver serve` as operators run it: generated key, settings from the environment, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from receiver.cli.serve import startup_refusal
from receiver.errors import StartupError, StartupRefused
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from testbed.service import ServiceProcess
from tests.support.helpers import (
    API_TOKEN,
    KEY,
    OLD_KEY,
    md5_sign,
    payload,
    post_callback,
    signed,
)
from tests.support.postgres import stored_events


def test_generated_key_is_stored_0600_printed_once_and_reused(tmp_path: Path) -> None:
    database = tmp_path / "data" / "r.db"
    key_file = database.parent / "callback_key"
    with ServiceProcess(database) as service:
        code, out, err = service.stop()
    assert code == 0, err
    key = key_file.read_text().strip()
    assert len(key) == 32 and key.isalnum()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key in out and "CallbackKey" in out
    assert key not in err  # never in the logs

    with ServiceProcess(database) as service:
        t = int(time.time()) + 600
        body = {**payload("push_begin_1.json"), "t": t, "sign": md5_sign(key, t)}
        status = post_callback(service.url, body)
        code, out, err = service.stop()
    assert status == 200
    assert code == 0
    assert key not in out and key not in err
    assert key_file.read_text().strip() == key


def test_key_from_the_environment_wins(tmp_path: Path) -> None:
    database = tmp_path / "r.db"
    env = {"RECEIVER_CALLBACK_KEYS": f"{KEY}, {OLD_KEY}"}
    with ServiceProcess(database, env) as service:
        assert post_callback(service.url, signed(payload("push_begin_1.json"), key=OLD_KEY)) == 200
        assert post_callback(service.url, signed(payload("stream_end_0.json"), key="other")) == 401
        code, out, err = service.stop()
    assert code == 0
    assert not (tmp_path / "callback_key").exists()
    assert KEY not in out + err and OLD_KEY not in out + err


def test_invalid_configuration_is_a_clear_start_up_error(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path / "r.db", {"RECEIVER_PORT": "not-a-port"})
    with pytest.raises(RuntimeError, match="RECEIVER_PORT"):
        service.start()


async def test_sigterm_finishes_in_flight_requests_then_exits(
    tmp_path: Path, any_database: Database
) -> None:
    env = {"RECEIVER_CALLBACK_KEYS": KEY}
    if isinstance(any_database, PostgresUrl):
        env |= {"RECEIVER_DATABASE": any_database.dsn(), "RECEIVER_API_TOKEN": API_TOKEN}
        database = tmp_path / "unused.db"
    else:
        database = any_database
    service = ServiceProcess(database, env).start()
    acknowledged: list[str] = []
    flowing = asyncio.Event()
    counter = iter(range(1_000_000))

    async def sender(session: aiohttp.ClientSession) -> None:
        # Keep requests in flight until the server stops taking them, like CSS under load.
        while True:
            pic = f"/{next(counter)}.jpg"
            body = json.dumps(signed({**payload("screenshot_200.json"), "pic_url": pic}))
            try:
                async with session.post(f"{service.url}/callbacks", data=body) as response:
                    if response.status != 200:
                        return
                    acknowledged.append(pic)
            except aiohttp.ClientError:
                return  # refused or cut: CSS would retry; it never saw a 200
            if len(acknowledged) >= 50:
                flowing.set()

    try:
        async with aiohttp.ClientSession() as session:
            senders = [asyncio.create_task(sender(session)) for _ in range(16)]
            await asyncio.wait_for(flowing.wait(), timeout=20)
            started = time.monotonic()
            code, _, err = await asyncio.to_thread(service.stop, signal.SIGTERM)
            elapsed = time.monotonic() - started
            await asyncio.wait_for(asyncio.gather(*senders), timeout=20)
    finally:
        service.__exit__(None, None, None)
    assert code == 0, err
    assert elapsed < 10
    # Every 200 is a stored row: nothing acknowledged was lost in the shutdown.
    events = await stored_events(any_database)
    stored = {json.loads(r["payload"])["pic_url"] for r in events}
    assert set(acknowledged) <= stored
    assert len(events) == len(stored)


def test_settings_never_show_secrets() -> None:
    settings = Settings(callback_keys=[SecretStr("hunter2key")], url_token=SecretStr("tok3n"))
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2key" not in text and "tok3n" not in text


def test_callback_keys_are_split_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIVER_CALLBACK_KEYS", " new1 , old2,")
    monkeypatch.setenv("RECEIVER_URL_TOKEN", "")
    settings = Settings()
    assert settings.key_values() == ("new1", "old2")
    assert settings.url_token is None
    assert settings.port == 8080
    assert settings.signature_grace_seconds == 300
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.database == Path("data/receiver.db")


def test_a_busy_port_is_one_line_naming_the_setting_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = ServiceProcess(tmp_path / "r.db", {"RECEIVER_PORT": str(port)})
        result = subprocess.run(
            [sys.executable, "-m", "receiver", "serve"],
            env=service.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "RECEIVER_PORT" in line]
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "--port" in line and "RECEIVER_HOST" in line
    assert not (tmp_path / "r.db").exists()  # the port was tried before the database


def test_start_up_refusals_are_one_line_and_bugs_keep_their_traceback() -> None:
    assert startup_refusal(StartupError("x", "the database is locked")) == "the database is locked"
    assert startup_refusal(StartupRefused("database locked")) == "database locked"
    assert startup_refusal(ValueError("a bug")) is None
