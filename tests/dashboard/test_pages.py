"""The dashboard's page over HTTP: the security headers on every answer, no inline script or
style, no data without the token, and the files shipped inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from receiver.dashboard.pages import ASSETS
from tests.support.css import push_begin
from tests.support.helpers import post

ROOT = Path(__file__).resolve().parents[2]
ASSET_DIR = resources.files("receiver.dashboard") / "assets"


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/dashboard/", 200, "text/html"),
        ("/dashboard/dashboard.js", 200, "text/javascript"),
        ("/dashboard/dashboard.css", 200, "text/css"),
        ("/dashboard/favicon.svg", 200, "image/svg+xml"),
        ("/dashboard/index.html.bak", 404, "application/json"),
    ],
)
async def test_every_dashboard_answer_carries_the_security_headers(
    client: Any, path: str, status: int, content_type: str
) -> None:
    answer = await client.get(path, allow_redirects=False)
    assert answer.status == status
    assert answer.content_type == content_type
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


async def test_dashboard_without_a_slash_leads_to_the_page(client: Any) -> None:
    answer = await client.get("/dashboard", allow_redirects=False)
    assert answer.status == 302
    assert answer.headers["Location"] == "/dashboard/"
    assert answer.headers["X-Frame-Options"] == "DENY"


async def test_api_answers_do_not_carry_the_page_headers(client: Any) -> None:
    answer = await client.get("/api/streams")
    assert answer.status == 401
    assert "Content-Security-Policy" not in answer.headers


class _Markup(HTMLParser):
    """Every tag and attribute of the page, and any text inside a <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    page = _Markup()
    page.feed((ASSET_DIR / "index.html").read_text("utf-8"))
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts == [{"src": "dashboard.js", "defer": None}]
    assert page.script_text == ""
    assert "style" not in [tag for tag, _ in page.tags]
    for tag, attrs in page.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
        assert not str(attrs.get("href", "")).startswith("javascript:"), tag


def test_the_script_never_parses_text_as_markup() -> None:
    script = (ASSET_DIR / "dashboard.js").read_text("utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on", "srcdoc"):  # fmt: skip
        assert sink not in script, sink
    # Every asset the page refers to is one the server serves.
    assert {name for name in ASSETS if name} == {"dashboard.js", "dashboard.css", "favicon.svg"}


async def test_the_page_is_a_shell_and_the_data_needs_the_token(client: Any) -> None:
    await post(client, push_begin("secret-stream-name", "s1", 1_700_000_000))
    for path in ("/dashboard/", "/dashboard/dashboard.js"):
        body = await (await client.get(path)).text()
        assert "secret-stream-name" not in body
    for path in ("/api/streams?state=live", "/api/pipeline", "/api/events"):
        answer = await client.get(path)
        assert answer.status == 401
        assert "secret-stream-name" not in await answer.text()


def test_the_wheel_ships_the_dashboard(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("receiver-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for file, _ in ASSETS.values():
        assert f"receiver/dashboard/assets/{file}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = subprocess.run(
        [sys.executable, "-I", "-c",
         "import sys; sys.path.insert(0, sys.argv[1]);"
         "from receiver.dashboard.pages import load_assets; print(sorted(load_assets()))",
         str(site)],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert found.stdout.strip() == str(sorted(ASSETS))
