"""`receiver serve`: run the HTTP service until SIGTERM/SIGINT, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web
from pydantic import SecretStr

from receiver.app import create_app
from receiver.cli.common import add_database_option, configure_logging, load_settings
from receiver.secretfiles import API_TOKEN_FILE, CALLBACK_KEY_FILE, load_or_create
from receiver.settings import Settings

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
    settings = with_api_token(with_callback_key(settings))
    app = create_app(settings)
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


def with_callback_key(settings: Settings) -> Settings:
    """Use the configured keys, or the generated one kept next to the database (created once)."""
    if settings.callback_keys:
        return settings
    path = settings.data_dir / CALLBACK_KEY_FILE
    key, created = load_or_create(path)
    if created:
        print(
            f"Generated a CSS callback key and saved it to {path} (mode 0600):\n\n    {key}\n\n"
            "Put it in your CSS callback template as its CallbackKey (or set "
            "RECEIVER_CALLBACK_KEYS to your own key). It is not shown again.",
            flush=True,
        )
    else:
        log.info("using the callback key stored in %s", path)
    return settings.model_copy(update={"callback_keys": [SecretStr(key)]})


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
