"""`receiver serve`: run the HTTP service until SIGTERM/SIGINT, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from aiohttp import web

from receiver.app import create_app
from receiver.cli.common import (
    add_database_option,
    configure_logging,
    load_credentials,
    load_settings,
    with_callback_key,
)
from receiver.registration import client_retry
from receiver.settings import Settings
from receiver.tencent.autoregister import TencentSetup

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
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,
        print=lambda line: log.info("%s", line.strip("= \n")),
        loop=new_event_loop(),
    )
    log.info("stopped")
    return 0


def build_app(settings: Settings) -> web.Application:
    """The app `serve` runs: the callback key resolved, Tencent credentials loaded if needed."""
    settings = with_callback_key(settings, on_created=_announce_key)
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


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: it matters most on the durable path (see bench/)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
