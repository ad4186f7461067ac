"""Plain-text tables and JSON lines for the history commands."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TextIO


def when(moment: datetime | None) -> str:
    """UTC to the second, the way an operator reads a log."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def write_table(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Left-aligned columns, as wide as their widest cell; returns the number of rows."""
    materialised = [list(row) for row in rows]
    widths = [len(title) for title in header]
    for row in materialised:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    for row in [list(header), *materialised]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        out.write("\n")
    return len(materialised)
