"""The panels fed by Tencent Cloud, in a real browser against the real routes: moderation
actions (`GET /api/actions`), push quality (`/api/streams/{id}/quality`), audience
(`/api/audience`), reconciled events and states (`source`, `state_source`, `begin_source`,
`end_source`), main/backup (`role`) and the last reconciliation round (`/readyz` `reconcile`).

One `receiver serve` for the module, configured like production with the Tencent API
credentials and its endpoint pointing at the fake (the only fake: it checks the TC3 signature
and each action's documented limits), a dry-run moderation policy, background reconciliation
every second for one push domain, and a backup region. The fake, served on loopback in a
thread, is seeded with push quality points, audience rows (one ISP named with markup), records
of a push whose callbacks were lost, a stream live at Tencent that never called back, and a
main/backup group. One browser for the module; every wait is a poll with a deadline.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from testbed.service import ServiceProcess
from tests.support import css
from tests.support.browser import (
    chromium,
    count_of,
    has_alert,
    page_errors,
    requested_urls,
    screenshot,
    wait_for,
)
from tests.support.fake_tencent import SECRET_ID, SECRET_KEY, FakeTencent
from tests.support.fake_tencent_monitoring import AudiencePoint, PushPoint
from tests.support.fake_tencent_monitoring import FakeStreams as Monitoring
from tests.support.fake_tencent_streams import FakeStreams as StreamRecords
from tests.support.fake_tencent_streams import iso
from tests.support.helpers import API_TOKEN, KEY, signed
from tests.support.liveserver import ThreadedServer

pytestmark = pytest.mark.timeout(180)

RECON_DOMAIN = "recon.example.com"  # the only domain reconciliation looks at
REGION = "ap-guangzhou"
HOSTILE = "<img src=x onerror=alert(3)>"
HOSTILE_STREAM = "<img src=x onerror=alert(4)>"


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Names:
    lost: str = name("lost")
    unseen: str = name("unseen")
    pair: str = name("pair")
    quality: str = name("quality")


NAMES = Names()


@dataclass(frozen=True)
class Times:
    """Taken when the module's service starts (not at import: a long suite collects first)."""

    now: int

    @property
    def quality_begin(self) -> int:
        return self.now - 300

    @property
    def lost(self) -> tuple[int, int]:  # a push whose begin and end callbacks never arrived
        return self.now - 900, self.now - 600


@dataclass
class Tencent:
    monitoring: Monitoring
    records: StreamRecords
    url: str
    times: Times


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("RECEIVER_TEST_ARTIFACTS")
    if chosen:
        folder = Path(chosen) / "dashboard"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("dashboard-tencent-screenshots")


def seed(monitoring: Monitoring, records: StreamRecords, times: Times) -> None:
    """What Tencent knows before the service asks (answers are cached: seeded up front)."""
    now, begin, lost = times.now, times.quality_begin, times.lost
    monitoring.push_points = [
        PushPoint(
            begin + 15 * n,
            NAMES.quality,
            "q-seq",
            video_fps=25 - n % 4,
            video_rate=1_400_000 + 20_000 * n,
            begin=begin,
        )
        for n in range(16)
    ]
    point = now // 300 * 300
    monitoring.audience = [
        AudiencePoint(point - 300 * k, "play.example.com", province, isp, bw, flux, online, req)
        for k in range(1, 7)
        for province, isp, bw, flux, online, req in (
            ("Guangdong", "China Telecom", 12.5 + k, 100.0, 420 + 10 * k, 60),
            ("Beijing", HOSTILE, 3.25, 20.0, 80 + k, 12),
        )
    ]
    records.add_record(RECON_DOMAIN, css.APP, NAMES.lost, start=lost[0], end=lost[1])
    records.go_live(RECON_DOMAIN, css.APP, NAMES.unseen, at=now - 120)
    records.add_backup_group(
        REGION,
        NAMES.pair,
        [
            {"DomainName": css.DOMAIN, "AppName": css.APP, "PublishTime": iso(now - 200),
             "SourceFrom": "直推流", "UpstreamSequence": "pair-main", "MasterFlag": 1},
            {"DomainName": css.DOMAIN, "AppName": css.APP, "PublishTime": iso(now - 100),
             "SourceFrom": "直推流", "UpstreamSequence": "pair-backup", "MasterFlag": 0},
        ],
    )  # fmt: skip


@pytest.fixture(scope="module")
def tencent() -> Iterator[Tencent]:
    fake = FakeTencent()
    monitoring = Monitoring(fake)
    records = StreamRecords.install(fake)
    times = Times(int(time.time()))
    seed(monitoring, records, times)
    with ThreadedServer(monitoring.install) as server:
        fake.url = server.url
        yield Tencent(monitoring, records, server.url, times)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tencent: Tencent) -> Iterator[ServiceProcess]:
    env = {
        "RECEIVER_CALLBACK_KEYS": KEY,
        "RECEIVER_API_TOKEN": API_TOKEN,
        "RECEIVER_OUTBOX_STATS_INTERVAL_SECONDS": "0.5",
        "RECEIVER_TENCENT_ENDPOINT": tencent.url,
        "RECEIVER_TENCENT_RETRY_ATTEMPTS": "1",
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "RECEIVER_MODERATION_ACTION": "drop",
        "RECEIVER_MODERATION_DRY_RUN": "true",
        "RECEIVER_TENCENT_RECONCILE_INTERVAL": "1",
        "RECEIVER_TENCENT_DOMAINS": RECON_DOMAIN,
        "RECEIVER_TENCENT_BACKUP_REGION": REGION,
    }
    with ServiceProcess(tmp_path_factory.mktemp("dashboard-tencent") / "receiver.db", env) as up:
        yield up


@pytest.fixture(scope="module")
def browser(service: ServiceProcess) -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.get(f"{service.url}/dashboard/")
        field = wait_for(lambda: shown(driver, "token"), what="the login form")
        field.send_keys(API_TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        wait_for(lambda: shown(driver, "view-live"), what="the live view")
        yield driver


def shown(driver: WebDriver, element_id: str) -> WebElement | None:
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else None


def stored(service: ServiceProcess, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        answer = requests.post(f"{service.url}/callbacks", json=signed(body), timeout=10)
        assert answer.status_code == 200, answer.text


def api(service: ServiceProcess, path: str) -> Any:
    answer = requests.get(
        f"{service.url}{path}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def go(driver: WebDriver, fragment: str) -> None:
    driver.execute_script("window.location.hash = arguments[0]", fragment)


def story(driver: WebDriver, stream: str, domain: str = css.DOMAIN) -> None:
    go(driver, "#/live")
    go(driver, f"#/stream?id={stream}&domain={domain}&app={css.APP}")


def text(driver: WebDriver, element_id: str) -> str:
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def sources(driver: WebDriver) -> dict[str, str]:
    """{kind: its source badge ('' for a callback)} of the events in the story."""
    found = {}
    for item in driver.find_elements(By.CSS_SELECTOR, "#story button.event"):
        badges = item.find_elements(By.CSS_SELECTOR, "[data-source]")
        found[item.get_attribute("data-kind") or ""] = (
            badges[0].get_attribute("data-source") or "" if badges else ""
        )
    return found


def no_injection(driver: WebDriver) -> None:
    assert not has_alert(driver)
    assert driver.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert driver.execute_script("return document.scripts.length") == 1
    assert page_errors(driver) == []


def test_a_lost_push_is_shown_reconciled_then_confirmed_by_its_late_callback(
    browser: WebDriver, service: ServiceProcess, tencent: Tencent, artifacts: Path
) -> None:
    lost = NAMES.lost
    story(browser, lost, RECON_DOMAIN)
    wait_for(
        lambda: sources(browser) == {"stream_begin": "reconciled", "stream_end": "reconciled"},
        within=30,
        what="the push begin and end rebuilt from Tencent's records",
    )
    facts = text(browser, "stream-facts")
    assert "State from\nreconciled" in facts
    head = browser.find_element(By.CSS_SELECTOR, "#sessions .session-head")
    assert [
        b.get_attribute("data-source") for b in head.find_elements(By.CSS_SELECTOR, "[data-source]")
    ] == ["reconciled", "reconciled"]  # fmt: skip  (begin, end)
    shot = browser.find_element(By.CSS_SELECTOR, "#story [data-source=reconciled]")
    assert "never arrived" in (shot.get_attribute("title") or "")
    screenshot(browser, artifacts / "story-reconciled.png")

    # CSS's own push begin arrives late: it replaces the reconciled one, which says so.
    stored(
        service, {**css.push_begin(lost, "lost-real", tencent.times.lost[0]), "app": RECON_DOMAIN}
    )
    wait_for(
        lambda: sources(browser) == {"stream_begin": "confirmed", "stream_end": "reconciled"},
        what="the begin confirmed by its callback",
    )
    assert "lost-real" in text(browser, "sessions")
    no_injection(browser)


def test_a_stream_live_at_tencent_only_and_the_last_round(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/live")
    row = wait_for(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, f"#live-rows tr[data-stream='{NAMES.unseen}']"
        ),
        within=30,
        what="the stream Tencent lists as live",
    )[0]
    badge = row.find_element(By.CSS_SELECTOR, "[data-source]")
    assert badge.get_attribute("data-source") == "reconciled" and badge.text == "reconciled"

    go(browser, "#/pipeline")
    figure = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "[data-figure=reconciliation]"),
        what="the last reconciliation figure",
    )[0]
    ready = requests.get(f"{service.url}/readyz", timeout=10).json()["reconcile"]
    assert ready["last"]["error"] is None
    wait_for(lambda: "rounds" in figure.text and "stored" in figure.text, what="the last round")
    value = figure.find_element(By.CSS_SELECTOR, ".value").text
    assert value not in ("off", "no round yet", "—")
    card = browser.find_element(By.CSS_SELECTOR, "[data-component=reconcile]")
    assert "last.at" in card.text and "last.found" in card.text
    assert page_errors(browser) == []


def test_main_and_backup_pushes_are_named(
    browser: WebDriver, service: ServiceProcess, tencent: Tencent, artifacts: Path
) -> None:
    now = tencent.times.now
    pair = NAMES.pair
    stored(
        service,
        css.push_begin(pair, "pair-main", now - 200),
        css.push_begin(pair, "pair-backup", now - 100),
    )
    go(browser, "#/live")

    def roles() -> WebElement | None:
        found = browser.find_elements(
            By.CSS_SELECTOR, f"#live-rows tr[data-stream='{pair}'] [data-roles]"
        )
        wanted = "backup:pair-backup main:pair-main"  # latest start first
        return found[0] if found and found[0].get_attribute("data-roles") == wanted else None

    assert "2 open pushes" in wait_for(roles, what="which push Tencent plays").text
    screenshot(browser, artifacts / "live-tencent.png")
    story(browser, pair)
    sessions = wait_for(
        lambda: count_of(browser, "#sessions article.session [data-role]", 2),
        what="the roles in the story",
    )
    assert {(s.get_attribute("data-role"), s.text) for s in sessions} == {
        ("main", "main"),
        ("backup", "backup"),
    }
    order = [
        a.get_attribute("data-sequence")
        for a in browser.find_elements(By.CSS_SELECTOR, "#sessions article.session")
    ]
    assert order == ["pair-backup", "pair-main"]  # latest start first


def test_a_dry_run_action_is_listed_with_its_fields(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    now = int(time.time())
    stored(service, css.push_begin(HOSTILE_STREAM, "mod-seq", now - 60))
    stored(service, css.porn(HOSTILE_STREAM, now - 30))
    trigger = wait_for(
        lambda: api(service, "/api/actions?limit=1")["actions"], what="the action recorded"
    )[0]
    go(browser, "#/pipeline")
    row = wait_for(
        lambda: browser.find_elements(
            By.CSS_SELECTOR, f"#actions tr[data-action-id='{trigger['id']}']"
        ),
        what="the action in the table",
    )[0]
    cell = {
        td.get_attribute("data-field"): td
        for td in row.find_elements(By.CSS_SELECTOR, "td[data-field]")
    }
    assert cell["action"].text == "drop"
    assert cell["state"].text == "dry_run"
    assert cell["dry_run"].text == "yes"
    assert cell["stream"].find_element(By.CSS_SELECTOR, "a").text == HOSTILE_STREAM
    assert cell["sequence"].text == "mod-seq"
    porn = api(service, "/api/events?kind=porn&limit=1")["events"][0]
    assert trigger["trigger_event_id"] == porn["id"]
    code = cell["trigger"].find_element(By.CSS_SELECTOR, "code")
    assert code.get_attribute("data-event-id") == porn["id"] and code.text == porn["id"]
    assert "porn" in cell["trigger"].text
    assert cell["confirmation"].text == "— (dry run)"
    assert cell["result"].text == "—"
    screenshot(browser, artifacts / "pipeline-tencent.png")
    no_injection(browser)


def test_push_quality_is_charted_from_the_real_answer(
    browser: WebDriver, service: ServiceProcess, tencent: Tencent, artifacts: Path
) -> None:
    stream = NAMES.quality
    stored(service, css.push_begin(stream, "q-seq", tencent.times.quality_begin))
    requested_urls(browser)  # forget earlier requests
    story(browser, stream)
    charts = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#quality figure[data-field]"),
        what="the quality charts",
    )
    assert [c.get_attribute("data-field") for c in charts] == [
        "video_fps", "video_bitrate_bps", "audio_bitrate_bps", "lag_ms"
    ]  # fmt: skip
    assert all(c.find_elements(By.CSS_SELECTOR, "svg path.line") for c in charts)
    dots = charts[0].find_elements(By.CSS_SELECTOR, "svg circle")
    assert len(dots) == 16
    panel = text(browser, "quality")
    assert "q-seq" in panel and "(live)" in panel and "16 points" in panel
    assert "1280*720" in panel and "203.0.113.7" in panel and "198.51.100.9" in panel
    # The last bitrate point, in kbit/s: 1,400,000 + 20,000 * 15 bit/s.
    titles = browser.execute_script(
        "return [...arguments[0].querySelectorAll('circle title')].map((t) => t.textContent)",
        charts[1],
    )
    assert titles[-1].endswith(": 1700")
    # Only parameters the route accepts (an unknown one is a 400).
    asked = [u for u in requested_urls(browser) if urlsplit(u).path.endswith("/quality")]
    assert asked
    for url in asked:
        assert set(parse_qs(urlsplit(url).query)) <= {"domain", "app_name", "sequence"}
    screenshot(browser, artifacts / "story-quality.png")
    assert page_errors(browser) == []


def test_the_audience_by_province_and_isp(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/audience")
    rows = wait_for(
        lambda: count_of(browser, "#audience-table tbody tr", 2), what="the audience table"
    )
    assert [r.get_attribute("data-province") for r in rows] == ["Guangdong", "Beijing"]
    first = {
        td.get_attribute("data-field"): td.text
        for td in rows[0].find_elements(By.CSS_SELECTOR, "td[data-field]")
    }
    assert first == {
        "isp": "China Telecom",
        "peak_online": "480",
        "bandwidth": "18.5",
        "flux": "600",
        "requests": "360",
    }
    hostile = rows[1].find_element(By.CSS_SELECTOR, "td[data-field=isp]")
    assert hostile.text == HOSTILE
    assert browser.find_elements(By.CSS_SELECTOR, "#audience figure svg path.line")
    assert "play domains: all" in text(browser, "audience")
    screenshot(browser, artifacts / "audience.png")
    no_injection(browser)
