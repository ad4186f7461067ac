"""The panels that read routes other work adds (moderation actions, push quality, audience, the
last reconciliation in `/readyz`) light up when those answer, and still show payloads as text.

The routes here are stand-ins registered by the test on the real app (served in a thread on
loopback): the shapes are the ones the issues name, the page reads any list of objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from pydantic import SecretStr
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from receiver.health import ComponentCheck
from receiver.keys import HEALTH_CHECKS
from receiver.settings import Settings
from receiver.times import iso_utc
from tests.support import css
from tests.support.browser import chromium, has_alert, page_errors, wait_for
from tests.support.helpers import API_TOKEN, KEY, signed
from tests.support.liveserver import LiveServer

pytestmark = pytest.mark.timeout(120)

HOSTILE = "<img src=x onerror=alert(3)>"


def stand_ins(app: web.Application) -> None:
    now = time.time()

    async def actions(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "actions": [
                    {"created_at": iso_utc(now), "action": "forbid", "stream_id": HOSTILE,
                     "status": "done", "result": {"RequestId": "r-1"}},
                ],
                "next_cursor": None,
            }
        )  # fmt: skip

    async def quality(request: web.Request) -> web.Response:
        points = [
            {"time": iso_utc(now - 60 * (5 - n)), "video_fps": 25 - n, "video_bitrate": 1500 + n,
             "resolution": "1280x720"}
            for n in range(5)
        ]  # fmt: skip
        return web.json_response({"stream_id": request.match_info["stream_id"], "points": points})

    async def audience(request: web.Request) -> web.Response:
        rows = [
            {"province": "广东", "isp": "中国电信", "online": 120, "bandwidth": 3.5},
            {"province": "北京", "isp": HOSTILE, "online": 80, "bandwidth": 1.25},
        ]
        return web.json_response({"points": rows})

    async def reconciliation() -> ComponentCheck:
        return ComponentCheck("ok", {"last_sweep_at": iso_utc(now - 30), "found": 2, "stored": 2})

    app.router.add_get("/api/actions", actions)
    app.router.add_get("/api/streams/{stream_id}/quality", quality)
    app.router.add_get("/api/audience", audience)
    app[HEALTH_CHECKS]["reconciliation"] = reconciliation


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        callback_keys=[SecretStr(KEY)],
        api_token=SecretStr(API_TOKEN),
        database=tmp_path_factory.mktemp("panels") / "receiver.db",
        host="127.0.0.1",
    )
    with LiveServer(settings, stand_ins) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: LiveServer) -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.get(f"{server.url}/dashboard/")
        wait_for(lambda: driver.find_element(By.ID, "token").is_displayed(), what="the login form")
        driver.find_element(By.ID, "token").send_keys(API_TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        wait_for(lambda: driver.find_element(By.ID, "view-live").is_displayed())
        yield driver


def text_of(driver: WebDriver, element_id: str) -> Callable[[], str]:
    return lambda: driver.find_element(By.ID, element_id).text


def test_audience_and_actions_tables_and_the_last_sweep(browser: WebDriver) -> None:
    browser.execute_script("window.location.hash = '#/audience'")
    wait_for(lambda: "中国电信" in text_of(browser, "audience")(), what="the audience table")
    assert HOSTILE in text_of(browser, "audience")()
    browser.execute_script("window.location.hash = '#/pipeline'")
    wait_for(lambda: "forbid" in text_of(browser, "actions")(), what="the actions table")
    assert HOSTILE in text_of(browser, "actions")()
    recon = browser.find_element(By.CSS_SELECTOR, "[data-figure='reconciliation']")
    wait_for(lambda: "found: 2" in recon.text, what="the last sweep")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-component='reconciliation']")
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert not has_alert(browser)
    assert page_errors(browser) == []


def test_push_quality_is_charted(browser: WebDriver, server: LiveServer) -> None:
    answer = requests.post(
        f"{server.url}/callbacks",
        json=signed(css.push_begin("q1", "s", int(time.time()))),
        timeout=10,
    )
    assert answer.status_code == 200
    browser.execute_script("window.location.hash = '#/stream?id=q1'")
    charts: Any = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#quality figure svg path.line"),
        what="the quality charts",
    )
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#quality figcaption")]
    assert captions == ["video_fps", "video_bitrate"]
    assert len(charts) == 2
    assert page_errors(browser) == []
