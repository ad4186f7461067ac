"""The frames between the service and its writer process: typed, length-prefixed.

Each message is a named tuple; `encode` turns one into bytes and `FrameBuffer.feed` turns bytes
back into the same named tuples, so neither side handles an untyped list.

Events, the hot path, travel as binary frames so the callback body crosses the pipe as the bytes
CSS sent (no JSON-escaping of a JSON text in the service, no unescaping in the writer):

    b"E" + <rid u64, event_type u32, received_at f64, len(path_kind) u8> + path_kind + payload

Every other frame is an orjson list whose first item names its type.

Service → writer (`receiver.storage.writer_process`): `Event` (append it to the inbox), `Probe`
(commit a heartbeat: readiness), `Trim` (the fold is past these inbox rows: delete them).
Service → fold process (`receiver.storage.fold_process`): `Wake` (new inbox rows), `FoldThrough`
(fold the inbox up to a row now), `OutboxMarks` (record publishing outcomes), `Probe`.
Replies: `Ready`, `Committed` (one per commit, with its duration and size for metrics, an `Ack`
for each event and the ids of its other requests), `Failed` (could not commit), `Folded` (one
per fold transaction: what it stored, and the `FoldThrough` requests it settled).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

import orjson

_HEADER: Final = struct.Struct("<I")
HEADER_SIZE: Final = _HEADER.size
_EVENT: Final = struct.Struct("<cQIdB")
_EVENT_TAG: Final = ord("E")


class Event(NamedTuple):
    """An authenticated callback to store; `payload` is the body exactly as received."""

    rid: int
    event_type: int
    received_at: float
    path_kind: str | None
    payload: bytes


class Probe(NamedTuple):
    rid: int


class FoldThrough(NamedTuple):
    """Answer once every inbox row up to `seq` is folded (an event asked for by its id)."""

    rid: int
    seq: int


class Trim(NamedTuple):
    """The fold has stored every inbox row up to `seq` (durably): they may be deleted."""

    seq: int


class Wake(NamedTuple):
    """New rows are in the inbox (the fold process otherwise looks now and then)."""


class OutboxMarks(NamedTuple):
    """Publishing outcomes: `published` (published_at, last_error, seq), `failed`
    (last_error, seq)."""

    rid: int
    published: list[tuple[float, str | None, int]]
    failed: list[tuple[str, int]]


class ActionMarks(NamedTuple):
    """Moderation executor reports: (action row id, state, at, result JSON) each
    (`receiver.moderation.book.ActionMark`)."""

    rid: int
    marks: list[tuple[int, str, float, str | None]]


class Ready(NamedTuple):
    pass


class Ack(NamedTuple):
    """One event on disk: the id it was given (its event's id once folded, or an alias of the
    stored event it repeats)."""

    rid: int
    id: str


class Committed(NamedTuple):
    seconds: float
    size: int
    acks: list[Ack]
    done: list[int]


class Failed(NamedTuple):
    rid: int
    message: str


class KindFolded(NamedTuple):
    kind: str
    stored: int
    duplicates: int
    schema_errors: int
    rejected: int


class Folded(NamedTuple):
    """One fold transaction (`rows` inbox rows, up to `through`), or a fold that stopped at a
    row it could not store (`error`); `done`: the `FoldThrough` requests now settled."""

    seconds: float
    rows: int
    through: int
    counts: list[KindFolded]
    done: list[int]
    error: str | None


Request = Event | Probe | OutboxMarks | ActionMarks | FoldThrough | Trim | Wake
Reply = Ready | Committed | Failed | Folded
Frame = Request | Reply


def encode(message: Frame) -> bytes:
    """The bytes of one frame, header included."""
    if isinstance(message, Event):
        return _event_frame(message)
    match message:
        case Probe(rid):
            body = orjson.dumps(["p", rid])
        case FoldThrough(rid, seq):
            body = orjson.dumps(["t", rid, seq])
        case Trim(seq):
            body = orjson.dumps(["m", seq])
        case Wake():
            body = b'["w"]'
        case Folded(seconds, rows, through, counts, done, error):
            body = orjson.dumps(
                ["f", seconds, rows, through, [tuple(c) for c in counts], done, error]
            )
        case OutboxMarks(rid, published, failed):
            body = orjson.dumps(["o", rid, published, failed])
        case ActionMarks(rid, marks):
            body = orjson.dumps(["a", rid, [tuple(mark) for mark in marks]])
        case Ready():
            body = b'["r"]'
        case Committed(seconds, size, acks, done):
            # orjson writes plain tuples only, not named ones.
            body = orjson.dumps(["c", seconds, size, [tuple(ack) for ack in acks], done])
        case Failed(rid, text):
            body = orjson.dumps(["x", rid, text])
    return _HEADER.pack(len(body)) + body


def _event_frame(event: Event) -> bytes:
    kind = event.path_kind.encode() if event.path_kind else b""
    size = _EVENT.size + len(kind) + len(event.payload)
    return b"".join(
        (
            _HEADER.pack(size),
            _EVENT.pack(b"E", event.rid, event.event_type, event.received_at, len(kind)),
            kind,
            event.payload,
        )
    )


class FrameBuffer:
    """Accumulates bytes and yields complete frames; a partial frame waits for more bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        buffer = self._buffer
        messages: list[Frame] = []
        offset = 0
        view = memoryview(buffer)
        try:
            while len(buffer) - offset >= HEADER_SIZE:
                (size,) = _HEADER.unpack_from(buffer, offset)
                start = offset + HEADER_SIZE
                end = start + size
                if end > len(buffer):
                    break
                if buffer[start] == _EVENT_TAG:
                    messages.append(_event(buffer, view, start, end))
                else:
                    messages.append(_decode(orjson.loads(view[start:end])))
                offset = end
        finally:
            view.release()
        del buffer[:offset]
        return messages


def _event(buffer: bytearray, view: memoryview, start: int, end: int) -> Event:
    _, rid, event_type, received_at, kind_size = _EVENT.unpack_from(buffer, start)
    kind_start = start + _EVENT.size
    body_start = kind_start + kind_size
    path_kind = bytes(view[kind_start:body_start]).decode() if kind_size else None
    return Event(rid, event_type, received_at, path_kind, bytes(view[body_start:end]))


def _decode(message: list[object]) -> Frame:
    match message:
        case ["p", int(rid)]:
            return Probe(rid)
        case ["t", int(rid), int(seq)]:
            return FoldThrough(rid, seq)
        case ["m", int(seq)]:
            return Trim(seq)
        case ["w"]:
            return Wake()
        case [
            "f",
            float(seconds) | int(seconds),
            int(rows),
            int(through),
            list(counts),
            list(done),
            error,
        ] if error is None or isinstance(error, str):
            return Folded(
                float(seconds),
                rows,
                through,
                [KindFolded(str(k), int(s), int(d), int(e), int(r)) for k, s, d, e, r in counts],
                [int(rid) for rid in done],
                error,
            )
        case ["o", int(rid), list(published), list(failed)]:
            return OutboxMarks(
                rid,
                [(float(at), error, int(seq)) for at, error, seq in published],
                [(str(error), int(seq)) for error, seq in failed],
            )
        case ["a", int(rid), list(marks)]:
            return ActionMarks(
                rid,
                [
                    (int(action), str(state), float(at), None if result is None else str(result))
                    for action, state, at, result in marks
                ],
            )
        case ["r"]:
            return Ready()
        case ["c", float(seconds) | int(seconds), int(size), list(acks), list(done)]:
            return Committed(
                float(seconds),
                size,
                [Ack(int(rid), str(event_id)) for rid, event_id in acks],
                [int(rid) for rid in done],
            )
        case ["x", int(rid), str(text)]:
            return Failed(rid, text)
    raise ValueError(f"not a writer frame: {str(message)[:100]}")
