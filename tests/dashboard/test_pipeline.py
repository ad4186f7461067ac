"""`GET /api/pipeline`: the counters per minute, from the same registry `/metrics` exposes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from receiver.app import create_app
from receiver.dashboard.pipeline import PipelineRecorder
from receiver.metrics import Metrics
from tests.support.css import push_begin, snapshot
from tests.support.helpers import AUTH, eventually_async, get, md5_sign, post, signed


@pytest.fixture
async def client(aiohttp_client: Any, make_settings: Callable[..., Any]) -> Any:
    """The app with its backlog gauges refreshed often, as a test can wait for."""
    return await aiohttp_client(create_app(make_settings(outbox_stats_interval_seconds=0.1)))


def totals(series: dict[str, Any]) -> dict[str, dict[str, int]]:
    summed: dict[str, dict[str, int]] = {}
    for minute in series["minutes"]:
        for kind, results in minute["callbacks"].items():
            for result, count in results.items():
                summed.setdefault(kind, {})
                summed[kind][result] = summed[kind].get(result, 0) + count
    return summed


async def test_stored_duplicate_and_refused_callbacks_are_counted(client: Any) -> None:
    await post(client, push_begin("cam", "s1", 1_700_000_000), snapshot("cam", 1_700_000_001))
    repeat = signed(snapshot("cam", 1_700_000_001))
    assert (await client.post("/callbacks", json=repeat)).status == 200
    forged = {**signed(snapshot("cam", 1_700_000_002)), "sign": md5_sign("wrong", 1)}
    assert (await client.post("/callbacks", json=forged)).status == 401

    async def all_counted() -> bool:
        series = await get(client, "/api/pipeline")
        return series["minutes"][-1]["outbox_backlog"] == 2 and totals(series) == {
            "stream_begin": {"stored": 1},
            "snapshot": {"stored": 1, "duplicate": 1},
            "unknown": {"refused": 1},
        }

    await eventually_async(all_counted, within=10, what="the callbacks counted")
    series = await get(client, "/api/pipeline?minutes=5")
    assert 1 <= len(series["minutes"]) <= 2  # the app started moments ago
    assert series["minutes"][-1]["partial"] is True
    assert sum(m["refusals"].get("mismatch", 0) for m in series["minutes"]) == 1
    last = series["minutes"][-1]
    assert last["outbox_backlog"] == 2  # publishing is off here: both events wait
    assert last["fold_backlog"] == 0
    assert last["broker_connected"] is False


async def test_bad_parameters_and_no_token_are_refused(client: Any) -> None:
    for query, error in (("minutes=0", "invalid_parameter"), ("minutes=61", "invalid_parameter"),
                         ("minute=5", "unknown_parameter")):  # fmt: skip
        answer = await client.get(f"/api/pipeline?{query}", headers=AUTH)
        assert answer.status == 400
        assert (await answer.json())["error"] == error
    assert (await client.get("/api/pipeline")).status == 401


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_increment_is_counted_once_in_the_minute_it_was_first_seen() -> None:
    metrics = Metrics.create()
    clock = Clock(6_000_030.0)  # 30 s into a minute (6_000_000 is a whole minute)
    recorder = PipelineRecorder(metrics.registry, clock, every=10)
    metrics.callback("unknown", "refused")
    clock.now += 10
    recorder.sample()  # the refusal: first seen in minute 0
    metrics.fold_backlog.set(7)
    metrics.callback("unknown", "refused")
    clock.now += 25  # 6_000_065: minute 1
    recorder.sample()
    metrics.fold_backlog.set(3)
    metrics.callback("unknown", "overloaded")
    clock.now += 100  # 6_000_165: minute 2, nothing sampled in between
    series = recorder.series()
    minutes = [
        (m.start.timestamp(), m.partial, m.callbacks, m.fold_backlog) for m in series.minutes
    ]
    assert minutes == [
        (6_000_000.0, True, {"unknown": {"refused": 1}}, 0),  # began before counting did
        (6_000_060.0, False, {"unknown": {"refused": 1}}, 7),
        (6_000_120.0, True, {"unknown": {"overloaded": 1}}, 3),  # the running minute
    ]
    assert series.counting_since.timestamp() == 6_000_030.0
    # An hour on, only the last hour is listed; minutes without samples count nothing.
    clock.now += 3600
    later = recorder.series(minutes=60)
    assert len(later.minutes) == 60
    assert all(not m.callbacks and m.fold_backlog is None for m in later.minutes[:-1])


def test_a_page_polling_often_does_not_shorten_the_hour() -> None:
    metrics = Metrics.create()
    clock = Clock(6_000_000.0)
    recorder = PipelineRecorder(metrics.registry, clock, every=5)
    for second in range(0, 90 * 60, 5):  # 90 minutes: one callback a minute, sampled every 5 s
        if second % 60 == 30:
            metrics.callback("snapshot", "stored")
        clock.now = 6_000_000.0 + second
        recorder.sample()
        if second % 10 == 0:
            recorder.series()  # a dashboard asking twice as often as the samples
    clock.now += 0.5
    hour = recorder.series()
    assert len(hour.minutes) == 60
    assert [m.callbacks for m in hour.minutes] == [{"snapshot": {"stored": 1}}] * 60
