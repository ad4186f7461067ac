"""A wrong server clock refuses CSS's callbacks for time: `/readyz` says so, once, naming NTP."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from receiver.app import create_app
from tests.conftest import ClientFactory
from tests.support.helpers import payload, signed


def _screenshot(n: int) -> str:
    return json.dumps(signed({**payload("screenshot_200.json"), "pic_url": f"/c/{n}.jpg"}))


def _gauge(metrics: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match[1])


async def _ready(client: Any) -> dict[str, Any]:
    answer = await client.get("/readyz")
    assert answer.status == 200  # a wrong clock degrades, never fails: events still get in
    report: dict[str, Any] = await answer.json()
    return report


def _ntp_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_clock_16_minutes_fast_is_reported_once_and_clears(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    skew = [16 * 60.0]
    app = create_app(make_settings(), clock=lambda: time.time() + skew[0])
    client = await aiohttp_client(app)
    assert (await _ready(client))["status"] == "ok"
    with caplog.at_level(logging.INFO, "receiver.callbacks.clock"):
        for n in range(30):
            answer = await client.post("/callbacks", data=_screenshot(n))
            assert answer.status == 401
            assert (await answer.json())["error"] == "signature_expired"
        report = await _ready(client)
        assert report["status"] == "degraded"
        clock = report["clock"]
        assert clock["refused_for_time"] == clock["signed_callbacks"] == 30
        assert 955 <= clock["offset_estimate_seconds"] <= 965
        assert "ahead" in clock["error"] and "NTP" in clock["error"]
        assert "expired" in clock["error"]
        errors = _ntp_errors(caplog)
        assert len(errors) == 1 and "NTP" in errors[0]  # one line, not one per callback
        metrics = await (await client.get("/metrics")).text()
        assert _gauge(metrics, "receiver_clock_suspect") == 1
        assert 955 <= _gauge(metrics, "receiver_clock_offset_estimate_seconds") <= 965

        skew[0] = 0.0  # NTP fixed it
        for n in range(100, 200):
            assert (await client.post("/callbacks", data=_screenshot(n))).status == 200
        report = await _ready(client)
        assert report["status"] == "ok"
        assert "error" not in report["clock"]
        assert len(_ntp_errors(caplog)) == 1
        assert "accepted again" in caplog.text
        metrics = await (await client.get("/metrics")).text()
        assert _gauge(metrics, "receiver_clock_suspect") == 0


async def test_a_clock_2_minutes_slow_is_reported_although_retries_get_in(
    aiohttp_client: ClientFactory,
    make_settings: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every first attempt is refused `too_far_in_future`; CSS's retry a minute later (the same
    body, the same `t`) is accepted: half the signed callbacks are refused."""
    skew = [-120.0]
    app = create_app(make_settings(), clock=lambda: time.time() + skew[0])
    client = await aiohttp_client(app)
    with caplog.at_level(logging.INFO, "receiver.callbacks.clock"):
        for n in range(20):
            body = _screenshot(n)
            skew[0] = -120.0
            first = await client.post("/callbacks", data=body)
            assert (await first.json())["error"] == "signature_too_far_in_future"
            skew[0] = -60.0  # a minute later by both clocks
            assert (await client.post("/callbacks", data=body)).status == 200
    report = await _ready(client)
    assert report["status"] == "degraded"
    assert "behind" in report["clock"]["error"]
    assert "too far in the future" in report["clock"]["error"]
    assert -125 <= report["clock"]["offset_estimate_seconds"] <= -115
    assert len(_ntp_errors(caplog)) == 1


async def test_other_refusals_say_nothing_about_the_clock(client: Any) -> None:
    for n in range(30):
        body = json.loads(_screenshot(n))
        body["sign"] = "0" * 32
        assert (await client.post("/callbacks", json=body)).status == 401
    report = await _ready(client)
    assert report["status"] == "ok"
    assert report["clock"]["signed_callbacks"] == 0
