"""Event ids are UUIDv7: time-ordered, strictly increasing, and their time is the real one."""

from __future__ import annotations

import time
import uuid

from receiver.storage.ids import EventIds


def test_ids_are_rfc_9562_version_7_and_strictly_increasing() -> None:
    ids = EventIds()
    made = [ids.new() for _ in range(20_000)]  # many share a millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    for text in made[:100]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_the_timestamp_follows_the_clock_however_many_ids_per_millisecond() -> None:
    ids = EventIds()
    for _ in range(20_000):
        last = ids.new()
    stamp_ms = int(last.replace("-", "")[:12], 16)
    assert abs(stamp_ms - time.time() * 1000) < 1000  # uuid6.uuid7 ran ~20 s ahead here
