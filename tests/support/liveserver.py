"""The real app on a loopback port, in its own thread and event loop, for synchronous clients.

Property-based HTTP tests (schemathesis drives `requests`, which blocks) cannot share the test's
event loop with the server, so the server gets a loop of its own and is stopped cleanly: the
app's cleanup contexts run, the writer flushes and the database closes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

from receiver.app import create_app
from receiver.settings import Settings
from receiver.web.direct import DirectRunner


class ThreadedServer:
    """`with ThreadedServer(make_app) as server:` serves `make_app()` at `server.url`, on a loop
    of its own in a thread (the app is made there, on that loop)."""

    def __init__(
        self,
        make_app: Callable[[], web.Application],
        runner: Callable[[web.Application], web.AppRunner] | None = None,
    ) -> None:
        self._make_app = make_app
        self._make_runner = runner or (lambda app: web.AppRunner(app, access_log=None))
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="live-server", daemon=True)
        self.url = ""

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(timeout=20):
            raise TimeoutError("the live server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=20)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        assert self._runner is not None
        self._loop.run_until_complete(self._runner.cleanup())

    async def _start(self) -> None:
        self._runner = self._make_runner(self._make_app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"


class LiveServer(ThreadedServer):
    """`with LiveServer(settings) as server:` serves `create_app(settings)` at `server.url`,
    with the runner `receiver serve` uses (callbacks on the direct path)."""

    def __init__(
        self, settings: Settings, prepare: Callable[[web.Application], None] | None = None
    ) -> None:
        def make_app() -> web.Application:
            app = create_app(settings)
            if prepare is not None:  # adds to the app before it starts (a test's extra routes)
                prepare(app)
            return app

        super().__init__(make_app, lambda app: DirectRunner(app, access_log=None))
