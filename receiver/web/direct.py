"""Routes the server answers itself, in front of the application: no router, no middleware.

Callbacks are the one hot path, and their own work is small (read, parse, authenticate, hand
over to the writer): resolving a route, building its match info, passing through each
middleware (errors, the API token check, aiohttp's own current-app fixer) and sending the
response-prepare signal are a visible share of what a callback costs the HTTP process. So the
runner puts a `Dispatcher` in front of the application's handler: a `POST` to a path registered
in the app's `DirectRoutes` goes straight to its handler; everything else (the API, operations,
OpenAPI, every 404 and 405 answer) goes to the application as before.

A direct handler is on its own: it answers its own errors, counts itself in flight and times
itself, and its request carries no match info (`request.app` and `request.match_info` are
unset), so it reaches its dependencies through what it was built with. A request with an
`Expect` header goes to the application, whose route for the same path serves it after aiohttp's
expect handling (`100 Continue`): direct paths stay registered in the router for that reason,
and for any server built without `DirectRunner`.

aiohttp has no option for this. Its runner builds one `web.Server` for the application, and each
new connection adopts that server's `request_handler` (a public attribute, the handler the server
was made with). `DirectRunner` replaces it once the application has started and before anything
listens; `tests/web/test_direct.py` fails if aiohttp stops honouring the replacement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

DirectHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class DirectRoutes:
    """`POST` handlers by exact path, as the router matches it (`rel_url.path_safe`).

    Filled while the application starts (a handler may need what the start-up creates).
    """

    def __init__(self) -> None:
        self.post: dict[str, DirectHandler] = {}

    def add_post(self, path: str, handler: DirectHandler) -> None:
        if path in self.post:
            raise ValueError(f"a direct route for POST {path} is already registered")
        self.post[path] = handler


DIRECT_ROUTES = web.AppKey("direct_routes", DirectRoutes)


class Dispatcher:
    """The server's request handler: direct routes first, the application for the rest.

    It returns the handler's awaitable rather than awaiting it: no coroutine of its own.
    """

    __slots__ = ("_fallback", "_post")

    def __init__(self, routes: DirectRoutes, fallback: DirectHandler) -> None:
        self._post = routes.post
        self._fallback = fallback

    def __call__(self, request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        if request.method == hdrs.METH_POST and not request.headers.get(hdrs.EXPECT):
            handler = self._post.get(request.rel_url.path_safe)
            if handler is not None:
                return handler(request)
        return self._fallback(request)


class DirectRunner(web.AppRunner):
    """`web.AppRunner` whose server answers the app's `DirectRoutes` itself."""

    __slots__ = ()

    async def setup(self) -> None:
        await super().setup()
        server = self.server
        assert server is not None
        routes = self.app.get(DIRECT_ROUTES)
        if routes is not None and routes.post:
            server.request_handler = Dispatcher(routes, server.request_handler)
