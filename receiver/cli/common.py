"""What every sub-command shares: reading settings with a clear error, logging setup."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from receiver import logs
from receiver.cli.secretfiles import CALLBACK_KEY_FILE, load_or_create
from receiver.logs import LogFormat
from receiver.settings import Settings
from receiver.storage.engine import PostgresUrl, parse_database
from receiver.tencent.credentials import TencentCredentials
from receiver.web.responses import describe

log = logging.getLogger("receiver")


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        type=parse_database,
        help="SQLite file or postgresql:// URL (default: $RECEIVER_DATABASE or ./data/receiver.db)",
    )


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, with command-line options on top; exits 2 if invalid."""
    if getattr(args, "database", None) is not None:
        overrides["database"] = args.database
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [
            "  " + describe(e, name=_env_name("RECEIVER_", e["loc"]), show_input=False)
            for e in exc.errors()
        ]
        print("invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def sqlite_database(settings: Settings, command: str) -> Path:
    """The SQLite file for a command that works on SQLite only so far; exits 2 on PostgreSQL."""
    database = settings.database
    if isinstance(database, PostgresUrl):
        print(
            f"receiver {command}: works on SQLite only so far; RECEIVER_DATABASE names "
            f"PostgreSQL ({database.masked})",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return database


def load_credentials() -> TencentCredentials:
    """Tencent Cloud API credentials from TENCENTCLOUD_*; exits 2 naming what is missing."""
    try:
        return TencentCredentials()
    except ValidationError as exc:
        lines = [
            "  " + describe(e, name=_env_name("TENCENTCLOUD_", e["loc"]), show_input=False)
            for e in exc.errors()
        ]
        print("invalid Tencent Cloud credentials:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def _env_name(prefix: str, loc: tuple[int | str, ...]) -> str | None:
    """The environment variable a settings error is about (None: the settings as a whole)."""
    return prefix + "_".join(map(str, loc)).upper() if loc else None


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Log to stderr as configured (RECEIVER_LOG_LEVEL, RECEIVER_LOG_FORMAT), messages escaped."""
    logs.configure(level, log_format)


def with_callback_key(settings: Settings, *, on_created: Callable[[Path, str], None]) -> Settings:
    """Use the configured keys, or the generated one kept next to the database (created once).

    `serve` and `tencent register` both go through here, so the key CSS is told to sign with is
    always the key the service checks first. `on_created` tells the operator about a new key.
    """
    if settings.callback_keys:
        return settings
    path = settings.data_dir / CALLBACK_KEY_FILE
    key, created = load_or_create(path)
    if created:
        on_created(path, key)
    else:
        log.info("using the callback key stored in %s", path)
    return settings.model_copy(update={"callback_keys": [SecretStr(key)]})
