"""`GET /dashboard`: the page and its assets, with the security headers a page needs.

The page is static: HTML, one script, one stylesheet, all shipped inside the package and served
from memory. It holds no data; everything it shows it fetches from the documented `/api/...`
routes with the API token, which the operator types once and the page keeps in the tab's
`sessionStorage` (docs/dashboard.md says why not a cookie). So the shell is public like `/healthz`
and `/readyz`, and every byte of stream data stays behind the token.

Headers: a Content-Security-Policy that allows only this origin's script and style (no inline
script or style, no `eval`), images from this origin and from snapshot URLs (http/https: CSS
stores screenshots on COS), no framing (`frame-ancestors 'none'` and `X-Frame-Options: DENY`),
no referrer, no MIME sniffing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web
from pydantic import Field

from receiver.history.params import Params
from receiver.web.openapi import Operation, Response, document
from receiver.web.responses import ApiErrorBody

PREFIX: Final = "/dashboard"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: http:",  # snapshot thumbnails live on COS
        "connect-src 'self'",
        "form-action 'none'",  # the login form never submits: the token stays out of URLs
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

# Served name -> (file in receiver/dashboard/assets, content type). A fixed table: nothing
# else under /dashboard/ is served, whatever the path says.
ASSETS: Final = {
    "": ("index.html", "text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "favicon.svg": ("favicon.svg", "image/svg+xml"),
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


ASSET_FILES = web.AppKey[dict[str, Asset]]("dashboard_assets")


class AssetPath(Params):
    name: str = Field(
        description="A file of the page.",
        json_schema_extra={"enum": [name for name in sorted(ASSETS) if name]},
    )


def load_assets() -> dict[str, Asset]:
    """Read every asset from the installed package (wheel or checkout)."""
    folder = resources.files("receiver.dashboard") / "assets"
    return {
        name: Asset((folder / file).read_bytes(), content_type)
        for name, (file, content_type) in ASSETS.items()
    }


async def _load(app: web.Application) -> None:
    app[ASSET_FILES] = load_assets()


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under /dashboard carries the headers, the errors and redirect included."""
    if request.path == PREFIX or request.path.startswith(f"{PREFIX}/"):
        response.headers.update(SECURITY_HEADERS)


async def to_page(request: web.Request) -> web.StreamResponse:
    """`/dashboard` -> `/dashboard/`, so the page's relative asset URLs resolve under it."""
    raise web.HTTPFound(f"{PREFIX}/")


async def asset(request: web.Request) -> web.Response:
    found: Asset | None = request.app[ASSET_FILES].get(request.match_info.get("name", ""))
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(body=found.body, headers={"Content-Type": found.content_type})


_PAGE: Final = Response(
    "The page (static; it fetches its data from `/api` with the token the operator types).",
    media_type="text/html",
    schema={"type": "string"},
)


def setup_routes(app: web.Application) -> None:
    app.on_startup.append(_load)
    app.on_response_prepare.append(_secure)
    app.router.add_get(PREFIX, to_page, name="dashboard")
    app.router.add_get(f"{PREFIX}/", asset, name="dashboard_page")
    app.router.add_get(PREFIX + "/{name}", asset, name="dashboard_asset")
    document(
        app,
        "GET",
        PREFIX,
        Operation(
            summary="The operator's dashboard (redirects to `/dashboard/`)",
            tag="dashboard",
            responses={302: Response("To `/dashboard/`.")},
        ),
    )
    document(
        app,
        "GET",
        f"{PREFIX}/",
        Operation(summary="The operator's dashboard", tag="dashboard", responses={200: _PAGE}),
    )
    document(
        app,
        "GET",
        PREFIX + "/{name}",
        Operation(
            summary="The dashboard's script, stylesheet and icon",
            tag="dashboard",
            path=AssetPath,
            responses={
                200: Response(
                    "The file (JavaScript, CSS or SVG).",
                    schema={"type": "string"},
                    media_type="*/*",
                ),
                404: Response("No such file.", ApiErrorBody),
            },
        ),
    )
