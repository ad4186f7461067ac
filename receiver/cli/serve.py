"""`receiver serve`: run the HTTP service until SIGTERM/SIGINT, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from receiver.app import create_app
from receiver.cli.common import (
    add_database_option,
    configure_logging,
    load_credentials,
    load_settings,
    with_callback_key,
)
from receiver.cli.secretfiles import API_TOKEN_FILE, load_or_create
from receiver.keys import SETTINGS
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup
from receiver.tencent.wiring import client_retry
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
    configure_logging(settings.log_level)
    app = build_app(settings)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(app, app[SETTINGS]))
    log.info("stopped")
    return 0


def build_app(settings: Settings) -> web.Application:
    """The app `serve` runs: callback key and API token resolved (generated once if unset),
    Tencent credentials loaded if auto-registration is on."""
    settings = with_api_token(with_callback_key(settings, on_created=_announce_key))
    tencent = None
    if settings.tencent_auto_register:
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


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then: stop listening (new connections are refused), let the
    requests already begun finish, bodies still arriving included, and only then close the
    connections and run the cleanup (the writer commits the rest). `web.run_app` closes the
    connections first and drops what arrives on them: see `receiver.web.inflight`.
    """
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None,
        shutdown_timeout=settings.shutdown_timeout_seconds,
    )  # fmt: skip
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("Running on %s", site.name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await site.stop()
        in_flight = app[IN_FLIGHT]
        log.info("stopping: %d requests in flight", in_flight.count)
        try:
            async with asyncio.timeout(settings.shutdown_timeout_seconds):
                await in_flight.wait_idle()
        except TimeoutError:
            log.warning("%d requests still in flight after the shutdown timeout", in_flight.count)
    finally:
        await runner.cleanup()


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
