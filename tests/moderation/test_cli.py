"""`receiver actions` and `receiver tencent resume STREAM` against the database file and the
fake CSS API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson
import pytest

from receiver.app import create_app
from receiver.cli import main
from receiver.settings import Settings
from tests.conftest import ClientFactory, ServerFactory
from tests.moderation.support import action_log, actions, new_streams, result
from tests.support.css import DOMAIN, porn, push_begin
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import post, rows

T0 = int(time.time()) - 600
Run = Callable[..., Coroutine[Any, Any, tuple[int, str, str]]]


@pytest.fixture
async def streams(aiohttp_server: ServerFactory) -> FakeStreams:
    streams = new_streams()
    server = await aiohttp_server(streams.install())
    streams.fake.url = str(server.make_url(""))
    return streams


@pytest.fixture
def cli(
    streams: FakeStreams,
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """`receiver ARGS` in a worker thread while the fake answers on this loop."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("RECEIVER_TENCENT_ENDPOINT", streams.fake.url)
    monkeypatch.setenv("RECEIVER_TENCENT_RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RECEIVER_DATABASE", str(database))

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_actions_lists_what_the_policy_did(
    cli: Run, aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(moderation_action="forbid", moderation_dry_run=True)
    client = await aiohttp_client(create_app(settings))
    await post(client, push_begin("cli1", "seq-9", T0), porn("cli1", T0 + 1))
    code, out, err = await cli("actions")
    assert code == 0, err
    assert "forbid (dry run)" in out and f"{DOMAIN}/live/cli1" in out and "seq-9" in out
    code, out, _ = await cli("actions", "--json", "--stream", "cli1")
    (line,) = out.splitlines()
    assert json.loads(line)["state"] == "dry_run"
    code, out, err = await cli("actions", "--stream", "nobody")
    assert code == 0 and "no matching actions" in err
    code, _, err = await cli("actions", "--since", "yesterday")
    assert code == 2 and "since" in err


async def test_resume_lifts_a_forbid_and_records_it(
    cli: Run,
    streams: FakeStreams,
    database: Path,
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
) -> None:
    await aiohttp_client(create_app(make_settings()))  # a migrated database, service running
    streams.forbidden["cli2"] = {"StreamName": "cli2", "DomainName": DOMAIN, "AppName": "live"}
    code, out, err = await cli("tencent", "resume", "cli2", "--domain", DOMAIN)
    assert code == 0, err
    assert "resumed test.domain.com/live/cli2" in out
    assert "cli2" not in streams.forbidden
    assert streams.count("ResumeLiveStream") == 1
    (action,) = actions(database)
    print("\n--- action log: receiver tencent resume ---\n" + action_log(database))
    assert action["action"] == "resume" and action["state"] == "done"
    assert result(action)["request_id"]
    (event,) = rows(database, "kind = 'moderation_action'")
    assert orjson.loads(event["payload"])["action"] == "resume"

    streams.fail_next("ResumeLiveStream")
    code, _, err = await cli("tencent", "resume", "cli2", "--domain", DOMAIN)
    assert code == 1 and "FailedOperation" in err
    assert actions(database)[-1]["state"] == "failed"

    code, _, err = await cli("tencent", "resume", "cli2", "--domain", "not a domain")
    assert code == 2 and "domain" in err


async def test_resume_without_a_database_calls_nothing(
    cli: Run, streams: FakeStreams, tmp_path: Path
) -> None:
    code, _, err = await cli(
        "tencent", "resume", "cli3", "--domain", DOMAIN, "--database", str(tmp_path / "none.db")
    )
    assert code == 1 and "no database" in err
    assert streams.fake.calls == []
