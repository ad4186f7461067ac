"""What is particular to the PostgreSQL engine: migrations by several replicas at once, the
durability check, the URL's password, and what is not there yet is refused clearly."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import orjson
import pytest

from receiver.app import create_app
from receiver.cli import main
from receiver.errors import StartupRefused
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl
from receiver.storage.partitions import partition_of
from receiver.storage.postgres.context import POSTGRES, prepare_postgres
from receiver.storage.postgres.migrations import apply_migrations, postgres_migrations
from testbed.postgres import PostgresCluster
from tests.conftest import ClientFactory
from tests.support.helpers import AUTH, eventually, eventually_async, snapshot
from tests.support.postgres import psql

SECRET = "pw-s3cret-123"


async def test_replicas_starting_at_once_migrate_once(pg_url: str) -> None:
    conns = [await asyncpg.connect(pg_url) for _ in range(6)]
    try:
        applied = await asyncio.gather(*(apply_migrations(conn) for conn in conns))
        versions = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        for conn in conns:
            await conn.close()
    everything = [m.version for m in postgres_migrations()]
    assert sorted(len(done) for done in applied) == [0] * 5 + [len(everything)]
    assert [row["version"] for row in versions] == everything


def test_receiver_migrate_on_postgresql(
    pg_url: str, capsys: pytest.CaptureFixture[str], postgres: PostgresCluster
) -> None:
    name = pg_url.rsplit("/", 1)[1]
    psql(postgres, f"CREATE ROLE migrator LOGIN SUPERUSER PASSWORD '{SECRET}'")
    try:
        url = postgres.url_for(name, user="migrator", password=SECRET)
        assert main(["migrate", "--database", url]) == 0
        first = capsys.readouterr()
        assert first.out.splitlines() == [
            f"applied {m.version:04d}_{m.name}" for m in postgres_migrations()
        ]
        assert main(["migrate", "--database", url]) == 0
        again = capsys.readouterr().out
        assert again == f"postgresql://migrator:***@127.0.0.1:{postgres.port}/{name}: up to date\n"
        assert SECRET not in first.out + first.err + again
    finally:
        psql(postgres, f'DROP DATABASE "{name}" WITH (FORCE)')
        psql(postgres, "DROP ROLE migrator")


async def test_a_server_that_acknowledges_before_flushing_is_refused(
    pg_url: str, postgres: PostgresCluster
) -> None:
    name = pg_url.rsplit("/", 1)[1]
    psql(postgres, f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    with pytest.raises(StartupRefused) as refused:
        await prepare_postgres(PostgresUrl(pg_url))
    assert "synchronous_commit=off" in refused.value.message
    assert "\n" not in refused.value.message


async def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    url = PostgresUrl(f"postgresql://someone:{SECRET}@127.0.0.1:1/nowhere")
    with pytest.raises(StartupRefused) as refused:
        await prepare_postgres(url)
    message = refused.value.message
    assert message.startswith("cannot connect to PostgreSQL at postgresql://someone:***@")
    assert SECRET not in message and "\n" not in message


async def test_readiness_and_logs_never_show_the_password(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    pg_url: str,
    postgres: PostgresCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = pg_url.rsplit("/", 1)[1]
    psql(postgres, f"CREATE ROLE service LOGIN PASSWORD '{SECRET}'")
    psql(postgres, f'ALTER DATABASE "{name}" OWNER TO service')
    psql(postgres, "GRANT CREATE ON SCHEMA public TO service", database=name)
    try:
        url = postgres.url_for(name, user="service", password=SECRET)
        settings = make_settings(database=url)
        assert SECRET not in repr(settings) and SECRET not in str(settings.database)
        with caplog.at_level(logging.DEBUG):
            client = await aiohttp_client(create_app(settings))
            answer = await client.post("/callbacks", json=snapshot("cam", 1))
            assert answer.status == 200
            ready = await client.get("/readyz")
            text = await ready.text()
            await client.close()
        assert ready.status == 200, text
        assert "service:***@" in text
        assert SECRET not in text and SECRET not in caplog.text
    finally:
        psql(postgres, f'DROP DATABASE "{name}" WITH (FORCE)')
        psql(postgres, "DROP ROLE service")


def test_sqlite_only_commands_exit_2_naming_the_engine(
    pg_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@")
    with pytest.raises(SystemExit) as exited:
        main(["backup", str(tmp_path / "copy.db"), "--database", url])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "works on SQLite only so far" in err
    assert SECRET not in err


async def test_a_partition_commits_in_seq_order_across_writers(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings], pg_url: str
) -> None:
    # Another replica is storing an event of stream cam-9's partition: it holds the partition
    # and its event has a seq. This replica's event of the same partition must wait for that
    # commit, so that no reader of the partition ever sees the later seq first.
    client = await aiohttp_client(create_app(make_settings(database=pg_url)))
    other = await asyncpg.connect(pg_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        partition = partition_of("cam-9")
        await other.execute(
            "SELECT 1 FROM ingest_partitions WHERE partition = $1 FOR UPDATE", partition
        )
        first = await other.fetchval(
            "INSERT INTO events (partition, id, event_type, kind, dedupe_key, stream_id,"
            " received_at, payload) VALUES ($1, 'other', 200, 'snapshot', 'k', 'cam-9', 1, '{}')"
            " RETURNING seq",
            partition,
        )
        answer = asyncio.ensure_future(client.post("/callbacks", json=snapshot("cam-9", 1)))

        async def waiting_for_the_partition() -> bool:
            return bool(
                await other.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )

        await eventually_async(waiting_for_the_partition, what="the store waits for the lock")
        assert not answer.done()
        await transaction.commit()
        assert (await answer).status == 200
        rows = await other.fetch("SELECT id, seq FROM events ORDER BY seq")
    finally:
        await other.close()
    assert rows[0]["id"] == "other"
    assert rows[1]["seq"] > first


async def test_a_row_the_database_refuses_is_kept_and_fails_no_other_callback(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await aiohttp_client(create_app(make_settings(database=pg_url)))
    other = await asyncpg.connect(pg_url)
    try:
        await other.execute(
            "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (stream_id <> 'poison')"
        )
        # Hold every partition, so that the callbacks below queue up behind the first batch
        # and the next batch carries the poisoned one together with good ones.
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM ingest_partitions FOR UPDATE")
        first = asyncio.ensure_future(client.post("/callbacks", json=snapshot("cam", 0)))

        async def blocked() -> bool:
            return bool(
                await other.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )

        await eventually_async(blocked, what="the first batch waits")
        bodies = [snapshot("cam", n) for n in range(1, 6)] + [snapshot("poison", 1)]
        rest = [asyncio.ensure_future(client.post("/callbacks", json=b)) for b in bodies]
        assert client.app is not None
        intake = client.app[POSTGRES].intake
        await eventually(lambda: intake.waiting == len(bodies), what="all wait for one batch")
        await transaction.commit()
        answers = [await first, *[await answer for answer in rest]]
        stored = await other.fetch("SELECT stream_id FROM events")
        kept = await other.fetch("SELECT id, payload, error FROM fold_rejects")
    finally:
        await other.close()
    # The poisoned one is kept (SQLite's fold keeps it too), so it is acknowledged, not lost.
    assert [answer.status for answer in answers] == [200] * 7
    assert "refused a batch of 6" in caplog.text
    assert sorted(row["stream_id"] for row in stored) == ["cam"] * 6
    (reject,) = kept
    assert reject["id"] == answers[-1].headers["X-Event-Id"]
    assert orjson.loads(reject["payload"])["stream_id"] == "poison"
    assert "no_poison" in reject["error"]


async def test_a_server_that_stops_answering_is_503_within_the_timeout_then_recovers(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    pg_url: str,
    postgres: PostgresCluster,
) -> None:
    # A paused server (or a network partition) answers nothing and closes nothing: a commit
    # must not wait for it for ever, nor must a cancelled query wait for its cancel.
    settings = make_settings(database=pg_url, database_timeout_seconds=1.0)
    client = await aiohttp_client(create_app(settings))
    assert (await client.post("/callbacks", json=snapshot("cam", 1))).status == 200
    postgres.pause()
    try:
        answer = await client.post("/callbacks", json=snapshot("cam", 2))
        assert answer.status == 503
        assert (await client.get("/readyz")).status == 503
    finally:
        postgres.resume()
    answer = await client.post("/callbacks", json=snapshot("cam", 3))
    assert answer.status == 200, await answer.text()


async def test_a_pg_dump_restores_into_a_working_database(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Settings],
    pg_url: str,
    postgres: PostgresCluster,
    tmp_path: Path,
) -> None:
    # docs/deploy.md, "On PostgreSQL": pg_dump while serving, pg_restore into an empty database,
    # serve from it: every event is there, and new ones continue after them.
    client = await aiohttp_client(create_app(make_settings(database=pg_url)))
    for n in range(3):
        assert (await client.post("/callbacks", json=snapshot("cam", n))).status == 200
    dump = tmp_path / "receiver.dump"
    await asyncio.to_thread(
        subprocess.run,
        [str(postgres.bin / "pg_dump"), "--format=custom", f"--file={dump}", pg_url],
        check=True,
    )
    restored = pg_url.rsplit("/", 1)[0] + "/restored_" + pg_url.rsplit("/", 1)[1]
    psql(postgres, f'CREATE DATABASE "{restored.rsplit("/", 1)[1]}" TEMPLATE template0')
    try:
        await asyncio.to_thread(
            subprocess.run,
            [str(postgres.bin / "pg_restore"), f"--dbname={restored}", str(dump)],
            check=True,
        )
        again = await aiohttp_client(create_app(make_settings(database=restored)))
        assert (await again.post("/callbacks", json=snapshot("cam", 3))).status == 200
        page = await (await again.get("/api/events?order=asc", headers=AUTH)).json()
        assert [e["payload"]["test_no"] for e in page["events"]] == [0, 1, 2, 3]
        await again.close()
    finally:
        psql(postgres, f'DROP DATABASE IF EXISTS "{restored.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_every_feature_starts_on_postgresql(
    pg_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Backup-stream roles and moderation actions were refused on PostgreSQL until they were
    built for it; now the service starts with them (their behaviour: tests/reconcile and
    tests/moderation, on both engines)."""
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@")
    create_app(
        make_settings(
            database=url,
            tencent_backup_region="ap-guangzhou",
            moderation_action="forbid",
            moderation_dry_run=True,
        )
    )
