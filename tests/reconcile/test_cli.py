"""`receiver tencent reconcile` as an operator runs it: output, dry run, bad options."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.app import create_app
from receiver.cli import main as cli_main
from receiver.settings import Settings
from receiver.storage.engine import Database, PostgresUrl
from tests.conftest import ClientFactory
from tests.reconcile.support import events_of
from tests.support.css import APP, DOMAIN, push_begin
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.helpers import folded, post

T = int(time.time()) - 3600


@pytest.fixture
def tencent_env(monkeypatch: pytest.MonkeyPatch, fake_tencent: FakeTencent) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("RECEIVER_TENCENT_ENDPOINT", fake_tencent.url)


async def reconcile(database: Path | str, *args: str) -> int:
    argv = ["tencent", "reconcile", "--database", str(database), *args]
    return await asyncio.to_thread(cli_main, argv)


@pytest.fixture
async def any_client(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], any_database: Database
) -> Any:
    """The service on each engine (the command reads and stores beside it)."""
    return await aiohttp_client(create_app(make_settings(database=any_database)))


@pytest.fixture
def cli_database(any_database: Database) -> str:
    """What `--database` takes for the test's database."""
    return any_database.dsn() if isinstance(any_database, PostgresUrl) else str(any_database)


@pytest.mark.usefixtures("tencent_env")
async def test_a_dry_run_prints_findings_escaped_and_stores_nothing(
    any_client: Any,
    fake_tencent: FakeTencent,
    cli_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, database = any_client, cli_database
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "evil\x1b[2J", start=T, end=T + 60)
    streams.add_record(DOMAIN, APP, "open", start=T + 5, end=T + 65)
    await post(client, push_begin("open", "1", T + 5))

    assert await reconcile(database, "--since", str(T - 60)) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J" in out
    assert "missing_end" in out and "dry run: 3 event(s) would be stored" in out

    assert await reconcile(database, "--since", str(T - 60), "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("finding") for line in lines[:-1]] == ["missing", "missing_end"]
    summary = lines[-1]["summary"]
    assert (summary["missing"], summary["missing_end"], summary["stored"]) == (1, 1, 0)
    assert summary["applied"] is False
    assert await events_of(client, "evil\x1b[2J") == []


@pytest.mark.usefixtures("tencent_env")
async def test_apply_on_postgresql_commits_what_is_missing_once(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    pg_url: str,
    fake_tencent: FakeTencent,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No inbox, no fold: committed before the command ends; a replica sees it at once."""
    client = await aiohttp_client(create_app(make_settings(database=PostgresUrl(pg_url))))
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "lost", start=T, end=T + 60)
    streams.add_record(DOMAIN, APP, "open", start=T + 5, end=T + 65)
    await post(client, push_begin("open", "1", T + 5))

    assert await reconcile(pg_url, "--since", str(T - 60), "--apply", "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["summary"]["stored"] == 3
    assert "inbox" not in err
    lost = await events_of(client, "lost")
    assert [(e["kind"], e["source"]) for e in lost] == [
        ("stream_begin", "reconciled"),
        ("stream_end", "reconciled"),
    ]
    assert [(e["kind"], e["source"]) for e in await events_of(client, "open")] == [
        ("stream_begin", "callback"),
        ("stream_end", "reconciled"),
    ]
    assert await reconcile(pg_url, "--since", str(T - 60), "--apply", "--json") == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    assert (summary["matched"], summary["stored"]) == (2, 0)


@pytest.mark.usefixtures("tencent_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "error:"),
        (["--since", str(int(time.time()) - 61 * 86400)], "60 days"),
        (["--since", str(int(time.time())), "--until", str(int(time.time()) - 60)], "empty"),
    ],
)
async def test_bad_windows_exit_2_with_one_line(
    client: Any, database: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert await reconcile(database, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


async def test_missing_credentials_exit_2(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:  # what `receiver` exits with
        await reconcile(database)
    assert exited.value.code == 2
    assert "TENCENTCLOUD_SECRET_ID" in capsys.readouterr().err


@pytest.mark.usefixtures("tencent_env")
async def test_no_database_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await reconcile(tmp_path / "none.db", "--apply") == 1
    assert "no database at" in capsys.readouterr().err


@pytest.mark.usefixtures("tencent_env")
async def test_apply_while_the_service_is_stopped_is_folded_at_its_next_start(
    aiohttp_client: Any,
    settings: Settings,
    fake_tencent: FakeTencent,
    database: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "while-stopped", start=T, end=T + 60)
    first = await aiohttp_client(create_app(settings))
    await first.close()  # the database exists; no service holds it now

    assert await reconcile(database, "--since", str(T - 60), "--apply", "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["summary"]["stored"] == 2
    assert "when it starts" in err

    client = await aiohttp_client(create_app(settings))
    await folded(client)
    events = await events_of(client, "while-stopped")
    assert [(e["kind"], e["source"]) for e in events] == [
        ("stream_begin", "reconciled"),
        ("stream_end", "reconciled"),
    ]


@pytest.mark.usefixtures("tencent_env")
async def test_domain_limits_the_sweep_and_the_comparison(
    client: Any, fake_tencent: FakeTencent, database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    streams = FakeStreams.install(fake_tencent)
    streams.add_record(DOMAIN, APP, "ours", start=T, end=T + 60)
    streams.add_record("other.example.com", APP, "theirs", start=T, end=T + 60)
    args = ["--since", str(T - 60), "--json", "--domain", DOMAIN]
    assert await reconcile(database, *args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(f["finding"], f["stream_id"]) for f in lines[:-1]] == [("missing", "ours")]
    calls = streams.calls("DescribeLiveStreamEventList")
    assert {c.get("DomainName") for c in calls} == {DOMAIN}
