"""The fold: every acknowledged callback becomes an event exactly once, in arrival order, even
when the fold process dies mid-fold; an acknowledged id is never a 404; the lag is visible;
acknowledgements never wait for the fold."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from receiver.app import create_app
from receiver.keys import SETTINGS
from receiver.storage.context import FOLDER
from receiver.storage.engine import sqlite_path
from receiver.storage.fold_priority import FoldPriority
from receiver.storage.ids import EventIds
from receiver.storage.inbox_file import inbox_path
from tests.conftest import ClientFactory
from tests.storage.test_readiness import _damage_index
from tests.support.helpers import (
    API_TOKEN,
    eventually,
    eventually_async,
    inbox_rows,
    payload,
    rows,
    signed,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _append(database: Path, bodies: list[dict[str, Any]]) -> list[str]:
    """Write acknowledged callbacks into the inbox file as the writer does; returns their ids."""
    ids = EventIds()
    made = [
        (ids.new(), 200, 1_700_000_000.0 + n, None, json.dumps(b).encode())
        for n, b in enumerate(bodies)
    ]
    conn = sqlite3.connect(inbox_path(database), timeout=10)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO inbox (id, event_type, received_at, path_kind, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                made,
            )
    finally:
        conn.close()
    return [row[0] for row in made]


def _screenshots(n: int, tag: str = "") -> list[dict[str, Any]]:
    return [
        signed({**payload("screenshot_200.json"), "pic_url": f"/p/{tag}{i}.jpg"}) for i in range(n)
    ]


async def test_a_fold_process_killed_mid_fold_folds_every_row_exactly_once(
    aiohttp_client: ClientFactory, make_settings: Any, database: Path
) -> None:
    first = await aiohttp_client(create_app(make_settings()))
    await first.close()  # a migrated database, no service on it
    total = 20_000
    ids = _append(database, _screenshots(total))

    app = create_app(make_settings())
    await aiohttp_client(app)
    folder = app[FOLDER]

    def mid_fold() -> bool:
        left = inbox_rows(database)
        return 0 < left < total

    await eventually(mid_fold, within=60, what="the fold has begun")
    assert folder.pid is not None
    os.kill(folder.pid, signal.SIGKILL)
    await folder.wait_restarted()

    stored = rows(database)  # waits until the inbox is empty
    assert [r["id"] for r in stored] == ids  # each once, in arrival order
    assert len({r["dedupe_key"] for r in stored}) == total
    assert inbox_rows(database) == 0


async def test_an_acknowledged_id_not_folded_yet_is_folded_on_demand(
    client: Any, database: Path
) -> None:
    # The fold is idle and believes the inbox empty; the row appears behind its back.
    assert (await client.post("/callbacks", json=_screenshots(1, "a")[0])).status == 200
    rows(database)
    (event_id,) = _append(database, _screenshots(1, "b"))
    assert inbox_rows(database) == 1
    answer = await client.get(f"/api/events/{event_id}", headers=AUTH)
    assert answer.status == 200, await answer.text()
    event = await answer.json()
    assert event["id"] == event_id and event["payload"]["pic_url"] == "/p/b0.jpg"
    assert inbox_rows(database) == 0


async def test_an_id_the_fold_cannot_reach_yet_is_pending_never_404(
    client: Any, database: Path
) -> None:
    assert (await client.post("/callbacks", json=_screenshots(1, "a")[0])).status == 200
    rows(database)
    _damage_index(database, "events_dedupe")
    answer = await client.post("/callbacks", json=_screenshots(1, "b")[0])
    assert answer.status == 200
    event_id = answer.headers["X-Event-Id"]

    pending = await client.get(f"/api/events/{event_id}", headers=AUTH)
    assert pending.status == 202, await pending.text()
    assert pending.headers["Retry-After"] == "1"
    body = await pending.json()
    assert body["id"] == event_id and body["status"] == "pending"

    unknown = await client.get("/api/events/01a25000-0000-7000-8000-000000000000", headers=AUTH)
    assert unknown.status == 404

    ready = await (await client.get("/readyz")).json()
    assert ready["fold"]["backlog"] == 1
    assert ready["fold"]["oldest_unfolded_age_seconds"] >= 0
    metrics = await (await client.get("/metrics")).text()
    assert "receiver_fold_backlog 1.0" in metrics


async def test_readiness_and_metrics_show_the_fold_caught_up(client: Any, database: Path) -> None:
    for body in _screenshots(5):
        assert (await client.post("/callbacks", json=body)).status == 200
    rows(database)
    ready = await (await client.get("/readyz")).json()
    fold = ready["fold"]
    assert {k: fold[k] for k in ("backlog", "oldest_unfolded_age_seconds", "rejected")} == {
        "backlog": 0,
        "oldest_unfolded_age_seconds": None,
        "rejected": 0,
    }
    assert "error" not in fold and 0 <= fold["last_commit_seconds_ago"] < 5

    async def counted() -> bool:
        metrics = await (await client.get("/metrics")).text()
        return 'receiver_callbacks_total{kind="snapshot",result="stored"} 5.0' in metrics

    await eventually_async(counted, what="the fold's counts reach the metrics")


async def test_callbacks_are_acknowledged_while_the_database_is_locked_and_folded_after(
    client: Any, database: Path
) -> None:
    """The acknowledgement writes the inbox file only: another writer holding the database's
    write lock (a long fold, a CLI, a backup restore) delays history, never the 200."""
    blocker = sqlite3.connect(database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the database's write lock, held
        answers = [await client.post("/callbacks", json=body) for body in _screenshots(20, "l")]
        assert [a.status for a in answers] == [200] * 20
        assert inbox_rows(database) == 20  # on disk, not folded: the fold waits for the lock
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    stored = rows(database)  # waits until the fold has caught up
    assert [r["id"] for r in stored] == [a.headers["X-Event-Id"] for a in answers]


async def test_the_fold_runs_at_the_idle_cpu_priority_by_default(
    aiohttp_client: ClientFactory, make_settings: Any, tmp_path: Path
) -> None:
    """In a burst the cores go to acknowledging: the fold takes only what nothing else wants
    (`low` and `normal` for machines where history must not wait)."""
    app = create_app(make_settings())
    await aiohttp_client(app)
    pid = app[FOLDER].pid
    assert pid is not None
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    low = create_app(make_settings(fold_priority="low", database=tmp_path / "low" / "r.db"))
    await aiohttp_client(low)
    low_pid = low[FOLDER].pid
    assert low_pid is not None
    assert os.sched_getscheduler(low_pid) == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, low_pid) == 10


async def test_readiness_never_waits_for_a_fold_that_cannot_run(
    aiohttp_client: ClientFactory, make_settings: Any
) -> None:
    """A fold starved of CPU (it runs at the idle priority) or stopped must not hold `/readyz`
    past a prober's timeout: after its last commit is 5 s old, readiness waits at most 1 s for a
    probe, then answers `degraded`; callbacks are still acknowledged meanwhile."""
    app = create_app(make_settings())
    client = await aiohttp_client(app)
    assert (await client.post("/callbacks", json=_screenshots(1, "s")[0])).status == 200
    pid = app[FOLDER].pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        slowest = 0.0

        async def degraded() -> bool:
            nonlocal slowest
            started = time.monotonic()
            answer = await client.get("/readyz")
            slowest = max(slowest, time.monotonic() - started)
            report = await answer.json()
            assert answer.status == 200, report
            return "did not commit a probe within 1 s" in str(report["fold"].get("error"))

        await eventually_async(degraded, within=15, what="readiness reports the stopped fold")
        assert slowest < 3.0  # never the old 5 s wait
        assert (await client.post("/callbacks", json=_screenshots(1, "t")[0])).status == 200
    finally:
        os.kill(pid, signal.SIGCONT)

    async def ok_again() -> bool:
        report = await (await client.get("/readyz")).json()
        return "error" not in report["fold"]

    await eventually_async(ok_again, what="readiness recovers once the fold runs")


async def test_an_idle_fold_that_falls_behind_runs_at_the_ordinary_priority_until_caught_up(
    aiohttp_client: ClientFactory, make_settings: Any
) -> None:
    """The idle class is for bursts: on a host that never idles the fold would wait for ever,
    so past `fold_max_lag_seconds` it is raised, and lowered again once it has caught up."""
    app = create_app(make_settings(fold_max_lag_seconds=0.5, outbox_stats_interval_seconds=0.2))
    client = await aiohttp_client(app)
    pid = app[FOLDER].pid
    assert pid is not None and os.sched_getscheduler(pid) == os.SCHED_IDLE
    os.kill(pid, signal.SIGSTOP)  # a fold that gets no CPU at all
    try:
        for body in _screenshots(3, "lag"):
            assert (await client.post("/callbacks", json=body)).status == 200

        async def raised() -> bool:
            return os.sched_getscheduler(pid) == os.SCHED_OTHER

        await eventually_async(raised, within=10, what="the lagging fold is raised")
        report = await (await client.get("/readyz")).json()
        assert report["fold"]["priority"] == "raised", report
        assert report["fold"]["oldest_unfolded_age_seconds"] > 0.5
    finally:
        os.kill(pid, signal.SIGCONT)

    async def idle_again() -> bool:
        return os.sched_getscheduler(pid) == os.SCHED_IDLE

    await eventually_async(idle_again, within=10, what="the caught-up fold is idle again")
    assert len(rows(sqlite_path(app[SETTINGS].database))) == 3
    report = await (await client.get("/readyz")).json()
    assert report["fold"]["priority"] == "idle" and report["fold"]["backlog"] == 0


def test_a_fold_priority_that_cannot_be_raised_is_reported_once(caplog: Any) -> None:
    """Without root or CAP_SYS_NICE the raise fails: say how to fix it, once, and in readiness."""
    calls: list[int] = []

    def refuse(pid: int, policy: int) -> None:
        calls.append(policy)
        raise PermissionError(1, "Operation not permitted")

    priority = FoldPriority(lambda: 4242, max_lag_seconds=10, set_scheduler=refuse)
    priority.observe(5.0)
    assert calls == [] and not priority.raised
    for _ in range(3):
        priority.observe(30.0)
    assert calls == [os.SCHED_OTHER] * 3 and not priority.raised
    assert priority.error == "cannot raise the fold's CPU priority: Operation not permitted"
    warnings = [r for r in caplog.records if "CAP_SYS_NICE" in r.getMessage()]
    assert len(warnings) == 1
