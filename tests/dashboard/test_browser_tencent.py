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
    return artifacts_folder(tmp_path_factory, "dashboard-tencent-screenshots")


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
        sign_in(driver, API_TOKEN)
        wait_for(lambda: visible(driver, "view-live"), what="the live view")
        yield driver


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


def story(driver: WebDriver, stream: str, domain: str = css.DOMAIN) -> None:
    go(driver, "#/live")
    go(driver, f"#/stream?id={stream}&domain={domain}&app={css.APP}")


def text(driver: WebDriver, element_id: str) -> str:
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def look(driver: WebDriver, script: str, *args: Any) -> Any:
    """Read the page in one script call: the panels are redrawn on every poll, so a value
    read element by element could come from two renderings (or a detached element)."""
    return driver.execute_script(script, *args)


def sources(driver: WebDriver) -> dict[str, str]:
    """{kind: its source badge ('' for a callback)} of the events in the story."""
    found: dict[str, str] = look(
        driver,
        "const out = {};"
        "for (const b of document.querySelectorAll('#story button.event')) {"
        "  const s = b.querySelector('[data-source]');"
        "  out[b.dataset.kind] = s ? s.dataset.source : '';"
        "} return out;",
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
    facts, head, title = wait_for(
        lambda: look(
            browser,
            "const head = document.querySelector('#sessions .session-head');"
            "const mark = document.querySelector('#story [data-source=reconciled]');"
            "return head && mark ? [document.getElementById('stream-facts').innerText,"
            "  [...head.querySelectorAll('[data-source]')].map((b) => b.dataset.source),"
            "  mark.title]"
            "  : null;",
        ),
        what="the story's facts and session",
    )
    assert "State from\treconciled" in facts or "State from\nreconciled" in facts
    assert head == ["reconciled", "reconciled"]  # begin, end
    assert "never arrived" in title
    screenshot(browser, artifacts / "story-reconciled.png")

    # CSS's own push begin arrives late: it replaces the reconciled one, which says so.
    stored(
        service, {**css.push_begin(lost, "lost-real", tencent.times.lost[0]), "app": RECON_DOMAIN}
    )
    wait_for(
        lambda: sources(browser) == {"stream_begin": "confirmed", "stream_end": "reconciled"},
        what="the begin confirmed by its callback",
    )
    wait_for(lambda: "lost-real" in text(browser, "sessions"), what="the session re-keyed")
    no_injection(browser)


def test_a_stream_live_at_tencent_only_and_the_last_round(
    browser: WebDriver, service: ServiceProcess, artifacts: Path
) -> None:
    go(browser, "#/live")
    badge = wait_for(
        lambda: look(
            browser,
            "const row = [...document.querySelectorAll('#live-rows tr')]"
            "  .find((r) => r.dataset.stream === arguments[0]);"
            "const b = row && row.querySelector('[data-source]');"
            "return b ? [b.dataset.source, b.textContent] : null;",
            NAMES.unseen,
        ),
        within=30,
        what="the stream Tencent lists as live",
    )
    assert badge == ["reconciled", "reconciled"]

    go(browser, "#/pipeline")
    value, detail, card = wait_for(
        lambda: look(
            browser,
            "const f = document.querySelector('[data-figure=reconciliation]');"
            "const c = document.querySelector('[data-component=reconcile]');"
            "return f && c && f.textContent.includes('stored') ?"
            "  [f.querySelector('.value').textContent, f.querySelector('.muted').textContent,"
            "   c.textContent] : null;",
        ),
        what="the last round",
    )
    ready = requests.get(f"{service.url}/readyz", timeout=10).json()["reconcile"]
    assert ready["last"]["error"] is None and ready["rounds"] >= 1
    assert value not in ("off", "no round yet", "—")
    assert "records" in detail and "rounds" in detail
    assert "last.at" in card and "last.found" in card
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
    roles = wait_for(
        lambda: look(
            browser,
            "const row = [...document.querySelectorAll('#live-rows tr')]"
            "  .find((r) => r.dataset.stream === arguments[0]);"
            "const r = row && row.querySelector('[data-roles]');"
            "return r && r.dataset.roles !== 'unknown' ? [r.dataset.roles, r.textContent] : null;",
            pair,
        ),
        what="which push Tencent plays",
    )
    assert roles[0] == "backup:pair-backup main:pair-main"  # latest start first
    assert "2 open pushes" in roles[1]
    screenshot(browser, artifacts / "live-tencent.png")
    story(browser, pair)
    sessions = wait_for(
        lambda: look(
            browser,
            "const s = [...document.querySelectorAll('#sessions article.session')];"
            "return s.length === 2 && s.every((a) => a.querySelector('[data-role]')) ?"
            "  s.map((a) => [a.dataset.sequence, a.querySelector('[data-role]').dataset.role,"
            "    a.querySelector('[data-role]').textContent]) : null;",
        ),
        what="the roles in the story",
    )
    assert sessions == [["pair-backup", "backup", "backup"], ["pair-main", "main", "main"]]


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
    cell = wait_for(
        lambda: look(
            browser,
            "const row = [...document.querySelectorAll('#actions tr')]"
            "  .find((r) => r.dataset.actionId === arguments[0]);"
            "if (!row) return null;"
            "const out = {};"
            "for (const td of row.querySelectorAll('td[data-field]'))"
            "  out[td.dataset.field] = td.innerText;"
            "out.link = row.querySelector('td[data-field=stream] a').textContent;"
            "const code = row.querySelector('td[data-field=trigger] code');"
            "out.event_id = code.dataset.eventId; out.code = code.textContent;"
            "return out;",
            trigger["id"],
        ),
        what="the action in the table",
    )
    porn = api(service, "/api/events?kind=porn&limit=1")["events"][0]
    assert trigger["trigger_event_id"] == porn["id"]
    assert cell["action"] == "drop"
    assert cell["state"] == "dry_run"
    assert cell["dry_run"] == "yes"
    assert cell["link"] == HOSTILE_STREAM
    assert cell["sequence"] == "mod-seq"
    assert cell["event_id"] == porn["id"] and cell["code"] == porn["id"]
    assert cell["trigger"].startswith("porn")
    assert cell["confirmation"] == "— (dry run)"
    assert cell["result"] == "—"
    screenshot(browser, artifacts / "pipeline-tencent.png")
    no_injection(browser)


def test_push_quality_is_charted_from_the_real_answer(
    browser: WebDriver, service: ServiceProcess, tencent: Tencent, artifacts: Path
) -> None:
    stream = NAMES.quality
    stored(service, css.push_begin(stream, "q-seq", tencent.times.quality_begin))
    requested_urls(browser)  # forget earlier requests
    story(browser, stream)
    shown = wait_for(
        lambda: look(
            browser,
            "const charts = [...document.querySelectorAll('#quality figure[data-field]')];"
            "if (!charts.length) return null;"
            "return {fields: charts.map((c) => c.dataset.field),"
            "  lines: charts.map((c) => c.querySelectorAll('svg path.line').length),"
            "  dots: charts[0].querySelectorAll('svg circle').length,"
            "  bitrates: [...charts[1].querySelectorAll('circle title')].map((t) => t.textContent),"
            "  panel: document.getElementById('quality').innerText};",
        ),
        what="the quality charts",
    )
    assert shown["fields"] == ["video_fps", "video_bitrate_bps", "audio_bitrate_bps", "lag_ms"]
    assert shown["lines"] == [1, 1, 1, 1]
    assert shown["dots"] == 16
    panel = shown["panel"]
    assert "q-seq" in panel and "(live)" in panel and "16 points" in panel
    assert "1280*720" in panel and "203.0.113.7" in panel and "198.51.100.9" in panel
    # The last bitrate point, in kbit/s: 1,400,000 + 20,000 * 15 bit/s.
    assert shown["bitrates"][-1].endswith(": 1700")
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
    go(browser, "#/audience")  # drawn once per choice of window: no redraw under the test
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
