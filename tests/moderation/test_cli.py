"""`receiver actions` and `receiver tencent resume STREAM` against the database (SQLite or
PostgreSQL) and the fake CSS API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from receiver.app import create_app
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from tests.conftest import ClientFactory, TencentCli
from tests.moderation.support import action_log, result, stored_actions
from tests.support import engines
from tests.support.css import DOMAIN, porn, push_begin
from tests.support.fake_tencent_monitoring import FakeStreams
from tests.support.helpers import post
from tests.support.postgres import stored_events

# Every test here on both engines (tests/support/engines.py).
database, make_settings = engines.database, engines.make_settings

T0 = int(time.time()) - 600


async def test_actions_lists_what_the_policy_did(
    tencent_cli: TencentCli, aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(moderation_action="forbid", moderation_dry_run=True)
    client = await aiohttp_client(create_app(settings))
    await post(client, push_begin("cli1", "seq-9", T0), porn("cli1", T0 + 1))
    code, out, err = await tencent_cli("actions")
    assert code == 0, err
    assert "forbid (dry run)" in out and f"{DOMAIN}/live/cli1" in out and "seq-9" in out
    code, out, _ = await tencent_cli("actions", "--json", "--stream", "cli1")
    (line,) = out.splitlines()
    assert json.loads(line)["state"] == "dry_run"
    code, out, err = await tencent_cli("actions", "--stream", "nobody")
    assert code == 0 and "no matching actions" in err
    code, _, err = await tencent_cli("actions", "--since", "yesterday")
    assert code == 2 and "since" in err


async def test_resume_lifts_a_forbid_and_records_it(
    tencent_cli: TencentCli,
    streams: FakeStreams,
    database: Database,
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
) -> None:
    await aiohttp_client(create_app(make_settings()))  # a migrated database, service running
    streams.forbidden["cli2"] = {"StreamName": "cli2", "DomainName": DOMAIN, "AppName": "live"}
    code, out, err = await tencent_cli("tencent", "resume", "cli2", "--domain", DOMAIN)
    assert code == 0, err
    assert "resumed test.domain.com/live/cli2" in out
    assert "cli2" not in streams.forbidden
    assert streams.count("ResumeLiveStream") == 1
    (action,) = await stored_actions(database)
    print(
        "\n--- action log: receiver tencent resume ---\n"
        + action_log(await stored_actions(database))
    )
    assert action["action"] == "resume" and action["state"] == "done"
    assert result(action)["request_id"]
    (event,) = await stored_events(database, "kind = 'moderation_action'")
    assert orjson.loads(event["payload"])["action"] == "resume"

    streams.fail_next("ResumeLiveStream")
    code, _, err = await tencent_cli("tencent", "resume", "cli2", "--domain", DOMAIN)
    assert code == 1 and "FailedOperation" in err
    assert (await stored_actions(database))[-1]["state"] == "failed"

    code, _, err = await tencent_cli("tencent", "resume", "cli2", "--domain", "not a domain")
    assert code == 2 and "domain" in err


async def test_resume_without_a_database_calls_nothing(
    tencent_cli: TencentCli, streams: FakeStreams, tmp_path: Path, database: Database
) -> None:
    missing, why = str(tmp_path / "none.db"), "no database"
    if isinstance(database, PostgresUrl):
        missing, why = database.dsn().rsplit("/", 1)[0] + "/none", "cannot connect"
    code, _, err = await tencent_cli(
        "tencent", "resume", "cli3", "--domain", DOMAIN, "--database", missing
    )
    assert code == 1 and why in err
    assert streams.fake.calls == []
