"""The dashboard in a real browser (Debian's Chromium, headless) against a real `receiver serve`
with publishing to the suite's RabbitMQ node, fed real signed callbacks over loopback.

One browser and one service for the module; each test uses streams of its own. Every wait is a
poll with a deadline: the page updates itself, nothing is reloaded. Screenshots of each view go
to `$RECEIVER_TEST_ARTIFACTS` (or the pytest temporary directory); docs/dashboard.md shows them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from testbed.broker import RabbitNode
from testbed.service import ServiceProcess
from tests.support import css
from tests.support.browser import (
    artifacts_folder,
    chromium,
    count_of,
    go,
    has_alert,
    page_errors,
    requested_urls,
    screenshot,
    sign_in,
    visible,
    wait_for,
)
from tests.support.helpers import API_TOKEN, KEY, signed

pytestmark = pytest.mark.timeout(180)

HOSTILE = "<script>alert(1)</script>"
OTHER = "studio.example.com"
HOSTILE_MESSAGE = "<img src=x onerror=alert(2)>\u0007\u202eevil"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_folder(tmp_path_factory, "dashboard-screenshots")


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, rabbit: RabbitNode
) -> Iterator[ServiceProcess]:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_AMQP_URL": rabbit.url,
        "RECEIVER_AMQP_EXCHANGE": f"test.{uuid.uuid4().hex[:12]}",
        "RECEIVER_PUBLISH_RETRY_MAX_SECONDS": "0.5",
        "RECEIVER_PUBLISH_TIMEOUT_SECONDS": "3",
        "RECEIVER_OUTBOX_STATS_INTERVAL_SECONDS": "0.5",
    }
    with ServiceProcess(tmp_path_factory.mktemp("dashboard") / "receiver.db", env) as running:
        yield running


@pytest.fixture(scope="module")
def browser(service: ServiceProcess) -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.get(f"{service.url}/dashboard")
        sign_in(driver, API_TOKEN)
        yield driver


def post(service: ServiceProcess, body: dict[str, Any], **kwargs: Any) -> requests.Response:
    return requests.post(f"{service.url}/callbacks", json=signed(body, **kwargs), timeout=10)


def stored(service: ServiceProcess, body: dict[str, Any]) -> None:
    answer = post(service, body)
    assert answer.status_code == 200, answer.text


def live_row(driver: WebDriver, stream: str) -> WebElement | None:
    for row in driver.find_elements(By.CSS_SELECTOR, "#live-rows tr"):
        if row.get_attribute("data-stream") == stream:
            return row
    return None


def figure(driver: WebDriver, name: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f"[data-figure='{name}'] .value")
    return found[0].text if found else ""


def shot(driver: WebDriver, artifacts: Path, name: str) -> None:
    screenshot(driver, artifacts / f"{name}.png")


def stream_name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def test_a_stream_goes_live_and_leaves_without_a_reload(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/live")
    browser.execute_script("document.body.dataset.loaded = 'once'")  # gone if the page reloads
    cam = stream_name("cam")
    now = int(time.time())
    stored(service, css.push_begin(cam, "seq-1", now))
    # A snapshot whose picture is served by the receiver itself, so the thumbnail shows offline.
    shot_body = css.snapshot(cam, now)
    shot_body["pic_full_url"] = f"{service.url}/dashboard/favicon.svg"
    stored(service, shot_body)
    stored(service, css.porn(cam, now))
    others = [stream_name("studio"), stream_name("studio")]
    for n, other in enumerate(others):  # on a second domain, one with a backup push
        stored(service, {**css.push_begin(other, f"main-{n}", now - 300 * (n + 1)), "app": OTHER})
    stored(service, {**css.push_begin(others[1], "backup-1", now - 100), "app": OTHER})
    row = wait_for(lambda: live_row(browser, cam), what=f"{cam} listed as live")
    assert row.find_element(By.CSS_SELECTOR, "a.stream-link").text == cam
    assert "seq-1" in row.text
    wait_for(lambda: "Block" in (live_row(browser, cam) or row).text, what="its last moderation")
    wait_for(
        lambda: browser.execute_script(
            "const i = document.querySelector('#live-rows img.thumb');"
            "return i !== null && i.complete && i.naturalWidth > 0"
        ),
        what="the snapshot thumbnail",
    )
    wait_for(lambda: all(live_row(browser, o) for o in others), what="the other streams")
    # Two open pushes; which is main only Tencent knows (this service has no credentials).
    assert "2 open pushes (main/backup not known" in (live_row(browser, others[1]) or row).text
    shot(browser, artifacts, "live")

    Select(browser.find_element(By.ID, "live-domain")).select_by_value(OTHER)
    wait_for(lambda: live_row(browser, cam) is None, what="the domain filter hiding it")
    assert live_row(browser, others[0])
    Select(browser.find_element(By.ID, "live-domain")).select_by_value("")

    # The filter and the search narrow the list on the page.
    search = browser.find_element(By.ID, "live-search")
    search.send_keys("no-such-stream")
    wait_for(lambda: live_row(browser, cam) is None, what="the search hiding it")
    assert "No live stream matches" in browser.find_element(By.ID, "live-empty").text
    search.clear()
    search.send_keys(cam[:5])
    wait_for(lambda: live_row(browser, cam), what="the search finding it")

    stored(service, css.stream_end(cam, "seq-1", now + 30))
    wait_for(lambda: live_row(browser, cam) is None, what=f"{cam} leaving the live list")
    assert browser.execute_script("return document.body.dataset.loaded") == "once"
    search.clear()
    assert page_errors(browser) == []


def test_a_streams_story_shows_each_event_in_order_and_its_payload(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    cam = stream_name("story")
    start = int(time.time()) - 600
    bodies = [  # posted out of order: the story follows event time
        css.record(cam, start + 10, start + 300),
        css.push_begin(cam, "seq-a", start),
        css.snapshot(cam, start + 60),
        css.porn(cam, start + 120),
        css.push_exception(cam, "seq-a", start + 180),
        css.stream_end(cam, "seq-a", start + 400, errcode=1, duration_ms=400_000),
    ]
    for body in bodies:
        stored(service, body)
    go(browser, "#/live")
    go(browser, f"#/stream?id={cam}&domain={css.DOMAIN}&app={css.APP}")
    items = wait_for(
        lambda: count_of(browser, "#story button.event", 6),
        what="the six events of the story",
    )
    kinds = [item.get_attribute("data-kind") for item in items]
    assert kinds == [
        "stream_begin",
        "snapshot",
        "porn",
        "push_exception",
        "record",
        "stream_end",
    ]  # fmt: skip  (a recording's time is its file's end)
    # The end with its code's meaning (from the sessions route) and CSS's own message.
    assert "stream ends: 1 the publisher stopped the push" in items[-1].text
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#sessions article.session"))
    assert "seq-a" in browser.find_element(By.ID, "sessions").text

    # Times in the viewer's zone, UTC on hover.
    begin = items[0].find_element(By.TAG_NAME, "time")
    assert begin.get_attribute("title") == time.strftime(
        "%Y-%m-%d %H:%M:%S.000 UTC", time.gmtime(start)
    )
    items[4].click()  # the recording: its raw body, as CSS sent it
    payload = browser.find_element(By.ID, "payload")
    wait_for(lambda: f'"file_id": "{cam}-{start + 300}"' in payload.text, what="the raw payload")
    assert items[4].get_attribute("aria-pressed") == "true"
    # Push quality needs the Tencent credentials this service has not: the panel says so.
    wait_for(lambda: "not configured" in browser.find_element(By.ID, "quality").text)
    shot(browser, artifacts, "story")
    assert page_errors(browser) == []


def test_a_refused_callback_is_counted(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/pipeline")
    wait_for(lambda: figure(browser, "refused"), what="the pipeline figures")
    before = int(figure(browser, "refused").replace(",", ""))
    forged = post(service, css.push_begin(stream_name("forged"), "x", 0), key="not-the-key")
    assert forged.status_code == 401
    wait_for(
        lambda: int(figure(browser, "refused").replace(",", "")) == before + 1,
        what="the refusal counted",
    )
    reasons = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#refusals tr[data-reason]"),
        what="the refusal reasons",
    )
    assert [row.get_attribute("data-reason") for row in reasons] == ["mismatch"]
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-callbacks svg rect")
    wait_for(
        lambda: "No moderation action" in browser.find_element(By.ID, "actions").text,
        what="the empty moderation actions panel",
    )


def test_the_outbox_backlog_grows_while_the_broker_is_down_and_falls_after(
    browser: WebDriver, service: ServiceProcess, rabbit: RabbitNode, artifacts: Path
) -> None:
    go(browser, "#/pipeline")
    wait_for(lambda: figure(browser, "broker") == "connected", what="the broker connected")
    wait_for(lambda: figure(browser, "outbox-backlog") == "0", what="an empty outbox")
    rabbit.stop()
    try:
        wait_for(lambda: figure(browser, "broker") == "disconnected", what="the outage shown")
        cam = stream_name("outage")
        now = int(time.time())
        for n in range(5):
            stored(service, css.snapshot(cam, now + n))
        wait_for(lambda: figure(browser, "outbox-backlog") == "5", what="the backlog growing")
        shot(browser, artifacts, "pipeline-outage")
    finally:
        rabbit.start()
    wait_for(
        lambda: figure(browser, "outbox-backlog") == "0", within=60, what="the backlog draining"
    )
    wait_for(lambda: figure(browser, "broker") == "connected", what="the broker back")
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#chart-backlog svg path.line"),
        what="the backlog chart",
    )
    shot(browser, artifacts, "pipeline")
    assert page_errors(browser) == []


def test_a_hostile_stream_id_is_shown_as_text(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/live")
    now = int(time.time())
    stored(service, css.push_begin(HOSTILE, "seq-h", now))
    row = wait_for(lambda: live_row(browser, HOSTILE), what="the hostile stream listed")
    assert row.find_element(By.CSS_SELECTOR, "a.stream-link").text == HOSTILE
    assert not has_alert(browser)
    assert browser.execute_script("return document.scripts.length") == 1
    row.find_element(By.CSS_SELECTOR, "a.stream-link").send_keys(Keys.ENTER)  # by keyboard
    wait_for(lambda: browser.find_element(By.ID, "stream-title").text == HOSTILE)
    assert browser.title == f"{HOSTILE} · receiver"
    wait_for(lambda: "seq-h" in browser.find_element(By.ID, "sessions").text, what="its session")
    assert browser.find_element(By.ID, "stream-error").text == ""
    stored(service, css.stream_end(HOSTILE, "seq-h", now + 5, errmsg=HOSTILE_MESSAGE))
    story = wait_for(
        lambda: count_of(browser, "#story button.event", 2),
        what="the hostile stream's end in its story",
    )
    # The control characters are shown as escapes, the markup as text.
    assert "<img src=x onerror=alert(2)>\\u0007\\u202eevil" in story[1].text
    assert not has_alert(browser)
    assert browser.execute_script("return document.scripts.length") == 1
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert page_errors(browser) == []


def test_panels_that_need_tencent_credentials_say_so(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/audience")
    panel = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#audience [data-state=unavailable]"),
        what="the audience panel's state",
    )
    assert "not configured" in panel[0].text and "TENCENTCLOUD" in panel[0].text
    assert panel[0].get_attribute("data-error") == "tencent_not_configured"
    shot(browser, artifacts, "audience-unconfigured")


def test_readable_on_a_phone(browser: WebDriver, service: ServiceProcess, artifacts: Path) -> None:
    phone = stream_name("phone")
    stored(service, css.push_begin(phone, "p", int(time.time())))
    browser.set_window_size(390, 844)
    try:
        go(browser, "#/live")
        wait_for(lambda: live_row(browser, phone), what="the stream listed")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        shot(browser, artifacts, "live-phone")
    finally:
        browser.set_window_size(1280, 800)


def test_the_token_never_appears_in_a_url_and_data_needs_it(
    browser: WebDriver, service: ServiceProcess
) -> None:
    urls = requested_urls(browser)
    assert any("/api/streams" in u for u in urls)  # the log did record the page's requests
    assert not [u for u in urls if API_TOKEN in u]
    assert API_TOKEN not in browser.current_url
    for path in ("/api/streams?state=live", "/api/pipeline", "/api/events"):
        assert requests.get(f"{service.url}{path}", timeout=10).status_code == 401


def test_a_wrong_token_is_refused_and_signing_out_forgets_it(
    service: ServiceProcess, artifacts: Path
) -> None:
    with chromium() as driver:
        driver.get(f"{service.url}/dashboard")
        shot(driver, artifacts, "login")
        sign_in(driver, "not-the-token")
        wait_for(
            lambda: "not the service's API token" in driver.find_element(By.ID, "login-error").text
        )
        assert visible(driver, "view-live") is None
        sign_in(driver, API_TOKEN)
        wait_for(lambda: visible(driver, "view-live"), what="the live view")
        driver.find_element(By.ID, "logout").click()
        wait_for(lambda: visible(driver, "login"), what="the login form again")
        assert driver.execute_script("return sessionStorage.length") == 0
        driver.refresh()
        wait_for(lambda: visible(driver, "login"), what="still signed out")
        assert not [u for u in requested_urls(driver) if API_TOKEN in u]
