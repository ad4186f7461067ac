"""`receiver backup PATH`: a consistent copy of the database, also while `serve` runs.

Restore: stop the service, put the copy in place of the database (see docs/deploy.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from receiver.cli.common import add_database_option, load_settings, sqlite_database
from receiver.storage.backup import STEP_PAGES, BackupError, backup

PROGRESS_EVERY_SECONDS = 1.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backup",
        help="copy the database consistently (also while the service runs)",
        description="Copy the database to PATH from one snapshot: every event stored before "
        "the backup began is in the copy, even while `receiver serve` keeps storing. Never "
        "copy the database file with cp while the service runs.",
    )
    parser.add_argument(
        "path", help="the copy to create; an existing directory gets a dated file in it"
    )
    parser.add_argument(
        "--step-pages",
        type=int,
        default=STEP_PAGES,
        help=f"pages copied per step, progress shown between steps (default {STEP_PAGES})",
    )
    add_database_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    database = sqlite_database(settings, "backup")  # PostgreSQL: pg_dump (docs/scaling.md)
    if args.step_pages < 1:
        print("receiver backup: --step-pages must be at least 1", file=sys.stderr)
        return 2
    target = Path(args.path)
    if args.path.endswith("/") and not target.is_dir():
        print(f"receiver backup: no directory {args.path}", file=sys.stderr)
        return 1
    try:
        made = backup(database, target, step_pages=args.step_pages, progress=_Progress())
    except BackupError as exc:
        print(f"receiver backup: {exc}", file=sys.stderr)
        return 1
    newest = "no events" if made.last_seq is None else f"events up to seq {made.last_seq}"
    print(
        f"backed up {database} to {made.path}: {made.size} bytes, {newest}, in {made.seconds:.1f} s"
    )
    return 0


class _Progress:
    """At most one line a second on stderr: only a large file shows progress."""

    def __init__(self) -> None:
        self._next = time.monotonic() + PROGRESS_EVERY_SECONDS

    def __call__(self, copied: int, total: int) -> None:
        now = time.monotonic()
        if now < self._next or copied >= total:
            return
        self._next = now + PROGRESS_EVERY_SECONDS
        print(f"copied {copied} of {total} pages ({copied * 100 // total}%)", file=sys.stderr)
