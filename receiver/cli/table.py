"""Plain-text tables and JSON lines for the history commands.

Cells come from stored callbacks, so from whoever could post one: a stream name holding ESC, CR
or a right-to-left override would rewrite the operator's terminal. Every cell is shown through
`receiver.logs.printable` (`\\x1b`, `\\u202e`), the escaping the logs use. JSON lines escape
C0 controls already (the JSON encoder must); `json_line` escapes what it leaves raw too (DEL, C1,
bidi), as JSON `\\u` escapes, so the line still decodes to the same value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final, TextIO

from receiver.logs import UNSAFE_CHARACTERS, printable


def when(moment: datetime | None) -> str:
    """UTC to the second, the way an operator reads a log."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def write_table(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Left-aligned columns, as wide as their widest cell; returns the number of rows."""
    materialised = [[printable(cell) for cell in row] for row in rows]
    widths = [len(title) for title in header]
    for row in materialised:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    for row in [[printable(title) for title in header], *materialised]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        out.write("\n")
    return len(materialised)


# What a JSON encoder leaves raw in a string (it must escape only C0) that a terminal acts on.
_JSON_ESCAPES: Final = {code: f"\\u{code:04x}" for code in UNSAFE_CHARACTERS if code >= 0x7F}


def json_line(text: str) -> str:
    """A JSON document (from an encoder) made safe for a terminal, still the same JSON value."""
    return text.translate(_JSON_ESCAPES)
