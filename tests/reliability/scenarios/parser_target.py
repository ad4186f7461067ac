"""The payload pipeline as a fuzz target: raw bytes in, a refusal or a stored row out.

It runs what a callback goes through, in order: `parse_body`, `read_event_type`, the signature
check, then the writer process's work (`BatchWriter`: the inbox row) and the fold's (`Folder`:
model validation, normalisation, dedupe key, row, insert into the real schema). The promises
checked on every input:

- the only exceptions are the refusals the service maps to 400/401 (anything else is a 500);
- nothing is accepted whose `sign` is not md5(key + t) with `t` inside its validity window;
- an accepted body is stored verbatim, never refused by the writer (that would be a 503 on
  every retry: an event CSS can never deliver).

`python -m tests.reliability.scenarios.fuzz [libFuzzer options]` runs it under atheris.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any, Final

from receiver.callbacks.body import MAX_EVENT_TYPE, parse_body, read_event_type
from receiver.callbacks.signature import verify_signature
from receiver.errors import AuthenticationFailed, PayloadInvalid
from receiver.events.kinds import UNSIGNED_EVENT_TYPES
from receiver.settings import CLOCK_SKEW_SECONDS, SIGNATURE_VALIDITY_SECONDS
from receiver.storage.fold import Folder
from receiver.storage.frames import Committed, Event, FrameBuffer
from receiver.storage.inbox_file import SCHEMA
from receiver.storage.migrations import load_migrations
from receiver.storage.writer_process import BatchWriter

KEY: Final = "fuzzKey0123"
NOW: Final = 1_700_000_000
GRACE: Final = 300


class ParserTarget:
    """One in-memory database with the real schema; `feed()` one body at a time."""

    def __init__(self) -> None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        for migration in load_migrations():
            conn.executescript(migration.sql)
        inbox = sqlite3.connect(":memory:", isolation_level=None)
        inbox.executescript(SCHEMA)
        self._conn = conn
        self._writer = BatchWriter(inbox)
        self._folder = Folder(conn, inbox)
        self._rid = 0

    def feed(self, raw: bytes) -> int:
        """The status the service would answer (200, 400 or 401); raises on a broken promise."""
        try:
            body = parse_body(raw)
            text = raw.decode("utf-8")
            event_type = read_event_type(body)
        except PayloadInvalid:
            return 400
        assert 0 <= event_type <= MAX_EVENT_TYPE, event_type
        if event_type in UNSIGNED_EVENT_TYPES:
            return 401  # only with a URL token, which this target does not configure
        try:
            verify_signature(body, (KEY,), now=NOW, grace_seconds=GRACE)
        except AuthenticationFailed:
            return 401
        _assert_genuine(body)
        self._store(event_type, text)
        return 200

    def _store(self, event_type: int, text: str) -> None:
        self._rid += 1
        message = Event(self._rid, event_type, float(NOW), None, text.encode())
        replies = FrameBuffer().feed(self._writer.handle([message]))
        acks = [ack for reply in replies if isinstance(reply, Committed) for ack in reply.acks]
        assert len(acks) == 1, f"the writer refused an accepted body: {replies}"
        folded = self._folder.step(10)
        assert folded is not None and folded.error is None, f"the fold refused it: {folded}"
        assert sum(c.rejected for c in folded.counts.values()) == 0, "the fold rejected it"
        stored = self._conn.execute(
            "SELECT payload FROM events WHERE id = ?", (acks[0].id,)
        ).fetchone()
        if stored is not None:  # else a duplicate (an alias); its first copy was checked
            assert stored[0] == text, "the stored payload is not the body"
        else:
            assert self._conn.execute(
                "SELECT 1 FROM event_aliases WHERE id = ?", (acks[0].id,)
            ).fetchone(), "an acknowledged body is neither an event nor a repeat of one"


def _assert_genuine(body: dict[str, Any]) -> None:
    """Recompute the signature independently: an accepted body must really be signed."""
    t = int(str(body["t"]))
    expected = hashlib.md5(f"{KEY}{t}".encode()).hexdigest()
    assert str(body["sign"]).strip().lower() == expected, "forged signature accepted"
    assert t + GRACE >= NOW, "expired signature accepted"
    assert t <= NOW + SIGNATURE_VALIDITY_SECONDS + CLOCK_SKEW_SECONDS, "future t accepted"


def sign(body: dict[str, Any], t: int = NOW + SIGNATURE_VALIDITY_SECONDS) -> dict[str, Any]:
    return {**body, "t": t, "sign": hashlib.md5(f"{KEY}{t}".encode()).hexdigest()}
