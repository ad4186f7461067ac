"""Test helpers: signing bodies like CSS does, loading the reference payloads, reading the DB."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from receiver.storage.context import FOLDER
from receiver.storage.inbox_file import ATTACHED, inbox_path
from testbed import PAYLOADS

KEY = "currentKey2024abc"
OLD_KEY = "previousKey2023xyz"
URL_TOKEN = "url-token-0123456789"
API_TOKEN = "api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}  # the header every /api request carries


def md5_sign(key: str, t: int) -> str:
    return hashlib.md5(f"{key}{t}".encode()).hexdigest()


def signed(body: dict[str, Any], *, key: str = KEY, t: int | None = None) -> dict[str, Any]:
    """`body` with a fresh `t` (now + 600 s, as CSS sends it) and its `sign`."""
    expiry = int(time.time()) + 600 if t is None else t
    return {**body, "t": expiry, "sign": md5_sign(key, expiry)}


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text("utf-8"))
    return data


def payload_names() -> list[str]:
    return sorted(p.name for p in PAYLOADS.glob("*.json"))


def rows(database: Path, where: str = "1", params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read stored events straight from the SQLite file, as an operator would, once every
    acknowledged callback is folded into them (the fold runs a moment after the 200)."""
    wait_folded(database)
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            f"SELECT * FROM events WHERE {where} ORDER BY seq",  # noqa: S608 - test-only SQL
            params,
        ).fetchall()
    finally:
        conn.close()


def unfolded_payloads(database: Path) -> list[bytes]:
    """The bodies of acknowledged callbacks not folded into events yet, in arrival order: in
    the inbox file beyond the fold's progress, or parked in the database (a backup copy)."""
    conn = sqlite3.connect(database)
    try:
        payloads = [bytes(row[0]) for row in conn.execute("SELECT payload FROM inbox")]
        box = inbox_path(database)
        if box.exists():
            conn.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (str(box),))
            payloads += [
                bytes(row[0])
                for row in conn.execute(
                    f"SELECT payload FROM {ATTACHED}.inbox WHERE seq >"  # noqa: S608
                    " (SELECT inbox_seq FROM fold_progress) ORDER BY seq"
                )
            ]
    finally:
        conn.close()
    return payloads


def inbox_rows(database: Path) -> int:
    """Acknowledged callbacks not folded into events yet."""
    return len(unfolded_payloads(database))


def kept_payloads(database: Path) -> list[str]:
    """Every acknowledged body in the files, folded or not (no service needed: a copy)."""
    conn = sqlite3.connect(database)
    try:
        folded = [row[0] for row in conn.execute("SELECT payload FROM events ORDER BY seq")]
    finally:
        conn.close()
    return folded + [payload.decode() for payload in unfolded_payloads(database)]


def wait_folded(database: Path, *, within: float = 30.0) -> None:
    """Block until the fold has emptied the inbox (its writer process works meanwhile)."""
    eventually_sync(
        lambda: inbox_rows(database) == 0, within=within, what="the fold emptied the inbox"
    )


def count(database: Path) -> int:
    return len(rows(database))


async def eventually(
    predicate: Callable[[], bool], *, within: float = 30.0, what: str = "the condition"
) -> None:
    """Poll `predicate` until it holds; fail at the deadline (never a fixed sleep)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within} s")
        await asyncio.sleep(0.02)


def eventually_sync(
    predicate: Callable[[], bool], *, within: float = 30.0, what: str = "the condition"
) -> None:
    """`eventually` outside an event loop: for a service run as a separate process."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within} s")
        time.sleep(0.05)


def unpublished(database: Path) -> int:
    return len(rows(database, "published_at IS NULL"))


def snapshot(stream: str, n: int) -> dict[str, Any]:
    """A signed screenshot callback, unique per (stream, n); `n` rides along as `test_no`."""
    return signed(
        {
            **payload("screenshot_200.json"),
            "stream_id": stream,
            "pic_url": f"/{stream}/{n}.jpg",
            "test_no": n,
        }
    )


async def eventually_async(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = "the condition"
) -> None:
    """`eventually` for a check that has to await (an HTTP call, a query)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within} s")
        await asyncio.sleep(0.02)


async def post(client: Any, *bodies: dict[str, Any]) -> None:
    """Deliver signed callbacks one after another, in the order given (the arrival order);
    returns once they are folded into events (history lags the 200 by a moment)."""
    for body in bodies:
        answer = await client.post("/callbacks", json=signed(body))
        assert answer.status == 200, await answer.text()
    await folded(client)


async def folded(client: Any) -> None:
    """Wait until every callback the app acknowledged so far is folded into events (on
    PostgreSQL there is no fold: an acknowledged event is committed with its history)."""
    folder = client.server.app.get(FOLDER)
    if folder is not None:
        await folder.fold_all()


async def get(client: Any, url: str, status: int = 200) -> Any:
    """GET an /api URL with the API token; the answer's JSON, after checking its status."""
    answer = await client.get(url, headers=AUTH)
    assert answer.status == status, await answer.text()
    return await answer.json()


def http_status(
    url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None
) -> int:
    """The status of one blocking request to a service run as a process (4xx/5xx included)."""
    request = urllib.request.Request(url, headers=dict(headers or {}), data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def post_callback(url: str, body: Mapping[str, object]) -> int:
    """POST `body` to `/callbacks` of the service at `url`; its status."""
    return http_status(f"{url}/callbacks", data=json.dumps(body).encode())
