"""What a scenario found, checked against the database, and the table that prints it.

The columns are the issue's: sent / acknowledged / stored / published / lost / duplicated in
queue. `published` and `dup in queue` are filled by the broker audit
(`tests.reliability.scenarios.delivery`) in scenarios that publish; the others leave them
`None`, printed `n/a`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.scenarios.cssload import ID_FIELD, Ledger
from tests.support.helpers import unfolded_payloads

NOT_YET: str = "n/a"
FOOTNOTES: tuple[str, ...] = (
    "published: distinct acknowledged events found in the scenario's audit queue (a durable "
    "queue bound to css.# before any traffic, drained at the end), not what the database claims.",
    "lost: acknowledged events missing from the database, plus (where publishing is on) "
    "acknowledged events never delivered to the queue.",
    "dup in queue: messages whose message_id was already seen (each checked to carry its "
    "event's id); at-least-once delivery allows them after a crash or a lost confirm.",
)
NOT_PUBLISHING_NOTE: str = (
    "n/a: publishing is off in that scenario (its promises are about storage and HTTP answers)."
)


@dataclass(frozen=True, slots=True)
class Check:
    """One named promise a scenario verified, and what it saw."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Findings:
    """One scenario's figures; `lost`, `dup_rows` and failed checks must all be zero."""

    scenario: str
    sent: int = 0
    attempts: int = 0
    acknowledged: int = 0
    stored: int = 0  # acknowledged events found in the database
    lost: int = 0  # acknowledged, but not in the database (or, publishing, not in the queue)
    undelivered: int = 0  # the part of `lost` that is stored but never reached the queue
    dup_rows: int = 0  # events stored more than once (deduplication failed)
    gave_up: int = 0  # never acknowledged within CSS's retries: CSS would report them failed
    published: int | None = None
    dup_in_queue: int | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.dup_rows == 0 and all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def failures(self) -> list[str]:
        """Human sentences for everything that broke a promise (empty when `ok`)."""
        problems = [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]
        if self.undelivered:
            problems.insert(0, f"{self.undelivered} acknowledged events never reached the queue")
        if self.lost - self.undelivered:
            missing = self.lost - self.undelivered
            problems.insert(0, f"{missing} acknowledged events are not in the database")
        if self.dup_rows:
            problems.insert(0, f"{self.dup_rows} events are stored more than once")
        return problems


def stored_ids(database: Path) -> Counter[str]:
    """How many rows hold each generated event id, read as an operator would (read-only).

    A callback still in the inbox (acknowledged, not folded when the service stopped) is
    stored too: it is on disk and becomes its event at the next start. It counts once, and only
    if no event holds its id (a retry waiting to be folded is not a second row)."""
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT json_extract(payload, ?) FROM events WHERE json_valid(payload)",
            (f"$.{ID_FIELD}",),
        ).fetchall()
    finally:
        conn.close()
    waiting = [_field(payload, ID_FIELD) for payload in unfolded_payloads(database)]
    counted = Counter(row[0] for row in rows if isinstance(row[0], str))
    for event in waiting:
        if isinstance(event, str) and event not in counted:
            counted[event] = 1
    return counted


def audit(findings: Findings, ledger: Ledger, database: Path) -> Findings:
    """Compare what the sender was told (200s) with what the database holds."""
    in_db = stored_ids(database)
    findings.sent += len(ledger.sent)
    findings.attempts += ledger.attempts
    findings.acknowledged += len(ledger.acked)
    findings.stored += sum(1 for event_id in ledger.acked if in_db[event_id] > 0)
    findings.lost += sum(1 for event_id in ledger.acked if in_db[event_id] == 0)
    findings.dup_rows += sum(1 for event_id in ledger.sent if in_db[event_id] > 1)
    findings.gave_up += len(ledger.gave_up)
    findings.outcomes.update(ledger.outcomes)
    return findings


COLUMNS = (
    "scenario", "sent", "acked", "stored", "published", "lost", "dup in queue",
    "dup rows", "gave up", "attempts", "non-200 answers", "result",
)  # fmt: skip


def _cell(value: int | None) -> str:
    return NOT_YET if value is None else str(value)


def _non_200(outcomes: Counter[str]) -> str:
    parts = [f"{name}x{n}" for name, n in sorted(outcomes.items()) if name != "200"]
    return " ".join(parts) or "-"


def render(results: Iterable[Findings]) -> str:
    """A plain-text table (monospace, for a terminal or a closing note) plus notes."""
    results = list(results)
    rows = [
        (
            r.scenario, str(r.sent), str(r.acknowledged), str(r.stored), _cell(r.published),
            str(r.lost), _cell(r.dup_in_queue), str(r.dup_rows), str(r.gave_up),
            str(r.attempts), _non_200(r.outcomes), "PASS" if r.ok else "FAIL",
        )
        for r in results
    ]  # fmt: skip
    widths = [max(len(col), *(len(row[i]) for row in rows)) for i, col in enumerate(COLUMNS)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    out.append("")
    for r in results:
        out.append(f"{r.scenario} ({r.seconds:.1f} s):")
        out += [f"  - {note}" for note in r.notes]
        out += [f"  - [{'ok' if c.ok else 'FAILED'}] {c.name}: {c.detail}" for c in r.checks]
    out += ["", *FOOTNOTES]
    if any(r.published is None for r in results):
        out.append(NOT_PUBLISHING_NOTE)
    return "\n".join(out)


def _field(payload: bytes, name: str) -> object:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
