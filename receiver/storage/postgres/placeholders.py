"""One SQL text for both engines where the dialects agree: SQLite's `?` placeholders numbered
for PostgreSQL (`$1`, `$2`, ...), so a statement written once cannot drift between the two."""

from __future__ import annotations


def numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered in order (the text must hold no other `?`)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))
