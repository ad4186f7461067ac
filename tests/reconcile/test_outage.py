"""A receiver down for 20 minutes while streams began and ended, then `reconcile --apply`.

Real parts: `receiver serve` as a process on loopback, its SQLite files, a private RabbitMQ node
with a queue bound before any traffic, and `receiver tencent reconcile` as a process; only
Tencent is the fake, seeded with the push records Tencent would hold. Figures are printed
(`-s`) for the issue's note.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from testbed.service import ServiceProcess
from tests.support.amqp import Tap
from tests.support.css import APP, DOMAIN, push_begin, stream_end
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.fake_tencent_streams import FakeStreams
from tests.support.helpers import KEY, eventually, rows, signed

T0 = int(time.time()) - 1800
DOWN, UP = T0 + 300, T0 + 1500  # twenty minutes without the receiver

Push = tuple[str, int, int]  # stream, begin, end


def pushes() -> list[Push]:
    before = [(f"before-{n}", T0 + 10 * n, DOWN + 300 + 10 * n) for n in range(6)]  # end lost
    during = [(f"during-{n}", DOWN + 100 + 20 * n, DOWN + 600 + 20 * n) for n in range(8)]
    across = [(f"across-{n}", DOWN + 700 + 10 * n, UP + 100 + 10 * n) for n in range(4)]
    normal = [(f"normal-{n}", T0 + 50 + 10 * n, T0 + 200 + 10 * n) for n in range(4)]
    return before + during + across + normal


def callbacks() -> list[tuple[int, dict[str, Any]]]:
    """Every push begin and stream end CSS tries to deliver, with the time it happens."""
    sent = []
    for n, (stream, begin, end) in enumerate(pushes()):
        sequence = str(7_100_000_000_000_000_000 + n)
        sent.append((begin, push_begin(stream, sequence, begin)))
        sent.append((end, stream_end(stream, sequence, end, duration_ms=(end - begin) * 1000)))
    return sorted(sent, key=lambda pair: pair[0])


async def deliver(url: str, bodies: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            async with session.post(f"{url}/callbacks", data=orjson.dumps(signed(body))) as r:
                assert r.status == 200, await r.text()


async def reconcile_cli(database: Path, fake: FakeTencent, *args: str) -> dict[str, Any]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECEIVER_", "TENCENT"))},
        "RECEIVER_DATABASE": str(database),
        "RECEIVER_TENCENT_ENDPOINT": fake.url,
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "tencent", "reconcile", "--json", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    summary: dict[str, Any] = lines[-1]["summary"]
    return summary


async def test_reconcile_after_a_20_minute_outage_stores_and_publishes_exactly_the_missing(
    tmp_path: Path, amqp_url: str, exchange_name: str, fake_tencent: FakeTencent
) -> None:
    database = tmp_path / "r.db"
    records = FakeStreams.install(fake_tencent)
    for stream, begin, end in pushes():
        records.add_record(DOMAIN, APP, stream, start=begin, end=end)
    sent = callbacks()
    delivered = [body for at, body in sent if not DOWN <= at < UP]
    missing = {
        (b["stream_id"], b["event_type"], b["event_time"]) for at, b in sent if DOWN <= at < UP
    }
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_AMQP_URL": amqp_url,
        "RECEIVER_AMQP_EXCHANGE": exchange_name,
    }
    tap = await Tap(amqp_url, exchange_name).open()
    service = ServiceProcess(database, env)
    try:
        await asyncio.to_thread(service.start)
        await deliver(service.url, [b for at, b in sent if at < DOWN])
        code, _, err = await asyncio.to_thread(service.stop, signal.SIGTERM)  # the outage
        assert code == 0, err
        await asyncio.to_thread(service.start)
        await deliver(service.url, [b for at, b in sent if at >= UP])

        first = await reconcile_cli(database, fake_tencent, "--apply", "--since", str(T0 - 60))
        stored = await asyncio.to_thread(rows, database, "source = 'reconciled'")
        assert first["stored"] == len(missing) == len(stored)
        assert {(r["stream_id"], r["event_type"], int(r["event_time"])) for r in stored} == missing
        assert all((r["domain"], r["app_name"]) == (DOMAIN, APP) for r in stored)
        assert _live(database) == []  # every lost end found: nothing stays live for ever

        everything = await asyncio.to_thread(rows, database)
        received = await tap.wait_for_ids([r["id"] for r in everything])
        published = {m.message_id for m in received if m.headers.get("source") == "reconciled"}
        assert published == {r["id"] for r in stored}

        second = await reconcile_cli(database, fake_tencent, "--apply", "--since", str(T0 - 60))
        assert (second["stored"], second["events"]) == (0, 0)
        assert len(await asyncio.to_thread(rows, database)) == len(everything)

        # CSS's own retry of one lost begin turns up after all: absorbed into its twin.
        (late,) = [b for at, b in sent if b["stream_id"] == "during-0" and b["event_type"] == 1]
        await deliver(service.url, [late])
        await eventually(lambda: _source(database, "during-0", 1) == "confirmed")
        assert len(await asyncio.to_thread(rows, database)) == len(everything)
        print(
            f"\noutage figures: sent {len(sent)} callbacks, delivered {len(delivered)}, "
            f"missing {len(missing)}, reconciled and stored {first['stored']}, published "
            f"{len(published)}; second run stored {second['stored']}; late callback absorbed"
        )
    finally:
        service.__exit__(None, None, None)
        await tap.close()
        await tap.delete()


def _live(database: Path) -> list[str]:
    conn = sqlite3.connect(database)
    try:
        return [r[0] for r in conn.execute("SELECT stream_id FROM streams WHERE state = 'live'")]
    finally:
        conn.close()


def _source(database: Path, stream: str, event_type: int) -> str:
    conn = sqlite3.connect(database)
    try:
        row = conn.execute(
            "SELECT source FROM events WHERE stream_id = ? AND event_type = ?",
            (stream, event_type),
        ).fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else ""
