"""`receiver serve` as a real process with publishing on: events reach the broker, SIGTERM is
clean, and the broker password never appears in its output."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

from testbed.service import ServiceProcess
from tests.support.amqp import Tap
from tests.support.helpers import KEY, eventually, rows, snapshot, unpublished


async def test_serve_publishes_and_stops_cleanly(
    tmp_path: Path, amqp_url: str, exchange_name: str
) -> None:
    database = tmp_path / "r.db"
    password = urlsplit(amqp_url).password or "guest"
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_AMQP_URL": amqp_url,
        "RECEIVER_AMQP_EXCHANGE": exchange_name,
        "RECEIVER_API_TOKEN": "serve-test-token-123",
    }
    tap = await Tap(amqp_url, exchange_name).open()
    service = await asyncio.to_thread(ServiceProcess(database, env).start)
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(20):
                body = orjson.dumps(snapshot("s", n))
                async with session.post(f"{service.url}/callbacks", data=body) as response:
                    assert response.status == 200
            async with session.get(f"{service.url}/readyz") as response:
                assert response.status == 200
        received = await tap.wait_for(20)
        await eventually(lambda: unpublished(database) == 0)
        assert [m.message_id for m in received] == [r["id"] for r in rows(database)]
        code, out, err = await asyncio.to_thread(service.stop, signal.SIGTERM)
    finally:
        service.__exit__(None, None, None)
        await tap.close()
        await tap.delete()
    assert code == 0, err
    assert "Traceback" not in err
    assert f":{password}@" not in out + err
    assert "publishing to amqp://" in err  # the masked URL is logged at start
