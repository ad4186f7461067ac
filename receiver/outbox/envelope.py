"""The message contract: how a stored event becomes an AMQP message (the API for consumers).

    routing key   css.<kind>
    body          {"id", "event_type", "kind", "domain", "app_name", "stream_id", "event_time",
                   "received_at", "payload": <the callback body as received>}
    properties    message_id = event id, content_type application/json, delivery_mode 2
                  (persistent), timestamp = received_at, type = kind, app_id = receiver
    headers       event_type (int), domain, app_name, stream_id (each only when known),
                  source (callback | reconciled | confirmed: docs/reconciliation.md),
                  x-replay: true on re-published events

The body is built without re-parsing the stored payload: it is the raw request text, which the
receiver only stored after orjson had parsed it as a JSON object, so it is spliced into the
envelope verbatim. Consumers see exactly the bytes CSS sent, and the relay saves a parse and a
dump per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson
from pamqp.commands import Basic
from pamqp.common import FieldTable

from receiver.times import iso_utc

APP_ID: Final = "receiver"
CONTENT_TYPE: Final = "application/json"
PERSISTENT: Final = 2
REPLAY_HEADER: Final = "x-replay"

# The columns `from_row` expects, in order; every query that feeds the publisher selects these.
COLUMNS: Final = (
    "seq, id, event_type, kind, domain, app_name, stream_id, event_time, received_at, payload,"
    " source"
)
# seq, id, event_type, kind, domain, app_name, stream_id, event_time, received_at, payload, source
OutboxRow = tuple[
    int, str, int, str, str | None, str | None, str | None, float | None, float, str, str
]
SOURCE_HEADER: Final = "source"


def routing_key(kind: str) -> str:
    return f"css.{kind}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready for `basic_publish`; `seq` ties its outcome back to the stored row."""

    seq: int
    message_id: str
    routing_key: str
    body: bytes
    properties: Basic.Properties


def from_row(row: OutboxRow, *, replay: bool = False) -> Outgoing:
    """Build the message for a row selected with `COLUMNS`."""
    (seq, event_id, event_type, kind, domain, app_name, stream_id, event_time, received, payload,
     source) = row  # fmt: skip
    head = orjson.dumps(
        {
            "id": event_id,
            "event_type": event_type,
            "kind": kind,
            "domain": domain,
            "app_name": app_name,
            "stream_id": stream_id,
            "event_time": iso_utc(event_time),
            "received_at": iso_utc(received),
        }
    )
    body = b"".join((head[:-1], b',"payload":', payload.encode(), b"}"))
    headers: FieldTable = {"event_type": event_type}
    if domain is not None:
        headers["domain"] = domain
    if app_name is not None:
        headers["app_name"] = app_name
    if stream_id is not None:
        headers["stream_id"] = stream_id
    headers[SOURCE_HEADER] = source
    if replay:
        headers[REPLAY_HEADER] = True
    properties = Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=event_id,
        timestamp=datetime.fromtimestamp(int(received), UTC),
        message_type=kind,
        app_id=APP_ID,
        headers=headers,
    )
    return Outgoing(seq, event_id, routing_key(kind), body, properties)
