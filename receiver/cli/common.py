"""What every sub-command shares: reading settings with a clear error, logging setup."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from receiver.settings import Settings


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        type=Path,
        help="SQLite file (default: $RECEIVER_DATABASE or ./data/receiver.db)",
    )


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, with command-line options on top; exits 2 if invalid."""
    if getattr(args, "database", None) is not None:
        overrides["database"] = args.database
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [
            f"  RECEIVER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        ]
        print("invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
