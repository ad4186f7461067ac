"""The storage processes' side of their pipes: their common options and start, waiting for a
frame, writing a reply whole."""

from __future__ import annotations

import argparse
import os
import select
import signal
from pathlib import Path
from typing import Final

from receiver import logs

# A pipe holds 64 KiB; a larger read only makes every read allocate (and free) a huge buffer.
READ_SIZE: Final = 1 << 16


def readable(fd: int, timeout: float | None) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return  # the service is gone; what was committed stays committed
        view = view[written:]


def arguments(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The options every storage process takes (the service passes them all)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    return parser


def begin(args: argparse.Namespace) -> None:
    """Log as the service does (its format, on its stderr), and leave SIGINT/SIGTERM to the
    service: it stops a storage process by closing its pipe, once the process's work is done."""
    logs.configure(args.log_level, args.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
