"""The broker audit: compare the drained queue with what CSS was told (200s) and what is stored.

`published` counts distinct acknowledged events found in the queue (what a consumer gets, not
what the database claims). `lost` grows by acknowledged events that are stored but never reached
the queue. `dup in queue` counts messages whose message_id was already seen; every copy of an
event must carry the same message_id, the stored event's id, or deduplication cannot work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.scenarios.broker import Delivered, outbox, wait_published
from tests.reliability.scenarios.cssload import ID_FIELD, Ledger
from tests.reliability.scenarios.report import Findings
from tests.support.publishing import first_occurrences


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    id: str
    stream_id: str | None


def stored_rows(database: Path) -> dict[str, Row]:
    """Each generated event's stored row (the first, should there be several), by cssload id."""
    conn = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        found = conn.execute(
            "SELECT json_extract(payload, ?), seq, id, stream_id FROM events "
            "WHERE json_valid(payload) ORDER BY seq",
            (f"$.{ID_FIELD}",),
        ).fetchall()
    finally:
        conn.close()
    rows: dict[str, Row] = {}
    for cssload_id, seq, event_id, stream_id in found:
        if isinstance(cssload_id, str):
            rows.setdefault(cssload_id, Row(seq, event_id, stream_id))
    return rows


def out_of_order(firsts: Sequence[Delivered], seq: dict[str, int]) -> tuple[int, int]:
    """(streams whose delivery order differs from storage order, streams seen)."""
    streams: dict[str | None, list[int]] = {}
    for message in firsts:
        if message.message_id in seq:
            streams.setdefault(message.stream_id, []).append(seq[message.message_id])
    broken = sum(1 for order in streams.values() if order != sorted(order))
    return broken, len(streams)


def audit_delivery(
    findings: Findings,
    ledger: Ledger,
    database: Path,
    messages: Sequence[Delivered],
    *,
    order: bool = True,
) -> Findings:
    """Fill `published` / `dup in queue`, add undelivered acked events to `lost`, check ids."""
    rows = stored_rows(database)
    firsts = first_occurrences(messages)
    duplicates = len(messages) - len(firsts)
    in_queue = {m.cssload_id for m in messages}
    acked_stored = [rows[i] for i in ledger.acked if i in rows]
    delivered_ids = {m.message_id for m in firsts}
    undelivered = sum(1 for row in acked_stored if row.id not in delivered_ids)
    findings.published = (findings.published or 0) + sum(1 for i in ledger.acked if i in in_queue)
    findings.dup_in_queue = (findings.dup_in_queue or 0) + duplicates
    findings.lost += undelivered
    findings.undelivered += undelivered

    ids: dict[str | None, set[str]] = {}
    for message in messages:
        ids.setdefault(message.cssload_id, set()).add(message.message_id)
    wrong = [
        message
        for message in messages
        if message.message_id != message.event_id
        or message.cssload_id not in rows
        or ids[message.cssload_id] != {rows[message.cssload_id].id}
    ]
    findings.check(
        "every copy carries the stored event's id as message_id",
        not wrong,
        f"{len(wrong)} messages with another or no message_id"
        + (f", e.g. {wrong[0]}" if wrong else "")
        + f"; {duplicates} duplicates, each with its event's message_id",
    )
    stored_ids = {row.id for row in rows.values()}
    never = len(stored_ids - delivered_ids)
    findings.check(
        "every stored event reached the queue (acknowledged or not)",
        never == 0,
        f"{never} of {len(stored_ids)} stored events never delivered",
    )
    _, unpublished, unroutable = outbox(database)
    findings.check(
        "outbox empty, nothing unroutable",
        unpublished == 0 and unroutable == 0,
        f"{unpublished} unpublished, {unroutable} marked unroutable",
    )
    if order:
        seq = {row.id: row.seq for row in rows.values()}
        broken, streams = out_of_order(firsts, seq)
        findings.check(
            "per-stream delivery order = storage order (seq), duplicates dropped",
            broken == 0,
            f"{broken} of {streams} streams out of order",
        )
    return findings


async def outbox_drains(findings: Findings, database: Path, when: str = "after the load") -> None:
    """Wait (bounded) until the relay published everything stored; a finding if it does not."""
    left = await wait_published(database)
    findings.check(f"the relay published everything {when}", left == 0, f"{left} left")
