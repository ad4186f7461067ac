"""The event filter as command-line options: one definition for `receiver events` and
`receiver replay`, named as in the API (`receiver.storage.selection`)."""

from __future__ import annotations

import argparse
from typing import Final

from receiver.events.kinds import FILTER_KINDS

# The argparse destinations that are filter fields, in the order `--help` shows them.
FILTER_OPTIONS: Final = (
    "kind", "event_type", "domain", "app_name", "stream_id", "since", "until",
    "received_since", "received_until",
)  # fmt: skip


def _kinds(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """Times: unix seconds or ISO 8601 with an offset (2024-05-01T08:00:00+08:00)."""
    parser.add_argument(
        "--kind",
        action="extend",
        type=_kinds,
        metavar="KIND",
        help=f"repeatable or comma-separated ({', '.join(FILTER_KINDS)})",
    )
    parser.add_argument("--event-type", type=int, help="CSS event_type number")
    parser.add_argument("--domain", help="push domain (exact)")
    parser.add_argument("--app-name", help="push path (exact)")
    parser.add_argument("--stream-id", "--stream", dest="stream_id", help="stream name (exact)")
    parser.add_argument("--since", help="event time at or after")
    parser.add_argument("--until", help="event time before")
    parser.add_argument("--received-since", help="arrival time at or after")
    parser.add_argument("--received-until", help="arrival time before")


def option_name(field: str) -> str:
    """`received_since` -> `--received-since`, for messages about an option."""
    return "--" + field.replace("_", "-")
