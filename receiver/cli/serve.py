"""`receiver serve`: run the HTTP service until SIGTERM/SIGINT, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr
from yarl import URL

from receiver.app import create_app
from receiver.cli.common import (
    add_database_option,
    configure_logging,
    load_credentials,
    load_settings,
    with_callback_key,
)
from receiver.cli.secretfiles import API_TOKEN_FILE, load_or_create
from receiver.errors import StartupError
from receiver.keys import METRICS, SETTINGS
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup
from receiver.tencent.wiring import client_retry, moderation_calls_api
from receiver.web.connections import ConnectionGuard, connection_cap, raise_open_files_limit
from receiver.web.direct import DirectRunner
from receiver.web.inflight import IN_FLIGHT

log = logging.getLogger("receiver")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="receive CSS callbacks over HTTP")
    parser.add_argument("--host", help="address to listen on (default: $RECEIVER_HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default: $RECEIVER_PORT or 8080)")
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args, host=args.host, port=args.port)
    configure_logging(settings.log_level, settings.log_format)
    open_files = raise_open_files_limit()  # before the writer process starts: it inherits it
    try:
        app = build_app(settings)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(app, app[SETTINGS], open_files=open_files))
    except Exception as exc:
        message = startup_refusal(exc)
        if message is None:
            raise
        log.error("%s", message)
        return 2
    log.info("stopped")
    return 0


def startup_refusal(exc: Exception) -> str | None:
    """The one line to show for a failure to start (None: a bug, whose traceback is wanted)."""
    return exc.message if isinstance(exc, StartupError) else None


def build_app(settings: Settings) -> web.Application:
    """The app `serve` runs: callback key and API token resolved (generated once if unset),
    Tencent credentials loaded if auto-registration is on."""
    settings = with_api_token(with_callback_key(settings, on_created=_announce_key))
    tencent = None
    if (
        settings.tencent_auto_register
        or settings.tencent_reconcile_interval is not None
        or settings.tencent_backup_region
        or moderation_calls_api(settings)
    ):
        tencent = TencentSetup(load_credentials(), client_retry=client_retry(settings))
    elif os.environ.get("TENCENTCLOUD_SECRET_ID"):
        # Optional: push quality and audience answer 503 without credentials.
        tencent = TencentSetup(load_credentials(), client_retry=client_retry(settings))
    return create_app(settings, tencent=tencent)


def _announce_key(path: Path, key: str) -> None:
    """Shown once, on stdout (not in the logs): the operator copies it into the CSS template."""
    print(
        f"Generated a CSS callback key and saved it to {path} (mode 0600):\n\n    {key}\n\n"
        "Put it in your CSS callback template as its CallbackKey (or set "
        "RECEIVER_CALLBACK_KEYS to your own key, or let `receiver tencent register` do it). "
        "It is not shown again.",
        flush=True,
    )


async def serve(app: web.Application, settings: Settings, *, open_files: int) -> None:
    """Serve until SIGTERM/SIGINT, then: stop listening (new connections are refused), let the
    requests already begun finish, bodies still arriving included, and only then close the
    connections and run the cleanup (the writer commits the rest). `web.run_app` closes the
    connections first and drops what arrives on them: see `receiver.web.inflight`.

    The address is bound first, so a taken port is a `StartupError` naming the settings to
    change before the database is touched. Connections go through a `ConnectionGuard` (cap,
    header deadline, shedding), which aiohttp's sites cannot take, hence the socket made here.
    """
    guard = ConnectionGuard(
        app[METRICS].registry,
        cap=connection_cap(settings.max_connections, open_files),
        header_timeout=settings.header_timeout_seconds,
    )
    listener = await _bind(guard, settings)
    runner = DirectRunner(
        app, handle_signals=False, access_log=None,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        keepalive_timeout=settings.keepalive_timeout_seconds,
    )  # fmt: skip
    try:
        await runner.setup()
        assert runner.server is not None
        guard.attach(runner.server)
        await listener.start_serving()
        log.info("Running on %s (at most %d connections)", _url(listener), guard.cap)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        listener.close()
        in_flight = app[IN_FLIGHT]
        log.info("stopping: %d requests in flight", in_flight.count)
        try:
            async with asyncio.timeout(settings.shutdown_timeout_seconds):
                await in_flight.wait_idle()
        except TimeoutError:
            log.warning("%d requests still in flight after the shutdown timeout", in_flight.count)
    finally:
        listener.close()
        guard.close()
        await runner.cleanup()


async def _bind(guard: ConnectionGuard, settings: Settings) -> asyncio.Server:
    """The listening socket, bound but not yet accepting (that waits for the app's start-up)."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(
            guard.protocol, settings.host, settings.port, start_serving=False
        )
    except OSError as exc:
        raise StartupError(
            "address_unavailable",
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
            "choose another port with RECEIVER_PORT (--port) or address with RECEIVER_HOST "
            "(--host)",
        ) from None


def _url(listener: asyncio.Server) -> str:
    host, port = listener.sockets[0].getsockname()[:2]
    return str(URL.build(scheme="http", host=host, port=port))


def with_api_token(settings: Settings) -> Settings:
    """Use the configured API token, or the generated one kept next to the database."""
    if settings.api_token is not None:
        return settings
    path = settings.data_dir / API_TOKEN_FILE
    # 43 letters and digits: about 256 bits, like a 32-byte random token.
    token, created = load_or_create(path, length=43)
    if created:
        print(
            f"Generated an API token and saved it to {path} (mode 0600):\n\n    {token}\n\n"
            "Send it as 'Authorization: Bearer <token>' to the /api/... routes (or set "
            "RECEIVER_API_TOKEN to your own). It is not shown again.",
            flush=True,
        )
    else:
        log.info("using the API token stored in %s", path)
    return settings.model_copy(update={"api_token": SecretStr(token)})


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: it matters most on the durable path (see bench/)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
