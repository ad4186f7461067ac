"""Debian's Chromium, headless, driven by Selenium: the dashboard's tests use a real browser.

Selenium Manager must not download anything: the driver is `/usr/bin/chromedriver` (package
`chromium-driver`) and the browser `/usr/bin/chromium`, both given explicitly (`scripts/test`
installs them), and `SE_OFFLINE` tells the manager to stay off the network should it run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

T = TypeVar("T")


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[WebDriver]:
    """One headless Chromium for a test module; quit however the module ends."""
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--lang=en-US",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    # The console (CSP violations, script errors) and every URL the page requested.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if offline is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = offline


def wait_for(
    check: Callable[[], T | None], *, within: float = 20.0, what: str = "the condition"
) -> T:
    """Poll `check` until it returns something truthy (the page updates itself: no reload)."""
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while True:
        try:
            found = check()
        except StaleElementReferenceException as exc:  # re-rendered under our feet: ask again
            found, last = None, exc
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s") from last
        time.sleep(0.05)  # polling the page; the deadline bounds the wait


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the browser requested since the last call (from its performance log)."""
    urls = []
    for entry in _log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def page_errors(driver: WebDriver) -> list[str]:
    """Script errors and CSP violations in the console (failed fetches are the page's business:
    a 404 from a route that is not installed is an expected, handled answer)."""
    return [
        e["message"]
        for e in _log(driver, "browser")
        if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]
    ]


def screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page, not just the window: grow the window to the page's height, then back."""
    size = driver.get_window_size()
    chrome, page = driver.execute_script(
        "return [window.outerHeight - window.innerHeight, document.documentElement.scrollHeight]"
    )
    driver.set_window_size(size["width"], min(int(chrome) + int(page), 4000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])


def _log(driver: WebDriver, name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log(name)  # type: ignore[no-untyped-call]
    return entries


def count_of(driver: WebDriver, selector: str, count: int) -> list[WebElement] | None:
    """The elements `selector` finds, once there are exactly `count` of them."""
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found if len(found) == count else None


def has_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return False
    return True


def artifacts_folder(tmp_path_factory: Any, name: str) -> Path:
    """Where a module's screenshots go: `$RECEIVER_TEST_ARTIFACTS/dashboard` when set (CI keeps
    them), else a temporary folder."""
    chosen = os.environ.get("RECEIVER_TEST_ARTIFACTS")
    if chosen:
        folder = Path(chosen) / "dashboard"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    made: Path = tmp_path_factory.mktemp(name)
    return made


def visible(driver: WebDriver, element_id: str) -> WebElement | None:
    """The element with this id if it is displayed, else None (for `wait_for`)."""
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else None


def sign_in(driver: WebDriver, token: str) -> None:
    """Fill the login form with `token` and submit it, as a person would."""
    field = wait_for(lambda: visible(driver, "token"), what="the login form")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def go(driver: WebDriver, fragment: str) -> None:
    """Change view the way a click on a link does: the hash, no reload."""
    driver.execute_script("window.location.hash = arguments[0]", fragment)
