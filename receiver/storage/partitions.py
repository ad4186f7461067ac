"""Streams in partitions: the unit of storage order on PostgreSQL, and of publishing.

Several replicas store events at once, so `seq` alone cannot say "every event before this one is
committed": a replica may commit seq 11 while another still holds 10. Within one partition it
can: every store locks its partitions' rows first (migrations/postgresql/0001_events.sql), so
the events of a partition commit in seq order. One publisher per partition then publishes a
stream's events in storage order (docs/scaling.md).

A partition is a hash of the stream *name* alone, not of (domain, app, name): an event missing
its domain or app name joins its stream by name (the history trigger), and must land in the
same partition as the rest of that stream. Events without a stream share partition 0.
"""

from __future__ import annotations

import zlib
from typing import Final

# The number of rows in `ingest_partitions` (checked at start: changing it is a migration).
PARTITIONS: Final = 64


def partition_of(stream_id: str | None) -> int:
    """The partition of a stream name: CRC-32 of its UTF-8 bytes, mod `PARTITIONS`."""
    if stream_id is None:
        return 0
    return zlib.crc32(stream_id.encode("utf-8", "surrogatepass")) % PARTITIONS
