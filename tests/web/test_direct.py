"""The direct routes in front of an application: the seam `receiver serve` relies on in aiohttp.

`DirectRunner` swaps the request handler of the `web.Server` aiohttp builds for the app; these
tests fail if aiohttp stops using that handler for new connections, or starts needing the
router's match info to answer a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from receiver.web.direct import DIRECT_ROUTES, DirectRoutes, DirectRunner


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, list[str]]]:
    """A toy app: `POST /x` direct and routed, `GET /y` routed; the paths its middleware saw."""
    through_app: list[str] = []

    @web.middleware
    async def spy(request: web.Request, handler: Handler) -> web.StreamResponse:
        through_app.append(f"{request.method} {request.path}")
        return await handler(request)

    async def routed(request: web.Request) -> web.Response:
        return web.Response(text="routed")

    async def direct(request: web.BaseRequest) -> web.Response:
        return web.Response(text=f"direct {(await request.read()).decode()}")

    app = web.Application(middlewares=[spy])
    app.router.add_post("/x", routed)
    app.router.add_get("/y", routed)
    app[DIRECT_ROUTES] = DirectRoutes()

    async def register(app: web.Application) -> AsyncIterator[None]:
        app[DIRECT_ROUTES].add_post("/x", direct)  # at start-up, as the callbacks stage does
        yield

    app.cleanup_ctx.append(register)
    runner = DirectRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", through_app
    finally:
        await runner.cleanup()


async def _call(method: str, url: str, **kwargs: object) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, **kwargs) as response,  # type: ignore[arg-type]
    ):
        return response.status, await response.text()


async def test_a_direct_post_skips_the_router_and_every_middleware(
    served: tuple[str, list[str]],
) -> None:
    url, through_app = served
    assert await _call("POST", f"{url}/x", data=b"body") == (200, "direct body")
    assert await _call("POST", f"{url}/x?token=t", data=b"q") == (200, "direct q")
    assert through_app == []


async def test_everything_else_goes_to_the_application(served: tuple[str, list[str]]) -> None:
    url, through_app = served
    assert await _call("GET", f"{url}/y") == (200, "routed")
    assert (await _call("GET", f"{url}/x"))[0] == 405
    assert (await _call("POST", f"{url}/x/"))[0] == 404
    assert (await _call("POST", f"{url}/y"))[0] == 405
    assert through_app == ["GET /y", "GET /x", "POST /x/", "POST /y"]


async def test_expect_100_continue_is_left_to_the_application(
    served: tuple[str, list[str]],
) -> None:
    """aiohttp answers `Expect` in its routed path; the route for the same path serves it."""
    url, through_app = served
    assert await _call("POST", f"{url}/x", data=b"body", expect100=True) == (200, "routed")
    assert through_app == ["POST /x"]


def test_a_path_registered_twice_is_a_start_up_error() -> None:
    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response()

    routes = DirectRoutes()
    routes.add_post("/x", handler)
    with pytest.raises(ValueError, match="POST /x"):
        routes.add_post("/x", handler)
